// ringtail-dpdk-pingpong: proves the DPDK back end's lowest layer (net/dpdk/dpdk_port.h and
// net/dpdk/udp_frame.h) on a real or virtual port: `send` transmits N UDP frames carrying a
// sequence number, a send time and a CRC-32C, keeps a window of them in flight and waits for each
// to come back; `echo` returns every valid frame to its sender. The sender prints one summary line
// (frames/s, round-trip percentiles, lost and corrupt counts) and exits 0 only when every frame
// came back intact (exit 1 otherwise). `probe` says whether EAL starts and a port is usable
// (dpdk_usable), exiting 0 or 69 with the reason. EAL arguments follow a literal `--`, as for the
// worker (CLI.md).
//
// `channel-send` and `channel-recv` measure the whole DPDK data channel instead: dpdk_port +
// dpdk_link + datagram_transport (CRC-32C, go-back-N, credit), worker 0 sending to worker 1.
// The sender sends DATA frames of --frame-bytes on the wire as fast as credit and the window
// allow, for --seconds or --frames; the receiver plays an engine that consumes at once (it grants
// every message back as it arrives) and counts what was delivered. At the end the sender waits
// for every frame to be acknowledged and sends one trailer frame with its totals, so the receiver
// can say whether everything arrived, in order. Each prints one summary line; the receiver's
// frames_per_s (delivered in order, after a warm-up) is the figure that counts
// (scripts/perf/dpdk_frames.py compares it with dpdk-testpmd). With --queues N the channel runs N
// lanes, lane i a thread of its own with its own dpdk_link on queue pair i and its own transport,
// each sending (receiving) --frames; the summary lines give the totals, the frames per lane
// (lane0=...) and queues=N, the lanes the port gave. Where EAL has more than one lcore (-l 2-5),
// lane i runs on the CPU of lcore i (wrapping), a core of its own as the engine's lanes have with
// --cpus; with one lcore every lane shares its CPU. The other modes use queue pair 0.
#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <pthread.h>
#include <sched.h>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include "cli/tools/tool_support.h"
#include "engine/big_endian.h"
#include "engine/clock.h"
#include "engine/detail/pin_thread.h"
#include "engine/transport.h"
#include "net/channel/crc32c.h"
#include "net/channel/data_codec.h"
#include "net/channel/datagram_transport.h"
#include "net/dpdk/dpdk_link.h"
#include "net/dpdk/dpdk_port.h"
#include "net/dpdk/udp_frame.h"

namespace {

namespace po = boost::program_options;
using ringtail::net::dpdk_port;
using ringtail::net::udp_endpoint;
using ringtail::tools::usage_error;

constexpr int exit_lost = 1; // the run worked but frames were lost or damaged
using ringtail::tools::exit_unavailable;
using ringtail::tools::exit_usage;

constexpr std::uint16_t burst_max = 32;
// Payload: [u64 seq][u64 send_ns][filler, byte i = (seq + i) mod 256][u32 crc32c of the rest].
constexpr std::size_t payload_min_bytes = 20;
// One mbuf's data room (RTE_MBUF_DEFAULT_DATAROOM) holds the headers and this much.
constexpr std::size_t payload_max_bytes = 1400;

[[noreturn]] void die(int code, std::string_view line) {
    ringtail::tools::die("ringtail-dpdk-pingpong", code, line);
}

enum class mode { send, echo, probe, channel_send, channel_recv };

struct options {
    mode run = mode::send;
    // Channel modes.
    std::size_t frame_bytes = 64; // asked for; raised to the smallest data-channel frame
    double seconds = 5;           // channel-send: how long to send (0: until --frames)
    std::uint64_t frames = 0;     // channel-send: frames to send at most (0: no limit)
    std::uint32_t messages_per_frame = 1;
    std::uint32_t batch = 32;     // channel-send: frames sent between two polls at most
    double warmup_s = 0.5;        // channel-recv: not measured, from the first frame
    std::uint16_t queues = 1;     // channel modes: lanes, one queue pair and thread each
    std::uint64_t count = 100000; // frames to send, or to echo before exiting (0: until signal)
    std::size_t payload_bytes = 64;
    std::uint32_t window = 32;
    std::string device;
    std::uint16_t port_id = 0;
    double timeout_s = 20;
    double link_timeout_s = 10;
    std::uint32_t stall_ms = 200;
    std::array<std::uint8_t, 6> dst_mac{ 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF };
    std::vector<std::string> eal_args;
};

template<typename T>
T parse_number(const std::string& text, std::string_view flag) {
    T v{};
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || end != text.data() + text.size()) {
        throw usage_error{ fmt::format("bad value '{}' for {}", text, flag) };
    }
    return v;
}

std::array<std::uint8_t, 6> parse_mac(const std::string& text) {
    std::array<std::uint8_t, 6> mac{};
    unsigned b[6];
    char tail = 0;
    if (std::sscanf(text.c_str(), "%x:%x:%x:%x:%x:%x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
                    &tail) != 6) {
        throw usage_error{ fmt::format("bad MAC '{}' for --dst-mac (want xx:xx:xx:xx:xx:xx)",
                                       text) };
    }
    for (int i = 0; i < 6; ++i) {
        if (b[i] > 0xFF) {
            throw usage_error{ fmt::format("bad MAC '{}' for --dst-mac", text) };
        }
        mac[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(b[i]);
    }
    return mac;
}

void parse_channel(const po::variables_map& vm, options& o) {
    if (vm.count("frame-bytes") != 0) {
        o.frame_bytes =
          parse_number<std::size_t>(vm["frame-bytes"].as<std::string>(), "--frame-bytes");
        if (o.frame_bytes == 0 || o.frame_bytes > 9000) {
            throw usage_error{ "--frame-bytes must be 1..9000 (and fit one datagram)" };
        }
    }
    if (vm.count("frames") != 0) {
        o.frames = parse_number<std::uint64_t>(vm["frames"].as<std::string>(), "--frames");
        o.seconds = 0; // unless --seconds says otherwise: whichever comes first
    }
    if (vm.count("seconds") != 0) {
        o.seconds = parse_number<double>(vm["seconds"].as<std::string>(), "--seconds");
    }
    if (!(o.seconds >= 0) || (o.seconds == 0 && o.frames == 0)) {
        throw usage_error{ "--seconds must be above 0, or 0 with --frames" };
    }
    if (vm.count("messages-per-frame") != 0) {
        o.messages_per_frame = parse_number<std::uint32_t>(
          vm["messages-per-frame"].as<std::string>(), "--messages-per-frame");
        if (o.messages_per_frame == 0 || o.messages_per_frame > 4096) {
            throw usage_error{ "--messages-per-frame must be 1..4096" };
        }
    }
    if (vm.count("batch") != 0) {
        o.batch = parse_number<std::uint32_t>(vm["batch"].as<std::string>(), "--batch");
        if (o.batch == 0 || o.batch > 4096) {
            throw usage_error{ "--batch must be 1..4096" };
        }
    }
    if (vm.count("queues") != 0) {
        o.queues = parse_number<std::uint16_t>(vm["queues"].as<std::string>(), "--queues");
        if (o.queues == 0) {
            throw usage_error{ "--queues must be 1 or more" };
        }
        if (o.run != mode::channel_send && o.run != mode::channel_recv) {
            throw usage_error{ "--queues is for --mode channel-send and channel-recv" };
        }
    }
    if (vm.count("warmup") != 0) {
        o.warmup_s = parse_number<double>(vm["warmup"].as<std::string>(), "--warmup");
        if (!(o.warmup_s >= 0)) {
            throw usage_error{ "--warmup must be 0 or more" };
        }
    }
}

options parse(int argc, char** argv) {
    options o;
    int own_argc = argc;
    for (int i = 1; i < argc; ++i) {
        if (std::string_view(argv[i]) == "--") {
            own_argc = i;
            o.eal_args.assign(argv + i + 1, argv + argc);
            break;
        }
    }
    po::options_description desc("options (EAL arguments follow a literal --)");
    desc.add_options()("help", "print this help and exit")(
      "mode", po::value<std::string>()->required(),
      "send | echo | probe | channel-send | channel-recv")(
      "count", po::value<std::string>(),
      "send: frames to send (default 100000); echo: frames to echo before exiting (0: until "
      "SIGINT/SIGTERM)")("payload-bytes", po::value<std::string>(),
                         "send: UDP payload bytes, 20..1400 (default 64)")(
      "window", po::value<std::string>(), "send: frames in flight at most (default 32)")(
      "device", po::value<std::string>(), "ethdev name, e.g. net_memif0 (default: --port)")(
      "port", po::value<std::string>(), "DPDK port number (default 0)")(
      "dst-mac", po::value<std::string>(), "send, channel-*: the peer's MAC (default broadcast)")(
      "timeout", po::value<std::string>(),
      "give up after this many seconds (default 20; channel-recv: the whole run; channel-send: "
      "the sending, with --frames alone)")("link-timeout", po::value<std::string>(),
                                           "wait this long for the link (default 10)")(
      "stall-ms", po::value<std::string>(),
      "send: declare frames in flight lost after this long without a reply (default 200)")(
      "frame-bytes", po::value<std::string>(),
      "channel-send: Ethernet frame bytes without FCS, headers included (default 64; raised to "
      "the smallest data-channel frame, 83)")(
      "seconds", po::value<std::string>(),
      "channel-send: send for this long (default 5; 0 with --frames: until that many)")(
      "frames", po::value<std::string>(), "channel-send: stop after this many frames")(
      "messages-per-frame", po::value<std::string>(),
      "channel-send: the message count of each frame, taken from the credit (default 1)")(
      "batch", po::value<std::string>(),
      "channel-send: frames sent between two polls of the transport at most (default 32)")(
      "warmup", po::value<std::string>(),
      "channel-recv: seconds after the first frame not measured (default 0.5)")(
      "queues", po::value<std::string>(),
      "channel-*: lanes, each on its own queue pair of the port and its own thread, each sending "
      "or receiving --frames (default 1; fewer when the port gives fewer)");
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(own_argc, argv).options(desc).run(), vm);
        if (vm.count("help") != 0) {
            fmt::print("usage: ringtail-dpdk-pingpong --mode "
                       "send|echo|probe|channel-send|channel-recv [options] -- <EAL args>\n");
            fmt::print("{}", ringtail::tools::options_text(desc));
            std::exit(0);
        }
        po::notify(vm);
    } catch (const po::error& e) {
        throw usage_error{ e.what() };
    }
    const std::string mode = vm["mode"].as<std::string>();
    if (mode == "send") {
        o.run = mode::send;
    } else if (mode == "echo") {
        o.run = mode::echo;
    } else if (mode == "probe") {
        o.run = mode::probe;
    } else if (mode == "channel-send") {
        o.run = mode::channel_send;
    } else if (mode == "channel-recv") {
        o.run = mode::channel_recv;
    } else {
        throw usage_error{ fmt::format(
          "bad value '{}' for --mode (want send, echo, probe, channel-send or channel-recv)",
          mode) };
    }
    if (vm.count("count") != 0) {
        o.count = parse_number<std::uint64_t>(vm["count"].as<std::string>(), "--count");
    } else if (o.run == mode::echo) {
        o.count = 0;
    }
    if (vm.count("payload-bytes") != 0) {
        o.payload_bytes =
          parse_number<std::size_t>(vm["payload-bytes"].as<std::string>(), "--payload-bytes");
        if (o.payload_bytes < payload_min_bytes || o.payload_bytes > payload_max_bytes) {
            throw usage_error{ fmt::format("--payload-bytes must be {}..{}", payload_min_bytes,
                                           payload_max_bytes) };
        }
    }
    if (vm.count("window") != 0) {
        o.window = parse_number<std::uint32_t>(vm["window"].as<std::string>(), "--window");
        if (o.window == 0 || o.window > 1024) {
            throw usage_error{ "--window must be 1..1024" };
        }
    }
    if (vm.count("device") != 0) {
        o.device = vm["device"].as<std::string>();
    }
    if (vm.count("port") != 0) {
        o.port_id = parse_number<std::uint16_t>(vm["port"].as<std::string>(), "--port");
    }
    if (vm.count("dst-mac") != 0) {
        o.dst_mac = parse_mac(vm["dst-mac"].as<std::string>());
    }
    if (vm.count("timeout") != 0) {
        o.timeout_s = parse_number<double>(vm["timeout"].as<std::string>(), "--timeout");
    }
    if (vm.count("link-timeout") != 0) {
        o.link_timeout_s =
          parse_number<double>(vm["link-timeout"].as<std::string>(), "--link-timeout");
    }
    if (vm.count("stall-ms") != 0) {
        o.stall_ms = parse_number<std::uint32_t>(vm["stall-ms"].as<std::string>(), "--stall-ms");
    }
    parse_channel(vm, o);
    return o;
}

std::uint64_t now_ns() {
    return ringtail::clock::monotonic_ns();
}

void put64(std::byte* p, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) {
        p[i] = static_cast<std::byte>(v >> (56 - 8 * i));
    }
}

void fill_payload(std::span<std::byte> p, std::uint64_t seq, std::uint64_t send_ns) {
    put64(p.data(), seq);
    put64(p.data() + 8, send_ns);
    const std::size_t crc_at = p.size() - 4;
    for (std::size_t i = 16; i < crc_at; ++i) {
        p[i] = static_cast<std::byte>((seq + i) & 0xFF);
    }
    const std::uint32_t crc = ringtail::net::crc32c(p.first(crc_at));
    for (int i = 0; i < 4; ++i) {
        p[crc_at + static_cast<std::size_t>(i)] = static_cast<std::byte>(crc >> (24 - 8 * i));
    }
}

// The sequence number and send time of an intact payload of the expected size.
std::optional<std::pair<std::uint64_t, std::uint64_t>> check_payload(std::span<const std::byte> p,
                                                                     std::size_t expected_bytes) {
    if (p.size() != expected_bytes) {
        return std::nullopt;
    }
    const std::size_t crc_at = p.size() - 4;
    if (ringtail::be::read<std::uint32_t>(p.data() + crc_at) !=
        ringtail::net::crc32c(p.first(crc_at))) {
        return std::nullopt;
    }
    const auto seq = ringtail::be::read<std::uint64_t>(p.data());
    for (std::size_t i = 16; i < crc_at; ++i) {
        if (p[i] != static_cast<std::byte>((seq + i) & 0xFF)) {
            return std::nullopt;
        }
    }
    return std::pair{ seq, ringtail::be::read<std::uint64_t>(p.data() + 8) };
}

std::string mac_text(const std::array<std::uint8_t, 6>& m) {
    return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4],
                       m[5]);
}

// The port's counters, summed over its queues.
std::string counters_text(const dpdk_port& port) {
    const auto c = port.counters();
    return fmt::format("rx={} tx={} tx_dropped={} rx_bad={} alloc_failed={}", c.rx, c.tx,
                       c.tx_dropped, c.rx_bad, c.alloc_failed);
}

void wait_for_link(const dpdk_port& port, double timeout_s) {
    const std::uint64_t deadline = now_ns() + static_cast<std::uint64_t>(timeout_s * 1e9);
    while (!port.link_up()) {
        if (ringtail::tools::stop_requested != 0) {
            std::exit(0);
        }
        if (now_ns() >= deadline) {
            die(exit_unavailable, fmt::format("port {}: link still down after {} s: is the peer "
                                              "running (memif: the other role, same socket)?",
                                              port.name(), timeout_s));
        }
        ::usleep(1000);
    }
}

// Waits until the port's link is down, `timeout_s` passed or a stop signal came.
void wait_for_link_down(const dpdk_port& port, double timeout_s) {
    const std::uint64_t deadline = now_ns() + static_cast<std::uint64_t>(timeout_s * 1e9);
    while (!port.wait_link_down(0.05) && now_ns() < deadline &&
           ringtail::tools::stop_requested == 0) {
    }
}

// Returns each valid frame to where it came from, rewriting only the headers.
int run_echo(const options& o, dpdk_port& port) {
    rte_mbuf* burst[burst_max];
    std::uint64_t echoed = 0;
    const std::uint64_t deadline = now_ns() + static_cast<std::uint64_t>(o.timeout_s * 1e9);
    while (ringtail::tools::stop_requested == 0 && (o.count == 0 || echoed < o.count)) {
        if (o.timeout_s > 0 && now_ns() >= deadline) {
            break;
        }
        const std::uint16_t n = port.rx_burst(0, burst, burst_max);
        std::uint16_t keep = 0;
        for (std::uint16_t i = 0; i < n; ++i) {
            auto bytes = dpdk_port::data(burst[i]);
            auto frame = ringtail::net::parse_udp_frame(bytes);
            if (!frame) {
                port.count_rx_bad(0);
                dpdk_port::free(burst[i]);
                continue;
            }
            // The payload stays where it is; the headers are rewritten in front of it, and any
            // Ethernet padding after it is cut off.
            ringtail::net::write_udp_headers(bytes.first<ringtail::net::udp_frame_header_bytes>(),
                                             frame->dst, frame->src, frame->payload.size());
            burst[keep++] = burst[i];
        }
        std::uint16_t sent = 0;
        // The peer polls too, so the TX ring drains; a few tries, then drop (counted).
        for (int tries = 0; sent < keep && tries < 1000; ++tries) {
            sent += port.tx_burst(0, burst + sent, static_cast<std::uint16_t>(keep - sent));
        }
        port.drop(0, burst + sent, static_cast<std::uint16_t>(keep - sent));
        echoed += sent;
    }
    // Let the sender hang up first: when both memif ends close at once, the PMD's interrupt
    // thread and our close can both tear the connection down, and EAL then logs "Error: Invalid
    // memory" (seen once in DPDK 22.11). Bounded: a sender that stays is not waited for long.
    wait_for_link_down(port, 2);
    ::usleep(20000);
    fmt::print("echo: echoed={} {}\n", echoed, counters_text(port));
    return 0;
}

int run_send(const options& o, dpdk_port& port) {
    const udp_endpoint me{ port.mac(), 0x0A000001, 40000 };  // 10.0.0.1
    const udp_endpoint peer{ o.dst_mac, 0x0A000002, 40001 }; // 10.0.0.2
    std::vector<std::uint8_t> seen(o.count, 0);
    std::vector<std::uint64_t> rtt_ns;
    rtt_ns.reserve(o.count);
    std::uint64_t next = 0, received = 0, corrupt = 0, duplicate = 0, given_up = 0;
    std::uint64_t in_flight = 0;
    rte_mbuf* tx[burst_max];
    std::uint16_t tx_pending = 0;
    rte_mbuf* rx[burst_max];
    const std::size_t frame_bytes = ringtail::net::udp_frame_bytes(o.payload_bytes);

    const std::uint64_t start = now_ns();
    const std::uint64_t deadline = start + static_cast<std::uint64_t>(o.timeout_s * 1e9);
    std::uint64_t last_progress = start;
    while (received < o.count && ringtail::tools::stop_requested == 0) {
        const std::uint64_t now = now_ns();
        if (now >= deadline) {
            break;
        }
        // Top the window up; frames the device did not take stay pending, in order.
        while (tx_pending < burst_max && in_flight + tx_pending < o.window && next < o.count) {
            rte_mbuf* m = port.alloc(0);
            if (m == nullptr) {
                break;
            }
            auto bytes = dpdk_port::append(m, frame_bytes);
            auto payload = bytes.subspan(ringtail::net::udp_frame_header_bytes);
            fill_payload(payload, next, now);
            ringtail::net::build_udp_frame(bytes, me, peer, payload);
            tx[tx_pending++] = m;
            ++next;
        }
        if (tx_pending > 0) {
            const std::uint16_t sent = port.tx_burst(0, tx, tx_pending);
            std::copy(tx + sent, tx + tx_pending, tx);
            tx_pending = static_cast<std::uint16_t>(tx_pending - sent);
            in_flight += sent;
        }
        const std::uint16_t n = port.rx_burst(0, rx, burst_max);
        const std::uint64_t rx_ns = n > 0 ? now_ns() : now;
        for (std::uint16_t i = 0; i < n; ++i) {
            auto frame = ringtail::net::parse_udp_frame(dpdk_port::data(rx[i]));
            auto got = frame ? check_payload(frame->payload, o.payload_bytes) : std::nullopt;
            if (!frame) {
                port.count_rx_bad(0);
            } else if (!got || got->first >= o.count) {
                ++corrupt;
            } else if (seen[got->first] != 0) {
                ++duplicate;
            } else {
                seen[got->first] = 1;
                ++received;
                rtt_ns.push_back(rx_ns - got->second);
                in_flight = in_flight > 0 ? in_flight - 1 : 0;
                last_progress = rx_ns;
            }
            dpdk_port::free(rx[i]);
        }
        // A frame lost on the way would hold its window slot forever: after a stall, forget
        // what is in flight (late arrivals still count as received).
        if (in_flight > 0 && rx_ns - last_progress > std::uint64_t{ o.stall_ms } * 1'000'000) {
            given_up += in_flight;
            in_flight = 0;
            last_progress = rx_ns;
        }
    }
    const double elapsed_s = static_cast<double>(now_ns() - start) / 1e9;
    port.drop(0, tx, tx_pending);
    std::sort(rtt_ns.begin(), rtt_ns.end());
    auto pct_us = [&](double q) {
        if (rtt_ns.empty()) {
            return 0.0;
        }
        auto i = static_cast<std::size_t>(q * static_cast<double>(rtt_ns.size() - 1));
        return static_cast<double>(rtt_ns[i]) / 1e3;
    };
    const std::uint64_t lost = o.count - received;
    fmt::print("send: frames={} received={} lost={} corrupt={} duplicate={} given_up={} "
               "payload_bytes={} window={} seconds={:.3f} frames_per_s={:.0f} rtt_us_p50={:.1f} "
               "rtt_us_p90={:.1f} rtt_us_p99={:.1f} rtt_us_p999={:.1f} rtt_us_max={:.1f} {}\n",
               o.count, received, lost, corrupt, duplicate, given_up, o.payload_bytes, o.window,
               elapsed_s, static_cast<double>(received) / elapsed_s, pct_us(0.5), pct_us(0.9),
               pct_us(0.99), pct_us(0.999), pct_us(1.0), counters_text(port));
    // rx_bad is reported, not judged: a port on a kernel interface (af_packet on a veth) also
    // receives the kernel's own frames (IPv6 router solicitations, ARP), which are not ours.
    return lost == 0 && corrupt == 0 ? 0 : exit_lost;
}

// --- The data channel: channel-send and channel-recv ---------------------------------------------

using ringtail::peer_id;
using ringtail::net::datagram_transport;

// The transport's clock: the TSC once calibrated (main), as in a worker; a few ns a read.
std::uint64_t channel_now_ns() {
    return ringtail::clock::now_ns();
}

constexpr peer_id channel_sender = 0;
constexpr peer_id channel_receiver = 1;
// Every byte of a channel frame on the wire but its body: Ethernet, IPv4, UDP, the data-channel
// header, and the ACK trailer that every DATA frame carries.
constexpr std::size_t channel_header_bytes = ringtail::net::udp_frame_header_bytes +
                                             ringtail::net::data_frame_header_bytes +
                                             ringtail::net::data_ack_trailer_bytes;
// A DATA frame's body is never empty.
constexpr std::size_t channel_frame_min_bytes = channel_header_bytes + 1;
// The body of frame i is bytes (i + j) mod 256, j = 0, 1, ...; the receiver checks the first and
// the last, which says whether frames came in order (modulo 256 with a 1-byte body) at almost no
// cost per frame: the transport's CRC-32C already vouches for the bytes in between.
// The last frame is a trailer instead: this magic, then [u64 frames][u64 messages] sent before
// it, big-endian. No body of the pattern starts with the magic, whose bytes are not consecutive.
constexpr std::array<char, 8> trailer_magic{ 'R', 'T', 'C', 'H', 'E', 'N', 'D', '!' };
constexpr std::size_t trailer_bytes = 24;
// How long the end of a run may take: every frame acknowledged, the trailer, the goodbye. Longer
// than the transport takes to give up on a silent peer (about 3 s), so it decides first.
constexpr std::uint64_t settle_ns = 5'000'000'000ull;

std::vector<ringtail::net::udp_endpoint> channel_endpoints(const dpdk_port& port, const options& o,
                                                           peer_id self) {
    const peer_id other = self == channel_sender ? channel_receiver : channel_sender;
    std::vector<udp_endpoint> endpoints(2);
    endpoints[self] = ringtail::net::dpdk_endpoint(self, port.mac());
    endpoints[other] = ringtail::net::dpdk_endpoint(other, o.dst_mac);
    return endpoints;
}

// The counters the summary lines print, summed over the lanes.
struct channel_counters {
    ringtail::net::datagram_transport_counters transport;
    ringtail::net::dpdk_link_counters link;

    void add(const datagram_transport& t, const ringtail::net::dpdk_link& l) {
        transport += t.counters();
        add_link(l.counters());
    }
    void add(const channel_counters& o) {
        transport += o.transport;
        add_link(o.link);
    }
    void add_link(const ringtail::net::dpdk_link_counters& o) {
        link.tx_no_mbuf += o.tx_no_mbuf;
        link.tx_full += o.tx_full;
        link.rx_foreign += o.rx_foreign;
    }
    std::string text() const {
        const auto& c = transport;
        return fmt::format("retransmissions={} fast_retransmissions={} spurious_timeouts={} "
                           "corrupt={} out_of_order={} duplicates={} credit_violations={} "
                           "acks_in={} acks_out={} peers_lost={} tx_no_mbuf={} tx_full={} "
                           "rx_foreign={}",
                           c.retransmissions, c.fast_retransmissions, c.spurious_timeouts,
                           c.corrupt_frames, c.out_of_order, c.duplicates, c.credit_violations,
                           c.acks_in, c.acks_out, c.peers_lost, link.tx_no_mbuf, link.tx_full,
                           link.rx_foreign);
    }
};

// How the peer ended, in one word for the summary line ("left": it said goodbye); the whole
// reason goes to stderr when it is not that.
std::string peer_word(bool lost, const std::string& reason, std::uint16_t lane) {
    if (!lost) {
        return "alive";
    }
    if (reason == "left the cluster") {
        return "left";
    }
    fmt::print(stderr, "ringtail-dpdk-pingpong: lane {}: the peer was lost: {}\n", lane, reason);
    return reason.starts_with("unreachable") ? "unreachable" : "lost";
}

// The lanes' words: one when they agree, else each lane's, comma-separated in lane order.
std::string peer_words(const std::vector<std::string>& words) {
    if (std::all_of(words.begin(), words.end(), [&](const auto& w) { return w == words[0]; })) {
        return words[0];
    }
    std::string all;
    for (const auto& w : words) {
        all += (all.empty() ? "" : ",") + w;
    }
    return all;
}

// "queues=N lane0=F0 lane1=F1 ...": frames per lane.
template<typename Lanes>
std::string lanes_text(const Lanes& lanes) {
    std::string text = fmt::format("queues={}", lanes.size());
    for (std::size_t i = 0; i < lanes.size(); ++i) {
        text += fmt::format(" lane{}={}", i, lanes[i].frames);
    }
    return text;
}

double mbps(std::uint64_t bytes, double seconds) {
    return seconds > 0 ? static_cast<double>(bytes) * 8 / seconds / 1e6 : 0;
}

// What the sender hears back: nothing but the loss of its peer (ACKs are the transport's).
struct sender_events final : ringtail::transport_events {
    void on_messages(peer_id, std::span<const std::byte>, std::uint32_t) override { ++unexpected; }
    void on_peer_lost(peer_id, const std::string& reason) override {
        lost = true;
        lost_reason = reason;
    }
    std::uint64_t unexpected = 0;
    bool lost = false;
    std::string lost_reason;
};

// After the goodbye: no more polling until the receiver has closed its end. A memif port whose
// peer goes away is torn down by the PMD's interrupt thread, and an rx_burst or tx_burst running
// meanwhile can touch memory being unmapped (seen as a crash of the receiver when it polled while
// the sender closed; DPDK 22.11). So the receiver closes first, as soon as it has the goodbye,
// while the sender does nothing but wait here; then the sender closes. Bounded: a receiver that
// missed every goodbye gives up on its own (the transport's silence timeout).
void wait_for_hang_up(const dpdk_port& port) {
    wait_for_link_down(port, static_cast<double>(settle_ns) / 1e9);
    ::usleep(20000);
}

// Polls `t` until `done()` or the peer is lost or settle_ns passed; false on the last two.
template<typename Done>
bool settle(datagram_transport& t, sender_events& events, Done&& done) {
    const std::uint64_t deadline = channel_now_ns() + settle_ns;
    while (!done()) {
        if (events.lost || channel_now_ns() >= deadline) {
            return false;
        }
        t.poll(events);
    }
    return !events.lost;
}

// One sending lane's outcome, written by its thread.
struct send_lane {
    std::uint64_t frames = 0, turns = 0, blocked_turns = 0, unexpected = 0;
    std::uint64_t end_ns = 0; // when it stopped sending, before the settling
    bool acknowledged = false;
    std::string peer;
    channel_counters counters;
};

// Lane `queue` on the CPU of EAL's lcore `queue` (wrapping), where EAL has more than one; one
// line says so once the thread runs there alone (pin_thread warns when it cannot).
void pin_lane(std::uint16_t queue) {
    const std::vector<unsigned> cpus = ringtail::net::dpdk_eal::lcore_cpus();
    if (cpus.size() <= 1) {
        return;
    }
    const unsigned cpu = cpus[queue % cpus.size()];
    ringtail::detail::pin_thread(static_cast<int>(cpu), fmt::format("lane {}", queue));
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::pthread_getaffinity_np(::pthread_self(), sizeof set, &set) == 0 && CPU_COUNT(&set) == 1 &&
        CPU_ISSET(cpu, &set)) {
        fmt::print(stderr, "ringtail-dpdk-pingpong: lane {} on CPU {}\n", queue, cpu);
    }
}

// Lane `queue` of the sender: its own link on queue pair `queue` and its own transport.
void run_send_lane(const options& o, dpdk_port& port, std::uint16_t queue, std::size_t frame_bytes,
                   std::uint64_t start, send_lane& out) {
    pin_lane(queue);
    ringtail::net::dpdk_link link(port, channel_sender, channel_endpoints(port, o, channel_sender),
                                  queue);
    const std::size_t body_bytes = frame_bytes - channel_header_bytes;
    std::vector<std::byte> pattern(body_bytes + 256);
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        pattern[i] = static_cast<std::byte>(i & 0xFF);
    }
    datagram_transport t(link, channel_sender);
    sender_events events;
    const std::uint32_t k = o.messages_per_frame;
    const std::uint64_t limit = o.frames == 0 ? ~std::uint64_t{ 0 } : o.frames;
    // --frames alone is bounded by --timeout.
    const std::uint64_t end =
      start + static_cast<std::uint64_t>((o.seconds > 0 ? o.seconds : o.timeout_s) * 1e9);
    std::uint64_t sent = 0, turns = 0, blocked_turns = 0;
    // The engine's exchange loop, reduced to one peer that always has messages to send: send
    // within credit (at most a batch), then poll. A turn that could send nothing was held back
    // by the window or the credit: their share says whether the sender or the protocol limits.
    while (sent < limit && !events.lost && ringtail::tools::stop_requested == 0) {
        if (channel_now_ns() >= end) {
            break;
        }
        std::uint32_t n = 0;
        for (; n < o.batch && sent < limit && t.credit(channel_receiver) >= k; ++n, ++sent) {
            t.send(channel_receiver, std::span(pattern).subspan(sent & 0xFF, body_bytes), k);
        }
        ++turns;
        blocked_turns += n == 0 ? 1 : 0;
        t.poll(events);
    }
    out.end_ns = channel_now_ns();
    // Every frame acknowledged, then the trailer, acknowledged too, then goodbye.
    bool ok = settle(t, events, [&] { return t.pending_bytes() == 0; }) &&
              settle(t, events, [&] { return t.credit(channel_receiver) >= 1; });
    if (ok) {
        std::array<std::byte, trailer_bytes> trailer{};
        std::memcpy(trailer.data(), trailer_magic.data(), trailer_magic.size());
        ringtail::be::write<std::uint64_t>(trailer.data() + 8, sent);
        ringtail::be::write<std::uint64_t>(trailer.data() + 16, sent * k);
        t.send(channel_receiver, trailer, 1);
        ok = settle(t, events, [&] { return t.pending_bytes() == 0; });
    }
    t.say_goodbye();
    out.frames = sent;
    out.turns = turns;
    out.blocked_turns = blocked_turns;
    out.unexpected = events.unexpected;
    out.acknowledged = ok;
    out.peer = peer_word(events.lost, events.lost_reason, queue);
    out.counters.add(t, link);
}

int run_channel_send(const options& o, dpdk_port& port) {
    // One datagram per frame: a body the transport would cut into fragments is not what is asked.
    const std::size_t frame_max_bytes =
      ringtail::net::udp_frame_header_bytes +
      ringtail::net::dpdk_link(port, channel_sender, channel_endpoints(port, o, channel_sender))
        .max_datagram_bytes();
    if (o.frame_bytes > frame_max_bytes) {
        die(exit_usage, fmt::format("--frame-bytes {} is more than one datagram of this link "
                                    "carries ({} bytes)",
                                    o.frame_bytes, frame_max_bytes));
    }
    const std::size_t frame_bytes = std::max(o.frame_bytes, channel_frame_min_bytes);
    if (frame_bytes != o.frame_bytes) {
        fmt::print(stderr,
                   "ringtail-dpdk-pingpong: --frame-bytes {} is below the smallest data-channel "
                   "frame ({} bytes: {} of headers and trailer and a 1-byte body): sending "
                   "{}-byte frames\n",
                   o.frame_bytes, channel_frame_min_bytes, channel_header_bytes, frame_bytes);
    }
    std::vector<send_lane> lanes(port.queues());
    const std::uint64_t start = channel_now_ns();
    {
        std::vector<std::jthread> threads;
        for (std::uint16_t q = 0; q < port.queues(); ++q) {
            threads.emplace_back(
              [&, q] { run_send_lane(o, port, q, frame_bytes, start, lanes[q]); });
        }
    }
    // Every lane said goodbye and polls no more.
    wait_for_hang_up(port);
    std::uint64_t sent = 0, turns = 0, blocked_turns = 0, unexpected = 0, end_ns = start;
    bool ok = true;
    channel_counters counters;
    std::vector<std::string> peers;
    for (const auto& lane : lanes) {
        sent += lane.frames;
        turns += lane.turns;
        blocked_turns += lane.blocked_turns;
        unexpected += lane.unexpected;
        end_ns = std::max(end_ns, lane.end_ns);
        ok = ok && lane.acknowledged;
        counters.add(lane.counters);
        peers.push_back(lane.peer);
    }
    const std::uint32_t k = o.messages_per_frame;
    const double send_s = static_cast<double>(end_ns - start) / 1e9;
    fmt::print("channel-send: frames={} messages={} frame_bytes={} frame_bytes_asked={} "
               "messages_per_frame={} batch={} seconds={:.3f} frames_per_s={:.0f} mbps={:.1f} "
               "blocked_turns={} turns={} acknowledged={} peer={} {} {} {}\n",
               sent, sent * k, frame_bytes, o.frame_bytes, k, o.batch, send_s,
               send_s > 0 ? static_cast<double>(sent) / send_s : 0.0,
               mbps(sent * frame_bytes, send_s), blocked_turns, turns, ok ? "yes" : "no",
               peer_words(peers), counters.text(), counters_text(port), lanes_text(lanes));
    return ok && unexpected == 0 ? 0 : exit_lost;
}

// The receiving worker's engine, reduced to one that consumes every message at once: each is
// granted back as it arrives, so credit never holds the sender back.
struct receiver_events final : ringtail::transport_events {
    explicit receiver_events(datagram_transport& transport)
      : t(transport) {}

    void on_messages(peer_id peer, std::span<const std::byte> body, std::uint32_t count) override {
        t.grant(peer, count);
        if (body.size() == trailer_bytes &&
            std::memcmp(body.data(), trailer_magic.data(), trailer_magic.size()) == 0) {
            trailer = true;
            sent_frames = ringtail::be::read<std::uint64_t>(body.data() + 8);
            sent_messages = ringtail::be::read<std::uint64_t>(body.data() + 16);
            return;
        }
        if (trailer || body.front() != static_cast<std::byte>(frames & 0xFF) ||
            body.back() != static_cast<std::byte>((frames + body.size() - 1) & 0xFF)) {
            ++order_errors;
        }
        if (frames == 0) {
            first_ns = now;
        }
        ++frames;
        messages += count;
        bytes += channel_header_bytes + body.size();
        last_ns = now;
    }
    void on_peer_lost(peer_id, const std::string& reason) override {
        lost = true;
        lost_reason = reason;
    }

    datagram_transport& t;
    std::uint64_t now = 0; // when the current poll started: the arrival time of its frames
    std::uint64_t frames = 0, messages = 0, bytes = 0, order_errors = 0;
    std::uint64_t first_ns = 0, last_ns = 0;
    bool trailer = false;
    std::uint64_t sent_frames = 0, sent_messages = 0;
    bool lost = false;
    std::string lost_reason;
};

// One receiving lane: what its thread publishes while it runs (for the warm-up cut, taken by the
// main thread) and its outcome.
struct alignas(64) recv_lane {
    std::atomic<std::uint64_t> frames_now{ 0 }, bytes_now{ 0 }; // after each poll
    std::uint64_t frames = 0, messages = 0, bytes = 0, order_errors = 0;
    std::uint64_t first_ns = 0, last_ns = 0;
    bool trailer = false, timed_out = false;
    std::uint64_t sent_frames = 0, sent_messages = 0;
    // Polls from the first frame to the trailer, and those of them that found no DATA frame:
    // their share says whether the receiver waits for the sender (many) or keeps up with it
    // only just (few).
    std::uint64_t polls = 0, empty_polls = 0;
    std::string peer;
    channel_counters counters;
};

// Lane `queue` of the receiver. `first_ns` is the earliest first frame of any lane.
void run_recv_lane(const options& o, dpdk_port& port, std::uint16_t queue,
                   std::atomic<std::uint64_t>& first_ns, recv_lane& out) {
    pin_lane(queue);
    ringtail::net::dpdk_link link(port, channel_receiver,
                                  channel_endpoints(port, o, channel_receiver), queue);
    datagram_transport t(link, channel_receiver);
    receiver_events events(t);
    const std::uint64_t deadline = channel_now_ns() + static_cast<std::uint64_t>(o.timeout_s * 1e9);
    std::uint64_t trailer_ns = 0;
    // Until the sender says goodbye (it does once the trailer is acknowledged, so our ACK must
    // go out first), or is lost.
    while (!events.lost && ringtail::tools::stop_requested == 0) {
        const std::uint64_t now = channel_now_ns();
        if (now >= deadline || (trailer_ns != 0 && now - trailer_ns > settle_ns)) {
            out.timed_out = now >= deadline;
            break;
        }
        events.now = now;
        const std::uint64_t before = events.frames;
        t.poll(events);
        if (events.frames != 0 && !events.trailer) {
            ++out.polls;
            out.empty_polls += events.frames == before ? 1 : 0;
        }
        if (events.frames != before) {
            if (before == 0) {
                std::uint64_t seen = 0;
                while ((seen == 0 || events.first_ns < seen) &&
                       !first_ns.compare_exchange_weak(seen, events.first_ns)) {
                }
            }
            out.frames_now.store(events.frames, std::memory_order_relaxed);
            out.bytes_now.store(events.bytes, std::memory_order_relaxed);
        }
        if (events.trailer && trailer_ns == 0) {
            trailer_ns = now;
        }
    }
    // No more polling: the port closes (main) while the sender waits for that (see
    // wait_for_hang_up).
    out.frames = events.frames;
    out.messages = events.messages;
    out.bytes = events.bytes;
    out.order_errors = events.order_errors;
    out.first_ns = events.first_ns;
    out.last_ns = events.last_ns;
    out.trailer = events.trailer;
    out.sent_frames = events.sent_frames;
    out.sent_messages = events.sent_messages;
    out.peer = peer_word(events.lost, events.lost_reason, queue);
    out.counters.add(t, link);
}

int run_channel_recv(const options& o, dpdk_port& port) {
    std::vector<recv_lane> lanes(port.queues());
    std::atomic<std::uint64_t> first_ns{ 0 };
    std::atomic<std::uint16_t> running{ port.queues() };
    const auto warmup_ns = static_cast<std::uint64_t>(o.warmup_s * 1e9);
    // The measuring interval starts when the warm-up after the first frame of any lane has passed
    // (this thread takes every lane's count then) and ends with the last frame before a trailer
    // (the sender stops at full speed, so nothing idle is counted).
    bool warm = false;
    std::uint64_t warm_ns = 0, warm_frames = 0, warm_bytes = 0;
    {
        std::vector<std::jthread> threads;
        for (std::uint16_t q = 0; q < port.queues(); ++q) {
            threads.emplace_back([&, q] {
                run_recv_lane(o, port, q, first_ns, lanes[q]);
                running.fetch_sub(1);
            });
        }
        // Wakes about every millisecond until the warm-up has passed, then waits for the lanes:
        // the lane threads share its CPU (they inherit EAL's affinity for it).
        while (running.load() != 0 && !warm) {
            const std::uint64_t first = first_ns.load();
            const std::uint64_t now = channel_now_ns();
            if (first != 0 && now >= first + warmup_ns) {
                warm = true;
                warm_ns = now;
                for (const auto& lane : lanes) {
                    warm_frames += lane.frames_now.load(std::memory_order_relaxed);
                    warm_bytes += lane.bytes_now.load(std::memory_order_relaxed);
                }
            }
            ::usleep(1000);
        }
    } // joins the lanes
    std::uint64_t frames = 0, messages = 0, bytes = 0, order_errors = 0, last_ns = 0;
    std::uint64_t sent_frames = 0, sent_messages = 0, polls = 0, empty_polls = 0;
    bool trailers = true, complete = true, timed_out = false, sent_known = true;
    channel_counters counters;
    std::vector<std::string> peers;
    for (const auto& lane : lanes) {
        frames += lane.frames;
        messages += lane.messages;
        bytes += lane.bytes;
        order_errors += lane.order_errors;
        last_ns = std::max(last_ns, lane.last_ns);
        trailers = trailers && lane.trailer;
        sent_frames += lane.sent_frames;
        sent_messages += lane.sent_messages;
        polls += lane.polls;
        empty_polls += lane.empty_polls;
        sent_known = sent_known && lane.trailer && lane.sent_frames >= lane.frames;
        complete = complete && lane.trailer && lane.sent_frames == lane.frames &&
                   lane.sent_messages == lane.messages && lane.order_errors == 0;
        timed_out = timed_out || lane.timed_out;
        counters.add(lane.counters);
        peers.push_back(lane.peer);
    }
    // A run shorter than the warm-up is measured whole, from its first frame.
    if (!warm || last_ns <= warm_ns) {
        warm_ns = first_ns.load();
        warm_frames = frames > 0 ? 1 : 0;
        warm_bytes = frames > 0 ? bytes / frames : 0;
    }
    const double measured_s = static_cast<double>(last_ns - warm_ns) / 1e9;
    const std::uint64_t measured_frames = frames - warm_frames;
    fmt::print("channel-recv: frames={} messages={} bytes={} frame_bytes_avg={:.1f} "
               "warmup_s={:.3f} measured_frames={} seconds={:.3f} frames_per_s={:.0f} "
               "mbps={:.1f} sent_frames={} sent_messages={} lost={} order_errors={} complete={} "
               "timed_out={} polls={} empty_polls={} peer={} {} {} {}\n",
               frames, messages, bytes,
               frames > 0 ? static_cast<double>(bytes) / static_cast<double>(frames) : 0.0,
               o.warmup_s, measured_frames, measured_s,
               measured_s > 0 ? static_cast<double>(measured_frames) / measured_s : 0.0,
               mbps(bytes - warm_bytes, measured_s),
               trailers ? std::to_string(sent_frames) : std::string("unknown"),
               trailers ? std::to_string(sent_messages) : std::string("unknown"),
               sent_known ? std::to_string(sent_frames - frames) : std::string("unknown"),
               order_errors, complete ? "yes" : "no", timed_out ? "yes" : "no", polls, empty_polls,
               peer_words(peers), counters.text(), counters_text(port), lanes_text(lanes));
    return complete ? 0 : exit_lost;
}

} // namespace

int main(int argc, char** argv) {
    options o;
    try {
        o = parse(argc, argv);
    } catch (const usage_error& e) {
        die(exit_usage, e.message);
    }
    ringtail::tools::on_stop_signals();
    if (o.run == mode::probe) {
        std::string why;
        const bool usable = ringtail::net::dpdk_usable(o.eal_args, &why);
        if (usable) {
            fmt::print("probe: usable\n");
        }
        ringtail::net::dpdk_eal::cleanup();
        if (!usable) {
            die(exit_unavailable, why);
        }
        return 0;
    }
    if (o.run == mode::channel_send || o.run == mode::channel_recv) {
        ringtail::clock::calibrate(); // the transport's clock, as in a worker
    }
    if (auto s = ringtail::net::dpdk_eal::init(o.eal_args); !s) {
        die(ringtail::exit_code(s.err().code), s.err().message);
    }
    int rc = 0;
    {
        ringtail::net::dpdk_port_config config;
        config.device = o.device;
        config.port_id = o.port_id;
        config.queues = o.queues;
        auto port = ringtail::net::dpdk_port::open(config);
        if (!port) {
            die(ringtail::exit_code(port.err().code), port.err().message);
        }
        if ((*port)->queues() < o.queues) {
            fmt::print(stderr,
                       "ringtail-dpdk-pingpong: {} has {} queue pair{} of the {} asked for: "
                       "running {} lane{}\n",
                       (*port)->name(), (*port)->queues(), (*port)->queues() == 1 ? "" : "s",
                       o.queues, (*port)->queues(), (*port)->queues() == 1 ? "" : "s");
        }
        // Both ends run as many lanes as the port opened with (--queues on both, and as much EAL
        // memory): a memif pair needs the same queue count at each end.
        if (auto s = (*port)->start((*port)->queues()); !s) {
            die(ringtail::exit_code(s.err().code), s.err().message);
        }
        // The line a test waits for before it starts the peer (a memif server listens from here).
        fmt::print(stderr, "ringtail-dpdk-pingpong: {} open, mac {}, waiting for the link\n",
                   (*port)->name(), mac_text((*port)->mac()));
        wait_for_link(**port, o.link_timeout_s);
        switch (o.run) {
            case mode::send:
                rc = run_send(o, **port);
                break;
            case mode::echo:
                rc = run_echo(o, **port);
                break;
            case mode::channel_send:
                rc = run_channel_send(o, **port);
                break;
            case mode::channel_recv:
                rc = run_channel_recv(o, **port);
                break;
            case mode::probe:
                break; // handled above
        }
    }
    ringtail::net::dpdk_eal::cleanup();
    return rc;
}
