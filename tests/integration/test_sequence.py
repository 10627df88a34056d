#!/usr/bin/env python3
"""The sequence app (WIRE.md §6) and its judge, ringtail-check.

End to end: one `ringtail-send -u -p KEY -v START -m N` per key, all at once, into `sequence`;
what comes out is judged by ringtail-check, which must find nothing wrong. The output is captured
the three ways ringtail-check --help names: raw ringtail-recv (one sink connection: --threads 1,
--format frames), ringtail-recv --framed (any number of sink connections: --format lines), and one
file per sink connection (several --output files). Then the judge is shown to fail: hand-made
files with a dropped, a duplicated, a swapped and a truncated record, and its --input mode.

  RINGTAIL_BIN_DIR=/work/main/build/bin python3 tests/integration/test_sequence.py -v
"""
import json
import re
import struct
import subprocess
import sys
import time
import unittest

import harness

CHECK = harness.binary("ringtail-check")

# Keys of several lengths, one sender each; the last one starts elsewhere than 0.
KEYS = [(b"a", 0), (b"bb", 0), (b"key-3", 0), (b"K4", 0), (b"the-fifth-key-is-longer", 0),
        (b"6", 1_000_000_000_000)]
PER_KEY = 60_000  # 360 000 records in all

TOTAL_RE = re.compile(r"^checked (\d+) records, (\d+) keys: (\d+) lost, (\d+) duplicated, "
                      r"(\d+) out of order(?:, (\d+) unexpected)?$", re.M)


def rec(key, value):
    """One sequence record, framed: [u32 8+k][u64 value][key]."""
    return struct.pack(">IQ", 8 + len(key), value) + key


def line(key, value):
    """The same record as ringtail-recv --framed writes it: [u64 value][key]'\\n'."""
    return struct.pack(">Q", value) + key + b"\n"


def interleaved(n=10, keys=(b"A", b"B")):
    """[(key, value)]: values 0..n-1 of every key, the keys taking turns."""
    return [(k, v) for v in range(n) for k in keys]


class CheckerRun:
    def __init__(self, r):
        self.rc = r.returncode
        self.out = r.stdout.decode(errors="replace")
        self.err = r.stderr.decode(errors="replace")
        m = TOTAL_RE.search(self.out)
        self.total = None
        if m:
            g = m.groups()
            self.total = dict(records=int(g[0]), keys=int(g[1]), lost=int(g[2]),
                              duplicated=int(g[3]), out_of_order=int(g[4]),
                              unexpected=None if g[5] is None else int(g[5]))

    def __repr__(self):
        return f"rc {self.rc}\nstdout:\n{self.out}\nstderr:\n{self.err}"


class CheckerCase(harness.ProcessTestCase):
    def check(self, *args):
        r = subprocess.run([CHECK, *args], stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=120)
        return CheckerRun(r)

    def assert_clean(self, run, records, keys):
        self.assertEqual(run.rc, 0, run)
        self.assertIsNotNone(run.total, run)
        self.assertEqual((run.total["records"], run.total["keys"], run.total["lost"],
                          run.total["duplicated"], run.total["out_of_order"]),
                         (records, keys, 0, 0, 0), run)

    def assert_counts(self, run, rc, lost, duplicated, out_of_order, unexpected=None):
        self.assertEqual(run.rc, rc, run)
        self.assertIsNotNone(run.total, run)
        self.assertEqual((run.total["lost"], run.total["duplicated"], run.total["out_of_order"],
                          run.total["unexpected"]),
                         (lost, duplicated, out_of_order, unexpected), run)

    def frames_file(self, name, pairs):
        return harness.write_file(self.path(name), b"".join(rec(k, v) for k, v in pairs))

    def lines_file(self, name, pairs):
        return harness.write_file(self.path(name), b"".join(line(k, v) for k, v in pairs))


class SequenceEndToEndTest(CheckerCase):
    def send_all(self, port):
        """One sender (one connection) per key, all at once; returns their processes."""
        return [self.start_sender([port], extra=["-u", "-p", k.decode(), "-v", str(start),
                                                 "-m", str(PER_KEY)])
                for k, start in KEYS]

    def input_files(self):
        """What each sender sends, as files for ringtail-check --input."""
        return [self.frames_file(f"sent-{i}.bin", [(k, start + j) for j in range(PER_KEY)])
                for i, (k, start) in enumerate(KEYS)]

    def report(self, what, started, records):
        seconds = time.monotonic() - started
        print(f"sequence {what}: {records} records in {seconds:.2f} s "
              f"({records / seconds:,.0f} records/s, senders to receiver)",
              file=sys.stderr, flush=True)

    def finish(self, worker, total, outputs, fmt="frames"):
        self.stop_worker(worker)
        c = worker.counters()
        self.assertEqual((c["ingested"], c["sink_writes"], c["decode_errors"]),
                         (total, total, 0))
        out_args = [a for p in outputs for a in ("--output", p)] + ["--format", fmt]
        self.assert_clean(self.check(*out_args), total, len(KEYS))
        in_args = [a for p in self.input_files() for a in ("--input", p)]
        run = self.check(*out_args, *in_args)
        self.assert_clean(run, total, len(KEYS))
        self.assertEqual(run.total["unexpected"], 0, run)
        j = json.loads(self.check(*out_args, *in_args, "--json").out)
        self.assertEqual((j["records"], j["keys"], j["lost"], j["duplicated"],
                          j["out_of_order"], j["unexpected"], j["ok"], j["expected"]),
                         (total, len(KEYS), 0, 0, 0, 0, True, "input"))

    def test_one_thread_raw_receiver(self):
        # One shard, so one sink connection: the raw bytes ringtail-recv writes are whole frames.
        total = PER_KEY * len(KEYS)
        size = sum(PER_KEY * (12 + len(k)) for k, _ in KEYS)
        recv = self.start_receiver(expect=size, timeout_s=60)
        worker = self.start_worker("sequence", ["Sequence"], [recv.port], threads=1)
        started = time.monotonic()
        for p in self.send_all(worker.port):
            self.wait_sender(p)
        data = recv.wait(timeout=120)
        self.report("--threads 1, raw receiver", started, total)
        self.assertIn(" 1 connections,", recv.stderr())
        self.assertEqual(len(data), size)
        self.finish(worker, total, [recv.out_path])

    def test_two_threads_framed_receiver(self):
        # Two shards, two sink connections: ringtail-recv --framed cuts frames per connection.
        total = PER_KEY * len(KEYS)
        recv = self.start_receiver(expect=total, framed=True, timeout_s=60)
        worker = self.start_worker("sequence", ["Sequence"], [recv.port], threads=2)
        started = time.monotonic()
        for p in self.send_all(worker.port):
            self.wait_sender(p)
        recv.wait(timeout=120)
        self.report("--threads 2, framed receiver", started, total)
        self.finish(worker, total, [recv.out_path], fmt="lines")

    def test_two_threads_one_file_per_connection(self):
        total = PER_KEY * len(KEYS)
        size = sum(PER_KEY * (12 + len(k)) for k, _ in KEYS)
        sink = self.py_sink()
        worker = self.start_worker("sequence", ["Sequence"], [sink.port], threads=2)
        for p in self.send_all(worker.port):
            self.wait_sender(p)
        sink.wait_for_bytes(size, timeout=120)
        streams = sink.streams()
        self.assertLessEqual(len(streams), 2)
        files = [harness.write_file(self.path(f"conn-{i}.bin"), s)
                 for i, s in enumerate(streams)]
        self.finish(worker, total, files)

    def test_output_is_input_byte_for_byte_and_short_payloads_rejected(self):
        # Keys of any bytes (a NUL, 0xff, a newline), values at the edges of u64; one connection
        # and one shard keep the whole stream in order, so the output is the input minus the
        # rejected payloads (under 8 bytes: not a record).
        keys = [b"x", b"\x00", b"\xff\xfe", b"with\nnewline", b"", b"k" * 300]
        pairs = [(keys[i % len(keys)], v)
                 for i, v in enumerate([0, 1, 2**64 - 1, 2**63, 7] * 40)]
        frames = [rec(k, v) for k, v in pairs]
        good = b"".join(frames)
        half = len(frames) // 2
        sent = harness.write_file(self.path("mixed.bin"),
                                  b"".join([harness.frame(b"")] + frames[:half]
                                           + [harness.frame(b"1234567")] + frames[half:]))
        recv = self.start_receiver(expect=len(good))
        worker = self.start_worker("sequence", ["Sequence"], [recv.port], threads=1)
        self.send([worker.port], [sent], binary_records=True)
        self.assertEqual(recv.wait(), good)
        self.stop_worker(worker)
        c = worker.counters()
        self.assertEqual((c["ingested"], c["sink_writes"], c["decode_errors"]),
                         (len(pairs) + 2, len(pairs), 2))


class CheckerTest(CheckerCase):
    """ringtail-check on hand-made files: it must fail where it should, and say why."""

    def test_clean_file_passes(self):
        out = self.frames_file("out.bin", interleaved())
        run = self.check("--output", out)
        self.assert_clean(run, 20, 2)
        self.assertEqual(run.out.strip().splitlines(),
                         ["checked 20 records, 2 keys: 0 lost, 0 duplicated, 0 out of order"])

    def test_dropped_record(self):
        pairs = interleaved()
        pairs.remove((b"A", 5))
        run = self.check("--output", self.frames_file("out.bin", pairs))
        self.assert_counts(run, 1, lost=1, duplicated=0, out_of_order=0)
        self.assertIn('key "A": 9 records: 1 lost (first 5), 0 duplicated, 0 out of order',
                      run.out)
        self.assertNotIn('key "B"', run.out)

    def test_duplicated_record(self):
        pairs = interleaved()
        pairs.insert(pairs.index((b"B", 3)) + 1, (b"B", 3))
        run = self.check("--output", self.frames_file("out.bin", pairs))
        self.assert_counts(run, 1, lost=0, duplicated=1, out_of_order=0)
        self.assertIn("1 duplicated (first 3)", run.out)

    def test_replayed_range_counts_duplicates_only(self):
        # 0..9 then 5..9 again (a replay): five extra copies, nothing lost, and copies are not
        # also counted as out of order.
        pairs = [(b"A", v) for v in list(range(10)) + list(range(5, 10))]
        run = self.check("--output", self.frames_file("out.bin", pairs))
        self.assert_counts(run, 1, lost=0, duplicated=5, out_of_order=0)

    def test_swapped_pair(self):
        pairs = interleaved()
        i, j = pairs.index((b"A", 4)), pairs.index((b"A", 5))
        pairs[i], pairs[j] = pairs[j], pairs[i]
        run = self.check("--output", self.frames_file("out.bin", pairs))
        self.assert_counts(run, 1, lost=0, duplicated=0, out_of_order=1)
        self.assertIn("1 out of order (first 4)", run.out)

    def test_each_late_value_counts(self):
        # 9 overtakes 1..8: each of 1..8 is seen after a larger value.
        pairs = [(b"A", v) for v in [0, 9, 1, 2, 3, 4, 5, 6, 7, 8]]
        run = self.check("--output", self.frames_file("out.bin", pairs))
        self.assert_counts(run, 1, lost=0, duplicated=0, out_of_order=8)

    def test_every_fault_at_once_and_json(self):
        pairs = [(b"A", v) for v in [0, 1, 3, 2, 3, 6]] + [(b"B", v) for v in [0, 1, 2]]
        out = self.frames_file("out.bin", pairs)
        run = self.check("--output", out)
        # A: 4 and 5 lost, one extra 3, 2 after 3.
        self.assert_counts(run, 1, lost=2, duplicated=1, out_of_order=1)
        j = json.loads(self.check("--output", out, "--json").out)
        self.assertEqual((j["records"], j["keys"], j["lost"], j["duplicated"], j["out_of_order"],
                          j["unexpected"], j["ok"], j["expected"], j["keys_with_problems"]),
                         (9, 2, 2, 1, 1, 0, False, "range", 1))
        (a,) = j["problem_keys"]
        self.assertEqual((a["key"], a["records"], a["lost"], a["first_lost"],
                          a["first_duplicated"], a["first_out_of_order"], a["first_unexpected"]),
                         ("A", 6, 2, 4, 3, 2, None))

    def test_max_report(self):
        pairs = [(bytes([c]), v) for c in b"ABC" for v in (0, 2)]  # each key loses 1
        out = self.frames_file("out.bin", pairs)
        run = self.check("--output", out, "--max-report", "1")
        self.assert_counts(run, 1, lost=3, duplicated=0, out_of_order=0)
        self.assertEqual(len(re.findall(r"^key ", run.out, re.M)), 1, run)
        self.assertIn("... and 2 more keys with problems", run.out)
        run = self.check("--output", out, "--max-report", "0")
        self.assertEqual(run.out.strip().splitlines()[0], "... and 3 more keys with problems")
        j = json.loads(self.check("--output", out, "--json", "--max-report", "2").out)
        self.assertEqual((len(j["problem_keys"]), j["keys_with_problems"]), (2, 3))

    def test_truncated_frame(self):
        data = b"".join(rec(k, v) for k, v in interleaved())
        last = len(data) - len(rec(b"B", 9))
        for cut, offset in ((3, last), (len(rec(b"B", 9)) - 2, last)):
            out = harness.write_file(self.path("out.bin"), data[:-cut])
            run = self.check("--output", out)
            self.assertEqual(run.rc, harness.EX_DATAERR, run)
            self.assertIn(f"truncated frame at byte offset {offset}", run.err)
            self.assertIsNone(run.total, "no verdict on a malformed file")

    def test_frame_without_a_whole_value(self):
        out = harness.write_file(self.path("out.bin"),
                                 rec(b"A", 0) + harness.frame(b"1234567"))
        run = self.check("--output", out)
        self.assertEqual(run.rc, harness.EX_DATAERR, run)
        self.assertIn("frame at byte offset 13 has 7 bytes", run.err)

    def test_lines_format(self):
        # Values whose bytes hold '\n' (10 = 0x0a) do not confuse it: a value is 8 bytes.
        pairs = interleaved(0x0a0c)
        out = self.lines_file("out.lines", pairs)
        self.assert_clean(self.check("--output", out, "--format", "lines"), len(pairs), 2)
        pairs.remove((b"B", 0x0a0a))
        out = self.lines_file("out.lines", pairs)
        run = self.check("--output", out, "--format", "lines")
        self.assert_counts(run, 1, lost=1, duplicated=0, out_of_order=0)
        self.assertIn(f"1 lost (first {0x0a0a})", run.out)
        # Read as frames the same bytes are garbage: a malformed file, not a verdict.
        self.assertEqual(self.check("--output", out).rc, harness.EX_DATAERR)
        data = b"".join(line(k, v) for k, v in interleaved())
        for cut, what in ((1, "no newline after it"), (len(line(b"B", 9)) - 3, "bytes left")):
            out = harness.write_file(self.path("cut.lines"), data[:-cut])
            run = self.check("--output", out, "--format", "lines")
            self.assertEqual(run.rc, harness.EX_DATAERR, run)
            self.assertIn(f"truncated record at byte offset {len(data) - len(line(b'B', 9))}",
                          run.err)
            self.assertIn(what, run.err)

    def test_several_output_files(self):
        # One file per sink connection: a key lives in one of them.
        a = self.frames_file("a.bin", [(b"A", v) for v in range(10)])
        b = self.frames_file("b.bin", [(b"B", v) for v in range(10) if v != 7])
        run = self.check("--output", a, "--output", b)
        self.assert_counts(run, 1, lost=1, duplicated=0, out_of_order=0)
        self.assertEqual(run.total["records"], 19)
        # Files are read in the order given: a key split over two is taken in that order.
        first = self.frames_file("first.bin", [(b"A", v) for v in range(5)])
        second = self.frames_file("second.bin", [(b"A", v) for v in range(5, 10)])
        self.assert_clean(self.check("--output", first, "--output", second), 10, 1)
        run = self.check("--output", second, "--output", first)
        self.assert_counts(run, 1, lost=0, duplicated=0, out_of_order=5)

    def test_binary_keys_are_shown_escaped(self):
        key = b'\x00"\\\xff\n'
        out = self.frames_file("out.bin", [(key, 0), (key, 2)])
        run = self.check("--output", out)
        self.assert_counts(run, 1, lost=1, duplicated=0, out_of_order=0)
        self.assertIn(r'key "\x00\"\\\xff\x0a": 2 records', run.out)
        j = json.loads(self.check("--output", out, "--json").out)
        self.assertEqual(j["problem_keys"][0]["key"], r'\x00\"\\\xff\x0a')

    def test_empty_output_fails_without_input(self):
        out = harness.write_file(self.path("empty.bin"), b"")
        run = self.check("--output", out)
        self.assertEqual(run.rc, 1, run)
        self.assertIn("checked 0 records, 0 keys: 0 lost, 0 duplicated, 0 out of order", run.out)
        self.assertIn("nothing to judge", run.err)
        sent = harness.write_file(self.path("sent.bin"), b"")
        self.assertEqual(self.check("--output", out, "--input", sent).rc, 0)

    # -- --input --

    def test_input_catches_what_the_range_cannot(self):
        sent = self.frames_file("sent.bin", interleaved(keys=(b"A", b"B", b"C")))
        # A's last value and A's first are gone, C never came: the range cannot see any of it.
        pairs = [(k, v) for k, v in interleaved() if (k, v) not in ((b"A", 9), (b"A", 0))]
        out = self.frames_file("out.bin", pairs)
        run = self.check("--output", out)
        self.assert_clean(run, 18, 2)
        run = self.check("--output", out, "--input", sent)
        self.assert_counts(run, 1, lost=12, duplicated=0, out_of_order=0, unexpected=0)
        self.assertEqual(run.total["keys"], 3)
        self.assertIn('key "A": 8 records: 2 lost (first 0)', run.out)
        self.assertIn('key "C": 0 records: 10 lost (first 0)', run.out)

    def test_input_send_order_is_the_order(self):
        # Values sent in no numeric order: the expected order is the send order.
        order = [5, 3, 9, 0, 7]
        sent = self.frames_file("sent.bin", [(b"A", v) for v in order])
        out = self.frames_file("out.bin", [(b"A", v) for v in order])
        run = self.check("--output", out, "--input", sent)
        self.assert_counts(run, 0, lost=0, duplicated=0, out_of_order=0, unexpected=0)
        out = self.frames_file("out2.bin", [(b"A", v) for v in [5, 9, 3, 0, 7, 7]])
        run = self.check("--output", out, "--input", sent)
        self.assert_counts(run, 1, lost=0, duplicated=1, out_of_order=1, unexpected=0)
        self.assertIn("1 out of order (first 3)", run.out)

    def test_input_unexpected_values_and_keys(self):
        sent = self.frames_file("sent.bin", interleaved())
        pairs = interleaved() + [(b"A", 42), (b"Z", 0)]
        run = self.check("--output", self.frames_file("out.bin", pairs), "--input", sent)
        self.assert_counts(run, 1, lost=0, duplicated=0, out_of_order=0, unexpected=2)
        self.assertIn("1 unexpected (first 42)", run.out)
        self.assertIn('key "Z": 1 records: 0 lost, 0 duplicated, 0 out of order, 1 unexpected',
                      run.out)

    def test_input_value_sent_twice_is_malformed(self):
        sent = self.frames_file("sent.bin", [(b"A", 0), (b"B", 0), (b"A", 0)])
        out = self.frames_file("out.bin", [(b"A", 0)])
        run = self.check("--output", out, "--input", sent)
        self.assertEqual(run.rc, harness.EX_DATAERR, run)
        self.assertIn("byte offset 26 sends value 0 for key \"A\" again", run.err)

    def test_input_truncated(self):
        data = b"".join(rec(k, v) for k, v in interleaved())
        sent = harness.write_file(self.path("sent.bin"), data[:-1])
        run = self.check("--output", self.frames_file("out.bin", interleaved()), "--input", sent)
        self.assertEqual(run.rc, harness.EX_DATAERR, run)
        self.assertIn("sent.bin: truncated frame at byte offset", run.err)

    # -- flags and files --

    def test_missing_file(self):
        out = self.frames_file("out.bin", interleaved())
        for args in (("--output", self.path("nope.bin")),
                     ("--output", out, "--input", self.path("nope.bin"))):
            run = self.check(*args)
            self.assertEqual(run.rc, 66, run)
            self.assertIn("nope.bin", run.err)

    def test_bad_flags(self):
        out = self.frames_file("out.bin", interleaved())
        for args in ((), ("--input", out), ("--output", out, "--format", "xml"),
                     ("--output", out, "--max-report", "-1"),
                     ("--output", out, "--max-report", "x"), ("--output", out, "--bogus"),
                     ("--output",)):
            run = self.check(*args)
            self.assertEqual(run.rc, harness.EX_USAGE, (args, run))
            self.assertIn("see --help", run.err)

    def test_help(self):
        run = self.check("--help")
        self.assertEqual(run.rc, 0, run)
        for words in ("--threads 1", "ringtail-recv --framed", "--format", "out of order",
                      "unexpected", "65"):
            self.assertIn(words, run.out)


if __name__ == "__main__":
    unittest.main()
