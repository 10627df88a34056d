#!/usr/bin/env python3
"""The cost of the socket data channel between workers, measured side by side in one run.

Throughput (messages/s, medians of --reps, cases interleaved in every repetition):
  sequence   1 worker x 2 threads  vs  2 workers x 1 thread (the same cores in all)
  word_count 1 worker x 2 threads  vs  2 workers x 1 thread
Two senders run at once, one per source address (with one worker, both go to its one source).
sequence keys are split between the senders by parity, so a key always comes from one sender;
each key's state lives on one shard of one worker, so about half the messages cross the data
channel with two workers. A case's time runs from the senders' start until the receiver has every
expected frame (sequence) or byte (word_count): the worker's whole path is in it. Each worker of a
2-worker cluster runs on half of the CPUs (--cpus), as on a host of its own, all of its threads
there; one worker has them all. The senders and receivers run anywhere.

Latency (µs, without coordinated omission): a 2-worker sequence cluster; one sender at --rate
messages/s to worker 1's source, every message a fresh key ([u64 intended_send_ns][u64 seq] from
`ringtail-send --rate --latency`). A key owned by worker 1 is processed there and leaves by worker
1's sink; a key owned by worker 2 crosses the data channel and leaves by worker 2's sink. Each sink
has its own ringtail-recv --latency, so both classes are measured in the same run: the difference
is the cost of crossing.

With --dpdk (root, a build with DPDK), the 2-worker cases and the latency run are repeated with
the data channel on DPDK: the two workers joined by a net_memif pair (--no-huge), interleaved with
the socket runs; the table then compares DPDK with sockets.

With --wide [T], sequence also runs on 2 workers x T threads (default 2) with a sender per shard
(2 T): on sockets (one exchange thread a worker) and, with --dpdk, on memif with a queue pair per
shard, so the data channel runs T lanes (an exchange thread each). It shows how lanes scale where
there are cores for them.

Usage (from the repository root):
  scripts/perf/cluster.py [--reps R] [--messages N] [--lines L] [--rate R] [--duration S] [--quick]
                          [--dpdk] [--wide [T]] [--poll-mode adaptive|busy] [--text FILE]
--poll-mode: every worker's (default adaptive); busy, as a host with cores for every worker's
shards and lanes runs them, takes the threads' wake-ups out of the latency.
--text: the lines word_count's senders send (default /usr/share/common-licenses/GPL-3; on a host
without Debian's base-files, the copy scripts/perf/bundle.sh puts in share/GPL-3).
Environment: RINGTAIL_BIN_DIR (the binaries; default BUILD_DIR/bin, BUILD_DIR default build).
Results: --out DIR (default results/cluster-<date>/): summary.json, table.txt, logs/.
"""

import argparse
import collections
import json
import os
import signal
import statistics
import struct
import sys
import time

import procs
from procs import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GPL = "/usr/share/common-licenses/GPL-3"
PUNCT = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"


class Run(procs.Group):
    """The processes of the measurements: each one's output in <out>/logs/<name>.log, the
    programs from bin_dir; cleanup() (at the end, or on a failure) leaves none running."""

    def __init__(self, out_dir, bin_dir):
        self.out_dir = out_dir
        self.bin = bin_dir
        logs = os.path.join(out_dir, "logs")
        os.makedirs(logs, exist_ok=True)
        super().__init__(logs)

    def launch(self, name, args):
        """Starts the Ringtail program args[0] with args[1:]."""
        return self.start([os.path.join(self.bin, args[0])] + args[1:], name=name)


def dpdk_args(run, role, tag, own):
    """`--net dpdk -- <EAL args>` for one end of a memif pair (role a: server, b: client), EAL's
    lcore the first of the worker's CPUs `own` (from worker_cpus)."""
    prefix = run.dpdk_prefix(f"rt-perf-{os.getpid()}-{tag}-{role}")
    cpus = sorted(os.sched_getaffinity(0))
    cpu = own[0] if own else cpus[(0 if role == "a" else 1) % len(cpus)]
    vdev = (f"net_memif0,role={'server' if role == 'a' else 'client'},id=0,"
            f"socket=/rt-perf-{os.getpid()}-{tag}.sock")
    return ["--net", "dpdk", "--", *procs.eal_args(prefix, ["-l", str(cpu)], vdev=vdev)]


def worker_cpus(workers):
    """The --cpus of each worker of a cluster: an equal share of this process's CPUs each, as
    workers on hosts of their own would have (none for one worker: it has them all)."""
    cpus = sorted(os.sched_getaffinity(0))
    k = len(cpus) // workers
    if workers < 2 or k < 1:
        return [[] for _ in range(workers)]
    return [cpus[i * k:(i + 1) * k] for i in range(workers)]


WORKER_ARGS = []  # given to every worker (--poll-mode)


def start_cluster(run, app, source, workers, threads, outs, tag, extra=(), net="socket"):
    """Starts `workers` workers of `app`; outs[i] is worker i's sink port. Returns the source ports
    and the worker processes, once every worker runs. net="dpdk": two workers over memif."""
    ins = [free_port() for _ in range(workers)]
    common = ["--metrics-period", "0", "-T", str(threads), *WORKER_ARGS, *extra]
    own = worker_cpus(workers)
    tail = {i: ["--cpus", ",".join(map(str, cpus))] if cpus else [] for i, cpus in enumerate(own)}
    if net == "dpdk":
        tail[0] += dpdk_args(run, "a", tag, own[0])
        tail[1] += dpdk_args(run, "b", tag, own[1])
    members = []
    if workers == 1:
        members.append(run.launch(f"{tag}-w1", [app, "--in", f"{source}@127.0.0.1:{ins[0]}",
                                                "--out", f"127.0.0.1:{outs[0]}", *common]))
    else:
        ctrl = free_port()
        members.append(run.launch(f"{tag}-w1", [
            app, "-t", "-w", str(workers), "-c", f"127.0.0.1:{ctrl}", "-d",
            f"127.0.0.1:{free_port()}", "--in", f"{source}@127.0.0.1:{ins[0]}", "--out",
            f"127.0.0.1:{outs[0]}", *common, *tail[0]]))
        for i in range(1, workers):
            if net == "dpdk":
                time.sleep(0.5)  # the memif server first
            members.append(run.launch(f"{tag}-w{i + 1}", [
                app, "-c", f"127.0.0.1:{ctrl}", "-n", f"w{i + 1}", "-y", "127.0.0.1:0", "--in",
                f"{source}@127.0.0.1:{ins[i]}", "--out", f"127.0.0.1:{outs[i]}", *common,
                *tail.get(i, [])]))
    for p in members:
        p.wait_for_log("running:")
    return ins, members


def sequence_file(path, keys, offset, per_file):
    """Binary [u32 8+k][u64 value][key] records for keys offset, offset+2, ... (values rising)."""
    with open(path, "wb") as f:
        n = 0
        value = 1
        while n < per_file:
            for k in range(offset, keys, 2):
                key = b"key%05d" % k
                f.write(struct.pack(">IQ", 8 + len(key), value) + key)
                n += 1
            value += 1
    return n


def timed_case(run, tag, app, source, workers, threads, files, send_args, expect, framed,
               net="socket"):
    recv_port = free_port()
    recv = run.launch(f"{tag}-recv", ["ringtail-recv", "-l", f"127.0.0.1:{recv_port}", "-n",
                                      "--expect", str(expect), *(["-f"] if framed else []),
                                      "--timeout", "60"])
    time.sleep(0.2)
    ins, members = start_cluster(run, app, source, workers, threads, [recv_port] * workers,
                                 tag, net=net)
    ports = [ins[i % len(ins)] for i in range(len(files))]
    t0 = time.monotonic()
    senders = [run.launch(f"{tag}-send{i}", ["ringtail-send", "-h", f"127.0.0.1:{ports[i]}",
                                             "-f", files[i], *send_args[i]])
               for i in range(len(files))]
    for s in senders:
        if s.finish(300) != 0:
            raise SystemExit(f"cluster.py: FAILED: sender of {tag} exited {s.returncode}")
    if recv.finish(300) != 0:
        raise SystemExit(f"cluster.py: FAILED: receiver of {tag} exited {recv.returncode} "
                         f"(log {recv.log_path})")
    elapsed = time.monotonic() - t0
    for p, rc in zip(members, procs.stop_together(members, signal.SIGTERM, 60, check=False)):
        if rc != 0:
            raise SystemExit(f"cluster.py: FAILED: worker of {tag} exited {rc} "
                             f"(log {p.log_path})")
    run.stop_all()
    return elapsed


def latency_case(run, rate, duration, warmup, net="socket"):
    """2-worker sequence: local vs crossing latency, measured in the same run."""
    recv_ports = [free_port(), free_port()]
    prefixes = [os.path.join(run.out_dir, f"latency-{net}-local"),
                os.path.join(run.out_dir, f"latency-{net}-crossing")]
    recvs = [run.launch(f"lat-recv{i}", ["ringtail-recv", "-l", f"127.0.0.1:{recv_ports[i]}",
                                         "-f", "--latency", prefixes[i], "--warmup", str(warmup),
                                         "--timeout", str(duration + 30)])
             for i in range(2)]
    time.sleep(0.2)
    ins, members = start_cluster(run, "sequence", "Sequence", 2, 1, recv_ports, f"lat-{net}",
                                 net=net)
    total = int(rate * (duration + warmup))
    sender = run.launch(f"lat-{net}-send", ["ringtail-send", "-h", f"127.0.0.1:{ins[0]}",
                                            "--rate", str(rate), "--latency", "-m", str(total)])
    if sender.finish(duration + warmup + 60) != 0:
        raise SystemExit("cluster.py: FAILED: latency sender failed")
    time.sleep(1)
    procs.stop_together(members, signal.SIGTERM, 60, check=False)
    for r in recvs:
        r.stop(signal.SIGINT, 30, check=False)
    run.stop_all()
    out = {}
    for name, prefix in zip(("local", "crossing"), prefixes):
        with open(prefix + ".json") as f:
            out[name] = json.load(f)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--messages", type=int, default=2_000_000, help="sequence messages")
    ap.add_argument("--lines", type=int, default=200_000, help="word_count lines")
    ap.add_argument("--rate", type=int, default=20_000, help="latency: messages/s")
    ap.add_argument("--duration", type=int, default=5, help="latency: seconds measured")
    ap.add_argument("--warmup", type=int, default=1, help="latency: seconds not measured")
    ap.add_argument("--quick", action="store_true", help="small sizes, 1 repetition")
    ap.add_argument("--out", help="results folder (default results/cluster-<date>)")
    ap.add_argument("--dpdk", action="store_true",
                    help="also run the 2-worker cases with the data channel on DPDK (memif)")
    ap.add_argument("--wide", nargs="?", type=int, const=2, default=0, metavar="T",
                    help="also run sequence on 2 workers x T threads (default 2; 2 T senders): on "
                         "sockets, and with --dpdk on memif with T lanes (a queue pair per shard)")
    ap.add_argument("--poll-mode", choices=("adaptive", "busy"), default="adaptive",
                    help="every worker's --poll-mode (default adaptive; busy where each worker's "
                         "shards and lanes have cores of their own)")
    ap.add_argument("--text", default=GPL,
                    help=f"word_count: the lines its senders send (default {GPL})")
    a = ap.parse_args()
    if a.wide < 0 or a.wide > 7:
        print("cluster.py: --wide T wants 1..7 threads (EAL's -m 128 holds 7 queue pairs' pools)",
              file=sys.stderr)
        sys.exit(64)
    if not os.path.isfile(a.text):
        print(f"cluster.py: --text {a.text}: no such file", file=sys.stderr)
        sys.exit(64)
    WORKER_ARGS[:] = ["--poll-mode", a.poll_mode]
    if a.quick:
        a.reps, a.messages, a.lines, a.duration = 1, 100_000, 10_000, 2
    bin_dir = os.environ.get("RINGTAIL_BIN_DIR") or os.path.join(
        ROOT, os.environ.get("BUILD_DIR", "build"), "bin")
    out_dir = a.out or os.path.join(ROOT, "results", "cluster-" + time.strftime("%Y%m%d-%H%M%S"))
    run = Run(out_dir, bin_dir)
    try:
        measure(a, run)
    finally:
        run.cleanup()


def measure(a, run):
    """Every case, the latency runs, then summary.json and table.txt in run.out_dir."""
    out_dir = run.out_dir
    keys = 1000
    seq_files = [os.path.join(out_dir, f"seq{i}.bin") for i in range(2)]
    per_file = 100_000
    for i in range(2):
        sequence_file(seq_files[i], keys, i, per_file)
    half = a.messages // 2
    with open(a.text) as f:
        gpl = [l.rstrip("\n") for l in f]
    half_lines = a.lines // 2
    # Two senders each repeat the file from its start: the output is that of each sender's lines
    # counted together, computed on the combined sequence (order across senders does not change
    # the byte total, since every count value 1..n of a word appears once).
    wc_counts = collections.Counter()
    wc_bytes = 0
    for _ in range(2):
        for i in range(half_lines):
            for w in gpl[i % len(gpl)].lower().split(" "):
                w = w.strip(PUNCT)
                if w:
                    wc_counts[w] += 1
                    wc_bytes += len(w) + 4 + len(str(wc_counts[w])) + 1

    cases = [
        ("sequence, 1 worker x 2 threads", "sequence", "Sequence", 1, 2, "seq", a.messages),
        ("sequence, 2 workers x 1 thread", "sequence", "Sequence", 2, 1, "seq", a.messages),
        ("word_count, 1 worker x 2 threads", "word_count", "Split and Count", 1, 2, "wc",
         2 * half_lines),
        ("word_count, 2 workers x 1 thread", "word_count", "Split and Count", 2, 1, "wc",
         2 * half_lines),
    ]
    if a.dpdk:
        cases += [
            ("sequence, 2 workers x 1 thread, DPDK memif", "sequence", "Sequence", 2, 1, "seq",
             a.messages),
            ("word_count, 2 workers x 1 thread, DPDK memif", "word_count", "Split and Count", 2,
             1, "wc", 2 * half_lines),
        ]
    if a.wide:
        t = a.wide
        cases.append((f"sequence, 2 workers x {t} threads", "sequence", "Sequence", 2, t, "seq",
                      a.messages))
        if a.dpdk:
            cases.append((f"sequence, 2 workers x {t} threads, DPDK memif {t} lanes", "sequence",
                          "Sequence", 2, t, "seq", a.messages))
    times = collections.defaultdict(list)
    for rep in range(a.reps):
        for label, app, source, workers, threads, kind, count in cases:
            net = "dpdk" if "DPDK" in label else "socket"
            tag = f"r{rep}-{app}-w{workers}x{threads}-{net}"
            if kind == "seq":
                # A sender per shard, so that every shard ingests (and, on DPDK, every lane
                # carries frames); each file is read by threads senders.
                senders = workers * threads if workers > 1 else 2
                files = [seq_files[i % 2] for i in range(senders)]
                part = a.messages // senders
                send = [["-y", "-r", "-m", str(part)]] * senders
                expect, framed = part * senders, True
            else:
                files = [a.text, a.text]
                send = [["-r", "-m", str(half_lines)]] * 2
                expect, framed = wc_bytes, False
            t = timed_case(run, tag, app, source, workers, threads, files, send, expect, framed,
                           net)
            count = expect if kind == "seq" else count
            times[label].append(count / t)
            print(f"  rep {rep + 1}: {label}: {count / t:,.0f} msgs/s", flush=True)
    lat = latency_case(run, a.rate, a.duration, a.warmup)
    if a.dpdk:
        dl = latency_case(run, a.rate, a.duration, a.warmup, net="dpdk")
        lat["dpdk local"], lat["dpdk crossing"] = dl["local"], dl["crossing"]
    run.cleanup()  # the DPDK runtime folders too

    summary = {"throughput": {k: {"median": statistics.median(v), "all": v}
                              for k, v in times.items()},
               "latency": lat, "reps": a.reps, "messages": a.messages, "lines": a.lines,
               "rate": a.rate, "duration": a.duration, "poll_mode": a.poll_mode,
               "worker_cpus": worker_cpus(2)}
    rows = ["| case | msgs/s (median) | x 1 worker |", "|---|---|---|"]
    for label, app, *_ in cases:
        base = statistics.median(times[f"{app}, 1 worker x 2 threads"])
        if "DPDK" in label:
            sock_label = label.split(", DPDK")[0]
            sock = statistics.median(times[sock_label])
            m = statistics.median(times[label])
            rows.append(f"| {label} | {m:,.0f} | {m / base:.2f} (x sockets: {m / sock:.2f}) |")
            continue
        m = statistics.median(times[label])
        rows.append(f"| {label} | {m:,.0f} | {m / base:.2f} |")
    rows += ["", f"latency, 2-worker sequence at {a.rate} msgs/s for {a.duration} s (µs; "
                 f"--poll-mode {a.poll_mode}):",
             "| path | count | p50 | p90 | p99 | p99.9 | p99.99 | max |",
             "|---|---|---|---|---|---|---|---|"]
    for name in lat:
        j = lat[name]
        cells = " | ".join(f"{j[k + '_us']:,.0f}"
                           for k in ("p50", "p90", "p99", "p999", "p9999", "max"))
        rows.append(f"| {name} | {j['count']} | {cells} |")
    table = "\n".join(rows)
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    with open(os.path.join(out_dir, "table.txt"), "w") as f:
        f.write(table + "\n")
    print(table)
    print(f"results in {out_dir}")


if __name__ == "__main__":
    try:
        main()
    except procs.ProcessFailed as e:
        sys.exit(f"cluster.py: FAILED: {e}")
    except KeyboardInterrupt:
        sys.exit(130)
