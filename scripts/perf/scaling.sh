#!/usr/bin/env bash
# The data channel's performance goals, measured on a host with cores to spare, from a bundle made
# by scripts/perf/bundle.sh (the host needs bash, python3 and coreutils; none of Ringtail's
# libraries). In one run, each step bounded in time:
#   1. the host: CPUs, model, kernel; and whether DPDK runs here (a 1-second memif channel run);
#   2. scripts/perf/dpdk_frames.py: the channel's frames/s against dpdk-testpmd (goal >= 0.8x),
#      with 1 lane a side, and again with 2 or 4 (a CPU each) where the host has 4 CPUs or more;
#   3. scripts/perf/cluster.py --wide 2 (4 from 32 CPUs; --dpdk when step 1 worked): messages/s
#      of 2 workers on the socket and the DPDK data channel, and the latency of crossing messages
#      (goal: 3x the messages/s, half the p99).
# A step that fails is reported and the next one runs; the exit status says whether all worked.
#
# Usage (from the repository root, as root for DPDK):
#   scripts/perf/scaling.sh [--bundle DIR] [--out DIR] [--export DIR] [--reps R] [--messages N]
#                           [--poll-mode adaptive|busy] [--quick]
#     --bundle DIR   the bundle (default build-bundle)
#     --out DIR      results (default results/scaling-<date>): host.txt, frames-lanes<N>.json
#                    and .txt, cluster/ (summary.json, table.txt, logs/), the DPDK check's logs,
#                    and scaling.log with everything printed
#     --export DIR   also copy the summaries there, side by side (6 files at most: scaling.log,
#                    host.txt, frames-lanes<N>.json, cluster-summary.json, cluster-table.txt),
#                    for a machine that hands back only a few files
#     --reps R       repetitions of each measurement (default 3)
#     --messages N   sequence messages per cluster case (default 2000000)
#     --poll-mode M  the workers' (cluster.py --poll-mode): default busy on a host with 16 CPUs or
#                    more (the --wide case spins 8 threads beside 5 senders and receivers), else
#                    adaptive
#     --quick        1 repetition, small sizes: checks the bundle and the steps in about a minute
# About 5 minutes on a 16-core host with the defaults (more where cores are few).
# Exit 0 when every step worked, 1 when one failed, 64 for a bad argument, 69 for no bundle.
set -uo pipefail
export LC_ALL=C

me=scaling.sh
die() {
    echo "${me}: $2" >&2
    exit "$1"
}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bundle=build-bundle
out=''
export_dir=''
reps=3
messages=2000000
poll_mode=''
quick=0
while [[ $# -gt 0 ]]; do
    case $1 in
    --bundle | --out | --export | --reps | --messages | --poll-mode)
        [[ $# -ge 2 && -n $2 ]] || die 64 "$1 needs a value"
        case $1 in
        --bundle) bundle=$2 ;;
        --out) out=$2 ;;
        --export) export_dir=$2 ;;
        --reps) reps=$2 ;;
        --messages) messages=$2 ;;
        --poll-mode) poll_mode=$2 ;;
        esac
        shift 2
        ;;
    --quick)
        quick=1
        shift
        ;;
    -h | --help)
        sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) die 64 "unknown argument '$1' (see --help)" ;;
    esac
done
[[ $reps =~ ^[1-9][0-9]*$ ]] || die 64 "--reps wants a whole number of 1 or more"
[[ $messages =~ ^[1-9][0-9]*$ ]] || die 64 "--messages wants a whole number of 1 or more"
[[ -z $poll_mode || $poll_mode == busy || $poll_mode == adaptive ]] ||
    die 64 "--poll-mode wants busy or adaptive"
cd "$root" || die 69 "cannot enter $root"
[[ -x $bundle/bin/sequence && -f $bundle/MANIFEST ]] ||
    die 69 "$bundle is not a bundle: make one with scripts/perf/bundle.sh"
bundle=$(cd "$bundle" && pwd)
out=${out:-results/scaling-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out" || die 69 "cannot make $out"
out=$(cd "$out" && pwd)
exec > >(tee "$out/scaling.log") 2>&1

export RINGTAIL_BIN_DIR=$bundle/bin
export PATH=$bundle/bin:$PATH
export PYTHONUNBUFFERED=1
failed=()
step() { # NAME SECONDS LOG COMMAND...: LOG '-' leaves the command's output on ours
    local name=$1 limit=$2 log=$3 start=$SECONDS rc
    shift 3
    echo "== ${name} (at most ${limit} s)"
    if [[ $log == - ]]; then
        timeout --kill-after=10 "$limit" "$@"
    else
        timeout --kill-after=10 "$limit" "$@" > "$log" 2>&1
    fi
    rc=$?
    echo "== ${name}: exit ${rc} after $((SECONDS - start)) s"
    [[ $rc == 0 ]] || failed+=("${name} (exit ${rc})")
    return "$rc"
}

{
    echo "bundle: $(tr '\n' ';' < "$bundle/MANIFEST")"
    echo "host: $(uname -srm); $(nproc) CPUs usable"
    grep -m1 'model name' /proc/cpuinfo || true
    grep -m1 MemTotal /proc/meminfo || true
} | tee "$out/host.txt"

mapfile -t cpus < <(python3 -c 'import os; print(*sorted(os.sched_getaffinity(0)), sep="\n")')
[[ ${#cpus[@]} -ge 2 ]] || die 69 "fewer than 2 CPUs: nothing to measure"
if [[ -z $poll_mode ]]; then
    poll_mode=adaptive
    [[ ${#cpus[@]} -lt 16 ]] || poll_mode=busy
fi
echo "workers' --poll-mode: $poll_mode"
# Step 1: a memif pair between two processes for a second. Its failure is not the end: the socket
# cases still run.
eal=(--no-huge -m 512 --no-pci --no-telemetry --log-level=lib.eal:warning)
sock=/rt-scaling-$$.sock
dpdk=0
{
    "$bundle/bin/ringtail-dpdk-pingpong" --mode channel-send --device net_memif0 --seconds 1 \
        --link-timeout 10 -- "${eal[@]}" --file-prefix rt-scaling-s-$$ -l "${cpus[0]}" \
        --vdev=net_memif0,role=server,id=0,socket=$sock > "$out/dpdk-check-send.log" 2>&1 &
    sender=$!
    sleep 0.5
    step "DPDK check: a memif channel for 1 s" 40 "$out/dpdk-check-recv.log" \
        "$bundle/bin/ringtail-dpdk-pingpong" --mode channel-recv --device net_memif0 --warmup 0 \
        --timeout 30 --link-timeout 10 -- "${eal[@]}" --file-prefix rt-scaling-r-$$ \
        -l "${cpus[1]}" --vdev=net_memif0,role=client,id=0,socket=$sock &&
        wait "$sender" && dpdk=1
    kill "$sender" 2> /dev/null
    wait "$sender" 2> /dev/null
    rm -rf /var/run/dpdk/rt-scaling-s-$$ /var/run/dpdk/rt-scaling-r-$$
    grep -h '^channel-' "$out"/dpdk-check-*.log
    if [[ $dpdk != 1 ]]; then
        echo "DPDK does not run here: sockets only. The check's logs ($out/dpdk-check-*.log):"
        tail -n 5 "$out"/dpdk-check-*.log
    fi
}

if [[ $quick == 1 ]]; then
    frames=(--reps 1 --seconds 1)
    cluster=(--quick)
else
    frames=(--reps "$reps" --seconds 3)
    cluster=(--reps "$reps" --messages "$messages" --lines $((messages / 10)))
fi
if [[ $dpdk == 1 ]]; then
    lanes=(1)
    most=$((${#cpus[@]} / 2 > 4 ? 4 : ${#cpus[@]} / 2))
    [[ $most -lt 2 ]] || lanes+=("$most")
    for n in "${lanes[@]}"; do
        list=$(IFS=,; echo "${cpus[*]:0:$((2 * n))}")
        step "frames/s, $n lane(s) a side: scripts/perf/dpdk_frames.py" 300 - python3 \
            scripts/perf/dpdk_frames.py "${frames[@]}" --lanes "$n" --cpus "$list" \
            --out "$out/frames-lanes$n.json" > >(tee "$out/frames-lanes$n.txt")
    done
    cluster+=(--dpdk)
fi
# The wide case on 2 workers x 2 threads (x 4 from 32 CPUs): shards, lanes, senders and the
# receiver each with a CPU of their own.
wide=2
[[ ${#cpus[@]} -lt 32 ]] || wide=4
step "cluster: scripts/perf/cluster.py" 600 - python3 scripts/perf/cluster.py --wide "$wide" \
    "${cluster[@]}" --poll-mode "$poll_mode" --text "$bundle/share/GPL-3" --out "$out/cluster"

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "${me}: failed: ${failed[*]}; results in $out"
    rc=1
else
    echo "${me}: done; results in $out"
    rc=0
fi
if [[ -n $export_dir ]]; then
    mkdir -p "$export_dir"
    for g in "$out"/host.txt "$out"/frames-lanes*.json "$out"/cluster/{summary.json,table.txt}; do
        rel=${g#"$out"/}
        [[ ! -f $g ]] || cp "$g" "$export_dir/${rel//\//-}"
    done
    sleep 1 # tee's last lines
    cp "$out/scaling.log" "$export_dir/"
fi
exit "$rc"
