"""Starting, watching and stopping the processes of Ringtail's perf scripts and integration tests.

Workers, senders, receivers, dpdk-testpmd: each starts with its output in a log file, is waited on
until its log says a line, its port accepts, its ready file names a port or its memif socket
listens, is stopped with a signal and a deadline (then SIGKILL), and none outlives the run that
started it, whatever happened. scripts/perf/cluster.py and dpdk_frames.py import this file from
their own folder; tests/integration/harness.py puts this folder on sys.path first. Stdlib only.

A failure (a deadline passed, a process that exited too soon) raises ProcessFailed, an
AssertionError, so that unittest counts it as a test's failure; a script turns it into its own
one-line error.
"""
import os
import shutil
import signal
import socket
import subprocess
import time

# The exit status of a worker whose port was taken (sysexits.h's EX_UNAVAILABLE).
EX_UNAVAILABLE = 69
DPDK_RUN_DIR = "/var/run/dpdk"
# start(stdout=LOG or stderr=LOG): that stream goes to the process's log file.
LOG = "log"


class ProcessFailed(AssertionError):
    """A process did not do what the run waited for. log_path: the log that tells why (or None)."""

    def __init__(self, what, log_path=None):
        super().__init__(what)
        self.log_path = log_path


# ---- ports, files, polling ---------------------------------------------------------------------

def free_port(host="127.0.0.1"):
    """A port nothing listens on right now (bound, read, released: another process may take it
    before the one it is meant for binds it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def can_connect(port, host="127.0.0.1", timeout=0.2):
    """Whether a TCP connection to host:port is accepted now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(predicate, timeout, interval=0.02, what="condition", log_path=None):
    """Polls predicate() until it is true; ProcessFailed naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            raise ProcessFailed(f"timed out after {timeout} s waiting for {what}", log_path)
        time.sleep(interval)


def read_text(path):
    """A log file as text (undecodable bytes replaced)."""
    with open(path, "r", errors="replace") as f:
        return f.read()


def read_port_file(path):
    """The port a --ready-file holds, or None while it is missing or not written whole."""
    try:
        with open(path) as f:
            text = f.read().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def unix_socket_listening(name):
    """Whether a unix socket named `name` (an abstract one as '@name') is in /proc/net/unix."""
    with open("/proc/net/unix") as f:
        return any(line.split()[-1] == name for line in f if len(line.split()) >= 8)


def eal_args(prefix, cpu_args, memory_mb=128, vdev=None):
    """DPDK EAL arguments for a process without hugepages or PCI devices: `cpu_args` its lcores
    (e.g. ["-l", "3"]), `prefix` its --file-prefix (its folder under /var/run/dpdk), `vdev` a
    virtual device such as a net_memif port."""
    args = ["--no-huge", "-m", str(memory_mb), *cpu_args, "--file-prefix", prefix, "--no-pci",
            "--no-telemetry", "--log-level=lib.eal:warning"]
    if vdev:
        args.append(f"--vdev={vdev}")
    return args


# ---- one process -------------------------------------------------------------------------------

class Process(subprocess.Popen):
    """A child process with a name and, where it has one, the log file of its output.
    errors_with_log: its ProcessFailed messages end with its whole log (for a test's report)
    instead of naming the log (for a script's one line)."""

    def __init__(self, args, name=None, log_path=None, errors_with_log=False, **popen_kw):
        super().__init__(args, **popen_kw)
        self.name = name or os.path.basename(str(args[0]))
        self.log_path = log_path
        self.errors_with_log = errors_with_log

    def log(self):
        """Its log so far, as text ('' when it has none)."""
        return read_text(self.log_path) if self.log_path else ""

    def running(self):
        return self.poll() is None

    def failed(self, what):
        """A ProcessFailed about this process, with its log's path (and text, errors_with_log)."""
        if self.errors_with_log and self.log_path:
            what += ":\n" + self.log()
        return ProcessFailed(what, self.log_path)

    def wait_for_log(self, text, timeout=30, interval=0.05):
        """Until its log holds `text`. ProcessFailed when it exits first, or at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            exited = self.poll() is not None  # before reading: a last line written, then exit
            if text in self.log():
                return
            if exited:
                raise self.failed(f"{self.name} exited {self.returncode} before '{text}' appeared "
                                  f"in {self.log_path}")
            if time.monotonic() >= deadline:
                raise self.failed(f"'{text}' never appeared in {self.log_path} within "
                                  f"{timeout} s")
            time.sleep(interval)

    def wait_for_ports(self, ports, timeout=10):
        """Until every one of `ports` on 127.0.0.1 accepts a connection, or it exits. Returns True
        once they all accept, False when it exited first; ProcessFailed at the deadline (after
        killing it)."""
        deadline = time.monotonic() + timeout
        pending = set(ports)
        while pending and self.poll() is None and time.monotonic() < deadline:
            pending = {p for p in pending if not can_connect(p)}
            if pending:
                time.sleep(0.02)
        if not pending and self.poll() is None:
            return True
        if self.poll() is None:
            self.kill()
            self.wait()
            raise self.failed(f"{self.name} not listening after {timeout} s")
        return False

    def wait_for_port_file(self, path, timeout=10):
        """The port its --ready-file names, once written. ProcessFailed when it exits without
        writing one (an exit after writing it counts as written: a receiver may meet its --expect
        and exit 0 at once), or at the deadline."""

        def written():
            if read_port_file(path) is not None:
                return True
            if self.poll() is not None and read_port_file(path) is None:
                raise self.failed(f"{self.name} exited {self.returncode} at start")
            return False

        wait_until(written, timeout, what=f"the ready file of {self.name}",
                   log_path=self.log_path)
        return read_port_file(path)

    def wait_for_unix_socket(self, name, timeout=20):
        """Until a unix socket `name` ('@...' for an abstract one) listens. ProcessFailed when it
        exits first, or at the deadline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.poll() is not None:
                raise self.failed(f"{self.name} exited {self.returncode} before listening")
            if unix_socket_listening(name):
                return
            time.sleep(0.05)
        raise self.failed(f"{self.name} did not listen on {name} within {timeout} s")

    def finish(self, timeout):
        """Waits for it to exit by itself; its exit code. ProcessFailed (still running, left to
        the cleanup) at the deadline."""
        try:
            return self.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise self.failed(f"{self.name} still running after {timeout} s") from None

    def stop(self, sig=signal.SIGTERM, timeout=30, check=True):
        """Sends `sig` (unless it has exited) and waits for its exit code. At the deadline it is
        killed and reaped; then ProcessFailed, or with check=False its exit code (-9)."""
        if self.poll() is None:
            self.send_signal(sig)
        try:
            return self.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = self.wait()
            if check:
                raise self.failed(f"{self.name} did not stop within {timeout} s after "
                                  f"{sig!r}") from None
            return rc

    def kill_and_reap(self, timeout=10):
        """SIGKILL (unless it has exited), reaped, its pipes closed."""
        if self.poll() is None:
            self.kill()
            try:
                self.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        for f in (self.stdin, self.stdout, self.stderr):
            if f:
                f.close()


def stop_together(procs, sig=signal.SIGTERM, timeout=60, check=True):
    """Sends `sig` to every one still running, then waits for each in turn (as Process.stop: killed
    at its deadline). Their exit codes, in order."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(sig)
    return [p.stop(sig, timeout, check) for p in procs]


# ---- the processes of a run --------------------------------------------------------------------

class Group:
    """Every process one run (a test, a measurement) starts, and the DPDK runtime folders they
    leave, so that cleanup() leaves none behind. log_dir: where start() puts <name>.log."""

    def __init__(self, log_dir=None, errors_with_log=False):
        self.log_dir = log_dir
        self.errors_with_log = errors_with_log
        self.procs = []
        self.dpdk_prefixes = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()

    def start(self, args, name=None, log_path=None, stdout=LOG, stderr=LOG, **popen_kw):
        """Starts args (stdin from /dev/null unless given). Its log is log_path, else
        <log_dir>/<name>.log; stdout=LOG or stderr=LOG sends that stream to the log (by default
        both; without a log, where this process's own goes), anything else is as
        subprocess.Popen takes it."""
        if log_path is None and self.log_dir and name:
            log_path = os.path.join(self.log_dir, name + ".log")
        popen_kw.setdefault("stdin", subprocess.DEVNULL)
        log = open(log_path, "wb") if log_path and LOG in (stdout, stderr) else None
        try:
            if stdout == LOG:
                stdout = log
            if stderr == LOG:
                stderr = subprocess.STDOUT if log and stdout is log else log
            p = Process(args, name=name, log_path=log_path, errors_with_log=self.errors_with_log,
                        stdout=stdout, stderr=stderr, **popen_kw)
        finally:
            if log:
                log.close()  # the child has its own descriptor
        self.procs.append(p)
        return p

    def dpdk_prefix(self, prefix):
        """Notes an EAL --file-prefix, whose folder cleanup() removes (EAL leaves it behind even
        after rte_eal_cleanup). Returns it."""
        self.dpdk_prefixes.append(prefix)
        return prefix

    def stop_all(self, sig=signal.SIGTERM, timeout=60):
        """stop_together on every process (without checking exit codes); forgets them."""
        stop_together(self.procs, sig, timeout, check=False)
        self.procs = []

    def cleanup(self):
        """Kills and reaps every process still running, removes the DPDK runtime folders."""
        for p in self.procs:
            p.kill_and_reap()
        self.procs = []
        for prefix in self.dpdk_prefixes:
            shutil.rmtree(os.path.join(DPDK_RUN_DIR, prefix), ignore_errors=True)
        self.dpdk_prefixes = []
