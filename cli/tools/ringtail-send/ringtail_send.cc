// ringtail-send: a load generator speaking the Wallaroo "giles sender" flags (WIRE.md §7) that
// writes `[u32 N][payload]` frames to TCP receivers, as fast as allowed, in paced batches, or at a
// constant rate that keeps to its schedule. With --rate and --latency it generates the "latency"
// payload of perf/README.md: `[u64 intended_send_ns][u64 seq][zero padding]`, stamped with the
// time the schedule says the message is due (not the time of the write), so a stall anywhere
// downstream shows up in the latency a receiver computes (coordinated omission). With
// --stamp-order-id it overwrites payload bytes 6..11 of each file record (market_spread's order_id)
// with the message's 48-bit sequence number, and --schedule-file writes the schedule
// ("start_ns rate"), so that a receiver can compute a message's intended send time from its
// number alone, for apps that do not pass the latency payload through.
#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <limits>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <optional>
#include <poll.h>
#include <sstream>
#include <string>
#include <string_view>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include "cli/tools/tool_support.h"
#include "engine/clock.h"
#include "engine/fd.h"
#include "net/io/host_port.h"

namespace {

namespace po = boost::program_options;
using ringtail::net::host_port;

// Exit codes: the sysexits values of CLI.md, plus 1 for a network failure (as giles does).
constexpr int exit_network = 1;
using ringtail::tools::exit_cant_create;
using ringtail::tools::exit_data_error;
using ringtail::tools::exit_no_input;
using ringtail::tools::exit_usage;

constexpr std::uint64_t unlimited = std::numeric_limits<std::uint64_t>::max();

[[noreturn]] void die(int code, std::string_view line) {
    ringtail::tools::die("ringtail-send", code, line);
}

using ringtail::tools::usage_error;

using ringtail::tools::stop_requested;

std::uint64_t now_ns() {
    return ringtail::clock::monotonic_ns();
}

// Sleeps until an absolute CLOCK_MONOTONIC time, so that the time spent sending does not shift the
// schedule; returns early only for a stop signal.
void sleep_until_ns(std::uint64_t deadline_ns) {
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(deadline_ns / 1'000'000'000u);
    ts.tv_nsec = static_cast<long>(deadline_ns % 1'000'000'000u);
    while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
        if (stop_requested) {
            return;
        }
    }
}

// Unsigned numbers as Wallaroo scripts write them, `1000000` or `1_000_000`.
std::uint64_t parse_count(std::string_view flag, std::string text) {
    std::erase(text, '_');
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (text.empty() || ec != std::errc{} || p != text.data() + text.size()) {
        throw usage_error{ "bad value '" + text + "' for " + std::string(flag) +
                           ": expected a non-negative integer" };
    }
    return v;
}

double parse_positive_seconds_or_rate(std::string_view flag, const std::string& text) {
    char* end = nullptr;
    double v = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(v) || v <= 0) {
        throw usage_error{ "bad value '" + text + "' for " + std::string(flag) +
                           ": expected a positive number" };
    }
    return v;
}

std::vector<std::string> split_commas(const std::string& text) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    while (true) {
        auto comma = text.find(',', start);
        parts.push_back(text.substr(start, comma - start));
        if (comma == std::string::npos) {
            return parts;
        }
        start = comma + 1;
    }
}

struct send_options {
    std::vector<host_port> hosts;
    std::optional<std::uint64_t> messages; // -m; absent means "the input once" (or forever)
    std::vector<std::string> files;
    std::uint64_t batch_size = 500;
    std::uint64_t interval_ns = 0;
    bool repeat = false;
    bool binary = false;
    std::optional<std::uint64_t> msg_size; // -g, fixed-size binary records
    bool variable_size = false;
    bool u64_sequence = false;
    std::uint64_t start_from = 0;
    std::string partition;
    bool no_write = false;
    std::optional<double> rate_per_s;
    double connect_timeout_s = 10;
    bool latency = false;        // --latency: stamped [u64 intended_ns][u64 seq][padding], -g bytes
    bool stamp_order_id = false; // --stamp-order-id: payload bytes 6..11 = 48-bit message number
    std::string schedule_file;   // --schedule-file: "start_monotonic_ns rate" before the first
};

// --stamp-order-id: where the 48-bit big-endian message number goes in each payload (the 6-byte
// order_id of market_spread's order, [u8 1][u8 side][u32 account][6s order_id]...).
constexpr std::size_t order_id_offset = 6;
constexpr std::size_t order_id_size = 6;
constexpr std::uint64_t order_id_limit = std::uint64_t{ 1 } << 48;

// The latency payload: two big-endian u64 (intended send time, sequence number), then zeros.
constexpr std::uint64_t latency_header_size = 16;

const char* usage_text =
  "usage: ringtail-send -h host:port[,host:port..] (-f files | -u | --rate R --latency) "
  "[options]\n"
  "Sends [u32 N][payload] frames to each receiver, round-robin over the connections.";

// Returns the options, or nothing when --help was printed.
std::optional<send_options> parse_options(int argc, char** argv) {
    po::options_description desc("options");
    // Values are taken as text and converted here so that "-m -1" is an error, not 2^64-1.
    desc.add_options()("help", "print this help and exit")("host,h", po::value<std::string>(),
                                                           "host:port[,host:port..] to connect to")(
      "messages,m", po::value<std::string>(),
      "total messages to send")("file,f", po::value<std::string>(), "comma-separated input files")(
      "batch-size,s", po::value<std::string>(), "messages per write (default 500)")(
      "interval,i", po::value<std::string>(), "pause between batches in ns (default 0)")(
      "repeat,r", po::bool_switch(), "repeat the input until -m messages are sent")(
      "binary,y", po::bool_switch(), "the files hold ready-made binary records")(
      "msg-size,g", po::value<std::string>(), "with -y: fixed-size records of n bytes")(
      "variable-size,z", po::bool_switch(), "with -y: u32-length-prefixed records (default)")(
      "u64,u", po::bool_switch(), "send [u32 8+|p|][u64 counter][p] instead of files")(
      "start-from,v", po::value<std::string>(), "first counter value for -u (default 0)")(
      "partition,p", po::value<std::string>(), "key p appended to every -u message")(
      "no-write,w", po::bool_switch(), "connect and generate, but write nothing")(
      "rate", po::value<std::string>(), "constant rate in messages/s, kept to its schedule")(
      "latency", po::bool_switch(),
      "with --rate: send [u64 intended_send_ns][u64 seq][zeros] payloads of -g bytes (default "
      "16, at least 16), stamped with the schedule's time (CLOCK_MONOTONIC)")(
      "stamp-order-id", po::bool_switch(),
      "with -y: overwrite payload bytes 6..11 of every record (market_spread's order_id) with "
      "the message's number k (48-bit big-endian; 0, 1, 2.. in send order over all connections)")(
      "schedule-file", po::value<std::string>(),
      "with --rate: write \"start_monotonic_ns rate\" to this file before the first message "
      "(message k is due at start + k * 1e9 / rate)")("connect-timeout", po::value<std::string>(),
                                                      "seconds to keep retrying (default 10)");

    const po::variables_map vm = ringtail::tools::parse_command_line(argc, argv, desc);
    if (vm.count("help")) {
        fmt::print("{}\n", usage_text);
        fmt::print("{}", ringtail::tools::options_text(desc));
        return std::nullopt;
    }

    auto text = [&](const char* name) { return vm[name].as<std::string>(); };
    send_options o;
    if (!vm.count("host")) {
        throw usage_error{ "-h host:port is required" };
    }
    for (const auto& part : split_commas(text("host"))) {
        auto hp = ringtail::net::parse_host_port(part);
        if (!hp) {
            throw usage_error{ hp.err().message };
        }
        o.hosts.push_back(hp.value());
    }
    if (vm.count("messages")) {
        o.messages = parse_count("-m", text("messages"));
    }
    if (vm.count("file")) {
        o.files = split_commas(text("file"));
        if (std::any_of(o.files.begin(), o.files.end(), [](auto& f) { return f.empty(); })) {
            throw usage_error{ "-f has an empty file name" };
        }
    }
    if (vm.count("batch-size")) {
        o.batch_size = parse_count("-s", text("batch-size"));
        if (o.batch_size == 0) {
            throw usage_error{ "-s must be at least 1" };
        }
    }
    if (vm.count("interval")) {
        o.interval_ns = parse_count("-i", text("interval"));
    }
    o.repeat = vm["repeat"].as<bool>();
    o.binary = vm["binary"].as<bool>();
    o.variable_size = vm["variable-size"].as<bool>();
    o.u64_sequence = vm["u64"].as<bool>();
    o.no_write = vm["no-write"].as<bool>();
    o.latency = vm["latency"].as<bool>();
    o.stamp_order_id = vm["stamp-order-id"].as<bool>();
    if (vm.count("schedule-file")) {
        o.schedule_file = text("schedule-file");
        if (o.schedule_file.empty()) {
            throw usage_error{ "--schedule-file needs a path" };
        }
    }
    if (vm.count("msg-size")) {
        o.msg_size = parse_count("-g", text("msg-size"));
        if (*o.msg_size == 0) {
            throw usage_error{ "-g must be at least 1" };
        }
    }
    if (vm.count("start-from")) {
        o.start_from = parse_count("-v", text("start-from"));
    }
    if (vm.count("partition")) {
        o.partition = text("partition");
    }
    if (vm.count("rate")) {
        o.rate_per_s = parse_positive_seconds_or_rate("--rate", text("rate"));
    }
    if (vm.count("connect-timeout")) {
        o.connect_timeout_s =
          parse_positive_seconds_or_rate("--connect-timeout", text("connect-timeout"));
    }

    // Combinations that would silently do something other than what was asked.
    if (!o.schedule_file.empty() && !o.rate_per_s) {
        throw usage_error{ "--schedule-file needs --rate: there is no schedule without a rate" };
    }
    if (o.stamp_order_id && (o.latency || !o.binary)) {
        throw usage_error{ "--stamp-order-id overwrites bytes of binary records: it needs -y files "
                           "and does not go with --latency" };
    }
    if (o.latency) {
        if (!o.rate_per_s) {
            throw usage_error{ "--latency needs --rate: latency is measured against a schedule" };
        }
        if (o.u64_sequence || !o.files.empty() || o.binary || o.variable_size ||
            vm.count("partition") || vm.count("start-from")) {
            throw usage_error{
                "--latency generates its own messages: drop -f, -u, -y, -z, -p, -v"
            };
        }
        if (vm.count("interval")) {
            throw usage_error{ "--rate sets the pace: drop -i" };
        }
        o.msg_size = o.msg_size.value_or(latency_header_size);
        if (*o.msg_size < latency_header_size) {
            throw usage_error{ "with --latency, -g must be at least 16 (the two u64 stamps)" };
        }
        if (*o.msg_size > std::numeric_limits<std::uint32_t>::max()) {
            throw usage_error{ "-g is too large" };
        }
        return o;
    }
    if (o.u64_sequence && !o.files.empty()) {
        throw usage_error{ "-u generates its own messages: drop -f" };
    }
    if (!o.u64_sequence && o.files.empty()) {
        throw usage_error{ "give -f files, -u or --rate R --latency" };
    }
    if (o.u64_sequence && (o.binary || o.msg_size || o.variable_size)) {
        throw usage_error{ "-y, -g and -z describe input files and do not go with -u" };
    }
    if (!o.u64_sequence && (vm.count("partition") || vm.count("start-from"))) {
        throw usage_error{ "-p and -v go with -u" };
    }
    if ((o.msg_size || o.variable_size) && !o.binary) {
        throw usage_error{ "-g and -z describe binary files: add -y" };
    }
    if (o.msg_size && o.variable_size) {
        throw usage_error{
            "-g (fixed-size records) and -z (variable-size records) exclude each other"
        };
    }
    if (o.rate_per_s && vm.count("interval")) {
        throw usage_error{ "--rate sets the pace: drop -i" };
    }
    if (o.partition.size() > std::numeric_limits<std::uint32_t>::max() - 8) {
        throw usage_error{ "-p is too long" };
    }
    return o;
}

void put_be32(char* p, std::uint32_t v) {
    v = htonl(v);
    std::memcpy(p, &v, 4);
}

std::uint32_t load_be32(const char* p) {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    return ntohl(v);
}

std::vector<char> read_whole_file(const std::string& path) {
    ringtail::unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) {
        die(exit_no_input, fmt::format("cannot read {}: {}", path, std::strerror(errno)));
    }
    std::vector<char> data;
    std::size_t used = 0;
    data.resize(1 << 20);
    while (true) {
        if (used == data.size()) {
            data.resize(data.size() * 2);
        }
        ssize_t n = ::read(fd.get(), data.data() + used, data.size() - used);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            die(exit_no_input, fmt::format("cannot read {}: {}", path, std::strerror(errno)));
        }
        if (n == 0) {
            break;
        }
        used += static_cast<std::size_t>(n);
    }
    fd.reset();
    data.resize(used);
    return data;
}

// The file messages, framed once at start-up: `image` holds every frame back to back and
// `offsets[k]` is where frame k starts (offsets.back() == image.size()), so that a run of
// consecutive messages is one memcpy.
struct file_image {
    std::vector<char> image;
    std::vector<std::uint64_t> offsets{ 0 };

    std::uint64_t count() const { return offsets.size() - 1; }
    void add_frame_end() { offsets.push_back(image.size()); }
};

void add_text_file(file_image& fi, const std::vector<char>& data) {
    std::size_t start = 0;
    while (start < data.size()) {
        auto nl = std::find(data.begin() + static_cast<std::ptrdiff_t>(start), data.end(), '\n');
        std::size_t end = static_cast<std::size_t>(nl - data.begin());
        std::size_t len = end - start;
        std::size_t at = fi.image.size();
        fi.image.resize(at + 4 + len);
        put_be32(fi.image.data() + at, static_cast<std::uint32_t>(len));
        std::memcpy(fi.image.data() + at + 4, data.data() + start, len);
        fi.add_frame_end();
        start = end + 1;
    }
}

void add_binary_file(file_image& fi, const std::vector<char>& data, const std::string& path,
                     std::optional<std::uint64_t> fixed_size) {
    std::size_t at = 0;
    while (at < data.size()) {
        std::size_t record = 0;
        if (fixed_size) {
            record = *fixed_size;
        } else if (data.size() - at >= 4) {
            record = 4 + static_cast<std::size_t>(load_be32(data.data() + at));
        } else {
            record = 4; // a header cut short: reported below
        }
        if (record > data.size() - at) {
            die(exit_data_error,
                fmt::format("{} ends inside a record at byte {} ({} bytes left, record needs {})",
                            path, at, data.size() - at, record));
        }
        fi.image.insert(fi.image.end(), data.begin() + static_cast<std::ptrdiff_t>(at),
                        data.begin() + static_cast<std::ptrdiff_t>(at + record));
        fi.add_frame_end();
        at += record;
    }
}

// "start_monotonic_ns rate\n", the rate written so that strtod reads back the same double (the
// receiver then computes exactly the sender's due times); written beside and renamed, so that a
// reader polling for it never sees half a line.
void write_schedule_file(const std::string& path, std::uint64_t start_ns, double rate) {
    ringtail::tools::write_file_atomically("ringtail-send", path,
                                           fmt::format("{} {}\n", start_ns, rate));
}

// One TCP connection to a receiver, written with blocking sends.
struct connection {
    host_port address;
    ringtail::unique_fd fd;
    std::vector<char> pending; // the bytes of the current batch for this connection
};

// Connects, retrying every 100 ms (the receiver may not be up yet) until the deadline.
ringtail::unique_fd connect_with_retry(const host_port& hp, std::uint64_t deadline_ns) {
    auto addr = ringtail::net::resolve_ipv4(hp.host);
    if (!addr) {
        die(exit_network, addr.err().message);
    }
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(hp.port);
    sa.sin_addr.s_addr = addr.value();
    std::string last_error = "timed out";
    while (!stop_requested) {
        ringtail::unique_fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        if (!fd.valid()) {
            die(exit_network, fmt::format("socket: {}", std::strerror(errno)));
        }
        int rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa);
        if (rc < 0 && errno == EINPROGRESS) {
            // Non-blocking connect so that a black-holed address cannot outlast the deadline.
            std::uint64_t now = now_ns();
            int wait_ms =
              now >= deadline_ns ? 0 : static_cast<int>((deadline_ns - now) / 1'000'000);
            pollfd p{ fd.get(), POLLOUT, 0 };
            int ready = ::poll(&p, 1, std::max(wait_ms, 1));
            int so_error = ETIMEDOUT;
            socklen_t len = sizeof so_error;
            if (ready == 1) {
                ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &so_error, &len);
            }
            rc = so_error == 0 ? 0 : -1;
            errno = so_error;
        }
        if (rc == 0) {
            int flags = ::fcntl(fd.get(), F_GETFL);
            ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
            int one = 1;
            // Batches are already large; a small paced batch should leave at once.
            ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            return fd;
        }
        last_error = std::strerror(errno);
        fd.reset();
        std::uint64_t now = now_ns();
        if (now >= deadline_ns) {
            break;
        }
        sleep_until_ns(std::min(now + 100'000'000, deadline_ns));
    }
    die(exit_network, fmt::format("cannot connect to {}: {}", hp.to_string(), last_error));
}

// Produces messages in order and deals them round-robin into the connections' pending buffers.
class message_dealer {
public:
    message_dealer(const send_options& o, file_image fi, std::vector<connection>& conns)
      : _u64(o.u64_sequence)
      , _latency(o.latency)
      , _latency_size(o.latency ? *o.msg_size : 0)
      , _stamp(o.stamp_order_id)
      , _counter(o.start_from)
      , _partition(o.partition)
      , _files(std::move(fi))
      , _conns(conns) {}

    // Latency mode: message k is due at start_ns + k * ns_per_msg (the sender's schedule).
    void set_schedule(std::uint64_t start_ns, double ns_per_msg) {
        _start_ns = start_ns;
        _ns_per_msg = ns_per_msg;
    }

    std::uint64_t due_ns(std::uint64_t k) const {
        return _start_ns + static_cast<std::uint64_t>(static_cast<double>(k) * _ns_per_msg);
    }

    // Appends messages [first, first+count) of the whole run; message k goes to connection
    // k % connections, and in file mode is frame k % count() of the file image.
    void deal(std::uint64_t first, std::uint64_t count) {
        if (_latency) {
            for (std::uint64_t k = first; k < first + count; ++k) {
                append_latency(_conns[k % _conns.size()].pending, k);
            }
            return;
        }
        if (_conns.size() == 1 && !_u64) {
            deal_file_runs(_conns[0].pending, first, count);
            return;
        }
        for (std::uint64_t k = first; k < first + count; ++k) {
            auto& out = _conns[k % _conns.size()].pending;
            if (_u64) {
                append_u64(out, _counter + k);
            } else {
                deal_file_runs(out, k, 1);
            }
        }
    }

private:
    void deal_file_runs(std::vector<char>& out, std::uint64_t first, std::uint64_t count) {
        const auto n = _files.count();
        while (count > 0) {
            std::uint64_t from = first % n;
            std::uint64_t run = std::min(count, n - from);
            auto b = _files.offsets[from];
            auto e = _files.offsets[from + run];
            const std::size_t at = out.size();
            out.insert(out.end(), _files.image.data() + b, _files.image.data() + e);
            if (_stamp) {
                // Frame j of the run is message first + j: its number replaces the order_id.
                for (std::uint64_t j = 0; j < run; ++j) {
                    char* p =
                      out.data() + at + (_files.offsets[from + j] - b) + 4 + order_id_offset;
                    const std::uint64_t k = first + j;
                    for (std::size_t i = 0; i < order_id_size; ++i) {
                        p[i] = static_cast<char>(k >> (8 * (order_id_size - 1 - i)));
                    }
                }
            }
            first += run;
            count -= run;
        }
    }

    void append_u64(std::vector<char>& out, std::uint64_t value) {
        std::size_t at = out.size();
        out.resize(at + 12 + _partition.size());
        char* p = out.data() + at;
        put_be32(p, static_cast<std::uint32_t>(8 + _partition.size()));
        for (int i = 0; i < 8; ++i) {
            p[4 + i] = static_cast<char>(value >> (56 - 8 * i));
        }
        std::memcpy(p + 12, _partition.data(), _partition.size());
    }

    // [u32 size][u64 intended_send_ns][u64 seq][zeros]: the intended time is the schedule's, so
    // a message written late (backpressure, a descheduled sender) still carries its due time.
    void append_latency(std::vector<char>& out, std::uint64_t k) {
        std::size_t at = out.size();
        out.resize(at + 4 + _latency_size); // resize zero-fills the padding
        char* p = out.data() + at;
        put_be32(p, static_cast<std::uint32_t>(_latency_size));
        put_be64(p + 4, due_ns(k));
        put_be64(p + 12, k);
    }

    static void put_be64(char* p, std::uint64_t value) {
        for (int i = 0; i < 8; ++i) {
            p[i] = static_cast<char>(value >> (56 - 8 * i));
        }
    }

    bool _u64;
    bool _latency;
    std::uint64_t _latency_size;
    bool _stamp;
    std::uint64_t _start_ns = 0;
    double _ns_per_msg = 0;
    std::uint64_t _counter;
    std::string _partition;
    file_image _files;
    std::vector<connection>& _conns;
};

// Writes and clears every pending buffer; a failed write is a lost connection (exit 1).
void flush_pending(std::vector<connection>& conns, bool no_write, std::uint64_t sent) {
    for (auto& c : conns) {
        std::size_t done = 0;
        while (!no_write && done < c.pending.size()) {
            ssize_t n =
              ::send(c.fd.get(), c.pending.data() + done, c.pending.size() - done, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) {
                continue; // a stop signal lands between batches; finish this one first
            }
            if (n < 0) {
                die(exit_network, fmt::format("lost connection to {} after {} messages: {}",
                                              c.address.to_string(), sent, std::strerror(errno)));
            }
            done += static_cast<std::size_t>(n);
        }
        c.pending.clear();
    }
}

int run(const send_options& o) {
    file_image files;
    for (const auto& path : o.files) {
        auto data = read_whole_file(path);
        if (o.binary) {
            add_binary_file(files, data, path, o.msg_size);
        } else {
            add_text_file(files, data);
        }
    }

    // How many messages this run sends in all.
    std::uint64_t total = o.messages.value_or(unlimited);
    if (!o.u64_sequence && !o.latency) {
        if (files.count() == 0) {
            total = 0;
        } else if (!o.repeat) {
            total = std::min(total, files.count());
        }
    }
    if (o.stamp_order_id) {
        if (total > order_id_limit) {
            die(exit_usage, "--stamp-order-id numbers messages in 48 bits: give -m of at most "
                            "2^48 (see --help)");
        }
        for (std::uint64_t k = 0; k < files.count(); ++k) {
            const std::uint64_t payload = files.offsets[k + 1] - files.offsets[k] - 4;
            if (payload < order_id_offset + order_id_size) {
                die(exit_data_error,
                    fmt::format("record {} has a {} byte payload; --stamp-order-id needs at least "
                                "{} (the order_id at bytes {}..{})",
                                k, payload, order_id_offset + order_id_size, order_id_offset,
                                order_id_offset + order_id_size - 1));
            }
        }
    }

    ringtail::tools::on_stop_signals(); // no SA_RESTART: a blocked send or sleep returns

    std::uint64_t deadline = now_ns() + static_cast<std::uint64_t>(o.connect_timeout_s * 1e9);
    std::vector<connection> conns;
    for (const auto& hp : o.hosts) {
        conns.push_back(connection{ hp, connect_with_retry(hp, deadline), {} });
    }
    message_dealer dealer(o, std::move(files), conns);

    std::uint64_t sent = 0;
    std::uint64_t bytes = 0;
    std::uint64_t max_behind_ns = 0;
    const std::uint64_t start = now_ns();
    auto send_batch = [&](std::uint64_t count) {
        dealer.deal(sent, count);
        for (auto& c : conns) {
            bytes += c.pending.size();
        }
        flush_pending(conns, o.no_write, sent);
        sent += count;
    };

    if (o.rate_per_s) {
        // Message k is due at start + k/rate. Send all that is due (in bursts when behind, so the
        // schedule never slips), then sleep to the next due time.
        const double ns_per_msg = 1e9 / *o.rate_per_s;
        dealer.set_schedule(start, ns_per_msg);
        if (!o.schedule_file.empty()) {
            write_schedule_file(o.schedule_file, start, *o.rate_per_s);
        }
        auto due_ns = [&](std::uint64_t k) { return dealer.due_ns(k); };
        // The default 50 µs timer slack would make every sleep late by up to 50 µs, and that
        // would count as latency in --latency mode; ask for the tightest wake-ups instead.
        ::prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
        while (sent < total && !stop_requested) {
            std::uint64_t now = now_ns();
            auto due_count =
              static_cast<std::uint64_t>(static_cast<double>(now - start) / ns_per_msg) + 1;
            due_count = std::min(due_count, total);
            if (due_count > sent) {
                max_behind_ns = std::max(max_behind_ns, now - std::min(now, due_ns(sent)));
                while (sent < due_count && !stop_requested) {
                    send_batch(std::min(o.batch_size, due_count - sent));
                }
                // The last message of a burst is the latest; backpressure shows up here.
                now = now_ns();
                max_behind_ns = std::max(max_behind_ns, now - std::min(now, due_ns(sent - 1)));
            }
            if (sent < total) {
                sleep_until_ns(due_ns(sent));
            }
        }
    } else {
        std::uint64_t next_batch = start;
        while (sent < total && !stop_requested) {
            send_batch(std::min(o.batch_size, total - sent));
            if (o.interval_ns > 0 && sent < total) {
                // Paced like giles: one batch per interval; after a stall start afresh rather
                // than burst (only --rate promises to catch up).
                next_batch = std::max(next_batch + o.interval_ns, now_ns());
                sleep_until_ns(next_batch);
            }
        }
    }
    const double seconds = static_cast<double>(now_ns() - start) / 1e9;

    for (auto& c : conns) {
        // Our half-close tells the receiver the stream is complete; the kernel still delivers
        // everything queued.
        ::shutdown(c.fd.get(), SHUT_WR);
        c.fd.reset();
    }
    std::string line =
      fmt::format("{} {} messages, {} bytes in {:.3f} s ({:.0f} msgs/s)",
                  o.no_write ? "generated (not written)" : "sent", sent, bytes, seconds,
                  seconds > 0 ? static_cast<double>(sent) / seconds : 0.0);
    if (o.rate_per_s) {
        line += fmt::format(", at most {:.3f} ms behind schedule",
                            static_cast<double>(max_behind_ns) / 1e6);
    }
    fmt::print(stderr, "ringtail-send: {}\n", line);
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    std::optional<send_options> options;
    try {
        options = parse_options(argc, argv);
    } catch (const usage_error& e) {
        die(exit_usage, e.message + " (see --help)");
    }
    if (!options) {
        return 0;
    }
    return run(*options);
}
