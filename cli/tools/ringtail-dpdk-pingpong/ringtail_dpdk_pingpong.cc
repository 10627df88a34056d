// ringtail-dpdk-pingpong: proves the DPDK back end's lowest layer (net/dpdk_port.h and
// net/udp_frame.h) on a real or virtual port: `send` transmits N UDP frames carrying a sequence
// number, a send time and a CRC-32C, keeps a window of them in flight and waits for each to come
// back; `echo` returns every valid frame to its sender. The sender prints one summary line
// (frames/s, round-trip percentiles, lost and corrupt counts) and exits 0 only when every frame
// came back intact (exit 1 otherwise). `probe` says whether EAL starts and a port is usable
// (dpdk_usable), exiting 0 or 69 with the reason. EAL arguments follow a literal `--`, as for the
// worker (CLI.md).
#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <unistd.h>
#include <utility>
#include <vector>

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include "cli/tools/tool_support.h"
#include "engine/big_endian.h"
#include "engine/clock.h"
#include "net/crc32c.h"
#include "net/dpdk_port.h"
#include "net/udp_frame.h"

namespace {

namespace po = boost::program_options;
using ringtail::net::dpdk_port;
using ringtail::net::udp_endpoint;
using ringtail::tools::usage_error;

constexpr int exit_lost = 1; // the run worked but frames were lost or damaged
constexpr int exit_usage = 64;
constexpr int exit_unavailable = 69;

constexpr std::uint16_t burst_max = 32;
// Payload: [u64 seq][u64 send_ns][filler, byte i = (seq + i) mod 256][u32 crc32c of the rest].
constexpr std::size_t payload_min_bytes = 20;
// One mbuf's data room (RTE_MBUF_DEFAULT_DATAROOM) holds the headers and this much.
constexpr std::size_t payload_max_bytes = 1400;

[[noreturn]] void die(int code, std::string_view line) {
    ringtail::tools::die("ringtail-dpdk-pingpong", code, line);
}

enum class mode { send, echo, probe };

struct options {
    mode run = mode::send;
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
      "mode", po::value<std::string>()->required(), "send | echo | probe")(
      "count", po::value<std::string>(),
      "send: frames to send (default 100000); echo: frames to echo before exiting (0: until "
      "SIGINT/SIGTERM)")("payload-bytes", po::value<std::string>(),
                         "send: UDP payload bytes, 20..1400 (default 64)")(
      "window", po::value<std::string>(), "send: frames in flight at most (default 32)")(
      "device", po::value<std::string>(), "ethdev name, e.g. net_memif0 (default: --port)")(
      "port", po::value<std::string>(), "DPDK port number (default 0)")(
      "dst-mac", po::value<std::string>(), "send: destination MAC (default broadcast)")(
      "timeout", po::value<std::string>(), "give up after this many seconds (default 20)")(
      "link-timeout", po::value<std::string>(), "wait this long for the link (default 10)")(
      "stall-ms", po::value<std::string>(),
      "send: declare frames in flight lost after this long without a reply (default 200)");
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(own_argc, argv).options(desc).run(), vm);
        if (vm.count("help") != 0) {
            fmt::print("usage: ringtail-dpdk-pingpong --mode send|echo [options] -- <EAL args>\n");
            std::ostringstream text;
            text << desc;
            fmt::print("{}", text.str());
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
    } else {
        throw usage_error{ fmt::format("bad value '{}' for --mode (want send, echo or probe)",
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

std::string counters_text(const dpdk_port& port) {
    const auto& c = port.counters();
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

// Returns each valid frame to where it came from, rewriting only the headers.
int run_echo(const options& o, dpdk_port& port) {
    rte_mbuf* burst[burst_max];
    std::uint64_t echoed = 0;
    const std::uint64_t deadline = now_ns() + static_cast<std::uint64_t>(o.timeout_s * 1e9);
    while (ringtail::tools::stop_requested == 0 && (o.count == 0 || echoed < o.count)) {
        if (o.timeout_s > 0 && now_ns() >= deadline) {
            break;
        }
        const std::uint16_t n = port.rx_burst(burst, burst_max);
        std::uint16_t keep = 0;
        for (std::uint16_t i = 0; i < n; ++i) {
            auto bytes = dpdk_port::data(burst[i]);
            auto frame = ringtail::net::parse_udp_frame(bytes);
            if (!frame) {
                port.count_rx_bad();
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
            sent += port.tx_burst(burst + sent, static_cast<std::uint16_t>(keep - sent));
        }
        port.drop(burst + sent, static_cast<std::uint16_t>(keep - sent));
        echoed += sent;
    }
    // Let the sender hang up first: when both memif ends close at once, the PMD's interrupt
    // thread and our close can both tear the connection down, and EAL then logs "Error: Invalid
    // memory" (seen once in DPDK 22.11). Bounded: a sender that stays is not waited for long.
    const std::uint64_t hang_up_deadline = now_ns() + 2'000'000'000ull;
    while (port.link_up() && now_ns() < hang_up_deadline && ringtail::tools::stop_requested == 0) {
        ::usleep(1000);
    }
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
            rte_mbuf* m = port.alloc();
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
            const std::uint16_t sent = port.tx_burst(tx, tx_pending);
            std::copy(tx + sent, tx + tx_pending, tx);
            tx_pending = static_cast<std::uint16_t>(tx_pending - sent);
            in_flight += sent;
        }
        const std::uint16_t n = port.rx_burst(rx, burst_max);
        const std::uint64_t rx_ns = n > 0 ? now_ns() : now;
        for (std::uint16_t i = 0; i < n; ++i) {
            auto frame = ringtail::net::parse_udp_frame(dpdk_port::data(rx[i]));
            auto got = frame ? check_payload(frame->payload, o.payload_bytes) : std::nullopt;
            if (!frame) {
                port.count_rx_bad();
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
    port.drop(tx, tx_pending);
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
    if (auto s = ringtail::net::dpdk_eal::init(o.eal_args); !s) {
        die(static_cast<int>(s.err().code), s.err().message);
    }
    int rc = 0;
    {
        ringtail::net::dpdk_port_config config;
        config.device = o.device;
        config.port_id = o.port_id;
        auto port = ringtail::net::dpdk_port::open(config);
        if (!port) {
            die(static_cast<int>(port.err().code), port.err().message);
        }
        // The line a test waits for before it starts the peer (a memif server listens from here).
        fmt::print(stderr, "ringtail-dpdk-pingpong: {} open, mac {}, waiting for the link\n",
                   (*port)->name(), mac_text((*port)->mac()));
        wait_for_link(**port, o.link_timeout_s);
        rc = o.run == mode::send ? run_send(o, **port) : run_echo(o, **port);
    }
    ringtail::net::dpdk_eal::cleanup();
    return rc;
}
