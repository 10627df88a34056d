#!/usr/bin/env python3
"""The DPDK back end's lowest layer (net/dpdk/dpdk_port.h, net/dpdk/udp_frame.h) on a real DPDK data path:
two ringtail-dpdk-pingpong processes joined by a memif pair (shared memory over a Unix socket), one
echoing, one sending numbered, checksummed UDP frames and checking that every one came back intact.

  - memif: 20000 frames of 64 bytes, 32 in flight; 2000 frames of 1400 bytes, one at a time;
  - memif, the whole data channel (--mode channel-send / channel-recv: dpdk_link and
    datagram_transport): 100000 DATA frames, every one delivered in order; and with --queues 2,
    two lanes (a thread, a queue pair, a link and a transport each) of 50000 frames each; and
    with --queues 8 in EAL's 64 MiB, as many lanes as there are pools that fit, each delivering
    all of its frames;
  - af_packet on a veth pair whose ends sit in two network namespaces: 5000 frames of 64 bytes;
    the data channel with --queues 2 falls back to one queue pair (af_packet has no rte_flow to
    steer a lane's UDP port to its queue) and still delivers every frame (skipped, with the
    reason, where network namespaces cannot be made);
  - the probe (dpdk_usable) says yes with a port and no, exit 69, without one;
  - bad EAL arguments and a missing device: one line, exit 69.

EAL runs without hugepages (--no-huge -m 128; --in-memory cannot be combined with --no-huge in
DPDK 22.11), each process with its own --file-prefix (whose /var/run/dpdk folder tearDown removes),
no PCI scan, no telemetry socket, EAL logging at warning. The memif socket is abstract (the
default), so no socket file is left behind by a killed server.

Needs root and a build with DPDK. Without DPDK in the build, or not as root, the tests are skipped
with the reason on stderr, unless $RINGTAIL_REQUIRE_DPDK=1 (or $CI is set) says this environment
must run them: then they fail. Binaries come from $RINGTAIL_BIN_DIR (default
/work/main/build/bin): RINGTAIL_BIN_DIR=build/bin python3 tests/integration/test_dpdk_memif.py -v
"""
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import EX_UNAVAILABLE, ProcessTestCase, binary, procs  # noqa: E402

PINGPONG = "ringtail-dpdk-pingpong"
NO_DPDK_IN_BUILD = "this build has no DPDK"


def dpdk_required():
    return os.environ.get("RINGTAIL_REQUIRE_DPDK") == "1" or bool(os.environ.get("CI"))


def summary_fields(line):
    """`key=value` words of a summary line, as a dict of strings."""
    return dict(w.split("=", 1) for w in line.split() if "=" in w)


class DpdkMemifTest(ProcessTestCase):
    def setUp(self):
        super().setUp()
        self.bin = binary(PINGPONG)
        if os.geteuid() != 0:
            self.skip_or_fail("not root: DPDK's EAL needs root here (run the suite as root)")

    def skip_or_fail(self, reason):
        if dpdk_required():
            self.fail(f"{reason} ($RINGTAIL_REQUIRE_DPDK or $CI says DPDK must work here)")
        print(f"test_dpdk_memif: skipped: {reason}", file=sys.stderr, flush=True)
        self.skipTest(reason)

    def eal(self, role, lcore, vdev=None, memory_mb=128, lcores=None):
        # tearDown removes its runtime folder, which EAL leaves behind.
        prefix = self.group.dpdk_prefix(f"rt-it-{os.getpid()}-{role}")
        # Echo and sender poll on different cores where there are two (CI has two); lcore numbers
        # are CPU numbers, so pick from the CPUs this process may run on. `lcores`, a list of
        # CPUs, gives EAL all of them instead.
        cpus = sorted(os.sched_getaffinity(0))
        cpu = cpus[min(lcore, len(cpus) - 1)]
        listed = ",".join(map(str, lcores)) if lcores else str(cpu)
        return procs.eal_args(prefix, ["-l", listed], memory_mb, vdev)

    def require_dpdk_build(self):
        """Skips (or fails) when this build has no DPDK; any other probe failure fails."""
        r = subprocess.run([self.bin, "--mode", "probe", "--"] +
                           self.eal("probe", 0, "net_null0"),
                           capture_output=True, text=True, timeout=30)
        if r.returncode == EX_UNAVAILABLE and NO_DPDK_IN_BUILD in r.stderr:
            self.skip_or_fail("ringtail was built without DPDK (libdpdk-dev not found by CMake)")
        self.assertEqual(r.returncode, 0, f"probe with net_null0 failed:\n{r.stderr}")
        self.assertIn("probe: usable", r.stdout)

    def memif_vdev(self, role):
        # Abstract socket (socket-abstract=yes is the 22.11 default): a name, not a file.
        return f"net_memif0,role={role},id=0,socket=/ringtail-it-{os.getpid()}.sock"

    def start_echo(self, count, device, vdev, netns):
        """The echo side (the memif server), echoing `count` frames; returns once its port is
        open (a memif server listens from then on)."""
        return self.start_server(netns + [self.bin, "--mode", "echo", "--device", device,
                                          "--count", str(count), "--timeout", "25", "--"] +
                                 self.eal("echo", 1, vdev), "echo")

    def start_server(self, cmd, side):
        """Starts `cmd` and returns (process, its stderr lines so far) once its port is open."""
        proc = self.popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = queue.Queue()
        err = []

        def read():
            for line in proc.stderr:
                err.append(line)
                lines.put(line)
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + 15
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.fail(f"{side} side did not open its port within 15 s:\n" + "".join(err))
            if line is None:
                proc.wait(timeout=5)
                self.fail(f"{side} side exited {proc.returncode} before opening its port:\n" +
                          "".join(err))
            if "open, mac" in line:
                return proc, err

    def pingpong(self, count, payload_bytes, window, device="net_memif0", echo_vdev=None,
                 send_vdev=None, echo_netns=(), send_netns=(), foreign_frames=False):
        self.require_dpdk_build()
        echo_vdev = echo_vdev or self.memif_vdev("server")
        send_vdev = send_vdev or self.memif_vdev("client")
        echo, echo_err = self.start_echo(count, device, echo_vdev, list(echo_netns))
        send = subprocess.run(list(send_netns) +
                              [self.bin, "--mode", "send", "--device", device, "--count",
                               str(count), "--payload-bytes", str(payload_bytes), "--window",
                               str(window), "--timeout", "20", "--"] +
                              self.eal("send", 0, send_vdev),
                              capture_output=True, text=True, timeout=40)
        echo_out, _ = echo.communicate(timeout=30)
        context = (f"sender exit {send.returncode}\nsender stdout:\n{send.stdout}\nsender "
                   f"stderr:\n{send.stderr}\necho exit {echo.returncode}\necho stdout:\n"
                   f"{echo_out}\necho stderr:\n{''.join(echo_err)}")
        print(send.stdout.strip(), file=sys.stderr, flush=True)
        self.assertEqual(send.returncode, 0, context)
        line = next((l for l in send.stdout.splitlines() if l.startswith("send:")), None)
        self.assertIsNotNone(line, context)
        got = summary_fields(line)
        self.assertEqual(int(got["frames"]), count, context)
        self.assertEqual(int(got["received"]), count, context)
        for key in ("lost", "corrupt", "duplicate", "tx_dropped"):
            self.assertEqual(int(got[key]), 0, f"{key}: {context}")
        self.assertEqual(echo.returncode, 0, context)
        echoed = summary_fields(next(l for l in echo_out.splitlines() if l.startswith("echo:")))
        self.assertEqual(int(echoed["echoed"]), count, context)
        if not foreign_frames:
            # memif carries only our frames; a kernel interface also carries the kernel's own.
            self.assertEqual(int(got["rx_bad"]), 0, context)
            self.assertEqual(int(echoed["rx_bad"]), 0, context)
        return got

    def test_small_frames_with_a_window_all_come_back_intact(self):
        got = self.pingpong(20000, 64, 32)
        self.assertGreater(float(got["frames_per_s"]), 0)

    def test_large_frames_one_at_a_time_all_come_back_intact(self):
        got = self.pingpong(2000, 1400, 1)
        self.assertGreater(float(got["rtt_us_max"]), 0)

    def channel(self, frames, queues=1, device="net_memif0", send_vdev=None, recv_vdev=None,
                send_netns=(), recv_netns=(), foreign_frames=False, memory_mb=128, lcores=None):
        """Runs channel-send (started first: the memif server) and channel-recv with `queues`
        lanes asked, `frames` 64-byte frames (raised to 83) per lane, EAL given `memory_mb`, and
        checks that every lane delivered every frame in order. Returns (receiver fields, sender
        fields, receiver stderr, sender stderr, context)."""
        self.require_dpdk_build()
        sender, send_err = self.start_server(
            list(send_netns) +
            [self.bin, "--mode", "channel-send", "--device", device, "--frame-bytes", "64",
             "--frames", str(frames), "--queues", str(queues), "--timeout", "20", "--"] +
            self.eal("chsend", 1, send_vdev or self.memif_vdev("server"), memory_mb, lcores),
            "channel-send")
        recv = subprocess.run(list(recv_netns) +
                              [self.bin, "--mode", "channel-recv", "--device", device,
                               "--warmup", "0.1", "--queues", str(queues), "--timeout", "30",
                               "--"] +
                              self.eal("chrecv", 0, recv_vdev or self.memif_vdev("client"),
                                       memory_mb, lcores),
                              capture_output=True, text=True, timeout=60)
        send_out, _ = sender.communicate(timeout=30)
        context = (f"receiver exit {recv.returncode}\nreceiver stdout:\n{recv.stdout}\nreceiver "
                   f"stderr:\n{recv.stderr}\nsender exit {sender.returncode}\nsender stdout:\n"
                   f"{send_out}\nsender stderr:\n{''.join(send_err)}")
        print(recv.stdout.strip(), file=sys.stderr, flush=True)
        self.assertEqual(recv.returncode, 0, context)
        self.assertEqual(sender.returncode, 0, context)
        got = summary_fields(next(l for l in recv.stdout.splitlines()
                                  if l.startswith("channel-recv:")))
        sent = summary_fields(next(l for l in send_out.splitlines()
                                   if l.startswith("channel-send:")))
        lanes = int(got["queues"])
        self.assertEqual(int(sent["queues"]), lanes, context)
        for fields in (got, sent):
            self.assertEqual(int(fields["frames"]), lanes * frames, context)
            self.assertEqual(int(fields["messages"]), lanes * frames, context)
            # Every lane carried its own frames.
            for lane in range(lanes):
                self.assertEqual(int(fields[f"lane{lane}"]), frames, f"lane {lane}: {context}")
            self.assertNotIn(f"lane{lanes}", fields, context)
        self.assertEqual(int(got["sent_frames"]), lanes * frames, context)
        self.assertEqual(int(got["lost"]), 0, context)
        self.assertEqual(int(got["order_errors"]), 0, context)
        self.assertEqual(got["complete"], "yes", context)
        self.assertEqual(got["peer"], "left", context)  # every lane of the sender said goodbye
        self.assertEqual(int(got["bytes"]), 83 * lanes * frames, context)
        self.assertGreater(float(got["frames_per_s"]), 0, context)
        # Polls that delivered something each delivered at least one frame.
        delivering = int(got["polls"]) - int(got["empty_polls"])
        self.assertTrue(1 <= delivering <= lanes * frames, context)
        self.assertEqual(sent["acknowledged"], "yes", context)
        self.assertEqual((int(sent["frame_bytes"]), int(sent["frame_bytes_asked"])), (83, 64))
        self.assertIn("below the smallest data-channel frame", "".join(send_err), context)
        for fields in (got, sent):
            # go-back-N may resend, but nothing is damaged.
            self.assertEqual(int(fields["corrupt"]), 0, context)
            if not foreign_frames:
                # memif carries only our frames; a kernel interface also carries the kernel's own.
                self.assertEqual(int(fields["rx_bad"]), 0, context)
                self.assertEqual(int(fields["rx_foreign"]), 0, context)
        return got, sent, recv.stderr, "".join(send_err), context

    def test_data_channel_delivers_every_frame_in_order(self):
        """The channel modes: dpdk_port + dpdk_link + datagram_transport, worker 0 sending 64-byte
        frames (raised to the channel's smallest, 83) as fast as credit allows, worker 1 granting
        every message back at once; every frame arrives, in order, and both sides say so."""
        got, sent, _, _, context = self.channel(100000)
        self.assertEqual((int(got["queues"]), int(sent["queues"])), (1, 1), context)

    def test_data_channel_with_two_lanes_delivers_every_frame_of_each_in_order(self):
        """--queues 2 on both memif ends: two queue pairs, two lanes (one thread, link and
        transport each, lane i on queue pair i and UDP port 43210 + i); each lane delivers all of
        its frames, in order, and nothing arrives on the other lane's queue. EAL has two lcores
        (where this process may use two CPUs): lane i runs on lcore i's CPU, and says so."""
        cpus = sorted(os.sched_getaffinity(0))[:2]
        got, sent, recv_err, send_err, context = self.channel(50000, queues=2, lcores=cpus)
        self.assertEqual((int(got["queues"]), int(sent["queues"])), (2, 2), context)
        for err in (recv_err, send_err):
            self.assertRegex(err, r"info +DPDK: port net_memif0: 2 queue pairs, as asked "
                                  r"\(net_memif maps TX queue i to the peer's RX queue i\)",
                             context)
            self.assertNotIn("queue pair of the", err, context)
            if len(cpus) == 2:
                for lane, cpu in enumerate(cpus):
                    self.assertIn(f"ringtail-dpdk-pingpong: lane {lane} on CPU {cpu}\n", err,
                                  context)

    def test_data_channel_uses_the_queues_whose_pools_fit(self):
        """--queues 8 with EAL's 64 MiB (--no-huge -m 64), which holds the pools of fewer queue
        pairs: both ends use as many as fit, say so with the remedy, and every lane delivers all
        of its frames."""
        got, sent, recv_err, send_err, context = self.channel(5000, queues=8, memory_mb=64)
        lanes = int(got["queues"])
        self.assertGreaterEqual(lanes, 1, context)
        self.assertLess(lanes, 8, context)
        for err in (recv_err, send_err):
            self.assertRegex(err, r"info +DPDK: port net_memif0: 8 queues wanted, %d used: EAL "
                                  r"memory holds %d pools? of 4095 mbufs; give EAL more \(-m MB "
                                  r"with --no-huge, or hugepages\)" % (lanes, lanes), context)

    def veth_pair(self):
        """Two network namespaces joined by a veth pair (rtveth0 in the first, rtveth1 in the
        second), removed at cleanup; returns the `ip netns exec` prefixes. Skips where namespaces
        cannot be made."""
        ns_a, ns_b = f"rt-it-{os.getpid()}-a", f"rt-it-{os.getpid()}-b"
        if shutil.which("ip") is None:
            self.skip_or_fail("no `ip` command (iproute2) to make network namespaces")
        made = []
        self.addCleanup(lambda: [subprocess.run(["ip", "netns", "del", n],
                                                capture_output=True) for n in made])
        for n in (ns_a, ns_b):
            r = subprocess.run(["ip", "netns", "add", n], capture_output=True, text=True)
            if r.returncode != 0:
                self.skip_or_fail(f"cannot make a network namespace: {r.stderr.strip()}")
            made.append(n)
        # Deleting the namespaces deletes the veth pair with them.
        for cmd in (["ip", "link", "add", "rtveth0", "netns", ns_a, "type", "veth", "peer",
                     "name", "rtveth1", "netns", ns_b],
                    ["ip", "-n", ns_a, "link", "set", "rtveth0", "up"],
                    ["ip", "-n", ns_b, "link", "set", "rtveth1", "up"]):
            r = subprocess.run(cmd, capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, f"{' '.join(cmd)}: {r.stderr}")
        return ("ip", "netns", "exec", ns_a), ("ip", "netns", "exec", ns_b)

    def test_af_packet_on_a_veth_pair_all_come_back_intact(self):
        self.require_dpdk_build()
        in_a, in_b = self.veth_pair()
        got = self.pingpong(5000, 64, 32, device="net_af_packet0",
                            echo_vdev="net_af_packet0,iface=rtveth1",
                            send_vdev="net_af_packet0,iface=rtveth0",
                            echo_netns=in_b, send_netns=in_a, foreign_frames=True)
        self.assertGreater(float(got["frames_per_s"]), 0)

    def test_af_packet_data_channel_with_two_queues_falls_back_to_one(self):
        """--queues 2 on af_packet: with qpairs=2 the device has two queue pairs, but it has no
        rte_flow to steer a lane's UDP port to its queue, so each port says why in one info line
        and runs one queue pair; the tool runs one lane, and every frame arrives in order."""
        self.require_dpdk_build()
        in_a, in_b = self.veth_pair()
        # The sender broadcasts (no --dst-mac); the receiver's ACKs go to broadcast too.
        got, sent, recv_err, send_err, context = self.channel(
            5000, queues=2, device="net_af_packet0",
            send_vdev="net_af_packet0,iface=rtveth0,qpairs=2",
            recv_vdev="net_af_packet0,iface=rtveth1,qpairs=2",
            send_netns=in_a, recv_netns=in_b, foreign_frames=True)
        self.assertEqual((int(got["queues"]), int(sent["queues"])), (1, 1), context)
        for err in (recv_err, send_err):
            self.assertRegex(err, r"info +DPDK: port net_af_packet0: 2 queues wanted, 1 used: "
                                  r"net_af_packet cannot steer UDP ports to queues "
                                  r"\(rte_flow_validate for queue 0: .+\)", context)
            self.assertIn("net_af_packet0 has 1 queue pair of the 2 asked for: running 1 lane",
                          err, context)

    def test_probe_without_a_port_says_unusable(self):
        self.require_dpdk_build()
        r = subprocess.run([self.bin, "--mode", "probe", "--"] + self.eal("noport", 0),
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, EX_UNAVAILABLE, r.stderr)
        self.assertRegex(r.stderr.strip().splitlines()[-1],
                         r"^ringtail-dpdk-pingpong: DPDK: EAL started but no port is available")

    def test_bad_eal_arguments_and_missing_device_are_one_line_exit_69(self):
        self.require_dpdk_build()
        r = subprocess.run([self.bin, "--mode", "send", "--"] + self.eal("badarg", 0) +
                           ["--no-such-eal-option"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, EX_UNAVAILABLE, r.stderr)
        ours = [l for l in r.stderr.splitlines() if l.startswith("ringtail-dpdk-pingpong:")]
        self.assertEqual(len(ours), 1, r.stderr)
        self.assertRegex(ours[0], r"DPDK: EAL could not start \(.*\): ")

        r = subprocess.run([self.bin, "--mode", "send", "--device", "net_memif7", "--"] +
                           self.eal("nodev", 0), capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, EX_UNAVAILABLE, r.stderr)
        self.assertRegex(r.stderr.strip().splitlines()[-1],
                         r"^ringtail-dpdk-pingpong: DPDK: no port named net_memif7 .*--vdev")


if __name__ == "__main__":
    unittest.main()
