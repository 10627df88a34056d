#!/usr/bin/env bash
# The main demo: builds Ringtail if needed, starts a word_count worker, a receiver and a sender
# that streams a real text (the GPL-3 licence Debian installs, repeated), then prints the top word
# counts and the throughput.
#
# Usage: scripts/demo.sh [--lines N] [--threads N]
set -euo pipefail
cd "$(dirname "$0")/.."

lines=400000
threads=""
while [ $# -gt 0 ]; do
    case "$1" in
        --lines) lines=$2; shift 2 ;;
        --threads) threads="--threads $2"; shift 2 ;;
        -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
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
out_port=$(free_port)

"$bin/ringtail-recv" -l "127.0.0.1:$out_port" --out "$work/counts.txt" --ready-file "$work/recv.port" \
    2>"$work/recv.log" &
recv_pid=$!; pids+=("$recv_pid")
for _ in $(seq 100); do [ -s "$work/recv.port" ] && break; sleep 0.05; done

# shellcheck disable=SC2086
"$bin/word_count" --in "127.0.0.1:$in_port" --out "127.0.0.1:$out_port" $threads 2>"$work/worker.log" &
worker_pid=$!; pids+=("$worker_pid")
for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$in_port") 2>/dev/null && break
    kill -0 "$worker_pid" 2>/dev/null || { cat "$work/worker.log"; exit 1; }
    sleep 0.05
done

echo "word_count worker on 127.0.0.1:$in_port -> receiver on 127.0.0.1:$out_port"
echo "sending $lines lines of $corpus (repeated)..."
start=$(date +%s.%N)
"$bin/ringtail-send" -h "127.0.0.1:$in_port" -f "$corpus" -r -m "$lines" 2>"$work/send.log"
# SIGTERM drains everything in flight and flushes the sink before the worker exits.
kill -TERM "$worker_pid"
wait "$worker_pid"
end=$(date +%s.%N)
kill -TERM "$recv_pid"; wait "$recv_pid" || true

echo
echo "worker: $(grep -o 'stopped:.*' "$work/worker.log")"
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
echo "logs and output: $work"
