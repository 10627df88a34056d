// ringtail-metrics: a stand-in monitoring hub (WIRE.md §5) that accepts workers' `--metrics`
// connections, decodes their frames and prints each period as a table (and, with --write, every
// PAYLOAD as one JSON line).
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <map>
#include <memory>
#include <netinet/in.h>
#include <optional>
#include <poll.h>
#include <sstream>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include <arpa/inet.h>
#include <boost/program_options.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/tools/tool_support.h"
#include "engine/clock.h"
#include "engine/fd.h"
#include "net/io/host_port.h"
#include "net/io/tcp_listener.h"
#include "net/metrics/metrics_hub_codec.h"

namespace {

namespace po = boost::program_options;
using ringtail::net::hub_metric;

using ringtail::tools::exit_cant_create;
using ringtail::tools::exit_io_error;
using ringtail::tools::exit_unavailable;
using ringtail::tools::exit_usage;

// A worker sends a period's PAYLOADs back to back; this long without more ends the period.
constexpr std::uint64_t period_quiet_ns = 200'000'000;
constexpr std::size_t max_connections = 256;

[[noreturn]] void die(int code, std::string_view line) {
    ringtail::tools::die("ringtail-metrics", code, line);
}

using ringtail::tools::usage_error;

using ringtail::tools::stop_requested;

std::uint64_t now_ns() {
    return ringtail::clock::monotonic_ns();
}

struct options {
    ringtail::net::host_port listen;
    std::string ready_file;
    std::string write_file;
    std::optional<double> duration_s;
};

std::optional<options> parse_options(int argc, char** argv) {
    po::options_description desc("options");
    desc.add_options()("help", "print this help and exit")(
      "listen,l", po::value<std::string>(), "host:port to listen on (port 0: any free port)")(
      "ready-file", po::value<std::string>(), "write the bound port to this file once listening")(
      "write", po::value<std::string>(),
      "also append every PAYLOAD to this file as one JSON object per line")(
      "duration", po::value<std::string>(), "exit 0 after this many seconds");
    const po::variables_map vm = ringtail::tools::parse_command_line(argc, argv, desc);
    if (vm.count("help")) {
        fmt::print(
          "usage: ringtail-metrics -l host:port [options]\n"
          "Listens as a Wallaroo monitoring hub and prints, per worker and period, every metric:\n"
          "category, pipeline, name, count, throughput (count / period) and p50, p99, p99.9 and\n"
          "max latency. The percentiles are estimated from the power-of-two bins of the protocol:\n"
          "each is the bin upper bound (2^i - 1 ns) of the bin holding that rank, capped at the\n"
          "exact max, so they may read up to 2x high. pipeline-ingestion rows are counts only.\n"
          "{}",
          ringtail::tools::options_text(desc));
        return std::nullopt;
    }
    options o;
    if (!vm.count("listen")) {
        throw usage_error{ "--listen host:port is required" };
    }
    auto hp = ringtail::net::parse_host_port(vm["listen"].as<std::string>(), true);
    if (!hp) {
        throw usage_error{ hp.err().message };
    }
    o.listen = *hp;
    if (vm.count("ready-file")) {
        o.ready_file = vm["ready-file"].as<std::string>();
    }
    if (vm.count("write")) {
        o.write_file = vm["write"].as<std::string>();
    }
    if (vm.count("duration")) {
        const std::string t = vm["duration"].as<std::string>();
        char* end = nullptr;
        const double v = std::strtod(t.c_str(), &end);
        if (t.empty() || end != t.c_str() + t.size() || !std::isfinite(v) || v < 0) {
            throw usage_error{ "bad value for --duration: expected a non-negative number" };
        }
        o.duration_s = v;
    }
    return o;
}

void write_ready_file(const std::string& path, std::uint16_t port) {
    ringtail::tools::write_file_atomically("ringtail-metrics", path, fmt::format("{}\n", port));
}

// 1234 -> "1.23us"; latencies in the table.
std::string human_ns(std::uint64_t ns) {
    if (ns < 1'000) {
        return fmt::format("{}ns", ns);
    }
    if (ns < 1'000'000) {
        return fmt::format("{:.2f}us", static_cast<double>(ns) / 1e3);
    }
    if (ns < 1'000'000'000) {
        return fmt::format("{:.2f}ms", static_cast<double>(ns) / 1e6);
    }
    return fmt::format("{:.3f}s", static_cast<double>(ns) / 1e9);
}

std::string utc_time(std::uint64_t epoch_ns) {
    const std::time_t secs = static_cast<std::time_t>(epoch_ns / 1'000'000'000u);
    std::tm tm{};
    ::gmtime_r(&secs, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    return fmt::format("{}.{:03}Z", buf, (epoch_ns / 1'000'000u) % 1000);
}

int category_rank(const std::string& c) {
    if (c == "pipeline-ingestion") {
        return 0;
    }
    if (c == "start-to-end") {
        return 1;
    }
    if (c == "computation") {
        return 2;
    }
    if (c == "node-ingress-egress") {
        return 3;
    }
    return 4;
}

// Prints one worker's period: a header line and one row per metric.
void print_period(const std::string& topic, const std::string& worker,
                  std::vector<hub_metric>& rows) {
    if (rows.empty()) {
        return;
    }
    std::stable_sort(rows.begin(), rows.end(), [](const hub_metric& a, const hub_metric& b) {
        if (category_rank(a.category) != category_rank(b.category)) {
            return category_rank(a.category) < category_rank(b.category);
        }
        if (a.pipeline != b.pipeline) {
            return a.pipeline < b.pipeline;
        }
        return a.id < b.id;
    });
    const hub_metric& first = rows.front();
    const double period_s = static_cast<double>(first.period_ns) / 1e9;
    std::vector<std::array<std::string, 9>> cells;
    cells.push_back(
      { "category", "pipeline", "name", "count", "per_s", "p50", "p99", "p99.9", "max" });
    for (const hub_metric& m : rows) {
        const std::uint64_t count = m.count();
        const std::string rate =
          period_s > 0 ? fmt::format("{:.1f}", static_cast<double>(count) / period_s) : "-";
        if (m.category == "pipeline-ingestion") {
            cells.push_back(
              { m.category, m.pipeline, m.name, std::to_string(count), rate, "-", "-", "-", "-" });
            continue;
        }
        auto pct = [&](double p) {
            return count == 0
                     ? std::string("-")
                     : human_ns(ringtail::net::hub_bins_value_at_percentile(m.bins, m.max, p));
        };
        cells.push_back({ m.category, m.pipeline, m.name, std::to_string(count), rate, pct(50),
                          pct(99), pct(99.9), count == 0 ? "-" : human_ns(m.max) });
    }
    std::array<std::size_t, 9> width{};
    for (const auto& row : cells) {
        for (std::size_t i = 0; i < row.size(); ++i) {
            width[i] = std::max(width[i], row[i].size());
        }
    }
    std::string out =
      fmt::format("== {} worker {} period ending {} ({:.3f} s), {} metrics\n", topic, worker,
                  utc_time(first.period_end_ns), period_s, rows.size());
    for (const auto& row : cells) {
        for (std::size_t i = 0; i < row.size(); ++i) {
            // Text columns left-aligned, numbers right-aligned.
            if (i < 3) {
                out += fmt::format("{:<{}}  ", row[i], width[i]);
            } else {
                out += fmt::format("{:>{}}  ", row[i], width[i]);
            }
        }
        while (!out.empty() && out.back() == ' ') {
            out.pop_back();
        }
        out += '\n';
    }
    std::fputs(out.c_str(), stdout);
    std::fflush(stdout);
    rows.clear();
}

struct connection {
    ringtail::unique_fd fd;
    std::string peer;
    std::string in;
    std::string topic = "?";
    std::string worker = "?";
    std::vector<hub_metric> period; // the PAYLOADs of the period being received
    std::uint64_t last_payload_ns = 0;
};

class hub {
public:
    hub(int listen_fd, std::FILE* json_out)
      : _listen_fd(listen_fd)
      , _json_out(json_out) {}

    void run(std::optional<std::uint64_t> deadline_ns) {
        std::vector<pollfd> fds;
        sigset_t run_mask;
        ::sigemptyset(&run_mask);
        while (!stop_requested) {
            std::uint64_t now = now_ns();
            if (deadline_ns && now >= *deadline_ns) {
                break;
            }
            fds.clear();
            fds.push_back(pollfd{
              _listen_fd, static_cast<short>(_conns.size() < max_connections ? POLLIN : 0), 0 });
            for (const auto& c : _conns) {
                fds.push_back(pollfd{ c->fd.get(), POLLIN, 0 });
            }
            std::uint64_t wait_ns = 100'000'000;
            if (deadline_ns) {
                wait_ns = std::min(wait_ns, *deadline_ns - now);
            }
            const timespec wait{ 0, static_cast<long>(wait_ns) };
            // Stop signals are blocked outside this call, so none is lost between checks.
            ::ppoll(fds.data(), fds.size(), &wait, &run_mask);
            now = now_ns();
            for (std::size_t i = 0; i < _conns.size(); ++i) {
                if (fds[i + 1].revents != 0) {
                    read_from(*_conns[i], now);
                }
            }
            for (auto& c : _conns) {
                if (c->fd.valid() && !c->period.empty() &&
                    now - c->last_payload_ns > period_quiet_ns) {
                    print_period(c->topic, c->worker, c->period);
                }
            }
            std::erase_if(_conns, [](const auto& c) { return !c->fd.valid(); });
            if ((fds[0].revents & POLLIN) != 0) {
                accept_all();
            }
        }
        for (auto& c : _conns) {
            print_period(c->topic, c->worker, c->period);
        }
    }

private:
    void accept_all() {
        while (_conns.size() < max_connections) {
            sockaddr_in sa{};
            socklen_t len = sizeof sa;
            ringtail::unique_fd fd(::accept4(_listen_fd, reinterpret_cast<sockaddr*>(&sa), &len,
                                             SOCK_NONBLOCK | SOCK_CLOEXEC));
            if (!fd.valid()) {
                return;
            }
            auto c = std::make_unique<connection>();
            c->fd = std::move(fd);
            char ip[INET_ADDRSTRLEN] = "?";
            ::inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof ip);
            c->peer = fmt::format("{}:{}", ip, ntohs(sa.sin_port));
            _conns.push_back(std::move(c));
        }
    }

    void close_connection(connection& c, std::string_view why) {
        if (!why.empty()) {
            fmt::print(stderr, "ringtail-metrics: closing {} (worker {}): {}\n", c.peer, c.worker,
                       why);
        }
        print_period(c.topic, c.worker, c.period);
        c.fd.reset();
    }

    void read_from(connection& c, std::uint64_t now) {
        char buf[65536];
        for (;;) {
            const ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, 0);
            if (n == 0) {
                if (!c.in.empty()) {
                    close_connection(c, "closed in the middle of a frame");
                } else {
                    close_connection(c, "");
                }
                return;
            }
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                if (errno != EAGAIN && errno != EWOULDBLOCK) {
                    close_connection(c, std::strerror(errno));
                }
                return;
            }
            c.in.append(buf, static_cast<std::size_t>(n));
            if (!decode_frames(c, now)) {
                return;
            }
        }
    }

    // Returns false once the connection was closed for a malformed frame.
    bool decode_frames(connection& c, std::uint64_t now) {
        std::size_t at = 0;
        for (;;) {
            const auto rest = std::as_bytes(std::span(c.in.data() + at, c.in.size() - at));
            const std::size_t len = ringtail::net::hub_frame_length(rest);
            if (len > ringtail::net::max_hub_frame_size + 4) {
                close_connection(c, fmt::format("frame of {} bytes is above the limit", len - 4));
                return false;
            }
            if (len == 0 || len > rest.size()) {
                break;
            }
            auto frame = ringtail::net::decode_hub_frame(rest.first(len));
            if (!frame) {
                close_connection(c, frame.err().message);
                return false;
            }
            at += len;
            if (auto* join = std::get_if<ringtail::net::hub_join>(&*frame)) {
                print_period(c.topic, c.worker, c.period);
                c.topic = join->topic;
                c.worker = join->worker;
            } else if (auto* payload = std::get_if<ringtail::net::hub_payload>(&*frame)) {
                on_payload(c, std::move(*payload), now);
            }
        }
        c.in.erase(0, at);
        return true;
    }

    void on_payload(connection& c, ringtail::net::hub_payload&& p, std::uint64_t now) {
        if (_json_out != nullptr) {
            const hub_metric& m = p.metric;
            nlohmann::json j{ { "topic", p.topic },
                              { "event", p.event },
                              { "worker", m.worker },
                              { "pipeline", m.pipeline },
                              { "category", m.category },
                              { "name", m.name },
                              { "id", m.id },
                              { "period_ns", m.period_ns },
                              { "period_end_ns", m.period_end_ns },
                              { "count", m.count() },
                              { "min", m.min },
                              { "max", m.max },
                              { "bins", m.bins } };
            // Names are untrusted bytes: invalid UTF-8 is replaced rather than thrown on.
            const std::string line =
              j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
            std::fwrite(line.data(), 1, line.size(), _json_out);
        }
        if (!c.period.empty() && c.period.front().period_end_ns != p.metric.period_end_ns) {
            print_period(c.topic, c.worker, c.period);
            if (_json_out != nullptr) {
                std::fflush(_json_out);
            }
        }
        c.period.push_back(std::move(p.metric));
        c.last_payload_ns = now;
    }

    int _listen_fd;
    std::FILE* _json_out;
    std::vector<std::unique_ptr<connection>> _conns;
};

} // namespace

int main(int argc, char** argv) {
    std::optional<options> parsed;
    try {
        parsed = parse_options(argc, argv);
    } catch (const usage_error& e) {
        die(exit_usage, e.message + " (see --help)");
    }
    if (!parsed) {
        return 0;
    }
    const options& o = *parsed;

    ringtail::tools::block_stop_signals();

    std::FILE* json_out = nullptr;
    if (!o.write_file.empty()) {
        json_out = std::fopen(o.write_file.c_str(), "ae");
        if (json_out == nullptr) {
            die(exit_cant_create,
                fmt::format("cannot open {}: {}", o.write_file, std::strerror(errno)));
        }
    }
    auto listened = ringtail::net::listen_tcp(o.listen, 64);
    if (!listened) {
        die(listened.err().code == ringtail::errc::usage ? exit_usage : exit_unavailable,
            listened.err().message);
    }
    ringtail::unique_fd listen_fd(*listened);
    if (!o.ready_file.empty()) {
        write_ready_file(o.ready_file, ringtail::net::bound_port(listen_fd.get()));
    }
    std::optional<std::uint64_t> deadline;
    if (o.duration_s) {
        deadline = now_ns() + static_cast<std::uint64_t>(*o.duration_s * 1e9);
    }
    hub h(listen_fd.get(), json_out);
    h.run(deadline);
    listen_fd.reset();
    if (json_out != nullptr && std::fclose(json_out) != 0) {
        die(exit_io_error, fmt::format("cannot write {}: {}", o.write_file, std::strerror(errno)));
    }
    return 0;
}
