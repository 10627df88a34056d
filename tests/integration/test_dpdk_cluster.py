#!/usr/bin/env python3
"""Two workers of one cluster whose data channel runs on DPDK (--net dpdk): two processes joined
by a net_memif pair, no NIC, no hugepages (--no-huge), as root.

  - sequence, each key fed by one worker, about half the records crossing workers over memif:
    ringtail-check finds nothing lost, duplicated or out of order;
  - the same through the fault layer (RINGTAIL_TEST_FAULTS: 5 % loss, 1 % duplication, 10 %
    reordering, 0.1 % corruption of every datagram a worker sends): still all zero, and the
    corrupted frames are counted and dropped;
  - word_count: the counts are exact, as on sockets;
  - one of the two killed (SIGKILL) while words cross, the memif server or the client: the other
    reports it gone once and keeps running, its memif port left without a peer;
  - one of the two stopped (SIGSTOP) while words cross, so that it acknowledges nothing: the
    other reports it gone once and keeps running, its memory bounded;
  - --net dpdk with no usable device exits 69 with its remedy; --net auto with none falls back to
    kernel sockets with one warning line, and /status says "net": "socket";
  - two workers in two network namespaces joined by a veth pair, the data channel on
    net_af_packet (the control channel and sources/sinks on the kernel's TCP over the same
    veth): sequence judged by ringtail-check, all zero, and word_count exact, long words
    crossing in fragments, while frames from no worker's address, frames that are not IPv4 and
    frames that fail the data channel's checksum reach the port: dropped and counted.

Needs root and a build with DPDK; elsewhere the tests are skipped with the reason on stderr unless
$RINGTAIL_REQUIRE_DPDK=1 or $CI says DPDK must work here (then they fail).
  RINGTAIL_BIN_DIR=build/bin python3 tests/integration/test_dpdk_cluster.py -v
"""
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

DPDK_RUN_DIR = "/var/run/dpdk"
CHECK = harness.binary("ringtail-check")
SEND = harness.binary("ringtail-send")
CTL = harness.binary("ringtail-ctl")
DPDK_DATA_UDP_PORT = 43210  # net/dpdk/dpdk_port.h: dpdk_data_udp_port, lane 0
FAULTS = "loss=0.05,dup=0.01,reorder=0.1,corrupt=0.001,seed={seed}"


def dpdk_required():
    return os.environ.get("RINGTAIL_REQUIRE_DPDK") == "1" or bool(os.environ.get("CI"))


def build_has_dpdk():
    r = subprocess.run([harness.binary("ringtail-dpdk-pingpong"), "--mode", "probe", "--",
                        "--no-huge", "-m", "64", "--no-pci", "--no-telemetry",
                        "--file-prefix", f"rt-probe-{os.getpid()}",
                        "--log-level=lib.eal:error"],
                       capture_output=True, timeout=60)
    shutil.rmtree(os.path.join(DPDK_RUN_DIR, f"rt-probe-{os.getpid()}"), ignore_errors=True)
    return b"this build has no DPDK" not in r.stderr + r.stdout


def dpdk_summary(member):
    """The worker's data-channel summary line, logged as it stops."""
    return [l for l in member.log().splitlines() if "data channel (DPDK):" in l][0]


def count_before(line, label):
    """The number just before `label` in a summary line: 40 for ("... 40 corrupt dropped", ...)."""
    return int(line.split(label)[0].rsplit(" ", 1)[1])


def dpdk_fragments(members):
    """DATA frames the workers sent with part of a larger body, from their DPDK summary lines."""
    return sum(count_before(dpdk_summary(m), " fragments") for m in members)


def ipv4_checksum(header):
    total = sum(int.from_bytes(header[i:i + 2], "big") for i in range(0, len(header), 2))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_frame(dst_mac, src_ip, dst_ip, dst_port, payload):
    """An Ethernet + IPv4 + UDP frame as the DPDK data channel's (net/dpdk/udp_frame.h)."""
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 8 + len(payload), 0, 0x4000, 64,
                               17, 0, socket.inet_aton(src_ip), socket.inet_aton(dst_ip)))
    ip[10:12] = ipv4_checksum(ip).to_bytes(2, "big")
    udp = struct.pack("!HHHH", dst_port, dst_port, 8 + len(payload), 0)
    return dst_mac + bytes.fromhex("020000000099") + b"\x08\x00" + bytes(ip) + udp + payload


# Sends the frames (hex, one an argument after the interface's name) out of an interface; run
# in the interface's network namespace.
INJECT = """import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
for f in sys.argv[2:]:
    s.send(bytes.fromhex(f))
"""


class DpdkClusterTest(harness.ProcessTestCase):
    def setUp(self):
        super().setUp()
        self.seed = harness.test_seed()
        reason = None
        if os.geteuid() != 0:
            reason = "not root: DPDK's EAL needs root here"
        elif not build_has_dpdk():
            reason = "this build has no DPDK"
        if reason:
            if dpdk_required():
                self.fail(f"{reason} ($RINGTAIL_REQUIRE_DPDK or $CI says DPDK must work here)")
            print(f"test_dpdk_cluster: skipped: {reason}", file=sys.stderr, flush=True)
            self.skipTest(reason)

    def eal(self, role, vdev=None):
        prefix = self.group.dpdk_prefix(
            f"rt-itc-{os.getpid()}-{len(self.group.dpdk_prefixes)}-{role}")
        cpus = sorted(os.sched_getaffinity(0))
        cpu = cpus[(0 if role == "a" else 1) % len(cpus)]
        return ["--"] + harness.procs.eal_args(prefix, ["-l", str(cpu)], vdev=vdev)

    def start_members(self, app, source, named_args, log_prefix="", pause=0.0, **kw):
        """Starts a worker for each (name, args, source port) of named_args, `pause` s apart,
        and returns them (harness.Worker) once each runs."""
        members = []
        for name, args, port in named_args:
            proc = self.start_logged(args, f"{log_prefix}{app}-{name}", name=f"worker '{name}'",
                                     **kw)
            members.append(harness.Worker(proc, proc.log_path, {source: port}, args))
            time.sleep(pause)
        for m in members:
            m.proc.wait_for_log("running:", 60)
            self.assertTrue(m.running(), m.log())
        return members

    def start_pair(self, app, source, out_ports, net="dpdk", memif=True, env=None, extra=(),
                   extra_w2=(), macs=None, threads=1):
        """An initializer (memif server) and w2 (memif client); returns them once both run.
        `macs` (server, client) sets the memif ports' MAC addresses. `threads` is both workers'
        -T, or (the initializer's, w2's)."""
        threads = (threads, threads) if isinstance(threads, int) else threads
        sock = f"/rt-itc-{os.getpid()}-{len(self.group.dpdk_prefixes)}.sock"
        ctrl, data, ext = harness.free_port(), harness.free_port(), harness.free_port()
        mac = (lambda role: f",mac={macs[0] if role == 'server' else macs[1]}") if macs else (
            lambda role: "")
        vdev = (lambda role: f"net_memif0,role={role},id=0,socket={sock}{mac(role)}") if memif \
            else (lambda role: None)
        ins = [harness.free_port(), harness.free_port()]
        common = ["--metrics-period", "0" if not extra else "500", "--net", net]
        init_args = [harness.binary(app), "-t", "-w", "2", "-c", f"127.0.0.1:{ctrl}", "-d",
                     f"127.0.0.1:{data}", "--in", f"{source}@127.0.0.1:{ins[0]}", "--out",
                     f"127.0.0.1:{out_ports[0]}", "-e", f"127.0.0.1:{ext}", "-T",
                     str(threads[0]), *common, *extra, *self.eal("a", vdev("server"))]
        w2_args = [harness.binary(app), "-c", f"127.0.0.1:{ctrl}", "-n", "w2", "-y",
                   "127.0.0.1:0", "--in", f"{source}@127.0.0.1:{ins[1]}", "--out",
                   f"127.0.0.1:{out_ports[1]}", "-T", str(threads[1]), *common, *extra_w2,
                   *self.eal("b", vdev("client"))]
        members = self.start_members(
            app, source, (("initializer", init_args, ins[0]), ("w2", w2_args, ins[1])),
            pause=0.5, env=dict(os.environ, **(env or {})))
        self.ext = ext
        return members

    def assert_final_counts(self, sinks, counts):
        """Each word's highest count, over every sink, is its count in the input."""
        best = {}
        for s in sinks:
            for line in s.lines():
                word, _, n = line.decode().rpartition(" => ")
                best[word] = max(best.get(word, 0), int(n))
        self.assertEqual(best, {w.decode(): n for w, n in counts.items()})

    def sequence_files(self, keys, values, tag, count=2):
        """`count` sequence input files, keys split by k % count: values 1..values of every key,
        in order, each key in one file only."""
        files = []
        for i in range(count):
            data = bytearray()
            for v in range(1, values + 1):
                for k in range(i, keys, count):
                    key = b"key%04d" % k
                    data += (8 + len(key)).to_bytes(4, "big") + v.to_bytes(8, "big") + key
            files.append(harness.write_file(self.path(f"{tag}-in{i}.bin"), bytes(data)))
        return files

    def clean_shutdown(self, members):
        r = subprocess.run([CTL, "-e", f"127.0.0.1:{self.ext}", "-t", "clean-shutdown"],
                           capture_output=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        for m in members:
            self.assertEqual(m.proc.wait(timeout=60), 0, m.log())

    def sequence_run(self, env=None, threads=1, extra=(), values=500):
        """Sequence over memif, judged by ringtail-check: 200 keys of `values` values each. With
        `threads` shards per worker (or (the initializer's, w2's)), each worker gets as many
        senders (a connection each, so every shard ingests and sends). `extra`: more options for
        both workers."""
        keys = 200
        threads = (threads, threads) if isinstance(threads, int) else threads
        out = self.path("seq.out")
        recv = self.popen([harness.binary("ringtail-recv"), "-l", "127.0.0.1:0", "-f", "--out",
                           out, "--ready-file", self.path("recv.port"), "--timeout", "120",
                           "--expect", str(keys * values)], stderr=subprocess.DEVNULL)
        port = recv.wait_for_port_file(self.path("recv.port"), 10)
        members = self.start_pair("sequence", "Sequence", [port, port], env=env,
                                  threads=threads, extra=extra, extra_w2=extra)
        for m in members:
            self.assertIn("data channel on DPDK port 'net_memif0'", m.log())
        files = self.sequence_files(keys=keys, values=values, tag="memif", count=sum(threads))
        senders = []
        for i, f in enumerate(files):
            m = members[0 if i < threads[0] else 1]
            senders.append(self.popen([SEND, "-h", f"127.0.0.1:{m.port}", "-y", "-f", f],
                                      stderr=subprocess.DEVNULL))
        for s in senders:
            self.assertEqual(s.wait(timeout=60), 0)
        # Every record reaches the sink (the receiver exits at the count) before the clean
        # shutdown: sources stop reading at a shutdown, so what they have not read yet is not the
        # cluster's to deliver.
        self.assertEqual(recv.wait(timeout=180), 0, "the receiver did not get every record")
        self.clean_shutdown(members)
        inputs = [a for f in files for a in ("--input", f)]
        r = subprocess.run([CHECK, "--output", out, "--format", "lines", *inputs],
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout.decode() + r.stderr.decode())
        self.assertIn(f"checked {keys * values} records, {keys} keys: 0 lost, 0 duplicated, 0 out "
                      f"of order".encode(), r.stdout + r.stderr)
        return members

    def test_sequence_over_memif(self):
        members = self.sequence_run()
        for m in members:
            line = [l for l in m.log().splitlines() if "data channel (DPDK):" in l]
            self.assertEqual(len(line), 1, m.log())
            self.assertRegex(line[0], r"[1-9]\d* frames out")
            # Traffic goes both ways: acknowledgements ride on it, and every frame held for
            # retransmission is an mbuf reference.
            self.assertRegex(line[0], r"[1-9]\d* acks piggybacked")
            self.assertIn(" 0 held on the heap", line[0])

    def test_sequence_over_memif_with_two_lanes(self):
        # Two shards a worker: each worker's port opens two queue pairs, and the data channel
        # runs a lane on each (an exchange thread of its own); two senders a worker, so both
        # shards ingest and both lanes carry frames. With --control-core 1 and no other core
        # free in --cpus, lane 1 shares the control core with lane 0, and says so.
        members = self.sequence_run(threads=2, extra=("--cpus", "0,1", "--control-core", "1"))
        for m in members:
            self.assertIn("2 lane(s) (queue pairs: this worker's port has 2", m.log())
            self.assertIn("data channel: lane exchange threads on cores 1,1", m.log())
            self.assertIn("2 of the data channel's 2 lanes share the network I/O core 1: 1 more "
                          "core(s) in --cpus", m.log())
            line = [l for l in m.log().splitlines() if "data channel (DPDK):" in l]
            self.assertEqual(len(line), 1, m.log())
            self.assertIn(": 2 lanes, ", line[0])
            by_lane = line[0].split("frames out by lane: ")[1].split(")")[0].split()
            self.assertEqual(len(by_lane), 2, line[0])
            for frames in by_lane:
                self.assertGreater(int(frames), 0, line[0])
            self.assertIn(" 0 held on the heap", line[0])

    def test_sequence_over_memif_with_different_thread_counts(self):
        # The initializer has one shard and w2 two: their ports open one and two queue pairs, and
        # both start with one, the lane count the cluster agreed on (the ends of a memif pair must
        # use as many queue pairs each).
        members = self.sequence_run(threads=(1, 2))
        for m, opened in zip(members, (1, 2)):
            self.assertIn(f"1 lane(s) (queue pairs: this worker's port has {opened}, the fewest "
                          f"in the cluster 1)", m.log())
            line = [l for l in m.log().splitlines() if "data channel (DPDK):" in l]
            self.assertEqual(len(line), 1, m.log())
            self.assertIn(": 1 lane, ", line[0])
            self.assertRegex(line[0], r"[1-9]\d* frames out")
            self.assertIn(" 0 held on the heap", line[0])
        self.assertIn("DPDK: port net_memif0: starting with 1 of its 2 queue pairs",
                      members[1].log())

    def test_sequence_over_memif_with_two_lanes_and_faults(self):
        # Each lane has its own go-back-N state per peer and its own fault seed.
        env = {"RINGTAIL_TEST_FAULTS": FAULTS.format(seed=self.seed)}
        members = self.sequence_run(env=env, threads=2)
        for m in members:
            line = dpdk_summary(m)
            self.assertIn(": 2 lanes, ", line)
            self.assertRegex(line, r"[1-9]\d* retransmitted")

    def test_sequence_over_memif_with_faults(self):
        # 400 000 records: some 10 000 frames meet the fault layer, so that 0.1 % corruption
        # strikes about 10 of them (with 100 000 records, none in about one run of 15).
        env = {"RINGTAIL_TEST_FAULTS": FAULTS.format(seed=self.seed)}
        members = self.sequence_run(env=env, values=2000)
        corrupt = corrupted = fast = 0
        for m in members:
            self.assertIn("RINGTAIL_TEST_FAULTS", m.log())
            line = dpdk_summary(m)
            self.assertRegex(line, r"[1-9]\d* retransmitted")
            corrupt += count_before(line, " corrupt dropped")
            corrupted += count_before(line, " corrupted")
            fast += int(line.split(" fast)")[0].rsplit("(", 1)[1])
        self.assertGreater(corrupted, 0, f"0.1 % corruption struck no frame (seed {self.seed})")
        # The corrupted frames fail their checksum at the other worker and are counted, and
        # nothing else is. (Equality is likely but not sure: a corrupted copy can go unread, such
        # as one of the goodbyes a worker sends as it stops.)
        self.assertGreater(corrupt, 0, f"seed {self.seed}")
        self.assertLessEqual(corrupt, corrupted, f"seed {self.seed}")
        # Selective acks: most lost frames are resent before their timeout.
        self.assertGreater(fast, 0, "5 % loss: some frames must be resent fast")

    def test_word_count_over_memif_is_exact(self):
        sinks = [self.py_sink(), self.py_sink()]
        members = self.start_pair("word_count", "Split and Count", [s.port for s in sinks])
        lines = [f"w{i % 97} x{i % 13} the end".encode() for i in range(3000)]
        # Words longer than one DPDK frame (about 1.4 KB) cross workers in fragments.
        lines[::100] = [b"long%d" % i + b"y" * (1400 + 331 * i) + b" the end"
                        for i in range(len(lines[::100]))]
        half = len(lines) // 2
        for m, part in zip(members, (lines[:half], lines[half:])):
            path = harness.write_file(self.path(f"text-{m.port}.txt"),
                                      b"".join(l + b"\n" for l in part))
            self.assertEqual(self.popen([SEND, "-h", f"127.0.0.1:{m.port}", "-f", path],
                                        stderr=subprocess.DEVNULL).wait(timeout=60), 0)
        counts = harness.count_words(lines)
        total = sum(counts.values())
        harness.wait_until(lambda: sum(len(s.lines()) for s in sinks) >= total, 60,
                           what=f"{total} counted words")
        self.clean_shutdown(members)
        self.assert_final_counts(sinks, counts)
        self.assertGreater(dpdk_fragments(members), 0, "the long words cross workers in fragments")

    def test_dpdk_peer_gives_a_workers_mac_by_hand(self):
        server, client = "02:00:00:00:aa:01", "02:00:00:00:aa:02"
        sinks = [self.py_sink(), self.py_sink()]
        members = self.start_pair("word_count", "Split and Count", [s.port for s in sinks],
                                  macs=(server, client), extra=("--dpdk-peer", f"w2={client}"),
                                  extra_w2=("--dpdk-peer",
                                            f"initializer={server},ghost=02:00:00:00:00:09"))
        self.assertIn(f"frames for worker 'w2' go to {client} (--dpdk-peer; it reported {client})",
                      members[0].log())
        self.assertIn(f"frames for worker 'initializer' go to {server} (--dpdk-peer; it reported "
                      f"{server})", members[1].log())
        self.assertIn("--dpdk-peer names 'ghost', which is not in this cluster", members[1].log())
        lines = [f"p{i % 31} q{i % 7}".encode() for i in range(400)]
        for m, part in zip(members, (lines[:200], lines[200:])):
            path = harness.write_file(self.path(f"peer-{m.port}.txt"),
                                      b"".join(l + b"\n" for l in part))
            self.assertEqual(self.popen([SEND, "-h", f"127.0.0.1:{m.port}", "-f", path],
                                        stderr=subprocess.DEVNULL).wait(timeout=60), 0)
        counts = harness.count_words(lines)
        harness.wait_until(lambda: sum(len(s.lines()) for s in sinks) >= sum(counts.values()),
                           60, what="counted words")
        self.clean_shutdown(members)
        self.assert_final_counts(sinks, counts)

    def test_sigterm_of_one_worker_over_memif(self):
        """w2 leaves on SIGTERM: it exits 0, and the initializer reports it once, stops polling
        the memif port the leaver closes, and keeps running until stopped itself."""
        sinks = [self.py_sink(), self.py_sink()]
        members = self.start_pair("word_count", "Split and Count", [s.port for s in sinks])
        lines = [f"s{i % 17} t{i % 5}".encode() for i in range(200)]
        path = harness.write_file(self.path("leave.txt"), b"".join(l + b"\n" for l in lines))
        self.assertEqual(self.popen([SEND, "-h", f"127.0.0.1:{members[0].port}", "-f", path],
                                    stderr=subprocess.DEVNULL).wait(timeout=60), 0)
        counts = harness.count_words(lines)
        harness.wait_until(lambda: sum(len(s.lines()) for s in sinks) >= sum(counts.values()),
                           60, what="counted words")
        init, w2 = members
        self.assertEqual(w2.stop(), 0, w2.log())
        left = "cluster: worker 'w2' left the cluster ("
        harness.wait_until(lambda: left in init.log(), 10, what="the initializer's report")
        time.sleep(2)  # past w2's closing of its end of the memif pair
        self.assertTrue(init.running(), init.log())
        self.assertEqual(init.log().count(left), 1, init.log())
        self.assertEqual(init.stop(), 0, init.log())
        self.assert_final_counts(sinks, counts)

    def words_crossing(self):
        """word_count on a memif pair, each worker's source fed without end by a sender of its
        own; returns (members, their sinks, the senders) once 20 000 words are counted."""
        sinks = [self.py_sink(), self.py_sink()]
        members = self.start_pair("word_count", "Split and Count", [s.port for s in sinks])
        lines = [f"k{i % 23} v{i % 3}".encode() for i in range(20000)]
        path = harness.write_file(self.path("endless.txt"), b"".join(l + b"\n" for l in lines))
        senders = [self.popen([SEND, "-h", f"127.0.0.1:{m.port}", "-f", path, "-r", "-m",
                               "100000000"], stderr=subprocess.DEVNULL) for m in members]
        harness.wait_until(lambda: sum(len(s.lines()) for s in sinks) >= 20000, 60,
                           what="words counted")
        return members, sinks, senders

    def kill_one_over_memif(self, victim_index):
        """One of two workers is killed (SIGKILL) while words cross: the other reports it gone
        once, at error level, and keeps running until stopped itself; its memif port, whose
        peer vanished without a word, is not polled into a fault."""
        members, sinks, senders = self.words_crossing()
        victim, survivor = members[victim_index], members[1 - victim_index]
        name = "initializer" if victim_index == 0 else "w2"
        victim.proc.kill_and_reap()
        gone = f"cluster: worker '{name}' is gone: "
        harness.wait_until(lambda: gone in survivor.log() or not survivor.running(), 15,
                           what="the survivor's report")
        time.sleep(3)  # past the data channel's own verdict on the silent peer
        self.assertTrue(survivor.running(), survivor.log())
        reports = [l for l in survivor.log().splitlines() if gone in l]
        self.assertEqual(len(reports), 1, survivor.log())
        self.assertIn(" error ", reports[0])
        for s in senders:
            s.kill()
        self.assertEqual(survivor.stop(), 0, survivor.log())

    def test_kill_of_the_memif_client_worker(self):
        self.kill_one_over_memif(1)

    def test_kill_of_the_memif_server_worker(self):
        self.kill_one_over_memif(0)

    def test_a_stopped_worker_over_memif(self):
        """w2 stops (SIGSTOP) while words cross: it neither acknowledges frames nor sends
        heartbeats. The initializer reports it once and keeps running, counting the words of its
        own source and dropping those for w2, and its memory stays bounded while it does."""
        (init, w2), sinks, _ = self.words_crossing()
        w2.proc.send_signal(signal.SIGSTOP)
        self.addCleanup(w2.proc.kill)
        gone = "cluster: worker 'w2' is gone: "
        harness.wait_until(lambda: gone in init.log() or not init.running(), 15,
                           what="the initializer's report")
        rss, counted = init.rss_bytes(), len(sinks[0].lines())
        time.sleep(5)
        self.assertTrue(init.running(), init.log())
        self.assertGreater(len(sinks[0].lines()), counted, "the initializer stopped counting")
        growth = init.rss_bytes() - rss
        self.assertLess(growth, 64 << 20, f"RSS grew by {growth} bytes in 5 s")
        reports = [l for l in init.log().splitlines() if gone in l]
        self.assertEqual(len(reports), 1, init.log())
        self.assertIn(" error ", reports[0])
        self.assertEqual(init.stop(), 0, init.log())

    def test_net_dpdk_without_a_device_exits_69(self):
        r = subprocess.run([harness.binary("word_count"), "--in", "127.0.0.1:0", "--out",
                            "127.0.0.1:1", "--net", "dpdk", *self.eal("a")],
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, harness.EX_UNAVAILABLE, r.stderr)
        err = r.stderr.decode().strip().splitlines()
        self.assertTrue(err[-1].startswith("--net dpdk:"), err)

    def test_net_auto_without_a_device_falls_back_to_sockets(self):
        sinks = [self.py_sink(), self.py_sink()]
        metrics_port = harness.free_port()
        members = self.start_pair("word_count", "Split and Count", [s.port for s in sinks],
                                  net="auto", memif=False,
                                  extra=("--metrics-listen", f"127.0.0.1:{metrics_port}"))
        for m in members:
            warn = [l for l in m.log().splitlines() if "--net auto: no usable DPDK port" in l]
            self.assertEqual(len(warn), 1, m.log())
            self.assertIn("cluster: formed, 2 workers (initializer, w2)", m.log())
        path = harness.write_file(self.path("t.txt"), b"a b c\nb c\nc\n")
        self.assertEqual(self.popen([SEND, "-h", f"127.0.0.1:{members[1].port}", "-f", path],
                                    stderr=subprocess.DEVNULL).wait(timeout=30), 0)
        harness.wait_until(lambda: sum(len(s.lines()) for s in sinks) >= 6, 30, what="counts")
        status = json.load(urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/status",
                                                  timeout=5))
        self.assertEqual(status["net"], "socket")
        self.clean_shutdown(members)


    def veth_namespaces(self):
        """Two network namespaces joined by a veth pair, deleted at cleanup. Returns the command
        prefix that runs a program in each, the veth ends' names and their addresses."""
        if shutil.which("ip") is None:
            self.fail("no `ip` command (iproute2) to make network namespaces")
        tag = f"{os.getpid() % 100000}{len(self.group.dpdk_prefixes) % 10}"
        ns = [f"rt-itc-{tag}-a", f"rt-itc-{tag}-b"]
        ifs = [f"rtva{tag}", f"rtvb{tag}"]
        ips = ["10.231.0.1", "10.231.0.2"]
        self.addCleanup(lambda: [subprocess.run(["ip", "netns", "del", n], capture_output=True)
                                 for n in ns])
        for n in ns:
            r = subprocess.run(["ip", "netns", "add", n], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, f"cannot make a network namespace: {r.stderr}")
        for cmd in (["ip", "link", "add", ifs[0], "netns", ns[0], "type", "veth", "peer", "name",
                     ifs[1], "netns", ns[1]],
                    ["ip", "-n", ns[0], "addr", "add", ips[0] + "/24", "dev", ifs[0]],
                    ["ip", "-n", ns[1], "addr", "add", ips[1] + "/24", "dev", ifs[1]],
                    ["ip", "-n", ns[0], "link", "set", ifs[0], "up"],
                    ["ip", "-n", ns[1], "link", "set", ifs[1], "up"],
                    ["ip", "-n", ns[0], "link", "set", "lo", "up"],
                    ["ip", "-n", ns[1], "link", "set", "lo", "up"]):
            r = subprocess.run(cmd, capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, f"{' '.join(cmd)}: {r.stderr}")
        return [["ip", "netns", "exec", n] for n in ns], ifs, ips

    def start_af_packet_pair(self, app, source, inside, ifs, ips, outs, extra=()):
        """`app` on two workers, the initializer in the first namespace and w2 in the second,
        their data channel on DPDK over net_af_packet on the veth ends; control, sources and
        sinks on the kernel's TCP over the same veth. `outs`: each worker's --out. Returns them
        once both run; the initializer's external channel is at ips[0]:6005."""
        init_args = inside[0] + [
            harness.binary(app), "-t", "-w", "2", "-c", f"{ips[0]}:6000", "-d",
            f"{ips[0]}:6001", "--in", f"{source}@{ips[0]}:7001", "--out", outs[0],
            "-e", f"{ips[0]}:6005", "-T", "1", "--net", "dpdk", *extra,
            *self.eal("a", f"net_af_packet0,iface={ifs[0]}")]
        w2_args = inside[1] + [
            harness.binary(app), "-c", f"{ips[0]}:6000", "-n", "w2", "-y", f"{ips[1]}:0",
            "--in", f"{source}@{ips[1]}:7002", "--out", outs[1], "-T", "1", "--net", "dpdk",
            *extra, *self.eal("b", f"net_af_packet0,iface={ifs[1]}")]
        members = self.start_members(
            app, source, (("initializer", init_args, 7001), ("w2", w2_args, 7002)),
            log_prefix="ns-")
        for m in members:
            self.assertIn("data channel on DPDK port 'net_af_packet0'", m.log())
        return members

    def af_packet_clean_shutdown(self, inside, ips, members):
        r = subprocess.run(inside[0] + [CTL, "-e", f"{ips[0]}:6005", "-t", "clean-shutdown"],
                           capture_output=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        for m in members:
            self.assertEqual(m.proc.wait(timeout=60), 0, m.log())

    def test_sequence_over_af_packet_between_namespaces(self):
        inside, ifs, ips = self.veth_namespaces()
        out = self.path("seq.out")
        recv = self.popen(inside[0] + [harness.binary("ringtail-recv"), "-l", f"{ips[0]}:7100",
                                       "-f", "--out", out, "--timeout", "120", "--expect",
                                       "30000"], stderr=subprocess.DEVNULL)
        members = self.start_af_packet_pair("sequence", "Sequence", inside, ifs, ips,
                                            [f"{ips[0]}:7100"] * 2,
                                            extra=("--metrics-period", "0"))
        files = self.sequence_files(keys=100, values=300, tag="ns")
        for i in range(2):
            r = subprocess.run(inside[i] + [SEND, "-h", f"{ips[i]}:{7001 + i}", "-y", "-f",
                                            files[i]], capture_output=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(recv.wait(timeout=180), 0, "the receiver did not get every record")
        self.af_packet_clean_shutdown(inside, ips, members)
        inputs = [a for f in files for a in ("--input", f)]
        r = subprocess.run([CHECK, "--output", out, "--format", "lines", *inputs],
                           capture_output=True, timeout=60)
        self.assertIn(b"checked 30000 records, 100 keys: 0 lost, 0 duplicated, 0 out of order",
                      r.stdout + r.stderr)
        self.assertEqual(r.returncode, 0)
        crossed = [l for l in members[0].log().splitlines() if "messages sent to other" in l]
        self.assertRegex(crossed[0], r"data channel: [1-9]\d* messages sent")

    def test_word_count_over_af_packet_between_namespaces(self):
        """word_count as over memif: every count of every word, in order, exactly once, with
        words longer than a frame crossing in fragments."""
        inside, ifs, ips = self.veth_namespaces()
        members = self.start_af_packet_pair(
          "word_count", "Split and Count", inside, ifs, ips,
          [f"{ips[0]}:7100", f"{ips[1]}:7101"],
          extra=("--metrics-listen", "0.0.0.0:7200"))
        # One shard a worker, so one sink connection each: raw ringtail-recv output is whole
        # lines. Started now, the receivers time out only after the output stops; the sinks
        # hold it until they connect.
        outs = [self.path(f"wc-{i}.out") for i in range(2)]
        recvs = [self.popen(inside[i] + [harness.binary("ringtail-recv"), "-l",
                                         f"{ips[i]}:{7100 + i}", "--out", outs[i],
                                         "--timeout", "5"], stderr=subprocess.DEVNULL)
                 for i in range(2)]
        # On the initializer's port, besides w2's frames: frames from an address that is no
        # worker's, frames that are not IPv4, and frames from w2's address whose bytes are no
        # data-channel frame (they fail its checksum). Dropped and counted, never delivered.
        mac = subprocess.run(inside[0] + ["cat", f"/sys/class/net/{ifs[0]}/address"],
                             capture_output=True, text=True, check=True).stdout.strip()
        mac = bytes.fromhex(mac.replace(":", ""))
        rng = random.Random(self.seed)
        junk = [rng.randbytes(rng.randrange(1, 200)) for _ in range(120)]
        unknown = [udp_frame(mac, "10.77.0.9", "10.77.0.1", DPDK_DATA_UDP_PORT, j)
                   for j in junk[:40]]
        not_ipv4 = [mac + bytes(6) + b"\x86\xdd" + j for j in junk[40:80]]
        corrupt = [udp_frame(mac, "10.77.0.2", "10.77.0.1", DPDK_DATA_UDP_PORT, j)
                   for j in junk[80:]]
        subprocess.run(inside[1] + [sys.executable, "-c", INJECT, ifs[1],
                                    *(f.hex() for f in unknown + not_ipv4 + corrupt)],
                       check=True, timeout=30)
        lines = [f"w{i % 89} x{i % 11} the end".encode() for i in range(3000)]
        lines[::150] = [b"long%d" % i + b"y" * (1400 + 401 * i) + b" the end"
                        for i in range(len(lines[::150]))]
        half = len(lines) // 2
        for i, part in enumerate((lines[:half], lines[half:])):
            path = harness.write_file(self.path(f"wc-in{i}.txt"),
                                      b"".join(l + b"\n" for l in part))
            r = subprocess.run(inside[i] + [SEND, "-h", f"{ips[i]}:{7001 + i}", "-f", path],
                               capture_output=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
        counts = harness.count_words(lines)

        def sink_writes(i):
            r = subprocess.run(inside[i] + [
                sys.executable, "-c", "import json, sys, urllib.request; print(json.load("
                "urllib.request.urlopen(sys.argv[1], timeout=5))['totals']['sink_writes'])",
                f"http://{ips[i]}:7200/status"], capture_output=True, text=True, timeout=30)
            return int(r.stdout) if r.returncode == 0 else 0
        harness.wait_until(lambda: sink_writes(0) + sink_writes(1) >= sum(counts.values()), 90,
                           interval=0.2, what=f"{sum(counts.values())} counts written")
        for r in recvs:
            # 5 s after the last byte: "timed out", the output written.
            self.assertEqual(r.wait(timeout=60), 2)
        self.af_packet_clean_shutdown(inside, ips, members)
        seen = {}
        for out in outs:
            with open(out, "rb") as f:
                for w, c in harness.parse_word_count_output(f.read()).items():
                    self.assertNotIn(w, seen, "a word's counts came from both workers")
                    seen[w] = c
        self.assertEqual(set(seen), set(counts))
        for w, c in seen.items():
            self.assertEqual(c, list(range(1, counts[w] + 1)), w)
        self.assertGreater(dpdk_fragments(members), 0, "the long words cross workers in fragments")
        summary = dpdk_summary(members[0])
        self.assertIn(f" {len(corrupt)} corrupt dropped,", summary)
        foreign = count_before(summary, " foreign frames")
        self.assertGreaterEqual(foreign, len(unknown) + len(not_ipv4), summary)

if __name__ == "__main__":
    unittest.main()
