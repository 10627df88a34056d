#!/usr/bin/env python3
"""Shape tests of the perf scripts: scripts/perf/latency.sh, sweep.sh, compare.sh, cluster.py,
bundle.sh (scaling.sh: its refusals) and bench_ab.py (with stand-in benchmark programs);
of dpdk_frames.py only its help and its refusals (measuring needs root, dpdk-testpmd, quiet cores).

They run short measurements of passthrough (seconds, not figures to quote) and check what the
scripts write: files, JSON keys, percentile order, counts, plots, and one-line errors for bad
input. Binaries come from $RINGTAIL_BIN_DIR (default /work/main/build/bin), which the scripts use
as they are (no build). Stdlib only:
    RINGTAIL_BIN_DIR=build/bin python3 tests/integration/test_perf_scripts.py -v
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

BIN_DIR = os.environ.get("RINGTAIL_BIN_DIR", "/work/main/build/bin")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = os.path.join(ROOT, "scripts", "perf")
LATENCY = os.path.join(SCRIPTS, "latency.sh")
SWEEP = os.path.join(SCRIPTS, "sweep.sh")
COMPARE = os.path.join(SCRIPTS, "compare.sh")
CLUSTER = os.path.join(SCRIPTS, "cluster.py")
DPDK_FRAMES = os.path.join(SCRIPTS, "dpdk_frames.py")
PYTHON = sys.executable

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SUMMARY_KEYS = {"rate_asked", "rate_achieved", "count", "messages_received", "p50_us", "p90_us",
                "p99_us", "p999_us", "p9999_us", "max_us", "mean_us", "late_messages",
                "bad_stamps", "out_of_sequence", "machine", "worker", "git"}
PERCENTILES = ["p50_us", "p90_us", "p99_us", "p999_us", "p9999_us", "max_us"]


def run(*args, timeout=60):
    env = dict(os.environ, RINGTAIL_BIN_DIR=BIN_DIR)
    return subprocess.run(list(args), capture_output=True, timeout=timeout, env=env, cwd=ROOT)


class PerfScriptsTest(unittest.TestCase):
    """One latency run in setUpClass (2 s at 20 000 msgs/s) serves several tests."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = cls.tmp.name
        cls.run_a = os.path.join(cls.dir, "run-a")
        cls.result = run(LATENCY, "--app", "passthrough", "--rate", "20000", "--duration", "2",
                         "--out", cls.run_a)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def assert_png(self, path):
        self.assertTrue(os.path.isfile(path), path)
        with open(path, "rb") as f:
            data = f.read()
        self.assertGreater(len(data), 1000, path)
        self.assertEqual(data[:8], PNG_SIGNATURE, path)

    def assert_one_line_error(self, r):
        self.assertNotEqual(r.returncode, 0, r.stderr)
        lines = r.stderr.decode().strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr.decode())
        return lines[0]

    def test_latency_run_shape(self):
        r = self.result
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        for name in ("latency.hgrm", "summary.json", "latency.png"):
            path = os.path.join(self.run_a, name)
            self.assertTrue(os.path.isfile(path) and os.path.getsize(path) > 0, name)
        self.assert_png(os.path.join(self.run_a, "latency.png"))
        with open(os.path.join(self.run_a, "latency.hgrm")) as f:
            hgrm = f.read()
        self.assertIn("Percentile", hgrm)
        self.assertIn("#[Max", hgrm)
        with open(os.path.join(self.run_a, "summary.json")) as f:
            s = json.load(f)
        self.assertLessEqual(SUMMARY_KEYS, set(s), SUMMARY_KEYS - set(s))
        values = [s[k] for k in PERCENTILES]
        self.assertEqual(values, sorted(values), values)
        self.assertGreater(s["p50_us"], 0)
        self.assertGreaterEqual(s["count"], 0.9 * 20000 * 2)
        self.assertEqual(s["messages_received"], 40000)
        self.assertEqual(s["bad_stamps"], 0)
        self.assertEqual(s["out_of_sequence"], 0)
        # Shape, not speed: a busy machine can stall the run for seconds (the rate falls).
        self.assertGreater(s["rate_achieved"], 0)
        self.assertLessEqual(s["rate_achieved"], 1.01 * 20000)
        self.assertEqual(s["rate_asked"], 20000)
        self.assertGreaterEqual(s["machine"]["nproc"], 1)
        self.assertEqual(s["worker"]["threads"], 1)

    def test_market_spread_latency(self):
        """Orders numbered in their order_id, latency sampled on the rejected ones (about half)."""
        out = os.path.join(self.dir, "market")
        r = run(LATENCY, "--app", "market_spread", "--rate", "10000", "--duration", "2",
                "--out", out)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        for name in ("latency.hgrm", "summary.json", "latency.png", "market_input.json"):
            path = os.path.join(out, name)
            self.assertTrue(os.path.isfile(path) and os.path.getsize(path) > 0, name)
        self.assert_png(os.path.join(out, "latency.png"))
        with open(os.path.join(out, "summary.json")) as f:
            s = json.load(f)
        self.assertLessEqual(SUMMARY_KEYS, set(s), SUMMARY_KEYS - set(s))
        values = [s[k] for k in PERCENTILES]
        self.assertEqual(values, sorted(values), values)
        self.assertGreater(s["p50_us"], 0)
        self.assertEqual(s["orders_sent"], 20000)
        self.assertGreater(s["sampled"], 0)
        self.assertEqual(s["sampled"], s["rejections_expected"])
        self.assertEqual(s["messages_received"], s["rejections_expected"])
        self.assertTrue(0.3 < s["sampled_fraction"] < 0.7, s["sampled_fraction"])
        self.assertIn("rejected orders only", s["measured_on"])
        self.assertEqual(s["bad_stamps"], 0)
        self.assertEqual(s["out_of_sequence"], 0)
        self.assertGreater(s["rate_achieved"], 0)
        self.assertLessEqual(s["rate_achieved"], 1.01 * 10000)
        self.assertIn("rejected orders only", r.stdout.decode())

    def test_sweep_two_rates(self):
        out = os.path.join(self.dir, "sweep")
        r = run(SWEEP, "--app", "passthrough", "--rates", "4000,2000", "--duration", "1",
                "--p99-bound-us", "1000000", "--out", out)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        with open(os.path.join(out, "sweep.json")) as f:
            s = json.load(f)
        self.assertEqual([e["rate_asked"] for e in s["runs"]], [2000, 4000])
        self.assertIn("best_rate", s)
        # A bound of a second: both rates meet it unless the machine stalls for that long.
        self.assertIn(s["best_rate"], (None, 2000, 4000))
        self.assertRegex(r.stdout.decode(), r"best rate: (none|[0-9,]+ msgs/s)")
        self.assert_png(os.path.join(out, "sweep.png"))

    def test_compare_two_runs(self):
        self.assertEqual(self.result.returncode, 0, self.result.stderr.decode())
        run_b = os.path.join(self.dir, "run-b")
        r = run(LATENCY, "--app", "passthrough", "--rate", "5000", "--duration", "1",
                "--out", run_b)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        png = os.path.join(self.dir, "cmp.png")
        r = run(COMPARE, self.run_a, run_b, "--out", png)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assert_png(png)
        text = r.stdout.decode()
        self.assertIn("run-a", text)
        self.assertIn("run-b", text)
        self.assertRegex(text, r"p99 µs .* [0-9.]+x")

    def test_cluster_quick(self):
        # 1 worker against 2 workers, and local against crossing latency, in one short run.
        out = os.path.join(self.dir, "cluster")
        r = run("python3", CLUSTER, "--quick", "--wide", "--out", out, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr.decode() + r.stdout.decode())
        with open(os.path.join(out, "summary.json")) as f:
            s = json.load(f)
        self.assertEqual(set(s["throughput"]), {
            "sequence, 1 worker x 2 threads", "sequence, 2 workers x 1 thread",
            "word_count, 1 worker x 2 threads", "word_count, 2 workers x 1 thread",
            "sequence, 2 workers x 2 threads"})
        self.assertEqual(s["poll_mode"], "adaptive")
        # Each worker of two on its own half of the CPUs (--cpus), as on a host of its own.
        cpus = sorted(os.sched_getaffinity(0))
        half = len(cpus) // 2
        self.assertEqual(s["worker_cpus"], [cpus[:half], cpus[half:2 * half]] if half else [[], []])
        for case in s["throughput"].values():
            self.assertGreater(case["median"], 0)
        # Fresh keys spread over both workers: each path carries a good share of the messages.
        local, crossing = s["latency"]["local"], s["latency"]["crossing"]
        total = local["count"] + crossing["count"]
        self.assertGreater(total, 0)
        for path in (local, crossing):
            self.assertGreater(path["count"], total // 4)
            self.assertEqual(path["bad_stamps"], 0)
            values = [path[k] for k in PERCENTILES]
            self.assertEqual(values, sorted(values))
        with open(os.path.join(out, "table.txt")) as f:
            table = f.read()
        self.assertIn("| crossing |", table)

    def test_bad_inputs(self):
        out = os.path.join(self.dir, "bad")
        for args in (["--app", "nope", "--rate", "1000", "--duration", "1"],
                     ["--app", "passthrough", "--rate", "0", "--duration", "1"],
                     ["--app", "passthrough", "--rate", "fast", "--duration", "1"],
                     ["--app", "passthrough", "--rate", "1000", "--duration", "1", "--size", "8"],
                     ["--app", "market_spread", "--rate", "1000", "--duration", "1",
                      "--size", "64"]):
            r = run(LATENCY, *args, "--out", out, timeout=10)
            line = self.assert_one_line_error(r)
            self.assertEqual(r.returncode, 64, line)
            self.assertTrue(line.startswith("latency.sh: "), line)
        self.assertFalse(os.path.exists(out))
        env_missing = dict(os.environ, RINGTAIL_BIN_DIR=os.path.join(self.dir, "no-bin"))
        r = subprocess.run([LATENCY, "--app", "passthrough", "--rate", "1000", "--duration", "1",
                            "--out", out], capture_output=True, timeout=10, env=env_missing)
        self.assertIn("missing", self.assert_one_line_error(r))
        r = run(SWEEP, "--app", "passthrough", "--rates", "1000,0", "--duration", "1",
                "--p99-bound-us", "100", timeout=10)
        self.assertEqual(r.returncode, 64)
        self.assert_one_line_error(r)
        r = run(COMPARE, self.dir, timeout=10)
        self.assertEqual(r.returncode, 64)
        self.assert_one_line_error(r)
        for args in (["--wide", "9"], ["--text", os.path.join(self.dir, "no-such-text")]):
            r = run(PYTHON, CLUSTER, *args, "--out", out, timeout=30)
            self.assertEqual(r.returncode, 64, r.stderr.decode())
            self.assertTrue(self.assert_one_line_error(r).startswith("cluster.py: "))
        self.assertFalse(os.path.exists(out))


class DpdkFramesScriptTest(unittest.TestCase):
    """scripts/perf/dpdk_frames.py without measuring (a measurement needs root, dpdk-testpmd and
    quiet cores; tests/integration/test_dpdk_memif.py runs the channel modes it measures): its
    help, and the one-line refusals for bad flags, a missing dpdk-testpmd and a missing root."""

    def refuse(self, args, env=None, launcher=(PYTHON,)):
        r = subprocess.run(list(launcher) + [DPDK_FRAMES] + args, capture_output=True,
                           timeout=30, env=env, cwd=ROOT)
        lines = r.stderr.decode().strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr.decode() + r.stdout.decode())
        self.assertTrue(lines[0].startswith("dpdk_frames.py: "), lines[0])
        self.assertEqual(r.stdout, b"")
        return r.returncode, lines[0]

    def test_help(self):
        r = run(PYTHON, DPDK_FRAMES, "--help", timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        text = r.stdout.decode()
        for word in ("--sizes", "--reps", "--seconds", "--out", "dpdk-testpmd", "channel-send"):
            self.assertIn(word, text)

    def test_bad_flags(self):
        for args in (["--sizes", "big"], ["--sizes", "20"], ["--reps", "0"], ["--cpus", "0"],
                     ["--lanes", "0"], ["--lanes", "9"], ["--lanes", "2", "--cpus", "0,1"],
                     ["--no-such-flag"]):
            code, line = self.refuse(args)
            self.assertEqual(code, 64, line)

    def test_refuses_without_testpmd(self):
        with tempfile.TemporaryDirectory() as empty:
            code, line = self.refuse([], env=dict(os.environ, PATH=empty))
        self.assertEqual(code, 69, line)
        self.assertIn("install the Debian package dpdk-dev", line)

    def test_refuses_without_root(self):
        with tempfile.TemporaryDirectory() as fake:
            # A stand-in dpdk-testpmd, so that the root check is the one that refuses.
            testpmd = os.path.join(fake, "dpdk-testpmd")
            with open(testpmd, "w") as f:
                f.write("#!/bin/sh\nexit 1\n")
            os.chmod(fake, 0o755)
            os.chmod(testpmd, 0o755)
            env = dict(os.environ, PATH=fake)
            if os.geteuid() != 0:
                code, line = self.refuse([], env=env)
            else:
                # As root: drop to nobody, with a Python that nobody may run.
                setpriv, python = shutil.which("setpriv"), "/usr/bin/python3"
                if setpriv is None or not os.access(python, os.X_OK):
                    self.skipTest("root, and no setpriv or /usr/bin/python3 to drop root with")
                code, line = self.refuse([], env=env, launcher=(
                    setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", python))
        self.assertEqual(code, 77, line)
        self.assertIn("needs root", line)



BUNDLE = os.path.join(SCRIPTS, "bundle.sh")
SCALING = os.path.join(SCRIPTS, "scaling.sh")
PINGPONG = "ringtail-dpdk-pingpong"


class BundleScriptTest(unittest.TestCase):
    """scripts/perf/bundle.sh, which packs a build to run the perf scripts on a host without its
    libraries, and scripts/perf/scaling.sh, which runs them there. One bundle, made in setUpClass
    from $RINGTAIL_BIN_DIR's build, serves the tests. The host without libraries is played by a
    mount namespace in which EAL's driver folder is empty: a DPDK data channel must then run from
    the bundle's drivers, and every shared object its processes load must be the bundle's."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.bundle = os.path.join(cls.tmp.name, "bundle")
        cls.made = run(BUNDLE, "--build-dir", os.path.dirname(BIN_DIR), "--out", cls.bundle,
                       timeout=120)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def manifest(self):
        with open(os.path.join(self.bundle, "MANIFEST")) as f:
            return dict(l.split(" ", 1) for l in f.read().splitlines())

    def setUp(self):
        if not os.access(os.path.join(BIN_DIR, PINGPONG), os.X_OK):
            self.skip_or_fail(f"no {PINGPONG} in {BIN_DIR}: this build has no DPDK")
        self.assertEqual(self.made.returncode, 0,
                         self.made.stderr.decode() + self.made.stdout.decode())

    def skip_or_fail(self, reason):
        if os.environ.get("RINGTAIL_REQUIRE_DPDK") == "1" or os.environ.get("CI"):
            self.fail(f"{reason} ($RINGTAIL_REQUIRE_DPDK or $CI says this must run here)")
        self.skipTest(reason)

    def test_layout(self):
        manifest = self.manifest()
        self.assertIn("ld-linux-x86-64.so.2", manifest["loader"])
        for name in manifest["programs"].split():
            wrapper = os.path.join(self.bundle, "bin", name)
            self.assertTrue(os.access(wrapper, os.X_OK), wrapper)
            self.assertTrue(os.path.isfile(os.path.join(self.bundle, "real", name)), name)
        for name in ("librte_net_memif", "librte_bus_vdev", "librte_mempool_ring"):
            self.assertIn(name, manifest["drivers"])
        libs = os.listdir(os.path.join(self.bundle, "lib"))
        for name in ("libc.so.6", "libstdc++.so.6", "librte_eal.so.23", "libhwloc.so.15"):
            self.assertIn(name, libs)
        # A program without DPDK runs through its wrapper anywhere.
        r = run(os.path.join(self.bundle, "bin", "ringtail-check"), "--help", timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertIn(b"ringtail-check", r.stdout + r.stderr)
        # One with DPDK refuses where EAL would load this host's drivers beside the bundle's.
        # (EAL's own driver folder, where the build found the drivers it bundled.)
        drivers = manifest["eal_driver_dir"]
        if os.path.isdir(drivers):
            r = run(os.path.join(self.bundle, "bin", "sequence"), "--help", timeout=30)
            self.assertEqual(r.returncode, 69, r.stderr.decode())
            lines = r.stderr.decode().strip().splitlines()
            self.assertEqual(len(lines), 1, r.stderr.decode())
            self.assertIn(f"this host has DPDK's drivers in {drivers}", lines[0])

    def test_channel_runs_from_the_bundle_alone(self):
        if os.geteuid() != 0 or shutil.which("unshare") is None:
            self.skip_or_fail("needs root and unshare(1): a mount namespace plays the bare host")
        drivers = self.manifest()["eal_driver_dir"]
        bin_dir = os.path.join(self.bundle, "bin")
        pid = os.getpid()
        eal = (f"--no-huge -m 128 --no-pci --no-telemetry --log-level=lib.eal:warning "
               f"--vdev=net_memif0,id=0,socket=/rt-bundle-{pid}.sock")
        cpus = sorted(os.sched_getaffinity(0))
        trace = os.path.join(self.tmp.name, "ld-trace")
        script = f"""
set -u
mount -t tmpfs none '{drivers}' || exit 90
[ -z "$(ls '{drivers}')" ] || exit 91
'{bin_dir}/{PINGPONG}' --mode channel-send --device net_memif0 --frames 20000 --timeout 20 \\
    -- {eal},role=server --file-prefix rt-bundle-{pid}-s -l {cpus[-1]} &
sender=$!
LD_DEBUG=libs LD_DEBUG_OUTPUT='{trace}' '{bin_dir}/{PINGPONG}' --mode channel-recv \\
    --device net_memif0 --warmup 0 --timeout 30 \\
    -- {eal},role=client --file-prefix rt-bundle-{pid}-r -l {cpus[0]}
rc=$?
wait $sender || exit 92
exit $rc
"""
        try:
            r = subprocess.run(["unshare", "-m", "bash", "-c", script], capture_output=True,
                               text=True, timeout=90)
        finally:
            for role in "sr":
                shutil.rmtree(f"/var/run/dpdk/rt-bundle-{pid}-{role}", ignore_errors=True)
        context = f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
        if r.returncode == 90:
            self.skip_or_fail("cannot mount in a new mount namespace here")
        self.assertEqual(r.returncode, 0, context)
        line = next(l for l in r.stdout.splitlines() if l.startswith("channel-recv:"))
        fields = dict(w.split("=", 1) for w in line.split() if "=" in w)
        self.assertEqual(fields["frames"], "20000", context)
        self.assertEqual(fields["complete"], "yes", context)
        self.assertEqual(fields["order_errors"], "0", context)
        # Every shared object the receiver initialised came from the bundle, its drivers too. Its
        # process ran env and bash (the wrapper) before the exec: its part of the trace follows
        # bash's "transferring control", up to the end.
        inits = []
        for name in os.listdir(self.tmp.name):
            if not name.startswith("ld-trace"):
                continue
            with open(os.path.join(self.tmp.name, name)) as f:
                lines = f.read().splitlines()
            handed = [i for i, l in enumerate(lines) if "transferring control:" in l]
            if not any(lines[i].endswith(f"/bin/{PINGPONG}") for i in handed):
                continue  # one of the wrapper's helpers (dirname)
            start = max(i for i in handed if not lines[i].endswith(f"/bin/{PINGPONG}"))
            inits += [l.split("calling init:", 1)[1].strip() for l in lines[start:]
                      if "calling init:" in l]
        self.assertTrue(any("librte_net_memif" in p for p in inits), inits)
        lib = os.path.join(self.bundle, "lib") + os.sep
        self.assertEqual([p for p in inits if not p.startswith(lib)], [], context)

    def test_bad_arguments(self):
        keep = os.path.join(self.tmp.name, "not-a-bundle")
        os.makedirs(keep, exist_ok=True)
        with open(os.path.join(keep, "notes.txt"), "w") as f:
            f.write("mine\n")
        for args, code in (([BUNDLE, "--no-such-flag"], 64), ([BUNDLE, "--out"], 64),
                           ([BUNDLE, "--build-dir", os.path.dirname(BIN_DIR), "--out", keep], 64),
                           ([BUNDLE, "--build-dir", self.tmp.name, "--out",
                             os.path.join(self.tmp.name, "none")], 69),
                           ([SCALING, "--reps", "0", "--bundle", self.bundle], 64),
                           ([SCALING, "--no-such-flag"], 64),
                           ([SCALING, "--bundle", self.tmp.name], 69)):
            r = run(*args, timeout=30)
            self.assertEqual(r.returncode, code, f"{args}: {r.stderr.decode()}")
            lines = r.stderr.decode().strip().splitlines()
            self.assertEqual(len(lines), 1, f"{args}: {r.stderr.decode()}")
            self.assertRegex(lines[0], r"^(bundle|scaling)\.sh: ")
        self.assertTrue(os.path.isfile(os.path.join(keep, "notes.txt")))


BENCH_AB = os.path.join(SCRIPTS, "bench_ab.py")


class BenchAbScriptTest(unittest.TestCase):
    """scripts/perf/bench_ab.py, which runs two builds of a benchmark alternately and prints the
    medians of the pairs' ratios. Two stand-in benchmark programs print Google Benchmark's lines
    with figures known in advance: the old one 10 M items/s, then 8 M on its second run; the new
    one 12 M, then 9.6 M (each run of a pair 1.2 times the old one's)."""

    FAKE = """#!/bin/sh
n=$(cat "$0.count" 2>/dev/null || echo 0); echo $((n + 1)) > "$0.count"
case "$*" in *--benchmark_filter=*) ;; *) echo "no filter" >&2; exit 2;; esac
if [ $((n % 2)) -eq 0 ]; then a={a}; b={b}; else a={c}; b={d}; fi
echo "-----"
echo "thing/1        100 ns          100 ns      1000 bytes=1k items_per_second=${{a}}M/s"
echo "thing/2        200 ns          200 ns      1000 items_per_second=${{b}}k/s"
"""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.old = self.fake("old", 10, 500, 8, 400)
        self.new = self.fake("new", 12, 600, 9.6, 480)

    def tearDown(self):
        self.tmp.cleanup()

    def fake(self, name, a, b, c, d):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w") as f:
            f.write(self.FAKE.format(a=a, b=b, c=c, d=d))
        os.chmod(path, 0o755)
        return path

    def test_ratios_of_alternated_runs(self):
        out = os.path.join(self.tmp.name, "ab.json")
        r = run(PYTHON, BENCH_AB, self.old, self.new, "--pairs", "4", "--min-time", "0.01",
                "--ratio", "thing/2:thing/1", "--json", out)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        text = r.stdout.decode()
        self.assertRegex(text, r"thing/1\s+9\.000\s+10\.800\s+1\.200\s+4/4")
        self.assertRegex(text, r"thing/2\s+0\.450\s+0\.540\s+1\.200\s+4/4")
        self.assertIn("thing/2 / thing/1, within each run: old 0.050, new 0.050", text)
        with open(out) as f:
            summary = json.load(f)
        self.assertEqual(len(summary["runs"]["old"]), 4)
        self.assertAlmostEqual(summary["summary"]["thing/1"]["ratio_median"], 1.2)
        # Alternated: each program ran four times, old first in the first pair.
        for name in ("old", "new"):
            with open(os.path.join(self.tmp.name, name + ".count")) as f:
                self.assertEqual(f.read().strip(), "4")

    def test_refusals(self):
        empty = os.path.join(self.tmp.name, "empty")
        with open(empty, "w") as f:
            f.write("#!/bin/sh\necho nothing measured\n")
        os.chmod(empty, 0o755)
        for args, code in (([self.old, self.new, "--pairs", "0"], 64),
                           ([self.old, self.new, "--ratio", "thing/1"], 64),
                           ([self.old, self.new, "--min-time", "0"], 64),
                           ([self.old, self.new, "--pairs", "many"], 64),
                           ([self.old], 64),
                           ([self.old, os.path.join(self.tmp.name, "none")], 1),
                           ([self.old, empty, "--pairs", "1"], 1),
                           ([self.old, self.new, "--pairs", "1", "--ratio", "thing/1:x"], 1)):
            r = run(PYTHON, BENCH_AB, *args)
            self.assertEqual(r.returncode, code, f"{args}: {r.stderr.decode()}")
            lines = r.stderr.decode().strip().splitlines()
            self.assertEqual(len(lines), 1, f"{args}: {r.stderr.decode()}")
            self.assertTrue(lines[0].startswith("bench_ab.py: "), lines[0])


if __name__ == "__main__":
    unittest.main()
