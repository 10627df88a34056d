#!/usr/bin/env bash
# Builds and runs perf/ring_bench (ringtail::spsc_ring against rte_ring, boost::lockfree and
# moodycamel), prints a table of medians over 5 repetitions and keeps the full JSON in
# results/ring-<date>.json. Run from the repository root:
#   scripts/perf/ring.sh [extra ring_bench flags, e.g. --benchmark_filter=throughput]
# Environment: BUILD_DIR (default build), RINGTAIL_BENCH_CPUS=a,b (the two CPUs to pin to).
set -euo pipefail

build_dir=${BUILD_DIR:-build}
repetitions=${REPETITIONS:-5}

if [[ ! -f CMakeLists.txt || ! -f perf/ring_bench.cc ]]; then
    echo "ring.sh: run me from the repository root" >&2
    exit 64
fi
if [[ ! -f "${build_dir}/build.ninja" ]]; then
    cmake -S . -B "${build_dir}" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
ninja -C "${build_dir}" ring_bench

mkdir -p results
out="results/ring-$(date +%Y%m%d-%H%M%S).json"

uptime >&2 # a loaded machine (a build next door) ruins these numbers; check before trusting them
"${build_dir}/bin/ring_bench" \
    --benchmark_repetitions="${repetitions}" \
    --benchmark_report_aggregates_only=true \
    --benchmark_out="${out}" \
    --benchmark_out_format=json \
    "$@" >/dev/null

# One line per benchmark, grouped by test so the queues sit next to each other: median items/s
# (throughput) or ns per round trip, and the spread (coefficient of variation across repetitions;
# above a few percent, something else was using the CPUs).
python3 - "${out}" <<'EOF'
import json
import sys

with open(sys.argv[1]) as f:
    report = json.load(f)
rows = {}
for b in report["benchmarks"]:
    name = b["run_name"].split("/min_time")[0]
    row = rows.setdefault(name, {})
    if b.get("error_occurred"):
        row["error"] = b.get("error_message", "error")
        continue
    agg = b.get("aggregate_name")
    if agg not in ("median", "cv"):
        continue
    if "items_per_second" in b:
        row[agg] = b["items_per_second"]
        row["unit"] = "Mitems/s"
    elif "rtt_ns" in b:
        row[agg] = b["rtt_ns"]
        row["unit"] = "ns/rtt"

def test_then_queue(name):
    kind, queue, *rest = name.split("/")
    return (kind, rest, list(rows).index(name))

print(f"{'benchmark':<44} {'median':>12} {'unit':<9} {'cv':>6}")
for name in sorted(rows, key=test_then_queue):
    row = rows[name]
    if "error" in row:
        print(f"{name:<44} {'skipped: ' + row['error']}")
        continue
    median = row.get("median", float("nan"))
    if row.get("unit") == "Mitems/s":
        median /= 1e6
    cv = row.get("cv", float("nan"))
    print(f"{name:<44} {median:>12.1f} {row.get('unit', ''):<9} {cv * 100:>5.1f}%")
EOF
echo "full results: ${out}"
