#!/usr/bin/env python3
"""Two builds of one Google Benchmark program side by side: OLD and NEW run alternately (old, new,
then new, old, ...), PAIRS times, and for each benchmark this prints the median items/s of each and
the median of the pairs' ratios (new / old), with how many pairs NEW won.

On a shared host a single run can be half again as fast as the next; two runs seconds apart share
most of that swing, so the ratio of a pair says more than the two medians. An A/A run (one build as
both) shows how far the ratio strays by chance: on the development VM, within about 3 % at 20 pairs.

Usage: scripts/perf/bench_ab.py OLD NEW [--pairs N] [--filter REGEX] [--min-time S]
                                [--ratio A:B ...] [--json FILE]
  OLD, NEW       two builds of the same benchmark (perf/*_bench.cc), e.g. copies of
                 build/bin/data_channel_bench before and after a change
  --pairs N      runs of each (default 12)
  --filter RE    --benchmark_filter for both (default: all)
  --min-time S   --benchmark_min_time for both (default 0.2)
  --ratio A:B    also the median, within each run, of benchmark A's items/s over B's (for instance
                 dpdk_channel/1:dpdk_bare/83: the channel against the bare PMD in the same run)
  --json FILE    every run's figures and the summary

Exit: 0, 1 when a run failed or a benchmark reported no items/s, 64 bad flags.
"""
import argparse
import json
import re
import statistics
import subprocess
import sys

EX_USAGE = 64
LINE = re.compile(r"^(\S+)\s+[0-9.]+ \S+\s+[0-9.]+ \S+\s+\d+.*?items_per_second=([0-9.]+)([kMG]?)/s",
                  re.M)
SCALE = {"": 1e-6, "k": 1e-3, "M": 1.0, "G": 1e3}


def die(code, message):
    print(f"bench_ab.py: {message}", file=sys.stderr)
    sys.exit(code)


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 64, as the other perf scripts
        die(EX_USAGE, f"{message} (--help lists the flags)")


def parse_args():
    p = Parser(prog="bench_ab.py", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--pairs", type=int, default=12)
    p.add_argument("--filter", default=".")
    p.add_argument("--min-time", type=float, default=0.2)
    p.add_argument("--ratio", action="append", default=[])
    p.add_argument("--json")
    a = p.parse_args()
    if a.pairs < 1:
        die(EX_USAGE, f"--pairs must be at least 1, not {a.pairs}")
    if a.min_time <= 0:
        die(EX_USAGE, f"--min-time must be above 0, not {a.min_time}")
    for r in a.ratio:
        if r.count(":") != 1 or "" in r.split(":"):
            die(EX_USAGE, f"--ratio wants BENCHMARK:BENCHMARK, not {r!r}")
    return a


def run(binary, a):
    """One run: {benchmark: items/s in millions}."""
    try:
        r = subprocess.run([binary, f"--benchmark_filter={a.filter}",
                            f"--benchmark_min_time={a.min_time}"],
                           capture_output=True, text=True, timeout=3600)
    except OSError as e:
        die(1, f"cannot run {binary}: {e.strerror}")
    figures = {m.group(1): float(m.group(2)) * SCALE[m.group(3)] for m in LINE.finditer(r.stdout)}
    if r.returncode != 0 or not figures:
        tail = (r.stderr.strip().splitlines() or r.stdout.strip().splitlines() or ["no output"])[-1]
        die(1, f"{binary} exited {r.returncode} with no items/s figures: {tail}")
    return figures


def main():
    a = parse_args()
    runs = {"old": [], "new": []}
    for i in range(a.pairs):
        order = (("old", a.old), ("new", a.new)) if i % 2 == 0 else (("new", a.new), ("old", a.old))
        for tag, binary in order:
            runs[tag].append(run(binary, a))
    names = [n for n in runs["old"][0] if all(n in r for r in runs["old"] + runs["new"])]
    missing = sorted(set().union(*runs["old"], *runs["new"]) - set(names))
    summary = {}
    width = max([len(n) for n in names] + [9])
    print(f"{'benchmark':{width}}  {'old M/s':>8}  {'new M/s':>8}  new/old  pairs new won")
    for n in names:
        old = [r[n] for r in runs["old"]]
        new = [r[n] for r in runs["new"]]
        ratios = [y / x for x, y in zip(old, new) if x > 0]
        won = sum(1 for x in ratios if x > 1)
        summary[n] = {"old_median": statistics.median(old), "new_median": statistics.median(new),
                      "ratio_median": statistics.median(ratios), "pairs_new_won": won,
                      "pairs": len(ratios)}
        print(f"{n:{width}}  {summary[n]['old_median']:8.3f}  {summary[n]['new_median']:8.3f}"
              f"  {summary[n]['ratio_median']:7.3f}  {won}/{len(ratios)}")
    within = {}
    for r in a.ratio:
        num, den = r.split(":")
        if num not in names or den not in names:
            die(1, f"--ratio {r}: no such benchmark in every run (have: {', '.join(names)})")
        within[r] = {tag: statistics.median(x[num] / x[den] for x in runs[tag])
                     for tag in ("old", "new")}
        print(f"{num} / {den}, within each run: old {within[r]['old']:.3f}, "
              f"new {within[r]['new']:.3f}")
    if missing:
        print(f"not in every run (left out): {', '.join(missing)}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"old": a.old, "new": a.new, "pairs": a.pairs, "runs": runs,
                       "summary": summary, "within": within}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
