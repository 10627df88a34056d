#!/usr/bin/env bash
# The main demo: builds Ringtail if needed, starts a word_count cluster of two workers (the
# initializer and worker2: each word's count lives on one of them, and words cross the data
# channel to their owner), a receiver, and two senders (one per worker) that stream a real text
# (the GPL-3 licence Debian installs, repeated). It prints the top word counts, the throughput,
# where the keys live (the external channel's queries) and the initializer's own per-stage
# latencies, then stops the whole cluster with a CleanShutdown; then it runs passthrough at a
# constant rate with latency stamps and prints the end-to-end latency table (measured from each
# message's intended send time, so stalls are not hidden).
#
# Usage: scripts/demo.sh [--lines N] [--threads N] [--rate MSGS_PER_S]
set -euo pipefail
cd "$(dirname "$0")/.."

lines=400000
threads=""
rate=100000
while [ $# -gt 0 ]; do
    case "$1" in
        --lines) lines=$2; shift 2 ;;
        --threads) threads="--threads $2"; shift 2 ;;
        --rate) rate=$2; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "demo.sh: unknown argument '$1' (see --help)" >&2; exit 64 ;;
    esac
done

scripts/deps.sh
echo "building (first time: a few minutes)..."
scripts/build.sh build
bin=build/bin
corpus=/usr/share/common-licenses/GPL-3
[ -r "$corpus" ] || { echo "demo.sh: $corpus not found (Debian's base-files installs it)" >&2; exit 66; }

work=$(mktemp -d /tmp/ringtail-demo.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
in_port=$(free_port)
in2_port=$(free_port)
out_port=$(free_port)
metrics_port=$(free_port)
control_port=$(free_port)
data_port=$(free_port)
external_port=$(free_port)

half=$((lines / 2))
lines=$((half * 2))
# The exact output word_count must produce (WIRE.md §6 word rules): the receiver exits when it has
# it all, which ends the throughput measurement. Each sender sends the first `half` lines; a
# word seen n times in all yields the lines "w => 1" .. "w => n", whatever the interleaving.
expected_bytes=$(python3 - "$corpus" "$half" <<'PY'
import sys
punct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
text = open(sys.argv[1], "rb").read().decode("utf-8")
rows = text.split("\n")
if rows and rows[-1] == "":
    rows.pop()
counts = {}
for i in range(int(sys.argv[2])):
    line = "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in rows[i % len(rows)])
    for w in line.split(" "):
        w = w.strip(punct)
        if w:
            counts[w] = counts.get(w, 0) + 2  # two senders
print(sum(len(f"{w} => {k}\n".encode()) for w, n in counts.items() for k in range(1, n + 1)))
PY
)
"$bin/ringtail-recv" -l "127.0.0.1:$out_port" --out "$work/counts.txt" --ready-file "$work/recv.port" \
    --expect "$expected_bytes" 2>"$work/recv.log" &
recv_pid=$!; pids+=("$recv_pid")
for _ in $(seq 100); do [ -s "$work/recv.port" ] && break; sleep 0.05; done

# The initializer (-t) waits for one more worker (-w 2) on its control address; worker2 connects
# there, the data channel between them is built, and both start processing together.
# shellcheck disable=SC2086
"$bin/word_count" -t -w 2 -c "127.0.0.1:$control_port" -d "127.0.0.1:$data_port" \
    --in "127.0.0.1:$in_port" --out "127.0.0.1:$out_port" -e "127.0.0.1:$external_port" $threads \
    --metrics-listen "127.0.0.1:$metrics_port" --metrics-period 500 2>"$work/worker.log" &
worker_pid=$!; pids+=("$worker_pid")
# shellcheck disable=SC2086
"$bin/word_count" -c "127.0.0.1:$control_port" -n worker2 -y 127.0.0.1:0 \
    --in "127.0.0.1:$in2_port" --out "127.0.0.1:$out_port" $threads --metrics-period 0 \
    2>"$work/worker2.log" &
worker2_pid=$!; pids+=("$worker2_pid")
for port in "$in_port" "$in2_port"; do
    for _ in $(seq 400); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        kill -0 "$worker_pid" 2>/dev/null || { cat "$work/worker.log"; exit 1; }
        kill -0 "$worker2_pid" 2>/dev/null || { cat "$work/worker2.log"; exit 1; }
        sleep 0.05
    done
done

echo "word_count cluster: initializer on 127.0.0.1:$in_port, worker2 on 127.0.0.1:$in2_port -> receiver on 127.0.0.1:$out_port"
echo "sending $lines lines of $corpus (repeated), half to each worker..."
start=$(date +%s.%N)
"$bin/ringtail-send" -h "127.0.0.1:$in_port" -f "$corpus" -r -m "$half" 2>"$work/send.log" &
send_pid=$!
"$bin/ringtail-send" -h "127.0.0.1:$in2_port" -f "$corpus" -r -m "$half" 2>"$work/send2.log"
wait "$send_pid"
wait "$recv_pid"  # exits once it has every byte the word counts should produce
end=$(date +%s.%N)
# A second receiver takes the sink's output from here on (the sink reconnects to it). Keep the
# word stream flowing for two metrics periods at a modest rate, so the worker's /status (which
# covers its last period) describes steady traffic, then read it.
"$bin/ringtail-recv" -l "127.0.0.1:$out_port" -n 2>>"$work/recv.log" &
recv_pid=$!; pids+=("$recv_pid")
"$bin/ringtail-send" -h "127.0.0.1:$in_port" -f "$corpus" -r -m 100000 --rate 100000 \
    2>>"$work/send.log"
python3 - "127.0.0.1:$metrics_port" >"$work/status.txt" <<'PY' || true
import json, sys, urllib.request
s = json.load(urllib.request.urlopen(f"http://{sys.argv[1]}/status", timeout=5))
rows = [(p["name"], "start-to-end", p["latency"]) for p in s["pipelines"]]
rows += [(st["name"], st["category"], st) for st in s["stages"]]
print(f"initializer's own latencies over its last {s['period_ms']} ms period (from /status):")
print(f"  {'stage / pipeline':<20} {'category':<13} {'count':>8} {'p50':>9} {'p99':>9} {'p99.9':>9} {'max':>9}")
def us(ns): return f"{ns/1000:.1f}us" if ns < 10_000_000 else f"{ns/1e6:.1f}ms"
for name, cat, l in rows:
    print(f"  {name:<20} {cat:<13} {l['count']:>8} {us(l['p50_ns']):>9} {us(l['p99_ns']):>9} "
          f"{us(l['p999_ns']):>9} {us(l['max_ns']):>9}")
PY
echo
echo "where the keys live (external channel: cluster-status-query, cluster-state-entity-count-query):"
echo "  $("$bin/ringtail-ctl" -e "127.0.0.1:$external_port" -t cluster-status-query --json)"
echo "  $("$bin/ringtail-ctl" -e "127.0.0.1:$external_port" -t cluster-state-entity-count-query --json)"
# CleanShutdown: every worker stops its sources, the cluster drains (nothing left in a ring or on
# the data channel), sinks flush, and both workers exit 0.
"$bin/ringtail-ctl" -e "127.0.0.1:$external_port" -t clean-shutdown
wait "$worker_pid"
wait "$worker2_pid"
kill -TERM "$recv_pid"; wait "$recv_pid" || true

echo
echo "initializer: $(grep -o 'stopped:.*' "$work/worker.log")"
echo "worker2:     $(grep -o 'stopped:.*' "$work/worker2.log")"
echo "data channel (initializer): $(grep -o 'data channel:.*sent.*' "$work/worker.log")"
python3 - "$work/counts.txt" "$lines" "$start" "$end" <<'PY'
import sys
counts = {}
outputs = 0
with open(sys.argv[1], encoding="utf-8", errors="replace") as f:
    for line in f:
        word, _, n = line.rstrip("\n").rpartition(" => ")
        outputs += 1
        counts[word] = max(counts.get(word, 0), int(n))
lines, start, end = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
secs = end - start
print(f"\ntop words ({len(counts)} distinct, {outputs} count updates):")
for word, n in sorted(counts.items(), key=lambda kv: -kv[1])[:10]:
    print(f"  {word:>12} {n:>9}")
print(f"\nthroughput: {lines} lines ({outputs} words) in {secs:.2f} s = "
      f"{lines/secs:,.0f} lines/s, {outputs/secs:,.0f} words/s end to end")
PY
echo
cat "$work/status.txt"

echo
echo "end-to-end latency: passthrough at $rate msgs/s for 4 s (1 s warm-up), sender -> worker -> receiver"
RINGTAIL_BIN_DIR="$bin" scripts/perf/latency.sh --app passthrough --rate "$rate" --duration 4 \
    --warmup 1 --out "$work/latency" >"$work/latency.log" 2>&1 ||
    { cat "$work/latency.log"; exit 1; }
python3 - "$work/latency/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
keys = [("p50", "p50_us"), ("p90", "p90_us"), ("p99", "p99_us"), ("p99.9", "p999_us"),
        ("p99.99", "p9999_us"), ("max", "max_us")]
print(f"  rate asked {s['rate_asked']:,.0f}/s, achieved {s['rate_achieved']:,.0f}/s, "
      f"{s['count']:,} messages measured")
print("  " + "".join(f"{k:>10}" for k, _ in keys))
print("  " + "".join(f"{s[v]:>8.0f}us" for _, v in keys))
PY
echo "  (plot: $work/latency/latency.png; percentile distribution: $work/latency/latency.hgrm)"
echo
echo "logs and output: $work"
