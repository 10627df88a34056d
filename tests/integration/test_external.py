#!/usr/bin/env python3
"""The external channel (WIRE.md §3) of a single word_count worker, driven by ringtail-ctl and by
raw sockets: every query against state computed independently from the text sent, Print on the
worker's stdout, bad frames closing only their connection, CleanShutdown, and shrink refused.

  RINGTAIL_BIN_DIR=/work/main/build/bin python3 tests/integration/test_external.py -v

Randomised text uses one seed, printed at start; RINGTAIL_TEST_SEED=<n> replays it.
"""
import json
import os
import random
import socket
import struct
import subprocess
import time
import unittest

import harness
from harness import frame

SEED = harness.test_seed()
WC_SOURCE = "Split and Count"
STATE_STAGE = "count word"
STATELESS_STAGE = "split into words"
THREADS = 2


def ext_frame(msg_id, body=b""):
    return struct.pack(">IH", len(body) + 2, msg_id) + body


def read_ext_frame(sock):
    """One [u32 L][u16 id][body] frame -> (id, body); None on EOF."""
    def exactly(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data
    head = exactly(6)
    if head is None:
        return None
    length, msg_id = struct.unpack(">IH", head)
    body = exactly(length - 2)
    if body is None:
        return None
    return msg_id, body


class ExternalChannelTest(harness.ProcessTestCase):

    def start(self):
        self.sink = self.py_sink()
        self.ext_port = harness.free_port()
        self.worker = self.start_worker(
            "word_count", [WC_SOURCE], [self.sink.port], threads=THREADS,
            extra=["--external", f"127.0.0.1:{self.ext_port}"])
        harness.wait_until(lambda: harness.can_connect(self.ext_port), harness.READY_DEADLINE_S,
                           what="the external channel")
        # The channel listens before the sources: until the worker runs, ClusterStatusQuery is
        # answered 11 (not initialized), which the ctl prints as such (and refuses with --json).
        seen = set()

        def running():
            r = self.ctl("-t", "cluster-status-query")
            self.assertEqual(r.returncode, 0, r.stderr)
            seen.add(r.stdout.split(b" ")[0])
            return r.stdout.startswith(b"10 ")
        harness.wait_until(running, harness.READY_DEADLINE_S, what="cluster status 10")
        self.assertLessEqual(seen, {b"10", b"11"})

    def ctl(self, *args, mode=None, timeout=20):
        cmd = [harness.binary("ringtail-ctl")]
        if mode:
            cmd.append(mode)
        cmd += ["-e", f"127.0.0.1:{self.ext_port}", *args]
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout)

    def query(self, qtype):
        r = self.ctl("-t", qtype, "--json")
        self.assertEqual(r.returncode, 0, f"{qtype}: {r.stderr.decode(errors='replace')}")
        self.assertTrue(r.stdout.endswith(b"\n"), r.stdout)
        return json.loads(r.stdout)

    def send_text(self, lines):
        before = len(self.sink.lines())  # a second call waits for its own words too
        with socket.create_connection(("127.0.0.1", self.worker.port), timeout=5) as s:
            s.sendall(b"".join(frame(l) for l in lines))
        counts = harness.count_words(lines)
        total = sum(counts.values())
        self.sink.wait_for(lambda k: len(k.lines()) >= before + total, timeout=20,
                           what=f"{total} more counted words")
        return counts

    def random_lines(self, rng, n=200):
        vocab = ["".join(rng.choice("abcdefghij") for _ in range(rng.randint(1, 5)))
                 for _ in range(300)]
        lines = []
        for _ in range(n):
            words = [rng.choice(vocab) for _ in range(rng.randint(0, 8))]
            # Case and punctuation the worker folds away, as the reference does.
            words = [w.upper() + "!" if rng.random() < 0.1 else w for w in words]
            lines.append(" ".join(words).encode())
        return lines

    def test_queries_answer_from_the_state(self):
        self.start()
        rng = random.Random(SEED)
        counts = self.send_text(self.random_lines(rng))
        words = {w.decode() for w in counts}
        n = len(words)

        keys = self.query("state-entity-query")
        self.assertEqual(list(keys), [STATE_STAGE])
        listed = keys[STATE_STAGE]
        self.assertEqual(len(listed), len(set(listed)), "a key listed twice")
        self.assertEqual(set(listed), words)

        parts = self.query("partition-query")
        self.assertEqual(set(parts), {"state_partitions", "stateless_partitions"})
        on_worker = parts["state_partitions"][STATE_STAGE]
        self.assertEqual(list(on_worker), ["initializer"])  # one worker: each key listed once
        self.assertEqual(sorted(on_worker["initializer"]), sorted(words))
        self.assertEqual(parts["stateless_partitions"],
                         {STATELESS_STAGE: {"initializer": list(range(THREADS))}})

        self.assertEqual(self.query("partition-count-query"),
                         {"state_partitions": {STATE_STAGE: {"initializer": n}},
                          "stateless_partitions": {STATELESS_STAGE: {"initializer": THREADS}}})
        self.assertEqual(self.query("state-entity-count-query"), {STATE_STAGE: n})
        self.assertEqual(self.query("cluster-state-entity-count-query"),
                         {"initializer": {STATE_STAGE: n}})
        self.assertEqual(self.query("stateless-partition-query"),
                         {STATELESS_STAGE: {"initializer": list(range(THREADS))}})
        self.assertEqual(self.query("stateless-partition-count-query"),
                         {STATELESS_STAGE: {"initializer": THREADS}})
        self.assertEqual(self.query("cluster-status-query"),
                         {"worker_count": 1, "worker_names": ["initializer"],
                          "processing_messages": True})
        self.assertEqual(self.query("source-ids-query"), {"source_ids": [WC_SOURCE]})

        # Without --json: the reply's id, then its body.
        r = self.ctl("-t", "cluster-status-query")
        self.assertEqual(r.returncode, 0, r.stderr)
        line = r.stdout.decode()
        self.assertTrue(line.startswith("10 "), line)
        self.assertIn('"worker_count":1', line)

        # More words: the answers follow the state.
        more = self.send_text([b"zzzfresh word", b"zzzfresh"])
        self.assertIn(b"zzzfresh", more)
        self.assertEqual(self.query("state-entity-count-query"), {STATE_STAGE: n + 2})
        self.stop_worker(self.worker)

    def test_print_and_requests_without_reply(self):
        self.start()
        for qtype, extra in (("print", ["-m", "hello from outside"]), ("rotate-log", []),
                             ("boundary-count-status", [])):
            r = self.ctl("-t", qtype, *extra, timeout=5)
            self.assertEqual(r.returncode, 0, f"{qtype}: {r.stderr}")
            self.assertEqual(r.stdout, b"")
        harness.wait_until(lambda: "$$$ ExternalPrint: hello from outside $$$\n"
                           in self.worker.log(), 5, what="the ExternalPrint line")
        harness.wait_until(lambda: "log rotation is not available in this build yet"
                           in self.worker.log(), 5, what="the RotateLog log line")
        self.assertTrue(self.worker.running())
        self.assertEqual(self.query("cluster-status-query")["processing_messages"], True)
        self.stop_worker(self.worker)

    def test_bad_frames_close_only_their_connection(self):
        self.start()
        good = self.track_socket(socket.create_connection(("127.0.0.1", self.ext_port),
                                                          timeout=5))
        # Several requests on one connection, pipelined; a Print in between gets no reply.
        good.sendall(ext_frame(9) + ext_frame(1, b"pipelined") + ext_frame(14) + ext_frame(21))
        self.assertEqual(read_ext_frame(good)[0], 10)
        self.assertEqual(read_ext_frame(good), (15, b'{"source_ids":["Split and Count"]}'))
        self.assertEqual(read_ext_frame(good), (22, b'{"count word":0}'))

        for garbage in (struct.pack(">I", 1) + b"\x00",      # L < 2: no room for the id
                        struct.pack(">IH", 0x7fffffff, 9),    # far over the size limit
                        ext_frame(4242),                      # no such message
                        ext_frame(10, b"{}")):                # a reply is not a request
            bad = self.track_socket(socket.create_connection(("127.0.0.1", self.ext_port),
                                                             timeout=5))
            peer = "%s:%d" % bad.getsockname()
            bad.sendall(garbage)
            try:
                self.assertEqual(bad.recv(1), b"", f"{garbage!r}: bytes instead of a close")
            except ConnectionResetError:
                pass
            harness.wait_until(lambda: peer in self.worker.log(), 5,
                               what=f"a log line naming {peer}")
            lines = [l for l in self.worker.log().splitlines() if peer in l]
            self.assertEqual(len(lines), 1, lines)

        # The good connection and new ones are still served.
        good.sendall(ext_frame(9))
        self.assertEqual(read_ext_frame(good)[0], 10)
        self.assertEqual(self.query("source-ids-query"), {"source_ids": [WC_SOURCE]})
        self.assertTrue(self.worker.running())
        self.stop_worker(self.worker)

    def test_idle_connections_lock_nobody_out(self):
        # Hostile clients: 100 idle connections to --external (the channel had 64 slots, and the
        # 65th client waited for ever) and 100 to --metrics-listen (it had 32, and /healthz timed
        # out); the ctl and /healthz still answer at once.
        self.sink = self.py_sink()
        self.ext_port = harness.free_port()
        http_port = harness.free_port()
        self.worker = self.start_worker(
            "word_count", [WC_SOURCE], [self.sink.port], threads=THREADS,
            extra=["--external", f"127.0.0.1:{self.ext_port}",
                   "--metrics-listen", f"127.0.0.1:{http_port}"])
        harness.wait_until(lambda: harness.can_connect(self.ext_port), harness.READY_DEADLINE_S,
                           what="the external channel")
        harness.wait_until(lambda: harness.can_connect(http_port), harness.READY_DEADLINE_S,
                           what="the metrics endpoint")
        for port in (self.ext_port, http_port):
            for _ in range(100):
                self.track_socket(socket.create_connection(("127.0.0.1", port), timeout=5))
        start = time.monotonic()
        self.assertEqual(self.query("source-ids-query"), {"source_ids": [WC_SOURCE]})
        with socket.create_connection(("127.0.0.1", http_port), timeout=5) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = b""
            while chunk := s.recv(4096):
                reply += chunk
        self.assertTrue(reply.startswith(b"HTTP/1.1 200"), reply)
        self.assertLess(time.monotonic() - start, 3.0)
        self.assertTrue(self.worker.running())
        self.stop_worker(self.worker)

    def assert_clean_shutdown(self, *ctl_args, mode=None):
        self.start()
        self.send_text([b"stop me cleanly"])
        r = self.ctl(*ctl_args, mode=mode, timeout=5)
        self.assertEqual(r.returncode, 0, r.stderr)
        try:
            rc = self.worker.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.fail("the worker did not stop within 10 s of CleanShutdown:\n"
                      + self.worker.log())
        self.assertEqual(rc, 0, self.worker.log())
        self.assertIn("CleanShutdown", self.worker.log())
        self.assertEqual(self.worker.counters()["sink_writes"], 3)

    def test_clean_shutdown_type(self):
        self.assert_clean_shutdown("-t", "clean-shutdown")

    def test_clean_shutdown_mode(self):
        self.assert_clean_shutdown(mode="shutdown")

    def test_shrink_is_not_available(self):
        self.start()
        for args in (["-q"], ["-c", "1"], ["-w", "w1,w2"]):
            r = self.ctl(*args, mode="shrink")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(b"shrinking is not available in this build yet", r.stdout)
        self.assertTrue(self.worker.running())
        self.stop_worker(self.worker)

    def test_ctl_errors(self):
        ctl = harness.binary("ringtail-ctl")

        def run(*args):
            return subprocess.run([ctl, *args], stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=10)
        port = harness.free_port()
        for args in (["-t", "cluster-status-query"],                  # no --external
                     ["-e", f"127.0.0.1:{port}"],                     # no --type
                     ["-e", f"127.0.0.1:{port}", "-t", "no-such-type"],
                     ["-e", "nonsense", "-t", "print"],
                     ["shrink", "-e", f"127.0.0.1:{port}"],           # none of -q -c -w
                     ["shrink", "-e", f"127.0.0.1:{port}", "-q", "-c", "2"],
                     ["-e", f"127.0.0.1:{port}", "-t", "print", "--bogus"]):
            r = run(*args)
            self.assertEqual(r.returncode, 64, f"{args}: {r.stderr}")
            self.assertEqual(len(r.stderr.decode().splitlines()), 1, r.stderr)
        # Nothing listening: exit 1, one line.
        r = run("-e", f"127.0.0.1:{port}", "-t", "cluster-status-query", "--json")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(len(r.stderr.decode().splitlines()), 1, r.stderr)
        self.assertEqual(r.stdout, b"")
        # A peer that answers with the wrong message, or closes without a reply: exit 1.
        for answer in (ext_frame(13, b"{}"), b""):
            srv = self.track_socket(socket.socket())
            srv.bind(("127.0.0.1", 0))
            srv.listen(1)
            p = self.popen([ctl, "-e", "127.0.0.1:%d" % srv.getsockname()[1],
                            "-t", "cluster-status-query", "--timeout", "5"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            conn, _ = srv.accept()
            with conn:
                self.assertEqual(read_ext_frame(conn), (9, b""))
                conn.sendall(answer)
            out, err = p.communicate(timeout=10)
            self.assertEqual(p.returncode, 1, err)
            self.assertIn(b"ringtail-ctl:", err)


if __name__ == "__main__":
    unittest.main()
