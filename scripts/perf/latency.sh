#!/usr/bin/env bash
# End-to-end latency of one app at a constant rate, measured without coordinated omission: the
# sender stamps each message with the time its schedule says it is due (ringtail-send --rate R
# --latency), the receiver subtracts that stamp from its arrival time (ringtail-recv --latency), so
# a stall anywhere (sender, worker, sockets) shows up as latency instead of a lower rate.
#
#   ringtail-send --rate R --latency -g SIZE -m R*S  ->  APP  ->  ringtail-recv --latency
#
# Sender, worker and receiver run on this host (the stamp is CLOCK_MONOTONIC, per host).
#
# market_spread does not pass the stamp through; its rejections carry the order's 6-byte order_id,
# so the sender numbers the orders there instead and writes its schedule to a file:
#
#   warm-up quotes (untimed) -> "Market Data"
#   ringtail-send --rate R -y -f orders.bin --stamp-order-id --schedule-file F -> "Orders"
#     -> market_spread -> ringtail-recv --latency --latency-field order-id --schedule-file F
#
# and the receiver computes order k's intended send time start + k/R. Only rejected orders produce
# output, so latency is sampled on those: the orders (scripts/perf/gen_market.py --wide-every 2)
# are on random symbols of which every second one is wide, about half of them rejected.
#
# Usage (from anywhere; paths are relative to the repository root):
#   scripts/perf/latency.sh --app NAME --rate MSGS_PER_S --duration S [options]
#     --app NAME       the app under test: passthrough or market_spread
#     --rate R         messages per second (a positive number); market_spread: orders per second
#     --duration S     seconds of sending (positive); R*S messages in all
#     --out DIR        results folder (default results/latency-<date>-<app>-<rate>/)
#     --size BYTES     payload bytes, at least 16 (default 16; frames are 4 bytes more);
#                      passthrough only (orders are 53 bytes)
#     --threads N      worker compute threads (default 1); the sender opens N connections
#     --warmup S       seconds of the first data recorded apart, not in the figures (default 0)
#     --late-us U      count messages later than U µs (default 1000)
#     --poll-mode M    busy|adaptive, passed to the worker (default: the worker's own default)
# Environment: RINGTAIL_BIN_DIR (use the binaries there and build nothing) or BUILD_DIR (default
# build; the needed targets are built with scripts/build.sh). Writes into DIR: latency.hgrm
# (HdrHistogram percentile text, µs), summary.json, latency.png, and logs/ (every process's log).
# Exit 0, 64 for a bad argument or a missing binary, 1 when a run fails.
set -euo pipefail
export LC_ALL=C

me=latency.sh
usage_error() {
    echo "${me}: $*" >&2
    exit 64
}
fail() {
    echo "${me}: FAILED: $*" >&2
    # Also in the results folder, so a failed run in a sweep or a loop leaves its reason behind.
    [[ ! -d ${out:-}/logs ]] || echo "${me}: FAILED: $*" >"${out}/logs/FAILED"
    exit 1
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "${here}/../.." && pwd)

app='' rate='' duration='' out='' size=16 threads=1 warmup=0 late_us=1000 poll_mode='' size_given=0
while [[ $# -gt 0 ]]; do
    case $1 in
    --app | --rate | --duration | --out | --size | --threads | --warmup | --late-us | --poll-mode)
        [[ $# -ge 2 ]] || usage_error "$1 needs a value"
        v=$2
        case $1 in
        --app) app=$v ;;
        --rate) rate=$v ;;
        --duration) duration=$v ;;
        --out) out=$v ;;
        --size)
            size=$v
            size_given=1
            ;;
        --threads) threads=$v ;;
        --warmup) warmup=$v ;;
        --late-us) late_us=$v ;;
        --poll-mode) poll_mode=$v ;;
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

positive_number='^([0-9]+([.][0-9]*)?|[.][0-9]+)$'
[[ -n ${app} ]] || usage_error "--app NAME is required (passthrough or market_spread)"
case ${app} in
passthrough | market_spread) ;;
*) usage_error "unknown app '${app}': passthrough or market_spread" ;;
esac
[[ ${app} != market_spread || ${size_given} == 0 ]] ||
    usage_error "--size goes with passthrough only (market_spread orders are 53 bytes)"
[[ -n ${rate} ]] || usage_error "--rate MSGS_PER_S is required"
[[ ${rate} =~ ${positive_number} ]] && awk -v r="${rate}" 'BEGIN { exit !(r > 0) }' ||
    usage_error "--rate must be a positive number of messages per second, not '${rate}'"
[[ -n ${duration} ]] || usage_error "--duration SECONDS is required"
[[ ${duration} =~ ${positive_number} ]] && awk -v r="${duration}" 'BEGIN { exit !(r > 0) }' ||
    usage_error "--duration must be a positive number of seconds, not '${duration}'"
[[ ${size} =~ ^[0-9]+$ ]] && ((size >= 16 && size <= 16777216)) ||
    usage_error "--size must be an integer from 16 to 16777216, not '${size}'"
[[ ${threads} =~ ^[1-9][0-9]*$ ]] || usage_error "--threads must be a positive integer, not '${threads}'"
[[ ${warmup} =~ ${positive_number} ]] || usage_error "--warmup must be a number of seconds, not '${warmup}'"
[[ ${late_us} =~ ^[0-9]+$ ]] || usage_error "--late-us must be a non-negative integer, not '${late_us}'"
case ${poll_mode} in
'' | busy | adaptive) ;;
*) usage_error "--poll-mode must be busy or adaptive, not '${poll_mode}'" ;;
esac
messages=$(awk -v r="${rate}" -v d="${duration}" 'BEGIN { printf "%.0f", r * d }')
((messages > 0)) || usage_error "--rate x --duration is less than one message"
command -v gnuplot >/dev/null || usage_error "gnuplot is missing (Debian: apt-get install gnuplot-nox)"
command -v python3 >/dev/null || usage_error "python3 is missing"

# --- binaries --------------------------------------------------------------------------------------
if [[ -n ${RINGTAIL_BIN_DIR:-} ]]; then
    bin=${RINGTAIL_BIN_DIR}
else
    build_dir=${BUILD_DIR:-build}
    [[ ${build_dir} == /* ]] || build_dir=${root}/${build_dir}
    bin=${build_dir}/bin
    echo "${me}: building ${build_dir}/ (ringtail-send ringtail-recv ${app})" >&2
    RINGTAIL_TARGETS="ringtail-send ringtail-recv ${app}" "${root}/scripts/build.sh" "${build_dir}" >&2 ||
        fail "the build failed (scripts/build.sh ${build_dir})"
fi
for b in ringtail-send ringtail-recv "${app}"; do
    [[ -x ${bin}/${b} ]] || usage_error "${bin}/${b} is missing (build it, or set RINGTAIL_BIN_DIR)"
done

# --- results folder --------------------------------------------------------------------------------
stamp=$(date +%Y%m%d-%H%M%S)
out=${out:-${root}/results/latency-${stamp}-${app}-${rate}}
mkdir -p "${out}/logs" || usage_error "cannot create ${out}"
out=$(cd "${out}" && pwd)
# A folder used before: its old results must not pass for this run's.
rm -f "${out}"/{latency.hgrm,latency.json,recv.json,summary.json,latency.png,market_input.json} "${out}"/logs/*
work=$(mktemp -d "${TMPDIR:-/tmp}/ringtail-latency.XXXXXX")

# track, reaped, wait_rc, stop_rc, wait_for, wait_worker_up; every process tracked is killed on
# the way out, and ${work} removed.
# shellcheck source=SCRIPTDIR/lib.sh
source "${here}/lib.sh"

# --- run -------------------------------------------------------------------------------------------
recv_log=${out}/logs/recv.log
worker_log=${out}/logs/worker.log
send_log=${out}/logs/send.log
expected=${messages} # frames the receiver waits for
recv_extra=()
if [[ ${app} == market_spread ]]; then
    # Orders on random symbols, every second symbol wide (rejected): about half the orders are
    # sampled, exactly expected_rejections of them. No timed quotes: only the warm-up moves state.
    python3 "${here}/gen_market.py" --out-dir "${work}/market" --orders "${messages}" --quotes 0 \
        --wide-every 2 >"${out}/market_input.json" 2>"${out}/logs/gen_market.log" ||
        fail "gen_market.py failed (log: ${out}/logs/gen_market.log)"
    expected=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["expected_rejections"])' \
        "${out}/market_input.json")
    ((expected > 0)) || fail "gen_market.py generated no rejected order"
    schedule=${work}/schedule
    recv_extra=(--latency-field order-id --schedule-file "${schedule}")
fi
# The receiver exits 0 once it has every message; 2 if nothing arrives for 10 s (lost messages).
"${bin}/ringtail-recv" -l 127.0.0.1:0 --ready-file "${work}/recv.port" --timeout 10 \
    --expect "${expected}" --latency "${out}/latency" --warmup "${warmup}" --late-us "${late_us}" \
    "${recv_extra[@]}" 2>"${recv_log}" &
recv_pid=$!
track "${recv_pid}"
wait_for "[[ -s ${work}/recv.port ]]" 10 "ringtail-recv to listen (log: ${recv_log})"
recv_port=$(<"${work}/recv.port")

in_spec=127.0.0.1:0
((size <= 16384)) || in_spec=127.0.0.1:0:${size} # the source's default max frame is 16384
[[ ${app} != market_spread ]] || in_spec='Orders@127.0.0.1:0,Market Data@127.0.0.1:0'
worker_args=(--threads "${threads}" --in "${in_spec}" --out "127.0.0.1:${recv_port}" --log-level debug)
[[ -z ${poll_mode} ]] || worker_args+=(--poll-mode "${poll_mode}")
"${bin}/${app}" "${worker_args[@]}" 2>"${worker_log}" &
worker_pid=$!
track "${worker_pid}"
wait_worker_up "${worker_pid}" "${worker_log}" "${app}"
src_port=${first_port}
if [[ ${app} == market_spread ]]; then
    src_port=${port_of[Orders]:-}
    quotes_port=${port_of[Market Data]:-}
    [[ -n ${quotes_port} ]] || fail "cannot find ${app}'s 'Market Data' port in ${worker_log}"
fi
[[ -n ${src_port} ]] || fail "cannot find ${app}'s source port in ${worker_log}"
# A connection belongs to one shard: one sender connection per compute thread.
hosts=127.0.0.1:${src_port}
for ((c = 1; c < threads; c++)); do hosts+=,127.0.0.1:${src_port}; done

send_args=(--latency -g "${size}")
if [[ ${app} == market_spread ]]; then
    # Warm-up, not timed: one quote per symbol, all in before the first order, so that which
    # orders are rejected is known (expected) whatever the timing.
    "${bin}/ringtail-send" -h "127.0.0.1:${quotes_port}" --connect-timeout 5 -y \
        -f "${work}/market/warmup.bin" 2>"${out}/logs/send-warmup.log" ||
        fail "the warm-up quote sender failed (log: ${out}/logs/send-warmup.log)"
    sleep 0.2 # a few hundred quotes: ingested long before this
    send_args=(-y -r -f "${work}/market/orders.bin" --stamp-order-id --schedule-file "${schedule}")
    echo "${me}: ${app}, ${rate} orders/s for ${duration} s (${messages} orders, ${expected} of them rejected and sampled), ${threads} thread(s); results in ${out}" >&2
else
    echo "${me}: ${app}, ${rate} msgs/s for ${duration} s (${messages} messages of ${size} bytes), ${threads} thread(s); results in ${out}" >&2
fi
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
t0=${EPOCHREALTIME}
rc=0
"${bin}/ringtail-send" -h "${hosts}" --connect-timeout 5 --rate "${rate}" "${send_args[@]}" \
    -m "${messages}" 2>"${send_log}" || rc=$?
[[ ${rc} == 0 ]] || fail "ringtail-send exited ${rc} (log: ${send_log})"
wait_rc "${recv_pid}"
t1=${EPOCHREALTIME}
if [[ ${rc} != 0 ]]; then
    kill -0 "${worker_pid}" 2>/dev/null || fail "${app} died during the run (log: ${worker_log})"
    fail "ringtail-recv exited ${rc}: messages missing or a stalled worker (logs: ${recv_log}, ${worker_log})"
fi
stop_rc "${worker_pid}"
[[ ${rc} == 0 ]] || fail "${app} exited ${rc} after SIGTERM, not 0 (log: ${worker_log})"
[[ -s ${out}/latency.json && -s ${out}/latency.hgrm ]] || fail "ringtail-recv wrote no latency files (log: ${recv_log})"
mv "${out}/latency.json" "${out}/recv.json"

# --- summary ---------------------------------------------------------------------------------------
poll_used=$(sed -n 's/.* running: .*poll mode \([a-z]*\).*/\1/p' "${worker_log}" | head -1)
pinning=$(sed -n 's/.*debug *\(shard [0-9]* pinned to core [0-9]*\).*/\1/p; s/.*warn *\(shard [0-9]*: cannot pin.*\)/\1/p' "${worker_log}" | paste -sd';' -)
git_commit=$(git -C "${root}" rev-parse --short HEAD 2>/dev/null || echo unknown)
git_tree=$(git -C "${root}" status --porcelain 2>/dev/null | grep -q . && echo dirty || echo clean)
python3 - "${out}" "${app}" "${rate}" "${duration}" "${messages}" "${size}" "${threads}" \
    "${warmup}" "${poll_used:-unknown}" "${pinning}" "${git_commit}" "${git_tree}" "${load_before}" \
    "$(nproc)" "$(uname -r)" "$(seconds=$(awk -v a="${t0}" -v b="${t1}" 'BEGIN { print b - a }'); echo "${seconds}")" \
    "$(sed -n 's/.*at most \([0-9.]*\) ms behind schedule.*/\1/p' "${send_log}")" "${expected}" <<'EOF'
import json, sys
(out, app, rate, duration, messages, size, threads, warmup, poll, pinning, commit, tree, load,
 nproc, kernel, wall, behind_ms, expected) = sys.argv[1:]
r = json.load(open(f"{out}/recv.json"))
cpu = "unknown"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
# Achieved rate: every message received over the time from the first one's intended send to the
# last one's arrival, so a run that falls behind its schedule shows a lower rate.
span = r["span_seconds"]
market = app == "market_spread"
# market_spread: the span runs from the first sampled order's intended send to the last sampled
# order's arrival, and covers orders min_seq..max_seq, sampled or not.
sent_in_span = r["max_seq"] - r["min_seq"] + 1 if market and r["messages"] else r["messages"]
achieved = sent_in_span / span if span > 0 else 0.0
s = {
    "app": app,
    "rate_asked": float(rate),
    "rate_achieved": round(achieved, 1),
    "duration_s": float(duration),
    "messages_sent": int(messages),
    "messages_received": r["messages"],
    "count": r["count"],
    "warmup_s": float(warmup),
    "warmup_messages": r["warmup_messages"],
    "size_bytes": int(size),
    "p50_us": r["p50_us"], "p90_us": r["p90_us"], "p99_us": r["p99_us"],
    "p999_us": r["p999_us"], "p9999_us": r["p9999_us"], "max_us": r["max_us"],
    "min_us": r["min_us"], "mean_us": r["mean_us"],
    "late_messages": r["late_messages"], "late_us": r["late_us"],
    "bad_stamps": r["bad_stamps"], "out_of_sequence": r["out_of_sequence"],
    "sender_max_behind_ms": float(behind_ms) if behind_ms else None,
    "wall_seconds": float(wall),
    "machine": {"nproc": int(nproc), "cpu_model": cpu, "kernel": kernel, "load_before": load},
    "worker": {"threads": int(threads), "sender_connections": int(threads), "poll_mode": poll,
               "pinning": pinning or "unknown"},
    "git": {"commit": commit, "tree": tree},
}
if market:
    s["size_bytes"] = 53
    s["measured_on"] = ("rejected orders only: market_spread emits nothing for an accepted order, "
                        "so the latency is sampled on the orders it rejects")
    s["orders_sent"] = int(messages)
    s["rejections_expected"] = int(expected)
    s["sampled"] = r["count"]
    s["sampled_fraction"] = round(r["count"] / int(messages), 4)
    s["market_input"] = json.load(open(f"{out}/market_input.json"))
json.dump(s, open(f"{out}/summary.json", "w"), indent=2)
open(f"{out}/summary.json", "a").write("\n")
unit = "orders/s" if market else "msgs/s"
print(f"{app} at {float(rate):,.0f} {unit} asked, {achieved:,.0f} achieved: "
      f"p50 {s['p50_us']:.1f} µs, p90 {s['p90_us']:.1f}, p99 {s['p99_us']:.1f}, "
      f"p99.9 {s['p999_us']:.1f}, p99.99 {s['p9999_us']:.1f}, max {s['max_us']:.1f}, "
      f"mean {s['mean_us']:.1f} µs; {s['late_messages']} later than {s['late_us']} µs "
      f"({s['count']} measured, {s['warmup_messages']} warm-up)"
      + (f"; measured on rejected orders only: {s['sampled']} sampled of {s['orders_sent']} "
         f"orders" if market else ""))
EOF

gnuplot -e "files='${out}/latency.hgrm'; titles='$(basename "${out}")'; out='${out}/latency.png'; maxes='$(python3 -c "import json; print(json.load(open('${out}/summary.json'))['max_us'])")'; plot_title='${app} at ${rate} $([[ ${app} == market_spread ]] && echo 'orders/s (rejected orders)' || echo msgs/s): latency by percentile'" \
    "${here}/plot_latency.gp" 2>"${out}/logs/gnuplot.log" || fail "gnuplot failed (log: ${out}/logs/gnuplot.log)"
echo "results: ${out}/ (latency.hgrm, summary.json, latency.png, logs/)"
