// The DPDK data channel in one thread, PMD included, against the least that moving a frame through
// the same ports costs: what scripts/perf/dpdk_frames.py compares (the channel against
// dpdk-testpmd txonly -> rxonly), without the second process and the second core, whose swings on
// a shared host (a third either way from one run to the next) hide a change of a tenth.
//
// Two net_memif ports of this process, a server and a client on one socket, joined as two hosts'
// ports would be; one thread works both ends in turn, so a figure is the sum of the sending and
// the receiving side's costs per frame (two processes on two cores run at the slower side's rate).
//
// dpdk_bare/<frame bytes>: 32 frames a round from port 0 to port 1, as testpmd's txonly and
// rxonly forward them: mbufs from the pool in one call, the Ethernet, IPv4 and UDP headers
// written from a template, one tx_burst; then one rx_burst and the frames freed in one call. The
// payload is left as the pool hands it over.
// dpdk_channel/<body bytes>: the data channel (net/dpdk/dpdk_link.h under
// net/channel/datagram_transport.h) from worker 0 on port 0 to worker 1 on port 1, one message a
// frame, 32 frames sent and then one poll of each side a round, as data_channel_bench does without
// the PMD. A body of 1 byte makes the channel's smallest frame, 83 bytes on the wire; 174 bytes a
// 256-byte frame; 1 400 bytes a 1 482-byte one, near the MTU, as the engine's frames are when they
// pack many messages. Compare dpdk_bare/83 with dpdk_channel/1, /256 with /174 and /1482 with
// /1400: the ratio of their frames/s is the share of this machine's ceiling the channel reaches,
// one side after the other.
//
// Needs what the channel needs: root (or the capabilities DPDK's EAL asks for), and a build with
// DPDK; otherwise every benchmark stops with the reason. RINGTAIL_BENCH_EAL replaces the EAL
// arguments (split at spaces); the default runs without hugepages.
#include <benchmark/benchmark.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "engine/clock.h"
#include "net/channel/datagram_transport.h"
#include "net/dpdk/dpdk_link.h"
#include "net/dpdk/dpdk_port.h"
#include "net/dpdk/udp_frame.h"
#include "perf/channel_rounds.h"

namespace {

using ringtail::peer_id;
using ringtail::net::datagram_transport;
using ringtail::net::dpdk_link;
using ringtail::net::dpdk_port;

constexpr std::uint16_t burst = 32;

// The two ports, opened and linked once for every benchmark; `error` says why not.
struct memif_pair {
    std::unique_ptr<dpdk_port> ports[2];
    std::string error;
};

std::vector<std::string> eal_args() {
    std::vector<std::string> args;
    if (const char* env = std::getenv("RINGTAIL_BENCH_EAL"); env != nullptr) {
        std::istringstream words(env);
        for (std::string w; words >> w;) {
            args.push_back(w);
        }
        return args;
    }
    // An abstract socket (memif's default) and EAL files of this process's own: runs of the
    // benchmark side by side do not meet.
    const std::string socket = "/ringtail-bench-" + std::to_string(::getpid()) + ".sock";
    return { "--no-huge",
             "-m",
             "256",
             "--no-pci",
             "--no-telemetry",
             "--file-prefix=ringtail-bench-" + std::to_string(::getpid()),
             "--log-level=lib.eal:warning",
             "--vdev=net_memif0,role=server,id=0,socket=" + socket,
             "--vdev=net_memif1,role=client,id=0,socket=" + socket };
}

memif_pair open_pair() {
    memif_pair p;
    if (auto s = ringtail::net::dpdk_eal::init(eal_args()); !s) {
        p.error = s.err().message;
        return p;
    }
    const char* names[2] = { "net_memif0", "net_memif1" };
    for (int i = 0; i < 2; ++i) {
        ringtail::net::dpdk_port_config config;
        config.device = names[i];
        auto port = dpdk_port::open(config);
        if (!port) {
            p.error = port.err().message;
            return p;
        }
        p.ports[i] = std::move(*port);
    }
    // The server first: a memif client connects once, to a server already started.
    for (auto& port : p.ports) {
        if (auto s = port->start(1); !s) {
            p.error = s.err().message;
            return p;
        }
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!p.ports[0]->link_up() || !p.ports[1]->link_up()) {
        if (std::chrono::steady_clock::now() > deadline) {
            p.error = "the two memif ports did not link up within 10 s";
            return p;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return p;
}

memif_pair& pair() {
    static memif_pair p = open_pair();
    return p;
}

// Frees whatever an earlier benchmark left in either port's RX queue (acks, goodbyes), so that
// no transport sees another's frames.
void drain(memif_pair& p) {
    std::array<rte_mbuf*, burst> got{};
    for (int quiet_rounds = 0; quiet_rounds < 1000;) {
        std::uint16_t n = 0;
        for (auto& port : p.ports) {
            const std::uint16_t k = port->rx_burst(0, got.data(), burst);
            dpdk_port::free_bulk(got.data(), k);
            n += k;
        }
        quiet_rounds = n == 0 ? quiet_rounds + 1 : 0;
    }
}

std::vector<ringtail::net::udp_endpoint> endpoints(const memif_pair& p) {
    return { ringtail::net::dpdk_endpoint(0, p.ports[0]->mac()),
             ringtail::net::dpdk_endpoint(1, p.ports[1]->mac()) };
}

// The pair with nothing left in its queues, or nullptr with the benchmark stopped by the reason
// there is none.
memif_pair* ready_pair(benchmark::State& state) {
    memif_pair& p = pair();
    if (!p.error.empty()) {
        state.SkipWithError(p.error.c_str());
        return nullptr;
    }
    drain(p);
    return &p;
}

void dpdk_bare(benchmark::State& state) {
    memif_pair* ready = ready_pair(state);
    if (ready == nullptr) {
        return;
    }
    memif_pair& p = *ready;
    const auto frame_bytes = static_cast<std::size_t>(state.range(0));
    const std::size_t payload = frame_bytes - ringtail::net::udp_frame_header_bytes;
    const auto ends = endpoints(p);
    const ringtail::net::udp_header_template header(ends[0], ends[1]);
    dpdk_port& tx = *p.ports[0];
    dpdk_port& rx = *p.ports[1];
    std::array<rte_mbuf*, burst> out{}, in{};
    std::uint64_t received = 0;
    for (auto _ : state) {
        std::uint16_t n = 0;
        if (tx.alloc_bulk(0, out.data(), burst)) {
            for (; n < burst; ++n) {
                auto room = dpdk_port::append(out[n], frame_bytes);
                header.write(room.first<ringtail::net::udp_frame_header_bytes>(), payload);
            }
        }
        const std::uint16_t sent = tx.tx_burst(0, out.data(), n);
        tx.drop(0, out.data() + sent, static_cast<std::uint16_t>(n - sent));
        const std::uint16_t got = rx.rx_burst(0, in.data(), burst);
        dpdk_port::free_bulk(in.data(), got);
        received += got;
    }
    if (received == 0) {
        state.SkipWithError("no frame arrived");
        return;
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(received));
}

void dpdk_channel(benchmark::State& state) {
    memif_pair* ready = ready_pair(state);
    if (ready == nullptr) {
        return;
    }
    memif_pair& p = *ready;
    const auto body_bytes = static_cast<std::size_t>(state.range(0));
    dpdk_link la(*p.ports[0], 0, endpoints(p));
    dpdk_link lb(*p.ports[1], 1, endpoints(p));
    datagram_transport a(la, 0), b(lb, 1);
    if (ringtail::perf::run_channel_rounds(state, a, b, body_bytes, 1000)) {
        state.counters["tx_full"] = static_cast<double>(la.counters().tx_full);
    }
}

BENCHMARK(dpdk_bare)->Arg(83)->Arg(256)->Arg(1482);
BENCHMARK(dpdk_channel)->Arg(1)->Arg(174)->Arg(1400);

// The TSC, as a worker reads it, before main() runs anything.
[[maybe_unused]] const bool clock_calibrated = (ringtail::clock::calibrate(), true);

} // namespace

BENCHMARK_MAIN();
