#!/usr/bin/env python3
"""End-to-end tests of the example apps (word_count, alphabet, market_spread, passthrough) driven
by ringtail-send and ringtail-recv over loopback, checked against references computed here from
WIRE.md §6.

  RINGTAIL_BIN_DIR=/work/main/build/bin python3 tests/integration/test_apps.py -v

Randomised data uses one seed, printed at start; RINGTAIL_TEST_SEED=<n> replays it.
"""
import os
import random
import signal
import struct
import subprocess
import time
import unittest
import unittest.mock

import harness
from harness import frame

SEED = harness.test_seed()

TEXTS = [p for p in ("/usr/share/common-licenses/GPL-3", "/usr/share/common-licenses/Apache-2.0")
         if os.path.exists(p)]


class WordCountTest(harness.ProcessTestCase):
    def setUp(self):
        super().setUp()
        self.assertTrue(TEXTS, "no text under /usr/share/common-licenses to count")
        self.lines = []
        for path in TEXTS:
            with open(path, "rb") as f:
                self.lines += harness.text_lines(f.read())

    def run_word_count(self, threads, senders, repeat=1):
        """Sends every text file `repeat` times from `senders` concurrent ringtail-send processes
        (one connection each) and checks the counts.

        With one compute thread the worker has one sink connection and ringtail-recv (raw mode,
        to a file) takes the output. With more, each shard that counts words has its own sink
        connection (DESIGN.md), and a raw receiver would interleave their bytes at arbitrary
        points, cutting lines; a PySink keeps the streams apart."""
        expected = {w: n * senders * repeat
                    for w, n in harness.count_words(self.lines).items()}
        self.assertGreater(len(expected), 1000)
        size = harness.word_count_output_size(expected)
        if threads == 1:
            recv = self.start_receiver(expect=size)
            out_port = recv.port
        else:
            sink = self.py_sink()
            out_port = sink.port
        worker = self.start_worker("word_count", ["Split and Count"], [out_port], threads=threads)
        extra = ["-r", "-m", str(repeat * len(self.lines))] if repeat > 1 else []
        procs = [self.start_sender([worker.port], TEXTS, extra=extra) for _ in range(senders)]
        for p in procs:
            self.wait_sender(p)
        if threads == 1:
            data = recv.wait()
            self.assertIn(" 1 connections,", recv.stderr())
            streams = [data]
        else:
            sink.wait_for_bytes(size)
        self.stop_worker(worker)
        if threads != 1:
            streams = sink.streams()
            self.assertLessEqual(len(streams), threads)

        seen = {}
        for data in streams:
            for w, counts in harness.parse_word_count_output(data).items():
                self.assertNotIn(w, seen, "a word's counts arrived on two sink connections")
                seen[w] = counts
        final = {w: max(c) for w, c in seen.items()}
        self.assertEqual(set(final), set(expected), "words counted")
        self.assertEqual(final, expected)
        for w, counts in seen.items():
            # Every update emitted exactly once and, since one key lives on one shard and its
            # updates go to the sink in order, in increasing order.
            self.assertEqual(counts, list(range(1, expected[w] + 1)), w)
        c = worker.counters()
        total_lines = len(self.lines) * senders * repeat
        self.assertEqual(c["ingested"], total_lines)
        self.assertEqual(c["sink_writes"], sum(expected.values()))
        self.assertEqual(c["sink_bytes"], size)
        self.assertEqual(c["decode_errors"], 0)
        self.assertEqual(c["protocol_errors"], 0)

    def test_one_thread(self):
        self.run_word_count(threads=1, senders=1)

    def test_two_threads(self):
        self.run_word_count(threads=2, senders=1)

    def test_two_threads_two_connections(self):
        self.run_word_count(threads=2, senders=2)

    def test_one_thread_two_connections(self):
        self.run_word_count(threads=1, senders=2)

    def test_eight_connections_one_sender(self):
        # ringtail-send deals the lines round-robin over its connections.
        expected = harness.count_words(self.lines)
        sink = self.py_sink()
        worker = self.start_worker("word_count", ["Split and Count"], [sink.port], threads=2)
        self.send([worker.port] * 8, TEXTS, extra=["-s", "3"])
        sink.wait_for_bytes(harness.word_count_output_size(expected))
        self.stop_worker(worker)
        seen = harness.parse_word_count_output(sink.text())
        self.assertEqual({w: sorted(c) for w, c in seen.items()},
                         {w: list(range(1, n + 1)) for w, n in expected.items()})

    def test_two_threads_two_connections_repeated(self):
        self.run_word_count(threads=2, senders=2, repeat=6)

    def test_two_threads_under_an_endless_load_keep_their_memory(self):
        """Each shard sends about half its words to the other through its outbox and their ring.
        Under a load that never lets up, an outbox never empties; what waits in it is bounded by
        the in-flight budget, and so must its storage be (it grew by some 100 MB a second when
        its taken front was given back only once it emptied)."""
        ready = self.path("recv.port")
        recv = self.popen([harness.RECV, "-l", "127.0.0.1:0", "-n", "--ready-file", ready],
                          stderr=subprocess.DEVNULL)
        worker = self.start_worker("word_count", ["Split and Count"],
                                   [recv.wait_for_port_file(ready, 10)], threads=2)
        path = harness.write_file(self.path("endless.txt"), b"".join(
            b"k%d v%d w%d\n" % (i % 23, i % 3, i % 101) for i in range(20000)))
        self.popen([harness.SEND, "-h", f"127.0.0.1:{worker.port}", "-f", path, "-r", "-m",
                    "1000000000"], stderr=subprocess.DEVNULL)
        time.sleep(2)
        rss = worker.rss_bytes()
        time.sleep(5)
        growth = worker.rss_bytes() - rss
        self.assertLess(growth, 64 << 20, f"RSS grew by {growth} bytes in 5 s")
        self.stop_worker(worker)
        # The load was real: millions of words counted and written.
        self.assertGreater(worker.counters()["sink_writes"], 1_000_000, worker.log())


class AlphabetTest(harness.ProcessTestCase):
    def run_alphabet(self, threads, rnd, count=20000):
        letters = [bytes([c]) for c in b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"]
        letters += [b"\x00", b"\xff", b"\n", b" "]  # a key is any byte
        votes = []
        for _ in range(count):
            letter = rnd.choice(letters)
            v = rnd.choice((0, 1, rnd.randrange(1000), rnd.randrange(2**32), 2**32 - 1))
            votes.append((letter, v))
        src = harness.write_file(self.path("votes.bin"),
                                 b"".join(struct.pack(">I", 5) + l + struct.pack(">I", v)
                                          for l, v in votes))
        running = {}
        expected_seq = {}
        for letter, v in votes:
            running[letter] = running.get(letter, 0) + v
            expected_seq.setdefault(letter, []).append(running[letter])

        # Framed mode: with two threads each shard has its own sink connection (DESIGN.md);
        # ringtail-recv -f cuts frames per connection, where raw mode could interleave them.
        recv = self.start_receiver(expect=count, framed=True)
        worker = self.start_worker("alphabet", ["Alphabet Votes"], [recv.port], threads=threads)
        self.send([worker.port], [src], binary_records=True)
        data = recv.wait()
        self.stop_worker(worker)

        out = harness.fixed_records(data, 9)
        self.assertEqual(len(out), count, "one output frame per input message")
        seen = {}
        for p in out:
            seen.setdefault(p[:1], []).append(struct.unpack(">Q", p[1:])[0])
        self.assertEqual({l: max(t) for l, t in seen.items()},
                         {l: t for l, t in running.items()}, "final totals")
        # One connection, so each letter's totals arrive as its running sums, in order.
        self.assertEqual(seen, expected_seq)
        c = worker.counters()
        self.assertEqual((c["ingested"], c["sink_writes"]), (count, count))

    def test_one_thread(self):
        self.run_alphabet(1, random.Random(SEED + 1))

    def test_two_threads(self):
        self.run_alphabet(2, random.Random(SEED + 2))


TIME = b"20240101-12:00:00.000"  # 21 bytes


def nbbo(symbol, bid, offer):
    return frame(b"\x02" + symbol + TIME + struct.pack(">dd", bid, offer))


def order(side, account, order_id, symbol, qty, price):
    return frame(struct.pack(">BBI", 1, side, account) + order_id + symbol
                 + struct.pack(">dd", qty, price) + TIME)


def rejects(bid, offer):
    spread = offer - bid
    mid = (bid + offer) / 2
    return spread >= 0.05 or (mid > 0 and spread / mid >= 0.05)


class MarketSpreadTest(harness.ProcessTestCase):
    def run_market_spread(self, threads, rnd):
        self.assertEqual(len(TIME), 21)
        # (symbol, kind): narrow = accepted; wide = spread >= 0.05; ratio = spread < 0.05 but
        # spread/mid >= 0.05 (a penny stock); flip = several quotes, wide and narrow mixed, the
        # last deciding. Spreads keep well away from the 0.05 boundaries.
        plan = {
            b"AAPL": "narrow", b"MSFT": "narrow", b"GOOG": "wide", b"IBM ": "narrow",
            b"GE  ": "wide", b"TSLA": "flip", b"AMZN": "flip", b"F   ": "ratio",
            b"INTC": "flip", b"NFLX": "narrow", b"PENY": "ratio", b"ORCL": "wide",
        }
        unquoted = [b"ZZZZ", b"XYZ ", b"Q   "]
        quotes = []

        def quote(kind):
            if kind == "ratio":
                bid = rnd.uniform(0.20, 0.60)
                return bid, bid + rnd.uniform(0.03, 0.04)
            bid = rnd.uniform(10, 500)
            if kind == "narrow":
                return bid, bid + rnd.uniform(0.0, 0.04)
            return bid, bid + rnd.uniform(0.06, 2.0)

        for sym, kind in plan.items():
            for _ in range(rnd.randrange(1, 40)):
                k = rnd.choice(("narrow", "wide", "ratio")) if kind == "flip" else kind
                quotes.append((sym, *quote(k)))
        rnd.shuffle(quotes)
        last = {}
        for sym, bid, offer in quotes:
            last[sym] = (bid, offer)
        kinds = {rejects(*q) for q in last.values()}
        self.assertEqual(kinds, {True, False}, "some symbols accept, some reject")

        symbols = list(plan) + unquoted
        orders = []
        for i in range(4000):
            orders.append((rnd.choice((1, 2)), rnd.randrange(2**32), b"%06d" % i,
                           rnd.choice(symbols), float(rnd.randrange(1, 10000)),
                           round(rnd.uniform(1, 500), 2)))
        expected = []
        for side, account, oid, sym, qty, price in orders:
            bid, offer = last.get(sym, (0.0, 0.0))
            if sym not in last or rejects(bid, offer):
                expected.append((side, account, oid, sym, qty, price, bid, offer))
        self.assertGreater(len(expected), 0)
        self.assertLess(len(expected), len(orders))

        nbbo_file = harness.write_file(self.path("nbbo.bin"),
                                       b"".join(nbbo(*q) for q in quotes))
        orders_file = harness.write_file(self.path("orders.bin"),
                                         b"".join(order(*o) for o in orders))
        self.assertEqual(os.path.getsize(nbbo_file), 46 * len(quotes))
        self.assertEqual(os.path.getsize(orders_file), 57 * len(orders))

        recv = self.start_receiver(expect=len(expected), framed=True)
        worker = self.start_worker("market_spread", ["Orders", "Market Data"], [recv.port],
                                   threads=threads)
        t0 = time.time_ns()
        self.send([worker.in_ports["Market Data"]], [nbbo_file], binary_records=True)
        time.sleep(0.5)  # let every quote reach its symbol's state before any order
        self.send([worker.in_ports["Orders"]], [orders_file], binary_records=True)
        data = recv.wait()
        t1 = time.time_ns()
        self.stop_worker(worker)

        got = []
        for p in harness.fixed_records(data, 55):
            side, account = struct.unpack_from(">BI", p, 0)
            oid, sym = p[5:11], p[11:15]
            qty, price, bid, offer = struct.unpack_from(">dddd", p, 15)
            (ts,) = struct.unpack_from(">Q", p, 47)
            self.assertTrue(t0 - 10**9 <= ts <= t1 + 10**9, f"ts_ns {ts} not in [{t0}, {t1}]")
            got.append((side, account, oid, sym, qty, price, bid, offer))
        self.assertEqual(len(got), len(expected))
        self.assertEqual(sorted(got), sorted(expected))
        c = worker.counters()
        self.assertEqual(c["ingested"], len(quotes) + len(orders))
        self.assertEqual(c["sink_writes"], len(expected))
        self.assertEqual(c["decode_errors"], 0)

    def test_one_thread(self):
        self.run_market_spread(1, random.Random(SEED + 3))

    def test_two_threads(self):
        self.run_market_spread(2, random.Random(SEED + 4))


def random_frames(rnd, count, max_size):
    return b"".join(frame(rnd.randbytes(rnd.randrange(max_size + 1))) for _ in range(count))


class PassthroughTest(harness.ProcessTestCase):
    def run_passthrough(self, threads, rnd):
        blob = random_frames(rnd, 3000, 2000)  # about 3 MB
        # Edge sizes: empty payloads and the default max_size (16384), which must pass.
        blob = (frame(b"") + blob + frame(rnd.randbytes(16384)) + frame(b"")
                + frame(rnd.randbytes(16384)))
        src = harness.write_file(self.path("in.bin"), blob)
        recv = self.start_receiver(expect=len(blob))
        worker = self.start_worker("passthrough", ["Passthrough"], [recv.port], threads=threads)
        self.send([worker.port], [src], binary_records=True)
        data = recv.wait()
        self.stop_worker(worker)
        self.assertEqual(len(data), len(blob))
        self.assertTrue(data == blob, "output differs from input")
        c = worker.counters()
        self.assertEqual((c["ingested"], c["sink_writes"], c["sink_bytes"]),
                         (3004, 3004, len(blob)))

    def test_byte_for_byte_one_thread(self):
        self.run_passthrough(1, random.Random(SEED + 5))

    def test_byte_for_byte_two_threads(self):
        self.run_passthrough(2, random.Random(SEED + 6))

    def test_receiver_starts_late(self):
        rnd = random.Random(SEED + 7)
        blob = random_frames(rnd, 10000, 200)
        src = harness.write_file(self.path("in.bin"), blob)
        out_port = harness.free_port()
        worker = self.start_worker("passthrough", ["Passthrough"], [out_port], threads=2)
        sender = self.start_sender([worker.port], [src], binary_records=True)
        time.sleep(1.0)
        self.assertTrue(worker.running(), worker.log())
        self.assertIn("not reachable", worker.log())  # the sink really found no receiver
        recv = self.start_receiver(expect=len(blob), port=out_port)
        data = recv.wait()
        self.wait_sender(sender)
        self.stop_worker(worker)
        self.assertEqual(len(data), len(blob))
        self.assertTrue(data == blob, "output differs from input (lost, duplicated or reordered)")

    def test_slow_receiver_backpressure(self):
        # WIRE.md §2: a receiver that does not read must push back to the sources (bounded
        # memory), and no data may be dropped. 128 MB go through a receiver that reads nothing
        # for 2 s; the worker's backlog limit is 32 MiB of sink bytes.
        rnd = random.Random(SEED + 10)
        blob = b"".join(frame(rnd.randbytes(96)) for _ in range(10000))  # 1 MB
        repeat = 128
        src = harness.write_file(self.path("in.bin"), blob)
        sink = self.py_sink(paused=True)
        worker = self.start_worker("passthrough", ["Passthrough"], [sink.port], threads=1)
        sender = self.start_sender([worker.port], [src], binary_records=True,
                                   extra=["-r", "-m", str(10000 * repeat)])
        time.sleep(2.0)
        rss = worker.rss_bytes()
        self.assertIsNone(sender.poll(), "the sender finished: nothing pushed back")
        self.assertLess(rss, 100 << 20, f"worker RSS {rss >> 20} MiB with a stalled receiver")
        sink.resume()
        self.wait_sender(sender)
        sink.wait_for_bytes(len(blob) * repeat, timeout=60)
        self.stop_worker(worker)
        (data,) = [d for d in sink.streams() if d]
        self.assertEqual(len(data), len(blob) * repeat)
        self.assertTrue(data == blob * repeat, "output differs from input")

    # How long a stop may take while a client keeps sending. The worker reads what clients sent
    # before the stop (up to 200 ms of quiet), then must stop admitting (DESIGN.md "Stopping").
    STOP_BOUND_S = 5.0

    def test_sigterm_mid_stream_drains(self):
        # SIGTERM while a sender is still sending (about 4 MB/s): the worker stops admitting,
        # delivers every message it took in (whole frames, in order), exits 0, and does so
        # promptly although the client keeps sending.
        rnd = random.Random(SEED + 9)
        blob = random_frames(rnd, 2000, 200)
        src = harness.write_file(self.path("in.bin"), blob)
        recv = self.start_receiver(timeout_s=60)
        worker = self.start_worker("passthrough", ["Passthrough"], [recv.port], threads=2)
        sender = self.start_sender([worker.port], [src], binary_records=True,
                                   extra=["-r", "-m", "100000000", "--rate", "40000", "-s", "50"])
        time.sleep(0.7)
        self.assertIsNone(sender.poll(), "the sender should still be sending")
        t0 = time.monotonic()
        self.stop_worker(worker)
        stop_s = time.monotonic() - t0
        c = worker.counters()
        self.assertGreater(c["ingested"], 1000)
        self.assertEqual(c["sink_writes"], c["ingested"])
        recv.proc.terminate()
        data = recv.wait()
        self.assertEqual(len(data), c["sink_bytes"])
        self.assertEqual(len(harness.split_frames(data)), c["ingested"])
        stream = blob * (len(data) // len(blob) + 1)
        self.assertTrue(data == stream[:len(data)], "output is not a prefix of the input stream")
        self.assertLess(stop_s, self.STOP_BOUND_S,
                        f"SIGTERM took {stop_s:.1f} s while a client kept sending:\n"
                        + worker.log())

    def test_sigterm_with_trickling_client_is_prompt(self):
        # A client that sends one small frame every 50 ms never leaves the connection quiet for
        # 200 ms; it must not hold the stop up either.
        src = harness.write_file(self.path("in.bin"), frame(b"tick"))
        recv = self.start_receiver(timeout_s=60)
        worker = self.start_worker("passthrough", ["Passthrough"], [recv.port], threads=1)
        self.start_sender([worker.port], [src], binary_records=True,
                          extra=["-r", "-m", "100000000", "--rate", "20", "-s", "1"])
        time.sleep(0.5)
        t0 = time.monotonic()
        rc = worker.stop(timeout=self.STOP_BOUND_S * 2)  # kills and fails if it takes longer
        stop_s = time.monotonic() - t0
        self.assertEqual(rc, 0, worker.log())
        self.assertLess(stop_s, self.STOP_BOUND_S, worker.log())
        c = worker.counters()
        self.assertEqual(c["sink_writes"], c["ingested"])
        recv.proc.terminate()
        self.assertEqual(recv.wait(), frame(b"tick") * c["ingested"])

    def test_sigint_stops_cleanly(self):
        rnd = random.Random(SEED + 8)
        blob = random_frames(rnd, 500, 100)
        src = harness.write_file(self.path("in.bin"), blob)
        recv = self.start_receiver(expect=len(blob))
        worker = self.start_worker("passthrough", ["Passthrough"], [recv.port], threads=2)
        self.send([worker.port], [src], binary_records=True)
        self.assertEqual(recv.wait(), blob)
        log = self.stop_worker(worker, signal.SIGINT)
        self.assertIn("SIGINT received", log)

    def test_sigint_stops_word_count(self):
        recv = self.start_receiver(expect=len(b"hello => 1\n"))
        worker = self.start_worker("word_count", ["Split and Count"], [recv.port], threads=1)
        src = harness.write_file(self.path("in.txt"), b"Hello!\n")
        self.send([worker.port], [src])
        self.assertEqual(recv.wait(), b"hello => 1\n")
        self.stop_worker(worker, signal.SIGINT)


class CoresTest(harness.ProcessTestCase):
    def thread_cpus(self, pid):
        """{thread name: the CPUs it may run on} for every thread of process `pid`."""
        out = {}
        for tid in os.listdir(f"/proc/{pid}/task"):
            fields = {}
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    key, _, value = line.partition(":")
                    fields[key] = value.strip()
            cpus = set()
            for part in fields["Cpus_allowed_list"].split(","):
                lo, _, hi = part.partition("-")
                cpus.update(range(int(lo), int(hi or lo) + 1))
            out[f"{fields['Name']}/{tid}"] = cpus
        return out

    def check_placement(self, extra, shard_core, subsystem_core, env=None):
        """Starts word_count with `extra` (and `env` added to its environment): its one shard must
        run on shard_core alone, every other thread on subsystem_core alone, and the worker must
        still count words. Returns the worker's log."""
        recv = self.start_receiver(expect=len(b"hello => 1\n"))
        with unittest.mock.patch.dict(os.environ, env or {}):
            worker = self.start_worker("word_count", ["Split and Count"], [recv.port],
                                       extra=extra)

        def placement():
            threads = self.thread_cpus(worker.proc.pid)
            return {name: (allowed, {shard_core} if name.startswith("rt-shard-")
                           else {subsystem_core}) for name, allowed in threads.items()}

        def settled(threads):
            return (any(n.startswith("rt-shard-") for n in threads)
                    and all(allowed == want for allowed, want in threads.values()))

        # The port accepts as soon as it listens, before the worker has started its threads; the
        # shard pins itself once its thread runs.
        deadline = time.monotonic() + 10
        while not settled(placement()) and time.monotonic() < deadline:
            time.sleep(0.05)
        threads = placement()
        self.assertEqual(len([n for n in threads if n.startswith("rt-shard-")]), 1,
                         f"threads: {sorted(threads)}")
        for name, (allowed, want) in threads.items():
            self.assertEqual(allowed, want, f"thread {name} may run on {sorted(allowed)}")
        self.send([worker.port], [harness.write_file(self.path("in.txt"), b"hello\n")])
        self.assertEqual(recv.wait(), b"hello => 1\n")
        return self.stop_worker(worker)

    def test_cpus_holds_every_thread_of_the_worker(self):
        # --cpus names the cores the worker may use: its shard is pinned there, and the threads
        # that get no core of their own (main, acceptor, data channel, control) stay there too.
        # The last core the test may use, so that it differs from the default (all of them).
        core = sorted(os.sched_getaffinity(0))[-1]
        self.check_placement(("--cpus", str(core), "-T", "1"), shard_core=core,
                             subsystem_core=core)

    def test_the_control_subsystem_keeps_off_the_shards_cores(self):
        # DESIGN.md §2: the threads without a core of their own (main, acceptor, control, metrics)
        # never sit on a shard's core when cores allow. On two cores the default thread count
        # leaves the first for them; the shard runs on the second.
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            self.skipTest("needs two CPUs (CI has two)")
        a, b = cpus[-2], cpus[-1]
        self.check_placement(("--cpus", f"{a},{b}"), shard_core=b, subsystem_core=a)

    def test_a_shard_is_pinned_even_when_hwloc_cannot_read_the_topology(self):
        # hwloc made to fail (its only discovery component an XML file that does not exist): the
        # shard still leaves the control subsystem's core for its own, through the kernel's call.
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            self.skipTest("needs two CPUs (CI has two)")
        a, b = cpus[-2], cpus[-1]
        self.check_placement(("--cpus", f"{a},{b}"), shard_core=b, subsystem_core=a,
                             env={"HWLOC_COMPONENTS": "xml,stop",
                                  "HWLOC_XMLFILE": self.path("no-such-topology.xml")})

    def test_control_core_holds_the_control_subsystem(self):
        # --control-core k: the control subsystem's threads run on k, the shard on the other core.
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            self.skipTest("needs two CPUs (CI has two)")
        a, b = cpus[-2], cpus[-1]
        self.check_placement(("--cpus", f"{a},{b}", "--control-core", str(b), "-T", "1"),
                             shard_core=a, subsystem_core=b)

    def test_eventlog_core_says_that_no_event_log_runs_there(self):
        # --eventlog-core is accepted (it is in Wallaroo's command lines and ours), but this build
        # has no event log: one line says so, and the core is used by the other threads only when
        # no other is left (here the only core beside the shard's).
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            self.skipTest("needs two CPUs (CI has two)")
        a, b = cpus[-2], cpus[-1]
        log = self.check_placement(("--cpus", f"{a},{b}", "--eventlog-core", str(a)),
                                   shard_core=b, subsystem_core=a)
        self.assertIn(f"--eventlog-core {a}: no event log runs in this build yet", log)


if __name__ == "__main__":
    unittest.main()
