// The HTTP endpoint: what publish() keeps of a snapshot, the Prometheus and JSON renderings of it,
// and the serving thread (a poll loop over non-blocking clients, Beast's parser for requests).
#include "net/metrics/http_endpoint.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string_view>
#include <sys/socket.h>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/log.h"
#include "net/io/tcp_listener.h"

namespace ringtail::net {
namespace {

namespace http = boost::beast::http;

// The Prometheus bucket bounds: in nanoseconds for counting, as text for the `le` label.
constexpr std::array<std::uint64_t, http_endpoint::latency_bucket_count> bucket_bounds_ns{
    1'000, 10'000, 100'000, 1'000'000, 10'000'000, 100'000'000, 1'000'000'000
};
constexpr std::array<const char*, http_endpoint::latency_bucket_count> bucket_labels{
    "1e-06", "1e-05", "0.0001", "0.001", "0.01", "0.1", "1"
};

// A slot of the histogram counts below a bound only if its highest value does (the convention of
// value_at_percentile, which reports a slot's highest value); the error is under 0.1 %.
void fill_summary(const histogram& h, http_endpoint::metric_summary& m) {
    m.has_latency = true;
    m.count = h.total_count();
    if (m.count == 0) {
        return;
    }
    m.p50_ns = h.value_at_percentile(50.0);
    m.p99_ns = h.value_at_percentile(99.0);
    m.p999_ns = h.value_at_percentile(99.9);
    m.max_ns = h.max();
    m.sum_seconds = h.mean() * static_cast<double>(m.count) / 1e9;
    std::array<std::uint64_t, http_endpoint::latency_bucket_count> per_bucket{};
    std::uint64_t seen = 0;
    for (std::size_t slot = 0; slot < histogram::slot_count && seen < m.count; ++slot) {
        const std::uint64_t c = h.count_at(histogram::slot_lowest(slot));
        if (c == 0) {
            continue;
        }
        seen += c;
        const std::uint64_t highest = histogram::slot_highest(slot);
        for (std::size_t k = 0; k < bucket_bounds_ns.size(); ++k) {
            if (highest <= bucket_bounds_ns[k]) {
                per_bucket[k] += c;
                break;
            }
        }
    }
    std::uint64_t cumulative = 0;
    for (std::size_t k = 0; k < per_bucket.size(); ++k) {
        cumulative += per_bucket[k];
        m.cumulative[k] = cumulative;
    }
}

// Label values: backslash, double quote and newline escaped (exposition format 0.0.4).
std::string escape_label(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (char ch : v) {
        if (ch == '\\') {
            out += "\\\\";
        } else if (ch == '"') {
            out += "\\\"";
        } else if (ch == '\n') {
            out += "\\n";
        } else {
            out += ch;
        }
    }
    return out;
}

void append_counter(std::string& out, std::string_view name, std::string_view help,
                    const std::string& labels, std::uint64_t value) {
    fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} counter\n{}{{{}}} {}\n", name,
                   help, name, name, labels, value);
}

nlohmann::json latency_json(const http_endpoint::metric_summary& m) {
    return nlohmann::json{ { "count", m.count },
                           { "p50_ns", m.p50_ns },
                           { "p99_ns", m.p99_ns },
                           { "p999_ns", m.p999_ns },
                           { "max_ns", m.max_ns } };
}

std::string http_response(int code, std::string_view reason, std::string_view content_type,
                          std::string_view body, std::string_view extra_headers = {}) {
    return fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}"
                       "Connection: close\r\n\r\n{}",
                       code, reason, content_type, body.size(), extra_headers, body);
}

std::string bad_request() {
    return http_response(400, "Bad Request", "text/plain; charset=utf-8", "bad request\n");
}

} // namespace

struct http_endpoint::client {
    enum class phase { reading, writing, draining };

    explicit client(unique_fd fd_)
      : fd(std::move(fd_)) {
        parser.header_limit(static_cast<std::uint32_t>(header_limit_bytes));
        parser.body_limit(body_limit_bytes);
        parser.eager(true);
    }

    unique_fd fd;
    event_loop::timer_id deadline = 0; // closes the connection: the client timeout, then drain
    phase state = phase::reading;
    http::request_parser<http::string_body> parser;
    std::string in; // received, not yet consumed by the parser
    std::string out;
    std::size_t out_offset = 0;
    bool done = false; // to be closed and removed
};

result<std::unique_ptr<http_endpoint>> http_endpoint::open(event_loop& loop, const host_port& at,
                                                           std::string app_name,
                                                           std::string worker_name, std::string net,
                                                           limits lim) {
    return open_on(nullptr, loop, at, std::move(app_name), std::move(worker_name), std::move(net),
                   lim);
}

result<std::unique_ptr<http_endpoint>> http_endpoint::open(const host_port& at,
                                                           std::string app_name,
                                                           std::string worker_name, std::string net,
                                                           limits lim) {
    auto own = std::make_unique<event_loop_thread>();
    event_loop& loop = own->loop();
    return open_on(std::move(own), loop, at, std::move(app_name), std::move(worker_name),
                   std::move(net), lim);
}

result<std::unique_ptr<http_endpoint>> http_endpoint::open_on(
  std::unique_ptr<event_loop_thread> own, event_loop& loop, const host_port& at,
  std::string app_name, std::string worker_name, std::string net, limits lim) {
    auto fd = listen_tcp(at, 64);
    if (!fd) {
        return fd.err();
    }
    unique_fd listening(fd.value());
    std::unique_ptr<http_endpoint> e(new http_endpoint(
      std::move(own), loop, std::move(app_name), std::move(worker_name), std::move(net), lim));
    e->_port = ringtail::net::bound_port(listening.get());
    http_endpoint* self = e.get();
    loop.call([&] {
        self->_listener = std::make_unique<listener>(
          self->_loop, std::move(listening), "http endpoint", self->_limits.max_connections,
          [self](unique_fd c, std::string) { self->on_accept(std::move(c)); });
    });
    return e;
}

http_endpoint::http_endpoint(std::unique_ptr<event_loop_thread> own, event_loop& loop,
                             std::string app_name, std::string worker_name, std::string net,
                             limits lim)
  : _own_loop(std::move(own))
  , _loop(loop)
  , _limits(lim)
  , _app_name(std::move(app_name))
  , _worker_name(std::move(worker_name))
  , _net(std::move(net)) {}

http_endpoint::~http_endpoint() {
    _loop.call([this] {
        while (!_clients.empty()) {
            close_client(_clients.begin()->first);
        }
        _listener.reset();
    });
    _own_loop.reset();
}

std::uint64_t http_endpoint::connections_refused() const {
    return _listener ? _listener->refused() : 0;
}

void http_endpoint::publish(const metrics_snapshot& snapshot) {
    // All the work outside the lock: the HTTP thread never waits for it.
    published next;
    next.valid = true;
    next.period_ns = snapshot.period_ns;
    next.period_end_ns = snapshot.period_end_ns;
    next.shards = snapshot.shards_reporting;
    next.dropped_periods = snapshot.dropped_periods;
    next.totals = snapshot.totals;
    if (snapshot.catalog != nullptr) {
        const auto& keys = snapshot.catalog->keys();
        next.metrics.resize(keys.size());
        for (std::size_t i = 0; i < keys.size(); ++i) {
            metric_summary& m = next.metrics[i];
            m.name = keys[i].name;
            m.category = to_string(keys[i].category);
            m.pipeline = keys[i].pipeline;
            if (keys[i].category == metric_category::pipeline_ingestion) {
                m.count = i < snapshot.counts.size() ? snapshot.counts[i] : 0;
            } else if (i < snapshot.latency.size()) {
                fill_summary(snapshot.latency[i], m);
            }
        }
    }
    std::lock_guard lock(_mu);
    if (_published.valid) {
        next.has_previous = true;
        next.previous_totals = _published.totals;
        next.previous_end_ns = _published.period_end_ns;
    }
    std::swap(_published, next);
    // `next` (the old numbers) is freed after the lock is released.
}

http_endpoint::published http_endpoint::copy_published() const {
    std::lock_guard lock(_mu);
    return _published;
}

std::string http_endpoint::render_metrics() const {
    const published p = copy_published();
    const std::string base =
      fmt::format("app=\"{}\",worker=\"{}\"", escape_label(_app_name), escape_label(_worker_name));
    const auto& t = p.totals;
    std::string out;
    for (const counter_spec& c : worker_counter_specs) {
        if (!c.metric.empty()) {
            append_counter(out, fmt::format("ringtail_{}_total", c.metric), c.help, base,
                           t.*c.field);
        }
    }
    append_counter(
      out, "ringtail_metrics_dropped_periods_total",
      "Shard metric periods reported late, with the next one, because the metrics thread lagged.",
      base, p.dropped_periods);
    fmt::format_to(std::back_inserter(out),
                   "# HELP ringtail_shards_reporting Shards that reported in the last period.\n"
                   "# TYPE ringtail_shards_reporting gauge\nringtail_shards_reporting{{{}}} {}\n",
                   base, p.shards);
    out += "# HELP ringtail_latency_seconds Latency over the last metrics period (computation: "
           "one stage; start-to-end: one pipeline; node-ingress-egress: the worker).\n"
           "# TYPE ringtail_latency_seconds histogram\n";
    for (const metric_summary& m : p.metrics) {
        if (!m.has_latency) {
            continue;
        }
        const std::string labels =
          fmt::format("{},category=\"{}\",name=\"{}\",pipeline=\"{}\"", base,
                      escape_label(m.category), escape_label(m.name), escape_label(m.pipeline));
        for (std::size_t k = 0; k < latency_bucket_count; ++k) {
            fmt::format_to(std::back_inserter(out),
                           "ringtail_latency_seconds_bucket{{{},le=\"{}\"}} {}\n", labels,
                           bucket_labels[k], m.cumulative[k]);
        }
        fmt::format_to(std::back_inserter(out),
                       "ringtail_latency_seconds_bucket{{{},le=\"+Inf\"}} {}\n"
                       "ringtail_latency_seconds_sum{{{}}} {}\n"
                       "ringtail_latency_seconds_count{{{}}} {}\n",
                       labels, m.count, labels, m.sum_seconds, labels, m.count);
    }
    out += "# HELP ringtail_pipeline_ingested Messages admitted per pipeline in the last metrics "
           "period.\n# TYPE ringtail_pipeline_ingested gauge\n";
    for (const metric_summary& m : p.metrics) {
        if (m.category == to_string(metric_category::pipeline_ingestion)) {
            fmt::format_to(std::back_inserter(out),
                           "ringtail_pipeline_ingested{{{},pipeline=\"{}\"}} {}\n", base,
                           escape_label(m.pipeline), m.count);
        }
    }
    return out;
}

std::string http_endpoint::render_status() const {
    const published p = copy_published();
    const auto& t = p.totals;
    nlohmann::json j;
    j["app"] = _app_name;
    j["worker"] = _worker_name;
    j["net"] = _net;
    j["period_ms"] = p.period_ns / 1'000'000;
    j["period_end_ns"] = p.period_end_ns;
    j["shards"] = p.shards;
    j["dropped_periods"] = p.dropped_periods;
    nlohmann::json totals = nlohmann::json::object();
    for (const counter_spec& c : worker_counter_specs) {
        totals[std::string(c.name)] = t.*c.field;
    }
    j["totals"] = totals;
    // Rates over the time between the last two snapshots (one period when none was skipped).
    nlohmann::json rates = nlohmann::json::object();
    if (p.has_previous) {
        const std::uint64_t span_ns =
          p.period_end_ns > p.previous_end_ns ? p.period_end_ns - p.previous_end_ns : p.period_ns;
        const double seconds = static_cast<double>(span_ns) / 1e9;
        auto rate = [&](std::uint64_t now, std::uint64_t before) {
            return seconds > 0 && now >= before ? static_cast<double>(now - before) / seconds : 0.0;
        };
        const auto& b = p.previous_totals;
        for (const counter_spec& c : worker_counter_specs) {
            if (c.rate) {
                rates[fmt::format("{}_per_s", c.name)] = rate(t.*c.field, b.*c.field);
            }
        }
    } else {
        rates["ingested_per_s"] = nullptr;
    }
    j["rates"] = rates;
    nlohmann::json pipelines = nlohmann::json::array();
    nlohmann::json stages = nlohmann::json::array();
    nlohmann::json worker_latency = nlohmann::json::object();
    for (const metric_summary& m : p.metrics) {
        if (m.category == to_string(metric_category::start_to_end)) {
            pipelines.push_back({ { "name", m.name }, { "latency", latency_json(m) } });
        } else if (m.category == to_string(metric_category::computation)) {
            nlohmann::json s = latency_json(m);
            s["name"] = m.name;
            s["pipeline"] = m.pipeline;
            s["category"] = m.category;
            stages.push_back(std::move(s));
        } else if (m.category == to_string(metric_category::node_ingress_egress)) {
            worker_latency = latency_json(m);
        }
    }
    // The admitted count of each pipeline goes beside its latency.
    for (const metric_summary& m : p.metrics) {
        if (m.category != to_string(metric_category::pipeline_ingestion)) {
            continue;
        }
        for (auto& pl : pipelines) {
            if (pl["name"] == m.pipeline) {
                pl["ingested"] = m.count;
            }
        }
    }
    j["pipelines"] = std::move(pipelines);
    j["stages"] = std::move(stages);
    j["worker_latency"] = std::move(worker_latency);
    // Names come from the application and the command line: replace invalid UTF-8, never throw.
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

void http_endpoint::on_accept(unique_fd fd) {
    const int key = fd.get();
    auto c = std::make_unique<client>(std::move(fd));
    if (!_loop.watch(key, event_loop::readable, [this, key](std::uint32_t) { on_ready(key); })) {
        log::warn("http endpoint: cannot watch a connection: {}", std::strerror(errno));
        _listener->connection_closed();
        return;
    }
    c->deadline = _loop.run_after(_limits.client_timeout_ns, [this, key] {
        auto it = _clients.find(key);
        if (it != _clients.end()) {
            it->second->deadline = 0;
            if (it->second->state != client::phase::draining) {
                _timed_out.fetch_add(1, std::memory_order_relaxed);
            }
            close_client(key);
        }
    });
    _clients.emplace(key, std::move(c));
}

void http_endpoint::on_ready(int fd) {
    auto it = _clients.find(fd);
    if (it == _clients.end()) {
        return;
    }
    client& c = *it->second;
    if (c.state == client::phase::writing) {
        on_writable(c);
    } else {
        on_readable(c);
    }
    if (c.done) {
        close_client(fd);
    }
}

void http_endpoint::close_client(int fd) {
    auto it = _clients.find(fd);
    if (it == _clients.end()) {
        return;
    }
    _loop.cancel(it->second->deadline);
    _loop.unwatch(fd);
    _clients.erase(it); // closes the fd
    _listener->connection_closed();
}

void http_endpoint::on_readable(client& c) {
    char buf[4096];
    for (;;) {
        const ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                c.done = true;
            }
            return;
        }
        if (c.state == client::phase::draining) {
            if (n == 0) {
                c.done = true; // the client has read the response and closed
                return;
            }
            continue;
        }
        boost::system::error_code ec;
        if (n == 0) {
            // The client closed its side: answer what it sent, if it was a whole request.
            if (c.in.empty() && !c.parser.got_some()) {
                c.done = true;
                return;
            }
            c.parser.put_eof(ec);
            if (ec || !c.parser.is_done()) {
                c.out = bad_request();
                c.state = client::phase::writing;
                on_writable(c);
                return;
            }
            respond(c);
            on_writable(c);
            return;
        }
        c.in.append(buf, static_cast<std::size_t>(n));
        if (c.in.size() > header_limit_bytes + body_limit_bytes) {
            c.out = bad_request();
            c.state = client::phase::writing;
            on_writable(c);
            return;
        }
        std::size_t used = 0;
        while (!c.parser.is_done() && used < c.in.size()) {
            const std::size_t k =
              c.parser.put(boost::asio::buffer(c.in.data() + used, c.in.size() - used), ec);
            used += k;
            if (ec == http::error::need_more) {
                ec = {};
                break;
            }
            if (ec) {
                c.out = bad_request();
                c.state = client::phase::writing;
                on_writable(c);
                return;
            }
            if (k == 0) {
                break;
            }
        }
        c.in.erase(0, used);
        if (c.parser.is_done()) {
            respond(c);
            on_writable(c);
            return;
        }
    }
}

void http_endpoint::respond(client& c) {
    c.state = client::phase::writing;
    try {
        route(c);
    } catch (const std::exception& e) {
        // Rendering allocates; whatever goes wrong answers this request only.
        c.out = http_response(500, "Internal Server Error", "text/plain; charset=utf-8",
                              std::string(e.what()) + "\n");
    }
}

void http_endpoint::route(client& c) {
    const auto& req = c.parser.get();
    std::string_view target(req.target().data(), req.target().size());
    if (auto q = target.find('?'); q != std::string_view::npos) {
        target = target.substr(0, q);
    }
    if (req.method() != http::verb::get) {
        c.out = http_response(405, "Method Not Allowed", "text/plain; charset=utf-8",
                              "only GET is served\n", "Allow: GET\r\n");
    } else if (target == "/metrics") {
        c.out =
          http_response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", render_metrics());
    } else if (target == "/status") {
        c.out = http_response(200, "OK", "application/json", render_status());
    } else if (target == "/healthz") {
        c.out = http_response(200, "OK", "text/plain; charset=utf-8", "ok\n");
    } else {
        c.out = http_response(404, "Not Found", "text/plain; charset=utf-8",
                              "not found; try /metrics, /status or /healthz\n");
    }
}

void http_endpoint::on_writable(client& c) {
    while (c.out_offset < c.out.size()) {
        const ssize_t n = ::send(c.fd.get(), c.out.data() + c.out_offset,
                                 c.out.size() - c.out_offset, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                c.done = true;
            } else {
                _loop.modify(c.fd.get(), event_loop::writable); // the rest when it takes more
            }
            return;
        }
        c.out_offset += static_cast<std::size_t>(n);
    }
    // All written: close our side, then read until the client closes (so unread request bytes do
    // not turn the close into a reset that could destroy the response), for at most a second.
    ::shutdown(c.fd.get(), SHUT_WR);
    c.state = client::phase::draining;
    _loop.modify(c.fd.get(), event_loop::readable);
    const int key = c.fd.get();
    _loop.cancel(c.deadline);
    c.deadline = _loop.run_after(drain_timeout_ns, [this, key] {
        auto it = _clients.find(key);
        if (it != _clients.end()) {
            it->second->deadline = 0;
            close_client(key);
        }
    });
}

} // namespace ringtail::net
