#!/usr/bin/env bash
# Two latency runs side by side: overlays their latency.hgrm in one percentile plot (labels are
# the folder names) and prints their summaries with the ratio B/A.
#
# Usage: scripts/perf/compare.sh DIR_A DIR_B [--out FILE.png]
#   DIR_A, DIR_B  folders written by scripts/perf/latency.sh (latency.hgrm, summary.json)
#   --out FILE    the plot (default: compare-<A>-vs-<B>.png beside DIR_A)
# Exit 0, 64 for a bad argument or a folder that is not a latency.sh result.
set -euo pipefail
export LC_ALL=C

me=compare.sh
usage_error() {
    echo "${me}: $*" >&2
    exit 64
}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

dirs=()
png=''
while [[ $# -gt 0 ]]; do
    case $1 in
    --out)
        [[ $# -ge 2 ]] || usage_error "--out needs a file name"
        png=$2
        shift 2
        ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    -*) usage_error "unknown argument '$1' (see --help)" ;;
    *)
        dirs+=("$1")
        shift
        ;;
    esac
done
((${#dirs[@]} == 2)) || usage_error "give two result folders, DIR_A and DIR_B (see --help)"
for d in "${dirs[@]}"; do
    [[ -s ${d}/latency.hgrm && -s ${d}/summary.json ]] ||
        usage_error "${d} is not a latency.sh result (latency.hgrm and summary.json expected)"
done
a=$(cd "${dirs[0]}" && pwd)
b=$(cd "${dirs[1]}" && pwd)
name_a=$(basename "${a}")
name_b=$(basename "${b}")
[[ ${name_a} != "${name_b}" ]] || { name_a=A:${name_a}; name_b=B:${name_b}; }
png=${png:-$(dirname "${a}")/compare-$(basename "${a}")-vs-$(basename "${b}").png}
[[ ${a}${b}${png}${name_a}${name_b} != *[[:space:]\'\"]* ]] ||
    usage_error "folder names with spaces or quotes are not supported"

python3 - "${a}/summary.json" "${b}/summary.json" "${name_a}" "${name_b}" <<'EOF'
import json, sys
sa, sb = (json.load(open(p)) for p in sys.argv[1:3])
na, nb = sys.argv[3:5]
w = max(len(na), len(nb), 12)
print(f"{'':<16} {na:>{w}} {nb:>{w}} {'B/A':>8}")
rows = [("rate asked", "rate_asked"), ("rate achieved", "rate_achieved"), ("count", "count"),
        ("p50 µs", "p50_us"), ("p90 µs", "p90_us"), ("p99 µs", "p99_us"),
        ("p99.9 µs", "p999_us"), ("p99.99 µs", "p9999_us"), ("max µs", "max_us"),
        ("mean µs", "mean_us"), ("late", "late_messages")]
for label, key in rows:
    x, y = sa.get(key), sb.get(key)
    ratio = f"{y / x:.2f}x" if isinstance(x, (int, float)) and isinstance(y, (int, float)) and x else "-"
    fmt = lambda v: f"{v:,.1f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else "-"
    print(f"{label:<16} {fmt(x):>{w}} {fmt(y):>{w}} {ratio:>8}")
for label, key in (("threads", "threads"), ("poll mode", "poll_mode")):
    print(f"{label:<16} {str(sa['worker'].get(key)):>{w}} {str(sb['worker'].get(key)):>{w}}")
print(f"{'git':<16} {sa['git']['commit'] + '/' + sa['git']['tree']:>{w}} "
      f"{sb['git']['commit'] + '/' + sb['git']['tree']:>{w}}")
EOF

maxes=$(python3 -c 'import json, sys; print(" ".join(str(json.load(open(p))["max_us"]) for p in sys.argv[1:]))' \
    "${a}/summary.json" "${b}/summary.json")
gnuplot -e "files='${a}/latency.hgrm ${b}/latency.hgrm'; titles='${name_a} ${name_b}'; maxes='${maxes}'; out='${png}'; plot_title='latency by percentile: ${name_a} vs ${name_b}'" \
    "${here}/plot_latency.gp" || { echo "${me}: gnuplot failed" >&2; exit 1; }
echo "plot: ${png}"
