"""Helpers for Ringtail's end-to-end tests: ports, worker / sender / receiver processes, frames.

Stdlib only. Binaries come from $RINGTAIL_BIN_DIR (default /work/main/build/bin). A test class
derives from ProcessTestCase, which gives it a temporary directory and kills every process it
started in tearDown, whatever happened. Processes are started, waited on and stopped by
scripts/perf/procs.py, the runner the perf scripts use too.
"""
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "scripts", "perf"))
import procs  # noqa: E402
from procs import can_connect, free_port, wait_until  # noqa: E402,F401

BIN_DIR = os.environ.get("RINGTAIL_BIN_DIR", "/work/main/build/bin")
SEND = os.path.join(BIN_DIR, "ringtail-send")
RECV = os.path.join(BIN_DIR, "ringtail-recv")

# Exit codes of CLI.md (sysexits.h).
EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
EX_UNAVAILABLE = procs.EX_UNAVAILABLE
EX_SOFTWARE = 70
EX_CANTCREAT = 73
EX_IOERR = 74
EX_CONFIG = 78

READY_DEADLINE_S = 10.0


def binary(name):
    path = os.path.join(BIN_DIR, name)
    if not os.access(path, os.X_OK):
        raise AssertionError(f"{path} is missing or not executable (set RINGTAIL_BIN_DIR)")
    return path


def test_seed():
    """The seed for randomised data: $RINGTAIL_TEST_SEED or a fresh one; printed for replay."""
    text = os.environ.get("RINGTAIL_TEST_SEED")
    seed = int(text) if text else random.SystemRandom().randrange(2**32)
    print(f"seed {seed} (replay with RINGTAIL_TEST_SEED={seed})", file=sys.stderr, flush=True)
    return seed


# ---- frames ------------------------------------------------------------------------------------

def frame(payload):
    return struct.pack(">I", len(payload)) + payload


def split_frames(data):
    """[u32 N][payload]... -> list of payloads; AssertionError on a cut-short tail."""
    out = []
    at = 0
    while at < len(data):
        if len(data) - at < 4:
            raise AssertionError(f"{len(data) - at} stray bytes at the end of framed data")
        (n,) = struct.unpack_from(">I", data, at)
        if at + 4 + n > len(data):
            raise AssertionError(f"frame at byte {at} claims {n} bytes, only "
                                 f"{len(data) - at - 4} left")
        out.append(bytes(data[at + 4:at + 4 + n]))
        at += 4 + n
    return out


def fixed_records(data, size):
    """ringtail-recv -f output of fixed-size payloads (each written as payload + '\\n') ->
    list of payloads."""
    if len(data) % (size + 1):
        raise AssertionError(f"{len(data)} bytes of framed output are not whole "
                             f"{size}-byte records")
    out = []
    for at in range(0, len(data), size + 1):
        if data[at + size] != 0x0A:
            raise AssertionError(f"record at byte {at} does not end in a newline")
        out.append(bytes(data[at:at + size]))
    return out


def read_frames(path):
    with open(path, "rb") as f:
        return split_frames(f.read())


def write_file(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


# ---- word_count reference (WIRE.md §6) ---------------------------------------------------------

PUNCTUATION = b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"


def words_of_line(line):
    """Lowercase ASCII, split on ' ', strip punctuation from both ends, drop empty words."""
    out = []
    for w in line.lower().split(b" "):  # bytes.lower() only touches ASCII A-Z
        w = w.strip(PUNCTUATION)
        if w:
            out.append(w)
    return out


def text_lines(data):
    """The frames ringtail-send -f makes of a text file: one per '\\n'-terminated line (a last
    line without '\\n' counts too; no extra empty frame after a final '\\n')."""
    lines = data.split(b"\n")
    if data.endswith(b"\n") or not data:
        lines.pop()
    return lines


def count_words(lines):
    counts = {}
    for line in lines:
        for w in words_of_line(line):
            counts[w] = counts.get(w, 0) + 1
    return counts


def word_count_output_size(counts):
    return sum(len(w) + len(b" => \n") + len(str(k))
               for w, n in counts.items() for k in range(1, n + 1))


def parse_word_count_output(data):
    """'word => count\\n' lines -> {word: [counts in order of arrival]}."""
    seen = {}
    if data and not data.endswith(b"\n"):
        raise AssertionError(f"word_count output does not end in a newline: {data[-80:]!r}")
    for line in data.split(b"\n")[:-1] if data else []:
        word, sep, count = line.partition(b" => ")
        if not sep or not word or not count.isdigit():
            raise AssertionError(f"malformed word_count output line {line!r}")
        seen.setdefault(word, []).append(int(count))
    return seen


# ---- processes ---------------------------------------------------------------------------------

_STOPPED_RE = re.compile(
    r"stopped: (\d+) messages in, (\d+) out \((\d+) bytes\), (\d+) rejected by decoders, "
    r"(\d+) connections closed for bad framing, (\d+) filtered")


class Worker:
    """One worker process (an example app: a procs.Process), its output in a log file."""

    def __init__(self, proc, log_path, in_ports, args):
        self.proc = proc
        self.log_path = log_path
        self.in_ports = in_ports  # {source name: port}
        self.args = args

    @property
    def port(self):
        """The --in port when the app has one source."""
        (p,) = self.in_ports.values()
        return p

    def rss_bytes(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS for the worker")

    def log(self):
        with open(self.log_path, "r", errors="replace") as f:
            return f.read()

    def running(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=45):
        """Sends sig and waits; returns the exit code (killed, and AssertionError, at the
        deadline)."""
        return self.proc.stop(sig, timeout)

    def counters(self):
        """The numbers of the worker's final 'stopped:' log line."""
        m = _STOPPED_RE.search(self.log())
        if not m:
            raise AssertionError("no 'stopped:' line in the worker log:\n" + self.log())
        keys = ("ingested", "sink_writes", "sink_bytes", "decode_errors", "protocol_errors",
                "filtered")
        return dict(zip(keys, map(int, m.groups())))


class Receiver:
    """ringtail-recv writing to a file. The tool keeps its output in memory until it exits, so
    read the file only after wait()."""

    def __init__(self, proc, port, out_path, err_path):
        self.proc = proc
        self.port = port
        self.out_path = out_path
        self.err_path = err_path

    def stderr(self):
        with open(self.err_path, "r", errors="replace") as f:
            return f.read()

    def wait(self, timeout=30):
        """Waits for the receiver to exit 0 (its --expect met); returns what it wrote."""
        rc = self.proc.finish(timeout)
        if rc != 0:
            raise AssertionError(f"receiver exited {rc}: {self.stderr()}")
        with open(self.out_path, "rb") as f:
            return f.read()


class PySink:
    """An in-process TCP receiver. It keeps each accepted connection's bytes apart: a worker opens
    one sink connection per shard that feeds the sink (DESIGN.md), so with several compute
    threads the output is several streams, each well-formed on its own, whose interleaving on a
    single file (ringtail-recv in raw mode) would cut lines and frames at arbitrary points."""

    def __init__(self, paused=False):
        self._reading = threading.Event()
        if not paused:
            self._reading.set()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._streams = []  # one bytearray per accepted connection, in accept order
        self._lock = threading.Lock()
        self._closing = False
        self._threads = [threading.Thread(target=self._accept_loop, daemon=True)]
        self._threads[0].start()

    def _accept_loop(self):
        while not self._closing:
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                buf = bytearray()
                self._streams.append(buf)
            t = threading.Thread(target=self._read_loop, args=(conn, buf), daemon=True)
            self._threads.append(t)
            t.start()

    def _read_loop(self, conn, buf):
        conn.settimeout(0.1)
        with conn:
            while not self._closing:
                if not self._reading.wait(timeout=0.1):
                    continue
                try:
                    chunk = conn.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                with self._lock:
                    buf += chunk

    def resume(self):
        """Starts reading (a sink made with paused=True accepts but does not read)."""
        self._reading.set()

    @property
    def connections(self):
        with self._lock:
            return len(self._streams)

    def streams(self):
        with self._lock:
            return [bytes(b) for b in self._streams]

    def total_bytes(self):
        with self._lock:
            return sum(len(b) for b in self._streams)

    def lines(self):
        """Every complete '\n'-terminated line of every stream (without the '\n')."""
        out = []
        for data in self.streams():
            out += data.split(b"\n")[:-1]
        return out

    def text(self):
        """The streams one after another, for parsers of line output once the worker stopped."""
        return b"".join(self.streams())

    def wait_for_bytes(self, n, timeout=20):
        wait_until(lambda: self.total_bytes() >= n, timeout,
                   what=f"{n} bytes at the sink (have {self.total_bytes()})")

    def wait_for(self, predicate, timeout=10, what="sink output"):
        wait_until(lambda: predicate(self), timeout, what=what)

    def close(self):
        self._closing = True
        try:
            self._listener.close()
        except OSError:
            pass
        for t in self._threads:
            t.join(timeout=2)


class ProcessTestCase(unittest.TestCase):
    """A temporary directory and process bookkeeping (a procs.Group); tearDown kills whatever is
    left and removes the DPDK runtime folders noted with self.group.dpdk_prefix()."""

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="ringtail-it-")
        self.dir = self._tmp.name
        self.group = procs.Group(errors_with_log=True)
        self._sinks = []
        self._sockets = []

    def tearDown(self):
        self.group.cleanup()
        for s in self._sinks:
            s.close()
        for s in self._sockets:
            try:
                s.close()
            except OSError:
                pass
        self._tmp.cleanup()

    @property
    def started(self):
        """How many processes this test has started (numbers its log files)."""
        return len(self.group.procs)

    def path(self, name):
        return os.path.join(self.dir, name)

    def track_socket(self, s):
        self._sockets.append(s)
        return s

    def py_sink(self, paused=False):
        s = PySink(paused)
        self._sinks.append(s)
        return s

    def popen(self, args, stdout=None, stderr=None, **kw):
        """Starts args as subprocess.Popen would (stdin from /dev/null unless given); a
        procs.Process, killed in tearDown."""
        return self.group.start(args, stdout=stdout, stderr=stderr, **kw)

    def start_logged(self, args, log_name, name=None, **kw):
        """Starts args with its stdout and stderr in <dir>/<log_name>.log; a procs.Process whose
        errors end with that log."""
        return self.group.start(args, name=name, log_path=self.path(log_name + ".log"), **kw)

    # -- worker --

    def start_worker(self, app, sources, out_ports, threads=None, extra=(), tries=5):
        """Starts `app` listening on a fresh free port for every source name in `sources` (a list
        of names, or of (name, max_size) pairs) and writing to 127.0.0.1:<port> for each of
        out_ports. Returns once every --in port accepts a TCP connection. A port taken between
        choosing and binding makes the worker exit 69: then it starts again on new ports."""
        last_log = ""
        for attempt in range(tries):
            in_ports = {}
            in_specs = []
            for s in sources:
                name, max_size = (s, None) if isinstance(s, str) else s
                # Not a port the worker writes to, nor one of its other sources: free_port() can
                # hand back a port it released a moment ago (a receiver that starts late has
                # not bound its port yet).
                port = free_port()
                while port in out_ports or port in in_ports.values():
                    port = free_port()
                in_ports[name] = port
                spec = f"{name}@127.0.0.1:{port}"
                if max_size is not None:
                    spec += f":{max_size}"
                in_specs.append(spec)
            args = [binary(app), "--in", ",".join(in_specs)]
            if out_ports:
                args += ["--out", ",".join(f"127.0.0.1:{p}" for p in out_ports)]
            if threads is not None:
                args += ["--threads", str(threads)]
            args += list(extra)
            proc = self.start_logged(args, f"{app}-{self.started}", name=app)
            worker = Worker(proc, proc.log_path, in_ports, args)
            if proc.wait_for_ports(in_ports.values(), READY_DEADLINE_S):
                return worker
            last_log = worker.log()
            if proc.returncode != EX_UNAVAILABLE:
                raise AssertionError(f"{app} exited {proc.returncode} at start:\n{last_log}")
        raise AssertionError(f"{app} kept exiting 69 (port race?) after {tries} tries:\n"
                             + last_log)

    # -- receiver --

    def start_receiver(self, expect=None, framed=False, port=0, name=None, timeout_s=20):
        """ringtail-recv on 127.0.0.1:port (0: any, read back through --ready-file)."""
        name = name or f"recv{self.started}"
        ready = self.path(name + ".port")
        out = self.path(name + ".out")
        err = self.path(name + ".err")
        args = [RECV, "-l", f"127.0.0.1:{port}", "--ready-file", ready, "--out", out,
                "--timeout", str(timeout_s)]
        if framed:
            args.append("-f")
        if expect is not None:
            args += ["--expect", str(expect)]
        proc = self.group.start(args, name="receiver", log_path=err, stdout=subprocess.DEVNULL,
                                stderr=procs.LOG)
        r = Receiver(proc, None, out, err)
        r.port = proc.wait_for_port_file(ready, READY_DEADLINE_S)
        return r

    # -- sender --

    def sender_args(self, ports, files=(), binary_records=False, extra=()):
        args = [SEND, "-h", ",".join(f"127.0.0.1:{p}" for p in ports)]
        if files:
            args += ["-f", ",".join(files)]
        if binary_records:
            args.append("-y")
        return args + list(extra)

    def send(self, ports, files=(), binary_records=False, extra=(), timeout=60):
        """Runs ringtail-send to the end and asserts it exits 0."""
        args = self.sender_args(ports, files, binary_records, extra)
        r = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        self.assertEqual(r.returncode, 0, f"{args}: {r.stderr.decode(errors='replace')}")
        return r

    def start_sender(self, ports, files=(), binary_records=False, extra=()):
        args = self.sender_args(ports, files, binary_records, extra)
        return self.popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def wait_sender(self, proc, timeout=60):
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"sender still running after {timeout} s") from None
        self.assertEqual(proc.returncode, 0, err.decode(errors="replace"))

    def stop_worker(self, worker, sig=signal.SIGTERM):
        """Stops the worker with sig and asserts a clean exit 0."""
        rc = worker.stop(sig)
        self.assertEqual(rc, 0, f"worker exited {rc} after {sig!r}:\n{worker.log()}")
        return worker.log()
