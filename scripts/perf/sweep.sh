#!/usr/bin/env bash
# Latency against throughput: runs scripts/perf/latency.sh at increasing rates and reports the
# highest rate whose p99 stays under a bound (and that the app kept up with).
#
# Usage:
#   scripts/perf/sweep.sh --app NAME (--rates R1,R2,... | --from R --to R --steps N) \
#       --duration S --p99-bound-us B [--out DIR] [latency.sh options]
#     --rates        explicit rates (messages/s), run in increasing order
#     --from/--to/--steps  N rates spaced geometrically from R to R (N >= 2; N = 1: just --from)
#     --duration S   seconds per rate
#     --p99-bound-us B   the latency bound on p99, in µs
#     --out DIR      results folder (default results/sweep-<date>-<app>/); one sub-folder per rate
#   Passed on to latency.sh: --size, --threads, --warmup, --late-us, --poll-mode.
# A rate "keeps up" when the achieved rate is at least 95 % of the asked one. Writes DIR/sweep.json
# (every rate's summary, the bound, best_rate or null) and DIR/sweep.png (p99 and p99.9 against
# the achieved rate). Exit 0 (even when no rate meets the bound: sweep.json says so), 64 for a bad
# argument, 1 when a run fails.
set -euo pipefail
export LC_ALL=C

me=sweep.sh
usage_error() {
    echo "${me}: $*" >&2
    exit 64
}
fail() {
    echo "${me}: FAILED: $*" >&2
    exit 1
}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "${here}/../.." && pwd)

app='' rates='' from='' to='' steps='' duration='' bound='' out=''
pass=()
while [[ $# -gt 0 ]]; do
    case $1 in
    --app | --rates | --from | --to | --steps | --duration | --p99-bound-us | --out | --size | \
        --threads | --warmup | --late-us | --poll-mode)
        [[ $# -ge 2 ]] || usage_error "$1 needs a value"
        case $1 in
        --app) app=$2 ;;
        --rates) rates=$2 ;;
        --from) from=$2 ;;
        --to) to=$2 ;;
        --steps) steps=$2 ;;
        --duration) duration=$2 ;;
        --p99-bound-us) bound=$2 ;;
        --out) out=$2 ;;
        *) pass+=("$1" "$2") ;;
        esac
        shift 2
        ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) usage_error "unknown argument '$1' (see --help)" ;;
    esac
done

number='^([0-9]+([.][0-9]*)?|[.][0-9]+)$'
[[ -n ${app} ]] || usage_error "--app NAME is required"
[[ -n ${duration} ]] || usage_error "--duration S is required"
[[ -n ${bound} ]] || usage_error "--p99-bound-us B is required"
[[ ${bound} =~ ${number} ]] && awk -v b="${bound}" 'BEGIN { exit !(b > 0) }' ||
    usage_error "--p99-bound-us must be a positive number of µs, not '${bound}'"
if [[ -n ${rates} ]]; then
    [[ -z ${from}${to}${steps} ]] || usage_error "give --rates or --from/--to/--steps, not both"
    IFS=, read -r -a list <<<"${rates}"
elif [[ -n ${from} && -n ${to} && -n ${steps} ]]; then
    [[ ${steps} =~ ^[1-9][0-9]*$ ]] || usage_error "--steps must be a positive integer, not '${steps}'"
    for v in "${from}" "${to}"; do
        [[ ${v} =~ ${number} ]] && awk -v r="${v}" 'BEGIN { exit !(r > 0) }' ||
            usage_error "--from and --to must be positive rates, not '${v}'"
    done
    read -r -a list <<<"$(awk -v a="${from}" -v b="${to}" -v n="${steps}" 'BEGIN {
        for (i = 0; i < n; i++) printf "%.0f ", (n == 1 ? a : a * (b / a) ^ (i / (n - 1))) }')"
else
    usage_error "give --rates R1,R2,... or --from R --to R --steps N"
fi
((${#list[@]} > 0)) || usage_error "no rates given"
for r in "${list[@]}"; do
    [[ ${r} =~ ${number} ]] && awk -v r="${r}" 'BEGIN { exit !(r > 0) }' ||
        usage_error "rates must be positive numbers, not '${r}'"
done
# Increasing order, duplicates dropped.
read -r -a list <<<"$(printf '%s\n' "${list[@]}" | sort -g -u | paste -sd' ' -)"

out=${out:-${root}/results/sweep-$(date +%Y%m%d-%H%M%S)-${app}}
mkdir -p "${out}" || usage_error "cannot create ${out}"
out=$(cd "${out}" && pwd)

dirs=()
for r in "${list[@]}"; do
    d=${out}/rate-${r}
    rc=0
    "${here}/latency.sh" --app "${app}" --rate "${r}" --duration "${duration}" --out "${d}" \
        "${pass[@]}" || rc=$?
    [[ ${rc} != 64 ]] || exit 64 # a usage error is the same at every rate; latency.sh said why
    [[ ${rc} == 0 ]] || fail "latency.sh failed at ${r} msgs/s (logs: ${d}/logs)"
    dirs+=("${d}")
    # The first run built what is needed; the later ones use its binaries as they are.
    if [[ -z ${RINGTAIL_BIN_DIR:-} ]]; then
        build_dir=${BUILD_DIR:-build}
        [[ ${build_dir} == /* ]] || build_dir=${root}/${build_dir}
        export RINGTAIL_BIN_DIR=${build_dir}/bin
    fi
done

python3 - "${out}" "${bound}" "${dirs[@]}" <<'EOF'
import json, os, sys
out, bound = sys.argv[1], float(sys.argv[2])
runs = []
for d in sys.argv[3:]:
    s = json.load(open(os.path.join(d, "summary.json")))
    s["dir"] = d
    s["keeps_up"] = s["rate_achieved"] >= 0.95 * s["rate_asked"]
    s["under_bound"] = s["p99_us"] < bound
    runs.append(s)
ok = [s for s in runs if s["keeps_up"] and s["under_bound"]]
best = max(ok, key=lambda s: s["rate_asked"]) if ok else None
result = {"app": runs[0]["app"], "p99_bound_us": bound, "keeps_up_ratio": 0.95,
          "best_rate": best["rate_asked"] if best else None,
          "best_rate_achieved": best["rate_achieved"] if best else None,
          "runs": runs}
json.dump(result, open(os.path.join(out, "sweep.json"), "w"), indent=2)
with open(os.path.join(out, "sweep.dat"), "w") as f:
    f.write("# rate_asked rate_achieved p50_us p99_us p999_us max_us\n")
    for s in runs:
        f.write(f"{s['rate_asked']} {s['rate_achieved']} {s['p50_us']} {s['p99_us']} "
                f"{s['p999_us']} {s['max_us']}\n")
print(f"{'rate asked':>12} {'achieved':>12} {'p50 µs':>10} {'p99 µs':>10} {'p99.9 µs':>10} "
      f"{'max µs':>10}  notes")
for s in runs:
    notes = []
    if not s["keeps_up"]:
        notes.append("falls behind")
    notes.append("p99 under bound" if s["under_bound"] else "p99 over bound")
    print(f"{s['rate_asked']:>12,.0f} {s['rate_achieved']:>12,.0f} {s['p50_us']:>10.1f} "
          f"{s['p99_us']:>10.1f} {s['p999_us']:>10.1f} {s['max_us']:>10.1f}  {', '.join(notes)}")
if best:
    print(f"best rate: {best['rate_asked']:,.0f} msgs/s (achieved {best['rate_achieved']:,.0f}) "
          f"with p99 {best['p99_us']:.1f} µs < {bound:g} µs")
else:
    print(f"best rate: none: no rate kept up with p99 under {bound:g} µs")
EOF

# gnuplot reads blocks ({ ... } over several lines) from a file only, not from stdin.
gp=$(mktemp "${TMPDIR:-/tmp}/ringtail-sweep.XXXXXX")
trap 'rm -f "${gp}"' EXIT
cat >"${gp}" <<'EOF'
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
    set terminal pngcairo size 1000,620 enhanced font "sans,10"
} else {
    set terminal png size 1000,620 font "sans,10"
}
set output out
set title app . ": latency against throughput" noenhanced
set xlabel "achieved rate (messages/s)"
set ylabel "latency (µs, log scale)"
set logscale y 10
set format y "%g"
set format x "%.0f"
set grid
set key top left box opaque
plot dat using 2:4 with linespoints linewidth 2 pointtype 7 title "p99", \
     dat using 2:5 with linespoints linewidth 2 pointtype 5 title "p99.9", \
     bound with lines dashtype 2 linecolor rgb "red" title sprintf("p99 bound %g µs", bound)
EOF
gnuplot -e "dat='${out}/sweep.dat'; bound=${bound}; out='${out}/sweep.png'; app='${app}'" \
    "${gp}" 2>"${out}/gnuplot.log" || fail "gnuplot failed (log: ${out}/gnuplot.log)"
echo "results: ${out}/ (sweep.json, sweep.png, rate-*/)"
