#!/usr/bin/env bash
# End-to-end throughput over loopback TCP, in messages/s, with the kernel's limit beside it, all in
# one run: every case runs once per repetition, interleaved, and the table shows medians.
#
#   kernel: u64 frames     ringtail-send -y (the frames of `-u -p k`) -> frame_drain_baseline
#   passthrough t1, t2     the same frames -> passthrough --threads 1|2 -> ringtail-recv -f -n
#   kernel: GPL-3 lines    ringtail-send -f GPL-3 -r -> frame_drain_baseline
#   word_count t1          the same lines -> word_count --threads 1 -> ringtail-recv -n (raw)
#   kernel: market         orders and quotes from two senders at once -> two frame_drain_baselines
#   market_spread t1       warm-up quotes, then orders and quotes from two senders at once ->
#                          market_spread --threads 1 -> ringtail-recv -f -n
#
# A case's time runs from the sender's start until the receiver has every expected frame or byte
# (ringtail-recv --expect), so it includes the worker's whole path; the kernel rows are timed the
# same way (sender start until frame_drain_baseline sees EOF). Each worker is stopped with
# SIGTERM, must exit 0, and its final counters must match what was sent and expected.
#
# Usage (from the repository root):
#   scripts/perf/e2e.sh [--reps R] [--messages N] [--lines L] [--orders M] [--quick]
#     --reps R       repetitions (default 3)
#     --messages N   passthrough / kernel u64 messages (default 2000000)
#     --lines L      word_count lines (default N/10)
#     --orders M     market_spread orders (default N/2; quotes in the timed phase: M/10)
#     --quick        N=100000, 1 repetition: well under 30 s once built
# Environment: BUILD_DIR (default build). Results: results/e2e-<date>/ (summary.json, table.txt,
# raw.jsonl, and every process's log under logs/).
set -euo pipefail
export LC_ALL=C # EPOCHREALTIME and printf use '.' as the decimal point

me=e2e.sh
fail() {
    echo "${me}: FAILED: $*" >&2
    exit 1
}

reps=3
messages=2000000
lines=
orders=
quick=0
while [[ $# -gt 0 ]]; do
    case $1 in
    --reps)
        reps=${2:?--reps needs a value}
        shift 2
        ;;
    --messages)
        messages=${2:?--messages needs a value}
        shift 2
        ;;
    --lines)
        lines=${2:?--lines needs a value}
        shift 2
        ;;
    --orders)
        orders=${2:?--orders needs a value}
        shift 2
        ;;
    --quick)
        quick=1
        shift
        ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "${me}: unknown argument '$1' (see --help)" >&2
        exit 64
        ;;
    esac
done
if [[ ${quick} == 1 ]]; then
    messages=100000
    reps=1
fi
for v in reps messages lines orders; do
    if [[ -n ${!v} && ! ${!v} =~ ^[1-9][0-9]*$ ]]; then
        echo "${me}: --${v} must be a positive integer" >&2
        exit 64
    fi
done
lines=${lines:-$((messages / 10))}
orders=${orders:-$((messages / 2))}
quotes=$((orders / 10))

if [[ ! -f CMakeLists.txt || ! -f perf/frame_drain_baseline.cc ]]; then
    echo "${me}: run me from the repository root" >&2
    exit 64
fi
gpl=/usr/share/common-licenses/GPL-3
[[ -r ${gpl} ]] || fail "${gpl} is missing (Debian package base-files)"

# --- build -----------------------------------------------------------------------------------------
build_dir=${BUILD_DIR:-build}
bin=${build_dir}/bin
echo "${me}: building ${build_dir}/" >&2
scripts/build.sh "${build_dir}" -DRINGTAIL_PERF=ON || fail "the build failed (scripts/build.sh ${build_dir})"
if [[ ! -x ${bin}/frame_drain_baseline ]]; then
    if ! ninja -C "${build_dir}" -t targets all | grep -q '^frame_drain_baseline:'; then
        echo "${me}: ${build_dir}/ is configured with RINGTAIL_PERF=OFF; turning it on for" \
            "frame_drain_baseline" >&2
        cmake -S . -B "${build_dir}" -DRINGTAIL_PERF=ON >/dev/null || fail "cmake failed"
    fi
    ninja -C "${build_dir}" frame_drain_baseline >/dev/null ||
        fail "cannot build frame_drain_baseline (benchmark package missing? see perf/README.md)"
fi
for b in frame_drain_baseline passthrough word_count market_spread ringtail-send ringtail-recv; do
    [[ -x ${bin}/${b} ]] || fail "${bin}/${b} was not built"
done

# --- bookkeeping -----------------------------------------------------------------------------------
stamp=$(date +%Y%m%d-%H%M%S)
out=results/e2e-${stamp}
mkdir -p "${out}/logs"
raw=${out}/raw.jsonl
: >"${raw}"
work=$(mktemp -d "${TMPDIR:-/tmp}/ringtail-e2e.XXXXXX")

# track, reaped, wait_rc, stop_rc, wait_for, wait_worker_up; every process tracked is killed on
# the way out, and ${work} removed.
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# seconds_between T0 T1 (EPOCHREALTIME values)
seconds_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }

# Log file of the current run: logs/<case>-r<rep>-<process>.log
log_of() { echo "${out}/logs/${case_id}-r${rep}-$1.log"; }

# start_receiver ARGS...: ringtail-recv on a free port; sets recv_pid, recv_port, recv_log.
start_receiver() {
    local ready=${work}/recv.port
    rm -f "${ready}"
    recv_log=$(log_of recv)
    "${bin}/ringtail-recv" -l 127.0.0.1:0 --ready-file "${ready}" --timeout 30 "$@" \
        >/dev/null 2>"${recv_log}" &
    recv_pid=$!
    track "${recv_pid}"
    wait_for "[[ -s ${ready} ]]" 10 "ringtail-recv to listen"
    recv_port=$(<"${ready}")
}

# start_worker APP THREADS IN-SPEC: the worker writing to the receiver; sets worker_pid,
# worker_log, and port_of[source name] from its log. Waits until its sink is connected.
start_worker() {
    local app=$1 threads=$2 in_spec=$3
    worker_app=${app}
    worker_log=$(log_of worker)
    # shellcheck disable=SC2086
    "${bin}/${app}" --threads "${threads}" --in "${in_spec}" --out "127.0.0.1:${recv_port}" \
        ${worker_extra:-} 2>"${worker_log}" &
    worker_pid=$!
    track "${worker_pid}"
    wait_worker_up "${worker_pid}" "${worker_log}" "${app}"
}

# stop_worker IN OUT: SIGTERM, exit 0, and its final counters must be IN messages in and OUT out.
stop_worker() {
    local rc
    stop_rc "${worker_pid}"
    worker_pid=
    [[ ${rc} == 0 ]] || fail "${worker_app} (${case_id}, rep ${rep}) exited ${rc} after SIGTERM, not 0 (log: ${worker_log})"
    local counts
    counts=$(sed -n 's/.*stopped: \([0-9]*\) messages in, \([0-9]*\) out .*/\1 \2/p' "${worker_log}")
    [[ ${counts} == "$1 $2" ]] ||
        fail "${worker_app} (${case_id}, rep ${rep}) counted '${counts:-nothing}' (in out), expected '$1 $2' (log: ${worker_log})"
}

# wait_ok PID WHAT LOG: the process must exit 0.
wait_ok() {
    local rc
    wait_rc "$1"
    if [[ ${rc} == 2 && $2 == ringtail-recv* ]]; then
        if [[ -n ${worker_pid:-} ]] && ! kill -0 "${worker_pid}" 2>/dev/null; then
            fail "the worker (${case_id}, rep ${rep}) died during the run (log: ${worker_log})"
        fi
        fail "$2 (${case_id}, rep ${rep}) timed out with output missing: lost messages or a stalled worker (logs: $3, ${worker_log})"
    fi
    [[ ${rc} == 0 ]] || fail "$2 (${case_id}, rep ${rep}) exited ${rc} (log: $3)"
}

# recv_seconds LOG: the receiver's own first-to-last byte time, from its summary line.
recv_seconds() { sed -n 's/.* bytes in \([0-9.]*\) s .*/\1/p' "$1"; }

# record CASE-ID MESSAGES SECONDS STEADY-SECONDS [extra JSON members]
# SECONDS: sender start until the last frame/byte is in (the figure the table reports);
# STEADY-SECONDS: the receiving end's first to last byte (start-up and pipeline fill left out).
record() {
    local rate steady
    rate=$(awk -v n="$2" -v s="$3" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
    steady=$(awk -v n="$2" -v s="$4" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
    printf '{"case":"%s","rep":%d,"messages":%d,"seconds":%s,"msgs_per_s":%s,"steady_seconds":%s,"steady_msgs_per_s":%s%s}\n' \
        "$1" "${rep}" "$2" "$3" "${rate}" "$4" "${steady}" "${5:+,$5}" >>"${raw}"
    printf '  %-18s rep %d  %11s msgs/s in %s s  (first to last byte: %11s msgs/s)\n' \
        "$1" "${rep}" "${rate}" "$3" "${steady}" >&2
}

# kernel_case CASE-ID FRAMES SENDER-ARGS [FRAMES SENDER-ARGS]...: each stream (its ringtail-send
# arguments as one word-split string) into its own frame_drain_baseline, all at once; timed from
# the senders' start until every drain has seen EOF.
kernel_case() {
    case_id=$1
    shift
    local -a drain_pids=() send_pids=() frames=() ports=() outs=()
    local total=0 i=0 ready
    while [[ $# -ge 2 ]]; do
        ready=${work}/drain${i}.port
        rm -f "${ready}"
        outs[i]=$(log_of "drain${i}-json")
        "${bin}/frame_drain_baseline" 127.0.0.1:0 --ready-file "${ready}" >"${outs[i]}" \
            2>"$(log_of "drain${i}")" &
        drain_pids[i]=$!
        track "${drain_pids[i]}"
        frames[i]=$1
        total=$((total + $1))
        send_args[i]=$2
        shift 2
        i=$((i + 1))
    done
    local n=${i}
    for ((i = 0; i < n; i++)); do
        ready=${work}/drain${i}.port
        wait_for "[[ -s ${ready} ]]" 10 "frame_drain_baseline to listen"
        ports[i]=$(<"${ready}")
    done
    local t0 t1
    t0=${EPOCHREALTIME}
    for ((i = 0; i < n; i++)); do
        local -a args
        read -r -a args <<<"${send_args[i]}"
        "${bin}/ringtail-send" -h "127.0.0.1:${ports[i]}" --connect-timeout 5 "${args[@]}" \
            2>"$(log_of "send${i}")" &
        send_pids[i]=$!
        track "${send_pids[i]}"
    done
    # Senders first, so that a sender's failure is the line reported; a drain ends after its
    # sender (at EOF), so t1 is still the last drain's end.
    for ((i = 0; i < n; i++)); do
        wait_ok "${send_pids[i]}" ringtail-send "$(log_of "send${i}")"
    done
    for ((i = 0; i < n; i++)); do
        wait_ok "${drain_pids[i]}" frame_drain_baseline "$(log_of "drain${i}")"
    done
    t1=${EPOCHREALTIME}
    local json got steady=0 s drains=
    for ((i = 0; i < n; i++)); do
        json=$(<"${outs[i]}")
        got=$(sed -n 's/.*"frames":\([0-9]*\).*/\1/p' <<<"${json}")
        [[ ${got} == "${frames[i]}" ]] ||
            fail "frame_drain_baseline (${case_id}, rep ${rep}) got ${got:-no} frames, expected ${frames[i]}"
        s=$(sed -n 's/.*"seconds":\([0-9.]*\).*/\1/p' <<<"${json}")
        steady=$(awk -v a="${steady}" -v b="${s}" 'BEGIN { print (a > b ? a : b) }')
        drains+=${drains:+,}${json}
    done
    record "${case_id}" "${total}" "$(seconds_between "${t0}" "${t1}")" "${steady}" \
        "\"drains\":[${drains}]"
}
declare -a send_args

# passthrough_case THREADS: as many sender connections as compute threads (a connection belongs
# to one shard and passthrough has no key_by, so one connection keeps one shard busy).
passthrough_case() {
    local threads=$1 metrics=${2:-on}
    case_id=passthrough-t${threads}
    worker_extra=
    if [[ ${metrics} == off ]]; then
        # The cost of metrics: the same run with latency recording and the metrics thread off.
        case_id=passthrough-t${threads}-nometrics
        worker_extra="--metrics-period 0"
    fi
    start_receiver -f -n --expect "${messages}"
    start_worker passthrough "${threads}" 127.0.0.1:0
    local hosts=127.0.0.1:${port_of[Passthrough]} c
    for ((c = 1; c < threads; c++)); do
        hosts+=,127.0.0.1:${port_of[Passthrough]}
    done
    local send_log t0 t1
    send_log=$(log_of send)
    t0=${EPOCHREALTIME}
    "${bin}/ringtail-send" -h "${hosts}" --connect-timeout 5 \
        -y -r -m "${messages}" -f "${work}/u64.bin" 2>"${send_log}" &
    local send_pid=$!
    track "${send_pid}"
    # The sender is done before the receiver can have the last frame; waiting for it first makes
    # its failure, if any, the line reported.
    wait_ok "${send_pid}" ringtail-send "${send_log}"
    wait_ok "${recv_pid}" ringtail-recv "${recv_log}"
    t1=${EPOCHREALTIME}
    stop_worker "${messages}" "${messages}"
    record "${case_id}" "${messages}" "$(seconds_between "${t0}" "${t1}")" \
        "$(recv_seconds "${recv_log}")" "\"threads\":${threads},\"connections\":${threads}"
}

word_count_case() {
    local threads=1
    case_id=word_count-t${threads}
    start_receiver -n --expect "${wc_bytes}"
    start_worker word_count "${threads}" 127.0.0.1:0
    local send_log t0 t1
    send_log=$(log_of send)
    t0=${EPOCHREALTIME}
    "${bin}/ringtail-send" -h "127.0.0.1:${port_of[Split and Count]}" --connect-timeout 5 \
        -r -m "${lines}" -f "${gpl}" 2>"${send_log}" &
    local send_pid=$!
    track "${send_pid}"
    # The sender is done before the receiver can have the last frame; waiting for it first makes
    # its failure, if any, the line reported.
    wait_ok "${send_pid}" ringtail-send "${send_log}"
    wait_ok "${recv_pid}" ringtail-recv "${recv_log}"
    t1=${EPOCHREALTIME}
    stop_worker "${lines}" "${wc_words}"
    record "${case_id}" "${lines}" "$(seconds_between "${t0}" "${t1}")" \
        "$(recv_seconds "${recv_log}")" \
        "\"threads\":${threads},\"words\":${wc_words},\"output_bytes\":${wc_bytes}"
}

market_case() {
    local threads=1
    case_id=market_spread-t${threads}
    start_receiver -f -n --expect "${mk_rejections}"
    start_worker market_spread "${threads}" "Orders@127.0.0.1:0,Market Data@127.0.0.1:0"
    local orders_port=${port_of[Orders]} quotes_port=${port_of[Market Data]}
    # Warm-up (not timed): one quote per symbol, in before any order, so that which orders are
    # rejected does not depend on how the two timed connections interleave (checked below: the
    # worker's output count must be exactly the expected rejections).
    local warm_log
    warm_log=$(log_of send-warmup)
    "${bin}/ringtail-send" -h "127.0.0.1:${quotes_port}" --connect-timeout 5 -y \
        -f "${work}/market/warmup.bin" 2>"${warm_log}" ||
        fail "the warm-up sender (${case_id}, rep ${rep}) failed (log: ${warm_log})"
    sleep 0.2 # a few hundred quotes: ingested long before this
    local orders_log quotes_log t0 t1
    orders_log=$(log_of send-orders)
    quotes_log=$(log_of send-quotes)
    t0=${EPOCHREALTIME}
    "${bin}/ringtail-send" -h "127.0.0.1:${orders_port}" --connect-timeout 5 -y -r -m "${orders}" \
        -f "${work}/market/orders.bin" 2>"${orders_log}" &
    local orders_pid=$!
    track "${orders_pid}"
    local quotes_pid=
    if ((quotes > 0)); then
        "${bin}/ringtail-send" -h "127.0.0.1:${quotes_port}" --connect-timeout 5 -y -r \
            -m "${quotes}" -f "${work}/market/quotes.bin" 2>"${quotes_log}" &
        quotes_pid=$!
        track "${quotes_pid}"
    fi
    # The last order is rejected, so the last rejection frame means every order is in (one
    # compute thread: one ordered path). The quotes have no output: their sender's exit (all
    # written) is the best end mark we have for them, so the time is the later of the two.
    wait_ok "${orders_pid}" "ringtail-send (orders)" "${orders_log}"
    [[ -z ${quotes_pid} ]] || wait_ok "${quotes_pid}" "ringtail-send (quotes)" "${quotes_log}"
    wait_ok "${recv_pid}" ringtail-recv "${recv_log}"
    t1=${EPOCHREALTIME}
    stop_worker "$((mk_warmup + quotes + orders))" "${mk_rejections}"
    record "${case_id}" "$((orders + quotes))" "$(seconds_between "${t0}" "${t1}")" \
        "$(recv_seconds "${recv_log}")" \
        "\"threads\":${threads},\"orders\":${orders},\"quotes\":${quotes},\"rejections\":${mk_rejections}"
}

# --- inputs ----------------------------------------------------------------------------------------
echo "${me}: generating inputs in ${work}" >&2
# The frames `ringtail-send -u -p k` sends ([u32 9][u64 counter]['k']), pre-generated and repeated
# with -r so that the sender costs a memcpy per batch, not a loop per message.
python3 - "${work}/u64.bin" <<'EOF'
import struct, sys
with open(sys.argv[1], "wb") as f:
    f.write(b"".join(struct.pack(">IQ", 9, k) + b"k" for k in range(100_000)))
EOF
# word_count's exact output size, by WIRE.md section 6: the lines ringtail-send -f -r -m sends,
# each word (lowercased, split on ' ', ASCII punctuation stripped from both ends, empty dropped)
# counted; its k-th occurrence is the line "word => k\n".
read -r wc_words wc_bytes < <(python3 - "${gpl}" "${lines}" <<'EOF'
import string, sys
from collections import Counter
data = open(sys.argv[1], "rb").read()
total_lines = int(sys.argv[2])
text_lines = data.split(b"\n")
if data.endswith(b"\n"):
    text_lines.pop()  # ringtail-send frames what lies between newlines; no empty last frame
punct = string.punctuation.encode()
def words(line):
    return [w for w in (p.strip(punct) for p in line.lower().split(b" ")) if w]
full, rest = divmod(total_lines, len(text_lines))
per_cycle = Counter(w for l in text_lines for w in words(l))
partial = Counter(w for l in text_lines[:rest] for w in words(l))
def digit_sum(n):  # sum of len(str(k)) for k = 1..n
    s, d = 0, 1
    while 10 ** (d - 1) <= n:
        s += d * (min(n, 10 ** d - 1) - 10 ** (d - 1) + 1)
        d += 1
    return s
n_words = n_bytes = 0
for w in per_cycle:
    n = full * per_cycle[w] + partial[w]
    n_words += n
    n_bytes += n * (len(w) + len(" => \n")) + digit_sum(n)
print(n_words, n_bytes)
EOF
)
[[ -n ${wc_bytes} ]] || fail "could not compute word_count's expected output"
mk_json=$(python3 scripts/perf/gen_market.py --out-dir "${work}/market" --orders "${orders}" \
    --quotes "${quotes}") || fail "gen_market.py failed"
echo "${mk_json}" >"${out}/market_input.json"
mk_rejections=$(sed -n 's/.*"expected_rejections": \([0-9]*\).*/\1/p' <<<"${mk_json}")
mk_warmup=$(sed -n 's/.*"warmup_quotes": \([0-9]*\).*/\1/p' <<<"${mk_json}")

# --- runs ------------------------------------------------------------------------------------------
echo "${me}: load before the runs: $(cut -d' ' -f1-3 /proc/loadavg) (a busy machine spoils these numbers)" >&2
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for ((rep = 1; rep <= reps; rep++)); do
    echo "${me}: repetition ${rep}/${reps}" >&2
    kernel_case kernel-u64 "${messages}" "-y -r -m ${messages} -f ${work}/u64.bin"
    passthrough_case 1
    passthrough_case 1 off
    passthrough_case 2
    kernel_case kernel-gpl3 "${lines}" "-r -m ${lines} -f ${gpl}"
    word_count_case
    # Orders and quotes on two connections at once, as market_spread gets them.
    kernel_case kernel-market "${orders}" "-y -r -m ${orders} -f ${work}/market/orders.bin" \
        "${quotes}" "-y -r -m ${quotes} -f ${work}/market/quotes.bin"
    market_case
done

# --- summary ---------------------------------------------------------------------------------------
python3 - "${out}" "${raw}" "${reps}" "${messages}" "${lines}" "${orders}" "${quotes}" \
    "${load_before}" "$(nproc)" "$(uname -r)" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    "$(git status --porcelain 2>/dev/null | grep -q . && echo dirty || echo clean)" \
    "${build_dir}" <<'EOF'
import json, statistics, sys
(out, raw, reps, messages, lines, orders, quotes, load, nproc, kernel, rev, tree,
 build_dir) = sys.argv[1:]
runs = [json.loads(l) for l in open(raw)]
cpu = "unknown"
for l in open("/proc/cpuinfo"):
    if l.startswith("model name"):
        cpu = l.split(":", 1)[1].strip()
        break

# Each case against the kernel row that drains the same input.
cases = [
    ("kernel: u64 frames", "kernel-u64", None),
    ("passthrough t1", "passthrough-t1", "kernel-u64"),
    ("passthrough t1 nometr", "passthrough-t1-nometrics", "kernel-u64"),
    ("passthrough t2", "passthrough-t2", "kernel-u64"),
    ("kernel: GPL-3 lines", "kernel-gpl3", None),
    ("word_count t1", "word_count-t1", "kernel-gpl3"),
    ("kernel: market", "kernel-market", None),
    ("market_spread t1", "market_spread-t1", "kernel-market"),
]
by_case = {}
for r in runs:
    by_case.setdefault(r["case"], []).append(r)
summary = {"machine": {"nproc": int(nproc), "cpu_model": cpu, "kernel": kernel,
                       "load_before": load},
           "build": {"dir": build_dir, "git": rev, "tree": tree},
           "parameters": {"reps": int(reps), "messages": int(messages), "lines": int(lines),
                          "orders": int(orders), "quotes": int(quotes)},
           "cases": {}, "runs": runs}
rows = []
for label, cid, base in cases:
    rs = by_case.get(cid, [])
    if not rs:
        continue
    rates = [r["msgs_per_s"] for r in rs]
    med = statistics.median(rates)
    steady = statistics.median(r["steady_msgs_per_s"] for r in rs)
    entry = {"label": label, "median_msgs_per_s": med, "min": min(rates), "max": max(rates),
             "reps": len(rs), "msgs_per_s": rates, "median_steady_msgs_per_s": steady}
    steady_ratio = None
    ratio = None
    if base in by_case:
        kmed = statistics.median(r["msgs_per_s"] for r in by_case[base])
        ratio = med / kmed if kmed else None
        entry["vs"] = base
        entry["ratio_vs_kernel"] = ratio
        kr = {r["rep"]: r["msgs_per_s"] for r in by_case[base]}
        entry["paired_ratios"] = [r["msgs_per_s"] / kr[r["rep"]] for r in rs if kr.get(r["rep"])]
        ksteady = statistics.median(r["steady_msgs_per_s"] for r in by_case[base])
        steady_ratio = steady / ksteady if ksteady else None
        entry["steady_ratio_vs_kernel"] = steady_ratio
    note = ""
    if cid.startswith("passthrough"):
        note = f"{rs[0]['connections']} sender connection(s)"
    elif cid.startswith("word_count"):
        words = statistics.median(r["words"] / r["seconds"] for r in rs)
        entry["median_words_per_s"] = words
        note = f"lines/s; {words:,.0f} words/s"
    elif cid.startswith("market_spread"):
        per_core = med / rs[0]["threads"]
        entry["median_msgs_per_s_per_compute_thread"] = per_core
        note = (f"{per_core:,.0f}/s per compute thread "
                f"(Wallaroo: ~190,000/s per core)")
    if cid == "passthrough-t1-nometrics" and "passthrough-t1" in by_case:
        on = statistics.median(r["msgs_per_s"] for r in by_case["passthrough-t1"])
        entry["metrics_on_vs_off"] = on / med if med else None
        note += f"; metrics on/off = {on / med:.3f}" if med else ""
    spread = (max(rates) - min(rates)) / med * 100 if med else 0
    entry["spread_pct"] = spread
    summary["cases"][cid] = entry
    rows.append((label, med, ratio, len(rs), spread, steady, steady_ratio, note))

lines_out = [f"e2e over loopback TCP: {nproc} CPUs ({cpu}), Linux {kernel}, load {load}, "
             f"git {rev} ({tree})",
             f"{'case':<21} {'median msgs/s':>14}   {'ratio vs kernel':>15}   {'reps':>4}   "
             f"{'spread':>6}   {'first-to-last-byte msgs/s (ratio)':>34}   notes"]
for label, med, ratio, n, spread, steady, steady_ratio, note in rows:
    r = f"{ratio:.2f}x" if ratio is not None else "-"
    sr = f"({steady_ratio:.2f}x)" if steady_ratio is not None else ""
    lines_out.append(f"{label:<21} {med:>14,.0f}   {r:>15}   {n:>4}   {spread:>5.0f}%   "
                     f"{steady:>25,.0f} {sr:>8}   {note}")
lines_out.append("median msgs/s: N / (sender start .. last frame or byte at the receiver); spread: "
                 "(max - min) / median over the reps; first-to-last-byte: the receiving end's own "
                 "clock (drain or ringtail-recv), start-up and pipeline fill left out")
table = "\n".join(lines_out)
print(table)
with open(f"{out}/table.txt", "w") as f:
    f.write(table + "\n")
with open(f"{out}/summary.json", "w") as f:
    json.dump(summary, f, indent=2)
    f.write("\n")
EOF
echo "results: ${out}/ (summary.json, table.txt, raw.jsonl, logs/)"
