#!/usr/bin/env python3
"""Frames/s of Ringtail's DPDK data channel against dpdk-testpmd, the ceiling of this machine.

Two processes joined by a net_memif pair (shared memory; no NIC, no hugepages), each pinned to its
own CPU, the sending side the memif server in both cases:
  (a) dpdk-testpmd --forward-mode=txonly --txpkts=SIZE  ->  dpdk-testpmd --forward-mode=rxonly:
      the receiver's Rx-pps, printed every second (--stats-period 1), after a warm-up;
  (b) ringtail-dpdk-pingpong --mode channel-send  ->  --mode channel-recv: the whole data channel
      (dpdk_port + dpdk_link + datagram_transport: CRC-32C, go-back-N, credit granted back as each
      message arrives), frames of SIZE bytes on the wire; the receiver's frames_per_s, delivered in
      order, after a warm-up. A data-channel frame has 82 bytes besides its body (Ethernet, IPv4,
      UDP, its own 24-byte header and the 16-byte ACK trailer every DATA frame carries) and a
      body of at least 1 byte: below 83 bytes the channel sends 83-byte frames
      (the table says so).
(a) and (b) alternate within every repetition (their order swapped from one repetition to the
next), so both see the same machine; the table gives the medians, their ratio and the median of
the repetitions' own ratios, the goal being ringtail/testpmd >= 0.8. On a shared or virtual
machine both figures move from run to run: read the per-repetition values too.

With --lanes N, both sides run N queue pairs on N CPUs each: testpmd with --nb-cores=N and N RX/TX
queues, the channel with --queues N, each lane a thread on a CPU of its own (EAL's -l), as the
engine's lanes run with --cpus. That is the channel's scaling over cores, on a host that has 2N
CPUs to spare.

Needs root (DPDK's EAL here) and dpdk-testpmd (Debian package dpdk-dev). The ringtail binary comes
from --build-dir DIR/bin, else $RINGTAIL_BIN_DIR, else $BUILD_DIR/bin (default build/bin), as for
scripts/perf/cluster.py. Usage (from the repository root):
  scripts/perf/dpdk_frames.py [--sizes 64,256] [--reps 3] [--seconds 5] [--warmup 1]
                              [--lanes N] [--cpus A,B,...] [--build-dir DIR] [--out FILE.json]
                              [--keep-logs]
Exit: 0 when every run worked, 1 when one did not (testpmd received nothing, or the channel lost a
frame), 64 bad flags, 69 no dpdk-testpmd or no ringtail binary, 77 not root.
"""

import argparse
import json
import os
import queue
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import procs
from procs import ProcessFailed as RunFailed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAME = "dpdk_frames.py"
TESTPMD = "dpdk-testpmd"
PINGPONG = "ringtail-dpdk-pingpong"
CHANNEL_MIN_FRAME_BYTES = 83
GOAL = 0.8
EX_USAGE, EX_UNAVAILABLE, EX_NOPERM = 64, 69, 77


def die(code, line):
    print(f"{NAME}: {line}", file=sys.stderr, flush=True)
    sys.exit(code)


class Usage(argparse.ArgumentParser):
    def error(self, message):
        die(EX_USAGE, message)


def parse_args():
    ap = Usage(prog=NAME, description=__doc__.split("\n")[0],
               formatter_class=argparse.RawDescriptionHelpFormatter,
               epilog="\n".join(__doc__.split("\n")[1:]))
    ap.add_argument("--sizes", default="64,256",
                    help="frame sizes in bytes, without FCS (default 64,256)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions (default 3)")
    ap.add_argument("--seconds", type=int, default=5, help="seconds measured per run (default 5)")
    ap.add_argument("--warmup", type=int, default=1,
                    help="seconds not measured at the start of each run (default 1)")
    ap.add_argument("--lanes", type=int, default=1,
                    help="queue pairs on each side, a CPU each (default 1)")
    ap.add_argument("--cpus", help="the sender's CPUs, then the receiver's, LANES each (default: "
                                   "the first 2 x LANES this process may use)")
    ap.add_argument("--build-dir", help="where the ringtail build is (default $BUILD_DIR or build)")
    ap.add_argument("--out", help="also write the results to this JSON file")
    ap.add_argument("--keep-logs", action="store_true",
                    help="keep every process's output (kept anyway when a run fails)")
    a = ap.parse_args()
    try:
        a.sizes = [int(s) for s in a.sizes.split(",")]
    except ValueError:
        die(EX_USAGE, f"bad --sizes '{a.sizes}' (want numbers, e.g. 64,256)")
    if not a.sizes or any(s < 60 or s > 1514 for s in a.sizes):
        die(EX_USAGE, "--sizes must be 60..1514 bytes each")
    if a.reps < 1 or a.seconds < 1 or a.warmup < 1:
        die(EX_USAGE, "--reps, --seconds and --warmup must be 1 or more")
    if a.lanes < 1 or a.lanes > 8:
        die(EX_USAGE, "--lanes must be 1..8 (a memif port opens 8 queue pairs at most here)")
    allowed = sorted(os.sched_getaffinity(0))
    if a.cpus:
        try:
            a.cpus = [int(c) for c in a.cpus.split(",")]
        except ValueError:
            a.cpus = []
        if len(a.cpus) != 2 * a.lanes or any(c not in allowed for c in a.cpus):
            die(EX_USAGE, f"--cpus wants {2 * a.lanes} CPUs (the sender's {a.lanes}, then the "
                          f"receiver's) out of {allowed}")
    else:
        # Where there are fewer than 2 x lanes, they are shared (the header line says so).
        a.cpus = [allowed[i % len(allowed)] for i in range(2 * a.lanes)]
    a.send_cpus, a.recv_cpus = a.cpus[:a.lanes], a.cpus[a.lanes:]
    return a


def check_environment(a):
    """The one-line refusals: no testpmd, not root, no ringtail binary. Returns both paths."""
    testpmd = shutil.which(TESTPMD)
    if testpmd is None:
        die(EX_UNAVAILABLE, f"{TESTPMD} not found on PATH: install the Debian package dpdk-dev")
    if os.geteuid() != 0:
        die(EX_NOPERM, "needs root (DPDK's EAL runs as root here, without hugepages): run it as "
                       "root")
    if a.build_dir:
        bin_dir = os.path.join(ROOT, a.build_dir, "bin")
    else:
        bin_dir = os.environ.get("RINGTAIL_BIN_DIR") or os.path.join(
            ROOT, os.environ.get("BUILD_DIR", "build"), "bin")
    pingpong = os.path.join(bin_dir, PINGPONG)
    if not os.access(pingpong, os.X_OK):
        die(EX_UNAVAILABLE, f"{pingpong} missing: build it (ninja -C BUILD_DIR {PINGPONG}, with "
                            f"DPDK) or point --build-dir or $RINGTAIL_BIN_DIR at it")
    return testpmd, pingpong


class Runner(procs.Group):
    """Starts the processes of one measurement (each one's output in <logs>/<name>.log) and
    cleans up after them (cleanup(): killed, their DPDK runtime folders removed)."""

    def __init__(self, a, logs):
        super().__init__(logs)
        self.a = a
        self.logs = logs
        self.serial = 0

    def eal(self, role, cpu_args, tag):
        self.serial += 1
        prefix = self.dpdk_prefix(f"rt-frames-{os.getpid()}-{self.serial}-{role}")
        return procs.eal_args(prefix, cpu_args, 512,
                              f"net_memif0,role={role},id=0,socket={self.socket_name(tag)}")

    def socket_name(self, tag):
        # Abstract (the 22.11 default): nothing is left behind by a killed process.
        return f"/rt-frames-{os.getpid()}-{tag}.sock"

    def wait_listening(self, tag, server, timeout=20):
        """Until the memif server listens on its socket (so the client need not retry)."""
        server.wait_for_unix_socket("@" + self.socket_name(tag), timeout)


def follow_rx_pps(proc, log_path, samples):
    """Copies the receiver's output to its log, and its per-second Rx-pps figures to `samples`
    (a queue), as they come: testpmd runs under stdbuf -oL, so each line arrives when printed."""
    with open(log_path, "w") as log:
        for line in proc.stdout:
            log.write(line)
            m = re.search(r"Rx-pps:\s+(\d+)", line)
            if m:
                samples.put(int(m.group(1)))
    samples.put(None)


def run_testpmd(r, testpmd, size, tag):
    """The receiver's rate: the mean of its per-second Rx-pps samples after the warm-up, which
    starts at the first sample with traffic (that one covers the link coming up)."""
    a = r.a
    n = a.lanes
    common = [f"--nb-cores={n}", f"--rxq={n}", f"--txq={n}", "--stats-period", "1",
              f"--total-num-mbufs={16384 * n}"]

    def lcores(cpus):
        # A main lcore and a forwarding lcore per queue: the main one shares the first forwarding
        # one's CPU (it only prints the statistics once a second).
        return [f"--lcores=0@{cpus[0]}," + ",".join(f"{i + 1}@{c}" for i, c in enumerate(cpus))]

    tx = r.start([testpmd] + r.eal("server", lcores(a.send_cpus), tag) +
                 ["--", "--forward-mode=txonly", f"--txpkts={size}"] + common,
                 name=f"{tag}-testpmd-tx")
    r.wait_listening(tag, tx)
    rx_log = os.path.join(r.logs, f"{tag}-testpmd-rx.log")
    # Its output through a pipe, copied to rx_log by follow_rx_pps.
    rx = r.start([shutil.which("stdbuf") or "stdbuf", "-oL", testpmd] + r.eal(
        "client", lcores(a.recv_cpus), tag) +
        ["--", "--forward-mode=rxonly"] + common, name=f"{tag}-testpmd-rx", log_path=rx_log,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    queue_ = queue.Queue()
    reader = threading.Thread(target=follow_rx_pps, args=(rx, rx_log, queue_), daemon=True)
    reader.start()
    measured, skipped = [], 0
    # EAL start-up without hugepages takes seconds on a busy machine: the limit is generous.
    deadline = time.monotonic() + 60 + a.warmup + a.seconds
    while len(measured) < a.seconds:
        try:
            pps = queue_.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        if pps is None:
            break
        if not measured and (skipped == 0 and pps == 0):
            continue  # no traffic yet
        if skipped < a.warmup:
            skipped += 1
            continue
        measured.append(pps)
    for p in (rx, tx):  # the receiver first, as it was measured
        p.stop(signal.SIGINT, 30, check=False)
    reader.join(timeout=10)
    rx_packets = [int(m) for m in re.findall(r"RX-packets:\s+(\d+)", rx.log())]
    rx_packets = max(rx_packets) if rx_packets else 0
    if rx_packets == 0 or len(measured) < a.seconds or min(measured) == 0:
        raise RunFailed(f"testpmd at {size} bytes: RX-packets {rx_packets}, rate samples "
                        f"{measured} (wanted {a.seconds} with traffic)", rx_log)
    return statistics.mean(measured) / 1e6, {"rx_pps_samples": measured,
                                             "rx_packets": rx_packets}


def summary_fields(line):
    return dict(w.split("=", 1) for w in line.split() if "=" in w)


def share(part, whole):
    """int(part) / int(whole), 0 when whole is 0 (fields of a summary line)."""
    return int(part) / int(whole) if int(whole) > 0 else 0.0


def run_ringtail(r, pingpong, size, tag):
    a = r.a
    send = r.start([
        pingpong, "--mode", "channel-send", "--device", "net_memif0", "--frame-bytes", str(size),
        "--seconds", str(a.warmup + a.seconds), "--link-timeout", "20", "--queues", str(a.lanes),
        "--"] + r.eal("server", ["-l", ",".join(map(str, a.send_cpus))], tag),
        name=f"{tag}-ringtail-send")
    r.wait_listening(tag, send)
    recv = r.start([
        pingpong, "--mode", "channel-recv", "--device", "net_memif0", "--warmup", str(a.warmup),
        "--timeout", str(a.warmup + a.seconds + 40), "--link-timeout", "20", "--queues",
        str(a.lanes), "--"] + r.eal("client", ["-l", ",".join(map(str, a.recv_cpus))], tag),
        name=f"{tag}-ringtail-recv")
    limit = a.warmup + a.seconds + 60
    try:
        recv.wait(timeout=limit)
        send.wait(timeout=30)
    except subprocess.TimeoutExpired:
        raise RunFailed(f"ringtail at {size} bytes did not finish within {limit} s",
                        recv.log_path)
    lines = {}
    for p, key in ((send, "channel-send:"), (recv, "channel-recv:")):
        line = next((l for l in p.log().splitlines() if l.startswith(key)), None)
        if line is None or p.returncode != 0:
            raise RunFailed(f"ringtail {key[:-1]} at {size} bytes exited {p.returncode}"
                            f"{'' if line else ' without its summary'}", p.log_path)
        lines[key[:-1]] = summary_fields(line)
    got = lines["channel-recv"]
    fps = float(got["frames_per_s"])
    if fps <= 0:
        raise RunFailed(f"ringtail at {size} bytes: no frames/s measured", recv.log_path)
    sent = lines["channel-send"]
    if int(got["queues"]) != a.lanes or int(sent["queues"]) != a.lanes:
        raise RunFailed(f"ringtail at {size} bytes ran {got['queues']} and {sent['queues']} lanes "
                        f"of the {a.lanes} asked", recv.log_path)
    detail = {"frames_per_s": fps, "frames": int(got["frames"]),
              "frame_bytes": int(sent["frame_bytes"]),
              "measured_seconds": float(got["seconds"]),
              "retransmissions": int(sent["retransmissions"]),
              "duplicates": int(got["duplicates"]), "out_of_order": int(got["out_of_order"]),
              "corrupt": int(got["corrupt"]),
              # Which side waited: the receiver's polls that found nothing, the sender's turns
              # that the window or the credit held back.
              "receiver_empty_polls": share(got["empty_polls"], got["polls"]),
              "sender_blocked_turns": share(sent["blocked_turns"], sent["turns"])}
    return fps / 1e6, detail


def main():
    a = parse_args()
    testpmd, pingpong = check_environment(a)
    logs = tempfile.mkdtemp(prefix="dpdk-frames-")
    r = Runner(a, logs)
    results = {size: {"testpmd": [], "ringtail": [], "testpmd_detail": [], "ringtail_detail": []}
               for size in a.sizes}
    failed = None
    shared = len(set(a.cpus)) < len(a.cpus)
    print(f"{NAME}: memif pair, {a.lanes} lane{'s' if a.lanes > 1 else ''} a side, sender on CPU "
          f"{','.join(map(str, a.send_cpus))}, receiver on CPU {','.join(map(str, a.recv_cpus))}"
          f"{' (shared: too few CPUs for one a lane)' if shared else ''}, {a.reps} x {a.seconds} s "
          f"(+{a.warmup} s warm-up) per size; logs in {logs}", flush=True)
    try:
        for rep in range(a.reps):
            for size in a.sizes:
                order = [("testpmd", run_testpmd, testpmd), ("ringtail", run_ringtail, pingpong)]
                if rep % 2 == 1:
                    order.reverse()
                for name, fn, binary in order:
                    tag = f"r{rep}-{size}-{name}"
                    try:
                        mpps, detail = fn(r, binary, size, tag)
                    finally:
                        r.cleanup()
                    results[size][name].append(mpps)
                    results[size][name + "_detail"].append(detail)
                    extra = ""
                    if name == "ringtail":
                        # A run disturbed for over the RTO (2 ms) resends whole windows.
                        extra = (f" ({detail['retransmissions']} frames retransmitted; "
                                 f"receiver polls empty {detail['receiver_empty_polls']:.0%}, "
                                 f"sender turns held back {detail['sender_blocked_turns']:.0%})")
                    print(f"  rep {rep + 1}, {size} bytes, {name}: {mpps:.3f} Mpps{extra}",
                          flush=True)
    except RunFailed as e:
        failed = f"{e} (log: {e.log_path})"
    except KeyboardInterrupt:
        r.cleanup()
        sys.exit(130)

    rows = ["| frame bytes | testpmd Mpps (median) | ringtail channel Mpps (median) | "
            "ringtail/testpmd | median of the reps' ratios | per rep: testpmd / ringtail Mpps |",
            "|---|---|---|---|---|---|"]
    summary = {"sizes": {}, "reps": a.reps, "seconds": a.seconds, "warmup": a.warmup,
               "lanes": a.lanes, "send_cpus": a.send_cpus, "recv_cpus": a.recv_cpus,
               "goal_ratio": GOAL, "machine": {"nproc": os.cpu_count()},
               "memif": "net_memif0 pair, sender = server, --no-huge -m 512"}
    for size in a.sizes:
        res = results[size]
        n = min(len(res["testpmd"]), len(res["ringtail"]))
        if n == 0:
            continue
        tp, rt = statistics.median(res["testpmd"]), statistics.median(res["ringtail"])
        ratio = rt / tp if tp > 0 else 0.0
        # The two ran back to back in each repetition: their ratio is less exposed to a machine
        # that changes speed between repetitions.
        pair_ratio = statistics.median(c / t for t, c in zip(res["testpmd"], res["ringtail"]))
        channel_bytes = max(size, CHANNEL_MIN_FRAME_BYTES)
        label = str(size) if channel_bytes == size else f"{size} (channel: {channel_bytes})"
        per_rep = ", ".join(f"{t:.3f} / {c:.3f}" for t, c in zip(res["testpmd"], res["ringtail"]))
        rows.append(f"| {label} | {tp:.3f} | {rt:.3f} | {ratio:.3f} | {pair_ratio:.3f} | "
                    f"{per_rep} |")
        summary["sizes"][str(size)] = {
            "testpmd_mpps": res["testpmd"], "ringtail_mpps": res["ringtail"],
            "testpmd_median_mpps": tp, "ringtail_median_mpps": rt, "ratio": ratio,
            "ratio_median_of_reps": pair_ratio,
            "meets_goal": ratio >= GOAL, "testpmd_frame_bytes": size,
            "ringtail_frame_bytes": channel_bytes,
            "testpmd_runs": res["testpmd_detail"], "ringtail_runs": res["ringtail_detail"]}
    table = "\n".join(rows)
    print(table, flush=True)
    summary["table"] = table
    if failed:
        summary["failed"] = failed
    if a.out:
        with open(a.out, "w") as f:
            json.dump(summary, f, indent=1)
    if failed:
        die(1, f"FAILED: {failed}")
    if not a.keep_logs:
        shutil.rmtree(logs, ignore_errors=True)


if __name__ == "__main__":
    main()
