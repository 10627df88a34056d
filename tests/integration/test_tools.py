#!/usr/bin/env python3
"""End-to-end tests of ringtail-send and ringtail-recv (and frame_drain_baseline) on loopback.

Binaries come from $RINGTAIL_BIN_DIR (default /work/main/build/bin). Stdlib only, so it runs
wherever Python 3 does: RINGTAIL_BIN_DIR=build/bin python3 tests/integration/test_tools.py -v
"""
import json
import os
import random
import re
import socket
import struct
import subprocess
import tempfile
import time
import unittest

from harness import procs
from procs import free_port

BIN_DIR = os.environ.get("RINGTAIL_BIN_DIR", "/work/main/build/bin")
SEND = os.path.join(BIN_DIR, "ringtail-send")
RECV = os.path.join(BIN_DIR, "ringtail-recv")
DRAIN = os.path.join(BIN_DIR, "frame_drain_baseline")


class ToolsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name
        self.group = procs.Group()

    def tearDown(self):
        self.group.cleanup()
        self.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)

    def start_ready(self, args, ready, stdout=None, stderr=subprocess.PIPE):
        """Port 0 + --ready-file: starts args and returns (process, port) once the ready file
        says where it listens."""
        proc = self.group.start(args, stdout=stdout, stderr=stderr)
        return proc, proc.wait_for_port_file(ready, 5.0)

    def start_recv(self, *args, name="recv"):
        ready = self.path(name + ".port")
        out = self.path(name + ".out")
        proc, port = self.start_ready(
            [RECV, "-l", "127.0.0.1:0", "--ready-file", ready, "--out", out, "--timeout", "10",
             *args], ready)
        return proc, port, out

    def finish_recv(self, proc, out):
        _, err = proc.communicate(timeout=15)
        self.assertEqual(proc.returncode, 0, err.decode())
        with open(out, "rb") as f:
            return f.read(), err.decode()

    def send(self, *args, timeout=15):
        return subprocess.run([SEND, *args], capture_output=True, timeout=timeout)

    def test_text_lines_round_trip(self):
        lines = ["hello world", "", "ünïcödé line", "x" * 5000] + [f"line {i}" for i in range(500)]
        src = self.path("in.txt")
        with open(src, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        recv, port, out = self.start_recv("-f", "--expect", str(len(lines)))
        r = self.send("-h", f"127.0.0.1:{port}", "-f", src, "-s", "7")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"sent {len(lines)} messages", r.stderr.decode())
        data, err = self.finish_recv(recv, out)
        self.assertEqual(data.decode("utf-8").split("\n")[:-1], lines)
        self.assertIn(f"{len(lines)} frames", err)

    def test_u64_sequence_with_key(self):
        key, first, count = b"key-7", 42, 1000
        recv, port, out = self.start_recv("-f", "--expect", str(count))
        r = self.send("-h", f"127.0.0.1:{port}", "-u", "-p", key.decode(), "-v", str(first),
                      "-m", str(count))
        self.assertEqual(r.returncode, 0, r.stderr)
        data, _ = self.finish_recv(recv, out)
        # Payloads are binary (a counter byte can be '\n'), so cut fixed-size records.
        record = 8 + len(key) + 1
        self.assertEqual(len(data), count * record)
        for i in range(count):
            rec = data[i * record:(i + 1) * record]
            self.assertEqual(struct.unpack(">Q", rec[:8])[0], first + i)
            self.assertEqual(rec[8:], key + b"\n")

    def test_constant_rate_keeps_schedule(self):
        src = self.path("in.txt")
        with open(src, "w") as f:
            f.write("".join(f"m{i}\n" for i in range(10)))
        recv, port, out = self.start_recv("-f", "--expect", "2000")
        t0 = time.monotonic()
        r = self.send("-h", f"127.0.0.1:{port}", "-f", src, "-r", "-m", "2000", "--rate", "2000",
                      "-s", "1")
        elapsed = time.monotonic() - t0
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertGreater(elapsed, 0.7)
        self.assertLess(elapsed, 5.0)
        self.assertRegex(r.stderr.decode(), r"ms behind schedule")
        data, _ = self.finish_recv(recv, out)
        got = data.decode().split("\n")[:-1]
        self.assertEqual(len(got), 2000)
        self.assertEqual(got[:12], [f"m{i}" for i in range(10)] + ["m0", "m1"])

    def test_binary_pass_through_raw(self):
        rnd = random.Random(1234)
        blob = bytearray()
        for _ in range(3000):
            payload = bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 60)))
            blob += struct.pack(">I", len(payload)) + payload
        src = self.path("in.bin")
        with open(src, "wb") as f:
            f.write(blob)
        recv, port, out = self.start_recv("--expect", str(len(blob)))
        r = self.send("-h", f"127.0.0.1:{port}", "-f", src, "-y")
        self.assertEqual(r.returncode, 0, r.stderr)
        data, _ = self.finish_recv(recv, out)
        self.assertEqual(data, bytes(blob))

    def test_binary_fixed_size_records(self):
        # alphabet input of WIRE.md §6: [u32 5][u8 letter][u32 votes], 9 bytes each.
        recs = [struct.pack(">IBI", 5, ord("a") + i % 26, i) for i in range(260)]
        src = self.path("votes.bin")
        with open(src, "wb") as f:
            f.write(b"".join(recs))
        recv, port, out = self.start_recv("-f", "--expect", "520")
        r = self.send("-h", f"127.0.0.1:{port}", "-f", src, "-y", "-g", "9", "-r", "-m", "520")
        self.assertEqual(r.returncode, 0, r.stderr)
        data, _ = self.finish_recv(recv, out)
        self.assertEqual(data, b"".join(rec[4:] + b"\n" for rec in recs * 2))

    def test_round_robin_over_two_receivers(self):
        a, port_a, out_a = self.start_recv("-f", "--expect", "50", name="a")
        b, port_b, out_b = self.start_recv("-f", "--expect", "50", name="b")
        src = self.path("in.txt")
        with open(src, "w") as f:
            f.write("".join(f"{i}\n" for i in range(100)))
        r = self.send("-h", f"127.0.0.1:{port_a},127.0.0.1:{port_b}", "-f", src)
        self.assertEqual(r.returncode, 0, r.stderr)
        data_a, _ = self.finish_recv(a, out_a)
        data_b, _ = self.finish_recv(b, out_b)
        self.assertEqual(data_a.decode().split(), [str(i) for i in range(0, 100, 2)])
        self.assertEqual(data_b.decode().split(), [str(i) for i in range(1, 100, 2)])

    def test_recv_sigterm_flushes_and_exits_zero(self):
        recv, port, out = self.start_recv("-f")
        r = self.send("-h", f"127.0.0.1:{port}", "-u", "-m", "100")
        self.assertEqual(r.returncode, 0, r.stderr)
        time.sleep(0.2)  # let it read everything; it holds the output in its buffer until exit
        recv.terminate()
        _, err = recv.communicate(timeout=5)
        self.assertEqual(recv.returncode, 0, err)
        self.assertRegex(err.decode(), r"1 connections, 100 frames, 1200 bytes")
        with open(out, "rb") as f:
            self.assertEqual(len(f.read()), 100 * 9)

    def test_recv_timeout_exits_2(self):
        t0 = time.monotonic()
        proc = subprocess.run([RECV, "-l", "127.0.0.1:0", "-f", "--timeout", "0.3"],
                              capture_output=True, timeout=10)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertLess(time.monotonic() - t0, 3)

    def test_bad_flag_exits_64(self):
        for args in (["--no-such-flag"], ["-h", "127.0.0.1:1"], ["-h", "nocolon", "-u"],
                     ["-h", "127.0.0.1:1", "-u", "-m", "-5"]):
            r = self.send(*args)
            self.assertEqual(r.returncode, 64, (args, r.stderr))
            self.assertEqual(len(r.stderr.decode().strip().splitlines()), 1, r.stderr)
        r = subprocess.run([RECV, "--bogus"], capture_output=True, timeout=5)
        self.assertEqual(r.returncode, 64, r.stderr)

    def test_unreadable_file_exits_66(self):
        r = self.send("-h", "127.0.0.1:1", "-f", self.path("missing.txt"))
        self.assertEqual(r.returncode, 66, r.stderr)

    def test_unreachable_host_exits_1(self):
        t0 = time.monotonic()
        r = self.send("-h", f"127.0.0.1:{free_port()}", "-u", "-m", "10",
                      "--connect-timeout", "1")
        elapsed = time.monotonic() - t0
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(len(r.stderr.decode().strip().splitlines()), 1, r.stderr)
        self.assertGreater(elapsed, 0.8)
        self.assertLess(elapsed, 4)

    def test_latency_round_trip(self):
        """ringtail-send --rate --latency straight into ringtail-recv --latency (no worker)."""
        count, size = 4000, 40
        prefix = self.path("lat")
        ready = self.path("lat.port")
        proc, port = self.start_ready(
            [RECV, "-l", "127.0.0.1:0", "--ready-file", ready, "--timeout", "10", "--expect",
             str(count), "--latency", prefix, "--late-us", "10000000"], ready)
        r = self.send("-h", f"127.0.0.1:{port}", "--rate", "4000", "--latency", "-g", str(size),
                      "-m", str(count))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"sent {count} messages, {count * (4 + size)} bytes", r.stderr.decode())
        _, err = proc.communicate(timeout=15)
        self.assertEqual(proc.returncode, 0, err)
        self.assertRegex(err.decode(), rf"latency of {count} messages \(0 warm-up\): p50 ")
        with open(prefix + ".json") as f:
            s = json.load(f)
        self.assertEqual(s["count"], count)
        self.assertEqual(s["frames"], count)
        self.assertEqual(s["bad_stamps"], 0)
        self.assertEqual(s["out_of_sequence"], 0)
        self.assertEqual(s["late_messages"], 0)  # nothing 10 s late on loopback
        values = [s[k] for k in ("min_us", "p50_us", "p90_us", "p99_us", "p999_us", "p9999_us",
                                 "max_us")]
        self.assertEqual(values, sorted(values))
        self.assertGreaterEqual(s["min_us"], 0)
        self.assertLess(s["p50_us"], 50_000)  # µs: small, even on a busy machine
        self.assertLess(s["max_us"], 10_000_000)  # a busy machine stalls for a second or so
        with open(prefix + ".hgrm") as f:
            hgrm = f.read()
        self.assertIn("1/(1-Percentile)", hgrm)
        self.assertRegex(hgrm, rf"Total count += +{count}\]")

    def test_latency_warmup_and_sequence(self):
        """Warm-up frames are kept apart; a stream with seq going back counts as out of order."""
        prefix = self.path("lat")
        ready = self.path("lat.port")
        proc, port = self.start_ready(
            [RECV, "-l", "127.0.0.1:0", "--ready-file", ready, "--timeout", "10", "--expect", "6",
             "--latency", prefix, "--warmup", "0.3"], ready)
        now_ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        frame = lambda stamp, seq: struct.pack(">IQQ", 16, stamp, seq)
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(frame(now_ns, 1) + frame(now_ns, 2))   # warm-up
            time.sleep(0.5)
            now_ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
            s.sendall(frame(now_ns, 3) + frame(now_ns, 2)      # out of sequence
                      + frame(now_ns + 10**12, 4)              # in the future: a bad stamp
                      + struct.pack(">I", 8) + b"short!!!")     # too short: a bad stamp
        _, err = proc.communicate(timeout=15)
        self.assertEqual(proc.returncode, 0, err)
        with open(prefix + ".json") as f:
            s = json.load(f)
        self.assertEqual(s["warmup_messages"], 2)
        self.assertEqual(s["count"], 2)
        self.assertEqual(s["bad_stamps"], 2)
        self.assertEqual(s["out_of_sequence"], 1)

    def test_latency_needs_rate(self):
        for args in (["-h", "127.0.0.1:1", "--latency", "-m", "5"],
                     ["-h", "127.0.0.1:1", "--rate", "10", "--latency", "-g", "15"],
                     ["-h", "127.0.0.1:1", "--rate", "10", "--latency", "-u"]):
            r = self.send(*args)
            self.assertEqual(r.returncode, 64, (args, r.stderr))
            self.assertEqual(len(r.stderr.decode().strip().splitlines()), 1, r.stderr)
        r = subprocess.run([RECV, "-l", "127.0.0.1:0", "--warmup", "1"], capture_output=True,
                           timeout=5)
        self.assertEqual(r.returncode, 64, r.stderr)

    def order_frames(self, count, size=53):
        """Binary framed records shaped like market_spread orders, order_id b"ABCDEF"."""
        rec = struct.pack(">IBBI6s", size, 1, 1, 7, b"ABCDEF")
        rec += bytes(range(size - 12))
        return rec * count

    def test_stamp_order_id_and_schedule_file(self):
        """--stamp-order-id numbers messages in send order over both connections (round-robin);
        --schedule-file holds the schedule's start and rate."""
        src = self.path("orders.bin")
        with open(src, "wb") as f:
            f.write(self.order_frames(7))
        a, pa, out_a = self.start_recv("-f", name="a")
        b, pb, out_b = self.start_recv("-f", name="b")
        sched = self.path("schedule")
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        r = self.send("-h", f"127.0.0.1:{pa},127.0.0.1:{pb}", "-y", "-r", "-m", "20", "-f", src,
                      "--rate", "2000", "--stamp-order-id", "--schedule-file", sched)
        self.assertEqual(r.returncode, 0, r.stderr)
        a.send_signal(15)
        b.send_signal(15)
        data_a, _ = self.finish_recv(a, out_a)
        data_b, _ = self.finish_recv(b, out_b)
        for data, first in ((data_a, 0), (data_b, 1)):
            lines = [data[i:i + 54] for i in range(0, len(data), 54)]
            self.assertEqual(len(lines), 10)
            ids = [int.from_bytes(line[6:12], "big") for line in lines]
            self.assertEqual(ids, list(range(first, 20, 2)))
            # Everything but the order_id is the record as it was.
            self.assertTrue(all(line[:6] == bytes([1, 1, 0, 0, 0, 7]) for line in lines))
            self.assertTrue(all(line[12:53] == bytes(range(41)) for line in lines))
        with open(sched) as f:
            start, rate = f.read().split()
        self.assertEqual(float(rate), 2000)
        self.assertGreaterEqual(int(start), before)
        self.assertLess(int(start), time.clock_gettime_ns(time.CLOCK_MONOTONIC))
        self.assertFalse(os.path.exists(sched + ".tmp"))

    def test_stamp_order_id_short_record_exits_65(self):
        src = self.path("short.bin")
        with open(src, "wb") as f:
            f.write(self.order_frames(2) + struct.pack(">I", 11) + b"x" * 11)
        r = self.send("-h", f"127.0.0.1:{free_port()}", "-y", "-f", src, "--stamp-order-id")
        self.assertEqual(r.returncode, 65, r.stderr)
        self.assertIn("record 2 has a 11 byte payload", r.stderr.decode())

    def test_latency_order_id_field(self):
        """--latency-field order-id: k from payload bytes 5..10, due at start + k * 1e9 / rate."""
        prefix = self.path("lat")
        ready = self.path("lat.port")
        sched = self.path("schedule")
        proc, port = self.start_ready(
            [RECV, "-l", "127.0.0.1:0", "--ready-file", ready, "--timeout", "10", "--expect", "6",
             "--latency", prefix, "--latency-field", "order-id", "--schedule-file", sched,
             "--late-us", "100000"], ready)
        # market_spread's output payload: [u8 side][u32 account][6s order_id]..., 55 bytes.
        out = lambda k: struct.pack(">IBI", 55, 1, 9) + k.to_bytes(6, "big") + bytes(44)
        start = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        rate = 10.0  # order k due start + k * 100 ms
        with open(sched, "w") as f:
            f.write(f"{start} {rate}\n")
        time.sleep(0.45)
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(out(0) + out(2) + out(4) + out(3)  # 3 after 4: out of sequence
                      + out(10**6)                          # due in a day: a bad stamp
                      + struct.pack(">I", 8) + bytes(8))     # too short: a bad stamp
        _, err = proc.communicate(timeout=15)
        self.assertEqual(proc.returncode, 0, err)
        with open(prefix + ".json") as f:
            s = json.load(f)
        self.assertEqual(s["count"], 4)
        self.assertEqual(s["bad_stamps"], 2)
        self.assertEqual(s["out_of_sequence"], 1)
        self.assertEqual(s["latency_field"], "order-id")
        self.assertEqual((s["min_seq"], s["max_seq"]), (0, 4))
        # Arrival about 450 ms after start: k=0 is ~450 ms late, k=4 ~50 ms.
        self.assertGreaterEqual(s["min_us"], 40_000)
        self.assertGreaterEqual(s["max_us"], 440_000)
        self.assertLess(s["max_us"], 10_000_000)
        self.assertEqual(s["late_messages"], 3)  # k = 0, 2, 3 are later than 100 ms

    def test_order_id_flags(self):
        for args in (["-h", "127.0.0.1:1", "-f", "x", "--stamp-order-id"],  # no -y
                     ["-h", "127.0.0.1:1", "--rate", "10", "--latency", "--stamp-order-id"],
                     ["-h", "127.0.0.1:1", "-y", "-f", "x", "--schedule-file", "s"]):  # no rate
            r = self.send(*args)
            self.assertEqual(r.returncode, 64, (args, r.stderr))
            self.assertEqual(len(r.stderr.decode().strip().splitlines()), 1, r.stderr)
        for args in (["--latency", "p", "--latency-field", "order-id"],  # no schedule file
                     ["--latency", "p", "--latency-field", "seq"],
                     ["--latency", "p", "--schedule-file", "s"],
                     ["--latency-field", "order-id", "--schedule-file", "s"]):  # no --latency
            r = subprocess.run([RECV, "-l", "127.0.0.1:0", *args], capture_output=True, timeout=5)
            self.assertEqual(r.returncode, 64, (args, r.stderr))

    def test_frame_drain_baseline_counts_frames(self):
        ready = self.path("drain.port")
        proc, port = self.start_ready([DRAIN, "127.0.0.1:0", "--ready-file", ready], ready,
                                      stdout=subprocess.PIPE, stderr=None)
        r = self.send("-h", f"127.0.0.1:{port}", "-u", "-p", "k", "-m", "100000", "-s", "333")
        self.assertEqual(r.returncode, 0, r.stderr)
        out, _ = proc.communicate(timeout=10)
        m = re.fullmatch(rb'\{"frames":(\d+),"bytes":(\d+),"seconds":[0-9.]+,"frames_per_s":\d+\}\n',
                         out)
        self.assertIsNotNone(m, out)
        self.assertEqual(int(m.group(1)), 100000)
        self.assertEqual(int(m.group(2)), 100000 * 13)


if __name__ == "__main__":
    unittest.main()
