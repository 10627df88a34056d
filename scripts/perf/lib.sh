# Process helpers of the perf scripts in bash (e2e.sh, latency.sh), sourced by them; the same
# bookkeeping as scripts/perf/procs.py gives the Python ones. Sourcing it sets an EXIT trap that
# kills (by pid) every process noted with `track` and not reaped yet, then removes ${work} if the
# script set it. The script defines fail MESSAGE: its one-line error, and exit 1.
# shellcheck shell=bash

# Every process the script started and has not reaped yet, so that a failure leaves none behind
# (killed by pid only; a reaped pid is dropped at once, so a recycled pid is never hit).
started=()

# track PID: a process started in the background, killed on the way out unless reaped first.
track() { started+=("$1"); }

# reaped PID: it has been waited for; drop it from the list.
reaped() {
    local -a keep=()
    local p
    for p in "${started[@]}"; do
        [[ ${p} == "$1" ]] || keep+=("${p}")
    done
    started=("${keep[@]}")
}

kill_started() {
    local p
    for p in "${started[@]}"; do
        kill -KILL "${p}" 2>/dev/null || true
        { wait "${p}"; } 2>/dev/null || true # reaped quietly: the FAILED line stays the last
    done
    [[ -z ${work:-} ]] || rm -rf "${work}"
}
trap kill_started EXIT

# wait_rc PID: waits for it to exit; its status in rc.
wait_rc() {
    rc=0
    wait "$1" || rc=$?
    reaped "$1"
}

# stop_rc PID: SIGTERM, then waits for it; its exit status in rc.
stop_rc() {
    kill -TERM "$1"
    wait_rc "$1"
}

# wait_for CONDITION-COMMAND SECONDS WHAT: polls every 10 ms; fail at the deadline.
wait_for() {
    local deadline=$((SECONDS + $2))
    until eval "$1"; do
        ((SECONDS < deadline)) || fail "timed out after $2 s waiting for $3"
        sleep 0.01
    done
}

# wait_worker_up PID LOG APP: until the worker's log says it runs and its sink is connected
# ("running" follows the "listening on" lines; the sink connects on a shard, in any order); fail
# if it exits first. Then port_of[source name] is each source's port, from the log, and
# first_port the first of them.
# shellcheck disable=SC2034 # read by the scripts that source this file
declare -A port_of
wait_worker_up() {
    local pid=$1 log=$2 app=$3
    wait_for "(grep -qs ' running: ' ${log} && grep -qs \"sink '.*' connected to\" ${log}) ||
        ! kill -0 ${pid} 2>/dev/null" 10 "${app} to start and connect its sink (log: ${log})"
    if ! kill -0 "${pid}" 2>/dev/null; then
        wait_rc "${pid}"
        fail "${app} exited ${rc} at start-up (log: ${log})"
    fi
    port_of=()
    first_port=
    local name port
    while IFS=$'\t' read -r name port; do
        port_of[${name}]=${port}
        first_port=${first_port:-${port}}
    done < <(sed -n "s/.*source '\(.*\)' listening on [0-9.]*:\([0-9]*\) .*/\1\t\2/p" "${log}")
}
