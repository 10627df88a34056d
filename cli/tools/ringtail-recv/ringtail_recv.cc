// ringtail-recv: a sink for TCP output speaking the Wallaroo "data_receiver" flags (WIRE.md §7);
// it accepts any number of connections and writes what arrives (raw, or one payload per line) to
// stdout or a file through large buffers, then prints a one-line summary. With --latency it reads
// the "latency" payload of perf/README.md instead (`[u64 intended_send_ns][u64 seq]...`, written by
// `ringtail-send --rate R --latency`), records now - intended_send_ns into a histogram and writes
// PREFIX.hgrm and PREFIX.json at exit. With --latency-field order-id the message number k is read
// from market_spread's output instead (the order_id, stamped by `ringtail-send --stamp-order-id`)
// and its intended send time is computed from the sender's --schedule-file: start + k * 1e9 / rate.
#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <netinet/in.h>
#include <optional>
#include <poll.h>
#include <sstream>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include "cli/tools/tool_support.h"
#include "engine/clock.h"
#include "engine/fd.h"
#include "engine/histogram.h"
#include "net/io/host_port.h"

namespace {

namespace po = boost::program_options;

// Exit codes: 2 for --timeout (as asked by the tests that use it), the rest sysexits (CLI.md).
constexpr int exit_timed_out = 2;
using ringtail::tools::exit_cant_create;
using ringtail::tools::exit_io_error;
using ringtail::tools::exit_no_input;
using ringtail::tools::exit_unavailable;
using ringtail::tools::exit_usage;

constexpr std::size_t read_chunk = 256 * 1024;
constexpr std::size_t output_buffer_size = 4 * 1024 * 1024;
// A frame larger than this is taken for a broken stream rather than buffered without bound.
constexpr std::size_t max_frame_size = 64 * 1024 * 1024;

[[noreturn]] void die(int code, std::string_view line) {
    ringtail::tools::die("ringtail-recv", code, line);
}

using ringtail::tools::usage_error;

using ringtail::tools::stop_requested;

std::uint64_t now_ns() {
    return ringtail::clock::monotonic_ns();
}

struct recv_options {
    ringtail::net::host_port listen;
    bool framed = false;
    bool no_write = false;
    std::string ready_file;
    std::optional<std::uint64_t> expect; // frames when framed, else bytes
    std::optional<double> timeout_s;
    std::string out_file;
    std::string latency_prefix; // --latency: latency mode, files PREFIX.hgrm and PREFIX.json
    double warmup_s = 0;
    std::uint64_t late_us = 1000;
    bool order_id_field = false; // --latency-field order-id: k from payload bytes 5..10
    std::string schedule_file;   // with order-id: "start_monotonic_ns rate" (ringtail-send)
};

// --latency-field order-id: market_spread's output payload is [u8 side][u32 account][6s order_id]
// ..., and ringtail-send --stamp-order-id put the message number there (48-bit big-endian).
constexpr std::size_t order_id_offset = 5;
constexpr std::size_t order_id_size = 6;
// How long to wait for the schedule file once the first frame is in (the sender writes it before
// its first message, so it is normally there already).
constexpr std::uint64_t schedule_wait_ns = 5'000'000'000ull;

// Latency mode: a stamp further in the past than this (or in the future) is not a latency but a
// broken stamp, e.g. a sender on another host (CLOCK_MONOTONIC is per host).
constexpr std::uint64_t absurd_latency_ns = 3600ull * 1'000'000'000ull;
constexpr std::size_t latency_stamp_size = 16;

double parse_non_negative(std::string_view flag, const std::string& t) {
    char* end = nullptr;
    double v = std::strtod(t.c_str(), &end);
    if (t.empty() || end != t.c_str() + t.size() || !std::isfinite(v) || v < 0) {
        throw usage_error{ "bad value for " + std::string(flag) +
                           ": expected a non-negative number" };
    }
    return v;
}

std::optional<recv_options> parse_options(int argc, char** argv) {
    po::options_description desc("options");
    desc.add_options()("help", "print this help and exit")(
      "listen,l", po::value<std::string>(), "host:port to listen on (port 0: any free port)")(
      "framed,f", po::bool_switch(), "input is [u32 N][payload]: write each payload and '\\n'")(
      "no-write,n", po::bool_switch(), "count only; write nothing but the summary")(
      "ready-file", po::value<std::string>(), "write the bound port to this file once listening")(
      "expect", po::value<std::string>(), "exit 0 after N frames (framed) or N bytes (raw)")(
      "timeout", po::value<std::string>(), "exit 2 when nothing arrives for this many seconds")(
      "out", po::value<std::string>(), "write to this file instead of stdout")(
      "latency", po::value<std::string>(),
      "latency mode (framed, no payload output): payloads start [u64 intended_send_ns][u64 seq] "
      "(ringtail-send --rate R --latency); writes PREFIX.hgrm and PREFIX.json at exit")(
      "warmup", po::value<std::string>(),
      "with --latency: the first S seconds of data are recorded apart, not in the figures")(
      "late-us", po::value<std::string>(),
      "with --latency: count messages later than this many µs (default 1000)")(
      "latency-field", po::value<std::string>(),
      "with --latency: where the stamp is: 'stamp' (default: [u64 intended_send_ns][u64 seq]) or "
      "'order-id' (market_spread output: message number k in payload bytes 5..10, intended time "
      "from --schedule-file)")(
      "schedule-file", po::value<std::string>(),
      "with --latency-field order-id: the sender's --schedule-file (\"start_ns rate\"), read when "
      "the first frame arrives");
    const po::variables_map vm = ringtail::tools::parse_command_line(argc, argv, desc);
    if (vm.count("help")) {
        fmt::print("usage: ringtail-recv -l host:port [options]\n{}",
                   ringtail::tools::options_text(desc));
        return std::nullopt;
    }
    recv_options o;
    if (!vm.count("listen")) {
        throw usage_error{ "--listen host:port is required" };
    }
    auto hp = ringtail::net::parse_host_port(vm["listen"].as<std::string>(), true);
    if (!hp) {
        throw usage_error{ hp.err().message };
    }
    o.listen = hp.value();
    o.framed = vm["framed"].as<bool>();
    o.no_write = vm["no-write"].as<bool>();
    if (vm.count("ready-file")) {
        o.ready_file = vm["ready-file"].as<std::string>();
    }
    if (vm.count("out")) {
        o.out_file = vm["out"].as<std::string>();
    }
    if (vm.count("expect")) {
        std::string t = vm["expect"].as<std::string>();
        std::erase(t, '_');
        std::uint64_t v = 0;
        auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
        if (t.empty() || ec != std::errc{} || p != t.data() + t.size() || v == 0) {
            throw usage_error{ "bad value for --expect: expected a positive integer" };
        }
        o.expect = v;
    }
    if (vm.count("latency")) {
        o.latency_prefix = vm["latency"].as<std::string>();
        if (o.latency_prefix.empty()) {
            throw usage_error{ "--latency needs a file prefix" };
        }
        if (!o.out_file.empty()) {
            throw usage_error{ "--latency writes no payloads: drop --out" };
        }
        o.framed = true;
        o.no_write = true;
    }
    if (vm.count("warmup")) {
        o.warmup_s = parse_non_negative("--warmup", vm["warmup"].as<std::string>());
    }
    if (vm.count("late-us")) {
        std::string t = vm["late-us"].as<std::string>();
        std::uint64_t v = 0;
        auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
        if (t.empty() || ec != std::errc{} || p != t.data() + t.size()) {
            throw usage_error{ "bad value for --late-us: expected a non-negative integer" };
        }
        o.late_us = v;
    }
    if ((vm.count("warmup") || vm.count("late-us") || vm.count("latency-field")) &&
        o.latency_prefix.empty()) {
        throw usage_error{ "--warmup, --late-us and --latency-field go with --latency" };
    }
    if (vm.count("latency-field")) {
        const std::string f = vm["latency-field"].as<std::string>();
        if (f == "order-id") {
            o.order_id_field = true;
        } else if (f != "stamp") {
            throw usage_error{ "bad value '" + f + "' for --latency-field: stamp or order-id" };
        }
    }
    if (vm.count("schedule-file")) {
        o.schedule_file = vm["schedule-file"].as<std::string>();
    }
    if (o.order_id_field && o.schedule_file.empty()) {
        throw usage_error{ "--latency-field order-id needs --schedule-file (the sender's)" };
    }
    if (!o.order_id_field && vm.count("schedule-file")) {
        throw usage_error{ "--schedule-file goes with --latency-field order-id" };
    }
    if (vm.count("timeout")) {
        const std::string t = vm["timeout"].as<std::string>();
        char* end = nullptr;
        double v = std::strtod(t.c_str(), &end);
        if (t.empty() || end != t.c_str() + t.size() || !std::isfinite(v) || v <= 0) {
            throw usage_error{ "bad value for --timeout: expected a positive number of seconds" };
        }
        o.timeout_s = v;
    }
    return o;
}

// Buffers output so that millions of small payloads cost a few large write(2) calls.
class output_writer {
public:
    output_writer(int fd, bool discard)
      : _fd(fd)
      , _discard(discard) {
        if (!discard) {
            _buf.resize(output_buffer_size);
        }
    }

    void append(const char* data, std::size_t n) {
        if (_discard) {
            return;
        }
        if (_used + n > _buf.size()) {
            flush();
            if (n >= _buf.size()) {
                write_all(data, n);
                return;
            }
        }
        std::memcpy(_buf.data() + _used, data, n);
        _used += n;
    }

    // Payload plus newline, with one capacity check for both.
    void append_line(const char* data, std::size_t n) {
        if (_discard) {
            return;
        }
        if (_used + n + 1 > _buf.size()) {
            append(data, n);
            append("\n", 1);
            return;
        }
        std::memcpy(_buf.data() + _used, data, n);
        _buf[_used + n] = '\n';
        _used += n + 1;
    }

    void flush() {
        write_all(_buf.data(), _used);
        _used = 0;
    }

private:
    void write_all(const char* data, std::size_t n) {
        while (n > 0) {
            ssize_t w = ::write(_fd, data, n);
            if (w < 0 && errno == EINTR) {
                continue;
            }
            if (w < 0) {
                die(exit_io_error, fmt::format("cannot write output: {}", std::strerror(errno)));
            }
            data += w;
            n -= static_cast<std::size_t>(w);
        }
    }

    int _fd;
    bool _discard;
    std::vector<char> _buf;
    std::size_t _used = 0;
};

// One accepted connection; `in` holds bytes read but not yet consumed (a frame cut by a read).
struct connection {
    ringtail::unique_fd fd;
    std::string peer;
    std::vector<char> in;
    std::size_t filled = 0;
    bool has_seq = false; // latency mode: the last sequence number seen here
    std::uint64_t last_seq = 0;
};

std::string peer_name(const sockaddr_in& sa) {
    char text[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &sa.sin_addr, text, sizeof text);
    return fmt::format("{}:{}", text, ntohs(sa.sin_port));
}

void write_ready_file(const std::string& path, std::uint16_t port) {
    ringtail::tools::write_file_atomically("ringtail-recv", path, fmt::format("{}\n", port));
}

ringtail::unique_fd listen_on(const ringtail::net::host_port& hp, std::uint16_t& bound_port) {
    auto addr = ringtail::net::resolve_ipv4(hp.host);
    if (!addr) {
        die(exit_usage, addr.err().message);
    }
    ringtail::unique_fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) {
        die(exit_unavailable, fmt::format("socket: {}", std::strerror(errno)));
    }
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(hp.port);
    sa.sin_addr.s_addr = addr.value();
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
        ::listen(fd.get(), 128) != 0) {
        die(exit_unavailable,
            fmt::format("cannot listen on {}: {}", hp.to_string(), std::strerror(errno)));
    }
    socklen_t len = sizeof sa;
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sa), &len);
    bound_port = ntohs(sa.sin_port);
    return fd;
}

class receiver {
public:
    receiver(const recv_options& o, output_writer& out)
      : _o(o)
      , _out(out) {}

    // Runs until --expect is met (0), a stop signal (0) or --timeout (2).
    int run(int listen_fd) {
        _start_ns = now_ns();
        sigset_t run_mask;
        ::sigprocmask(SIG_SETMASK, nullptr, &run_mask);
        sigdelset(&run_mask, SIGINT);
        sigdelset(&run_mask, SIGTERM);

        std::vector<pollfd> fds;
        while (!_done) {
            fds.clear();
            fds.push_back(pollfd{ listen_fd, POLLIN, 0 });
            for (const auto& c : _conns) {
                fds.push_back(pollfd{ c.fd.get(), POLLIN, 0 });
            }
            timespec wait{};
            timespec* wait_ptr = nullptr;
            if (_o.timeout_s) {
                std::uint64_t since = _bytes > 0 ? _last_byte_ns : _start_ns;
                auto limit = since + static_cast<std::uint64_t>(*_o.timeout_s * 1e9);
                std::uint64_t now = now_ns();
                if (now >= limit) {
                    finish();
                    fmt::print(stderr, "ringtail-recv: timed out: nothing arrived for {} s\n",
                               *_o.timeout_s);
                    return exit_timed_out;
                }
                wait.tv_sec = static_cast<time_t>((limit - now) / 1'000'000'000u);
                wait.tv_nsec = static_cast<long>((limit - now) % 1'000'000'000u);
                wait_ptr = &wait;
            }
            // ppoll unblocks the stop signals only while waiting, so none is lost between the
            // check of stop_requested and the wait.
            int ready = ::ppoll(fds.data(), fds.size(), wait_ptr, &run_mask);
            if (stop_requested) {
                break;
            }
            if (ready <= 0) {
                continue; // EINTR or the timeout, which the top of the loop handles
            }
            if (fds[0].revents & POLLIN) {
                accept_one(listen_fd);
            }
            // Walk backwards: a closed connection is erased without disturbing the others.
            for (std::size_t i = fds.size() - 1; i >= 1 && !_done; --i) {
                if (fds[i].revents != 0 && !read_from(_conns[i - 1])) {
                    _conns.erase(_conns.begin() + static_cast<std::ptrdiff_t>(i - 1));
                }
            }
        }
        finish();
        return 0;
    }

private:
    void accept_one(int listen_fd) {
        sockaddr_in sa{};
        socklen_t len = sizeof sa;
        ringtail::unique_fd fd(
          ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&sa), &len, SOCK_CLOEXEC));
        if (!fd.valid()) {
            return; // the client gave up before we got to it; nothing to count
        }
        ++_connections;
        connection c;
        c.fd = std::move(fd);
        c.peer = peer_name(sa);
        c.in.resize(read_chunk);
        _conns.push_back(std::move(c));
    }

    // Returns false when the connection is finished (EOF or error).
    bool read_from(connection& c) {
        if (c.in.size() - c.filled < read_chunk / 4) {
            c.in.resize(std::max(c.in.size(), c.filled + read_chunk));
        }
        ssize_t n = ::read(c.fd.get(), c.in.data() + c.filled, c.in.size() - c.filled);
        if (n < 0 && errno == EINTR) {
            return true;
        }
        if (n <= 0) {
            if (!_o.framed && c.filled > 0) {
                consume_raw(c, true); // the held tail of the last line
            }
            if (n < 0) {
                fmt::print(stderr, "ringtail-recv: connection from {} failed: {}\n", c.peer,
                           std::strerror(errno));
            } else if (c.filled > 0) {
                fmt::print(stderr,
                           "ringtail-recv: connection from {} closed inside a frame ({} bytes "
                           "dropped)\n",
                           c.peer, c.filled);
            }
            return false;
        }
        _last_byte_ns = now_ns();
        if (_bytes == 0) {
            _first_byte_ns = _last_byte_ns;
        }
        _bytes += static_cast<std::uint64_t>(n);
        c.filled += static_cast<std::size_t>(n);
        return _o.framed ? consume_frames(c) : consume_raw(c);
    }

    // Raw bytes are passed on a line at a time: with several connections (one per shard and
    // worker), their text lines come out whole rather than cut into each other. A tail without
    // a newline waits for the rest, for the connection's end, for 64 KiB, or for --expect.
    bool consume_raw(connection& c, bool closing = false) {
        std::size_t take = c.filled;
        const bool completes = _o.expect && _written + c.filled >= *_o.expect;
        if (!closing && !completes) {
            const void* nl = ::memrchr(c.in.data(), '\n', c.filled);
            if (nl != nullptr) {
                take = static_cast<std::size_t>(static_cast<const char*>(nl) - c.in.data()) + 1;
            } else if (c.filled < raw_hold_max) {
                take = 0;
            }
        }
        if (_o.expect) {
            take = static_cast<std::size_t>(std::min<std::uint64_t>(take, *_o.expect - _written));
        }
        _out.append(c.in.data(), take);
        _written += take;
        if (completes || take == c.filled) {
            c.filled = 0;
        } else {
            std::memmove(c.in.data(), c.in.data() + take, c.filled - take);
            c.filled -= take;
        }
        if (_o.expect && _written >= *_o.expect) {
            _done = true;
        }
        return true;
    }
    static constexpr std::size_t raw_hold_max = 64 * 1024;

    bool consume_frames(connection& c) {
        const char* base = c.in.data();
        std::size_t pos = 0;
        while (c.filled - pos >= 4) {
            std::uint32_t n;
            std::memcpy(&n, base + pos, 4);
            n = ntohl(n);
            if (c.filled - pos - 4 < n) {
                if (n > max_frame_size) {
                    fmt::print(stderr,
                               "ringtail-recv: connection from {} sent a {} byte frame; closing "
                               "it\n",
                               c.peer, n);
                    return false;
                }
                if (4 + static_cast<std::size_t>(n) > c.in.size()) {
                    // Make room for the whole frame (after moving the remainder to the front).
                    c.in.resize(4 + static_cast<std::size_t>(n) + read_chunk);
                    base = c.in.data();
                }
                break;
            }
            if (_latency) {
                record_latency(c, base + pos + 4, n);
            } else {
                _out.append_line(base + pos + 4, n);
            }
            pos += 4 + static_cast<std::size_t>(n);
            ++_frames;
            if (_o.expect && _frames >= *_o.expect) {
                _done = true;
                break;
            }
        }
        std::memmove(c.in.data(), c.in.data() + pos, c.filled - pos);
        c.filled -= pos;
        return true;
    }

    static std::uint64_t load_be64(const char* p) {
        std::uint64_t v = 0;
        for (int i = 0; i < 8; ++i) {
            v = (v << 8) | static_cast<unsigned char>(p[i]);
        }
        return v;
    }

    // Latency of one frame against the time its read returned (_last_byte_ns): every frame of a
    // read arrived together, and a clock read per frame would add our own parsing to the later
    // ones.
    void record_latency(connection& c, const char* payload, std::uint32_t n) {
        std::uint64_t intended = 0;
        std::uint64_t seq = 0;
        if (_o.order_id_field) {
            if (n < order_id_offset + order_id_size) {
                ++_bad_stamps;
                return;
            }
            for (std::size_t i = 0; i < order_id_size; ++i) {
                seq = (seq << 8) | static_cast<unsigned char>(payload[order_id_offset + i]);
            }
            if (!_schedule_read) {
                read_schedule();
            }
            // The sender's own arithmetic (ringtail-send's due_ns), so both agree to the ns.
            intended = _schedule_start_ns +
                       static_cast<std::uint64_t>(static_cast<double>(seq) * _schedule_ns_per_msg);
        } else {
            if (n < latency_stamp_size) {
                ++_bad_stamps;
                return;
            }
            intended = load_be64(payload);
            seq = load_be64(payload + 8);
        }
        if (c.has_seq && seq <= c.last_seq) {
            ++_out_of_sequence;
        }
        c.has_seq = true;
        c.last_seq = seq;
        const std::uint64_t now = _last_byte_ns;
        if (intended > now || now - intended > absurd_latency_ns) {
            ++_bad_stamps;
            return;
        }
        const std::uint64_t latency = now - intended;
        if (_latency_frames == 0) {
            _first_frame_ns = now;
            _warmup_end_ns = now + static_cast<std::uint64_t>(_o.warmup_s * 1e9);
            _first_intended_ns = intended;
        }
        if (_latency_frames == 0 || seq < _min_seq) {
            _min_seq = seq;
        }
        _max_seq = std::max(_max_seq, seq);
        ++_latency_frames;
        _first_intended_ns = std::min(_first_intended_ns, intended);
        _last_frame_ns = now;
        if (now < _warmup_end_ns) {
            _warmup.record(latency);
            return;
        }
        _hist.record(latency);
        _late += latency > _o.late_us * 1000 ? 1 : 0;
    }

    // The sender writes its schedule file before its first message, so a frame from it means the
    // file is there; a short wait covers a file system that shows the rename late. Without it no
    // frame has an intended time: exit 66.
    void read_schedule() {
        const std::uint64_t give_up = now_ns() + schedule_wait_ns;
        while (true) {
            ringtail::unique_fd fd(::open(_o.schedule_file.c_str(), O_RDONLY | O_CLOEXEC));
            if (fd.valid()) {
                char text[128] = {};
                ssize_t got = ::read(fd.get(), text, sizeof text - 1);
                fd.reset();
                unsigned long long start = 0;
                double rate = 0;
                if (got > 0 && std::sscanf(text, "%llu %lf", &start, &rate) == 2 &&
                    std::isfinite(rate) && rate > 0) {
                    _schedule_start_ns = start;
                    _schedule_ns_per_msg = 1e9 / rate;
                    _schedule_read = true;
                    return;
                }
                die(exit_no_input, fmt::format("{} is not \"start_ns rate\"", _o.schedule_file));
            }
            if (now_ns() >= give_up) {
                die(exit_no_input, fmt::format("no schedule file {} 5 s after the first frame: {}",
                                               _o.schedule_file, std::strerror(errno)));
            }
            timespec pause{ 0, 1'000'000 };
            ::nanosleep(&pause, nullptr);
        }
    }

    double us_at(double p) const { return static_cast<double>(_hist.value_at_percentile(p)) / 1e3; }

    // Written beside and renamed, so a script never reads half a file.
    void write_file(const std::string& path, const std::string& text) {
        ringtail::tools::write_file_atomically("ringtail-recv", path, text);
    }

    void finish_latency() {
        write_file(_o.latency_prefix + ".hgrm", _hist.percentile_distribution(5, 1000.0));
        const double receive_s =
          _latency_frames > 0 ? static_cast<double>(_last_frame_ns - _first_frame_ns) / 1e9 : 0.0;
        const double span_s = _latency_frames > 0
                                ? static_cast<double>(_last_frame_ns - _first_intended_ns) / 1e9
                                : 0.0;
        std::string json = fmt::format(
          "{{\"count\": {}, \"p50_us\": {:.3f}, \"p90_us\": {:.3f}, \"p99_us\": {:.3f}, "
          "\"p999_us\": {:.3f}, \"p9999_us\": {:.3f}, \"max_us\": {:.3f}, \"min_us\": {:.3f}, "
          "\"mean_us\": {:.3f}, \"late_messages\": {}, \"late_us\": {}, \"bad_stamps\": {}, "
          "\"out_of_sequence\": {}, \"warmup_messages\": {}, \"warmup_s\": {}, "
          "\"messages\": {}, \"frames\": {}, \"connections\": {}, \"receive_seconds\": {:.6f}, "
          "\"span_seconds\": {:.6f}, \"latency_field\": \"{}\", \"min_seq\": {}, \"max_seq\": "
          "{}}}\n",
          _hist.total_count(), us_at(50), us_at(90), us_at(99), us_at(99.9), us_at(99.99),
          static_cast<double>(_hist.max()) / 1e3, static_cast<double>(_hist.min()) / 1e3,
          _hist.mean() / 1e3, _late, _o.late_us, _bad_stamps, _out_of_sequence,
          _warmup.total_count(), _o.warmup_s, _latency_frames, _frames, _connections, receive_s,
          span_s, _o.order_id_field ? "order-id" : "stamp", _min_seq, _max_seq);
        write_file(_o.latency_prefix + ".json", json);
        fmt::print(stderr,
                   "ringtail-recv: latency of {} messages ({} warm-up): p50 {:.1f} µs, p99 {:.1f} "
                   "µs, p99.9 {:.1f} µs, p99.99 {:.1f} µs, max {:.1f} µs, mean {:.1f} µs; {} "
                   "later than {} µs, {} bad stamps, {} out of sequence\n",
                   _hist.total_count(), _warmup.total_count(), us_at(50), us_at(99), us_at(99.9),
                   us_at(99.99), static_cast<double>(_hist.max()) / 1e3, _hist.mean() / 1e3, _late,
                   _o.late_us, _bad_stamps, _out_of_sequence);
    }

    void finish() {
        _out.flush();
        double seconds =
          _bytes > 0 ? static_cast<double>(_last_byte_ns - _first_byte_ns) / 1e9 : 0.0;
        double per_s = seconds > 0 ? 1.0 / seconds : 0.0;
        if (_o.framed) {
            fmt::print(stderr,
                       "ringtail-recv: {} connections, {} frames, {} bytes in {:.3f} s ({:.0f} "
                       "frames/s, {:.1f} MB/s)\n",
                       _connections, _frames, _bytes, seconds, static_cast<double>(_frames) * per_s,
                       static_cast<double>(_bytes) * per_s / 1e6);
        } else {
            fmt::print(stderr,
                       "ringtail-recv: {} connections, {} bytes in {:.3f} s ({:.1f} MB/s)\n",
                       _connections, _bytes, seconds, static_cast<double>(_bytes) * per_s / 1e6);
        }
        if (_latency) {
            finish_latency();
        }
    }

    const recv_options& _o;
    output_writer& _out;
    // Latency mode (--latency): measured and warm-up latencies in ns, and their bookkeeping.
    bool _latency = !_o.latency_prefix.empty();
    ringtail::histogram _hist;
    ringtail::histogram _warmup;
    std::uint64_t _latency_frames = 0; // frames with a good stamp, warm-up included
    std::uint64_t _late = 0;
    std::uint64_t _bad_stamps = 0;
    std::uint64_t _out_of_sequence = 0;
    std::uint64_t _first_frame_ns = 0;
    std::uint64_t _warmup_end_ns = 0;
    std::uint64_t _first_intended_ns = 0;
    std::uint64_t _last_frame_ns = 0;
    std::uint64_t _min_seq = 0; // of the frames with a good stamp
    std::uint64_t _max_seq = 0;
    bool _schedule_read = false; // --latency-field order-id: the sender's schedule
    std::uint64_t _schedule_start_ns = 0;
    double _schedule_ns_per_msg = 0;
    std::vector<connection> _conns;
    bool _done = false;
    std::uint64_t _connections = 0;
    std::uint64_t _frames = 0;
    std::uint64_t _bytes = 0;   // received, headers included
    std::uint64_t _written = 0; // raw mode: bytes passed on (bounded by --expect)
    std::uint64_t _start_ns = 0;
    std::uint64_t _first_byte_ns = 0;
    std::uint64_t _last_byte_ns = 0;
};

} // namespace

int main(int argc, char** argv) {
    std::optional<recv_options> options;
    try {
        options = parse_options(argc, argv);
    } catch (const usage_error& e) {
        die(exit_usage, e.message + " (see --help)");
    }
    if (!options) {
        return 0;
    }
    const auto& o = *options;

    // Stop signals stay blocked except inside ppoll (see receiver::run); SIGPIPE from a closed
    // stdout reader becomes an EPIPE write error instead.
    ringtail::tools::block_stop_signals();

    ringtail::unique_fd out_file;
    if (!o.out_file.empty() && !o.no_write) {
        out_file.reset(::open(o.out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
        if (!out_file.valid()) {
            die(exit_cant_create,
                fmt::format("cannot create {}: {}", o.out_file, std::strerror(errno)));
        }
    }
    std::uint16_t port = 0;
    const ringtail::unique_fd listen_fd = listen_on(o.listen, port);
    if (!o.ready_file.empty()) {
        write_ready_file(o.ready_file, port);
    }
    output_writer out(out_file.valid() ? out_file.get() : STDOUT_FILENO, o.no_write);
    receiver r(o, out);
    int rc = r.run(listen_fd.get());
    if (out_file.valid() && !out_file.close()) {
        die(exit_io_error, fmt::format("cannot write {}: {}", o.out_file, std::strerror(errno)));
    }
    return rc;
}
