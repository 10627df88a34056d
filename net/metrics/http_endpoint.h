// The worker's small HTTP endpoint (DESIGN.md §6): GET /metrics (Prometheus text format 0.0.4),
// GET /status (JSON) and GET /healthz, served from the last periods the metrics thread published.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/metrics.h"
#include "engine/result.h"
#include "net/io/event_loop.h"
#include "net/io/host_port.h"
#include "net/io/listener.h"

namespace ringtail::net {

// The HTTP endpoint's hostile-client limits (net/metrics/README.md); tests make them small.
struct http_endpoint_limits {
    static constexpr std::size_t default_max_connections = 512;
    static constexpr std::uint64_t default_client_timeout_ns = 5'000'000'000;

    // Open connections; the newest beyond it is refused.
    std::size_t max_connections = default_max_connections;
    // From accept to the last byte of the response: idle and slow clients alike.
    std::uint64_t client_timeout_ns = default_client_timeout_ns;
};

// An exporter that keeps the numbers of the last published period (and the totals of the one
// before, for rates) and serves them over HTTP/1.1 from an event loop: the worker's control loop,
// or one on a thread of its own.
//
// Thread contract: open(), publish() and the destructor on the metrics (or control) thread, never
// on the loop's thread; render_*() from any thread. publish() computes everything it needs from
// the snapshot on the calling thread, then swaps it in under a mutex that the loop holds only to
// copy it out, so a slow or stuck HTTP client never delays publish(). Any number of clients are
// served at once up to limits::max_connections (the newest beyond it is closed at once, logged at
// most once a second), each with its own deadline (limits::client_timeout_ns from accept to the
// last byte of the response: idle and slow clients alike) and request size limit; a malformed,
// oversized or too slow request gets 400 (or is closed) and the connection is closed after every
// response ("Connection: close"). An idle connection costs an fd and a parser, nothing per turn.
//
// Requests are parsed with Boost.Beast's HTTP parser, fed from the loop's readiness callbacks
// (Beast's synchronous reads have no timeouts, and one slow client must not hold the others up);
// responses are written by hand, they are a status line and three headers.
class http_endpoint final : public ringtail::metrics_exporter {
public:
    using limits = http_endpoint_limits;

    // Listens on `at` (port 0: any free port, see bound_port()) and serves on `loop` (which
    // outlives the endpoint and runs on another thread than open()'s and the destructor's).
    // Errors as listen_tcp's. `net` is what /status reports as "net" ("socket" or "dpdk").
    static result<std::unique_ptr<http_endpoint>> open(event_loop& loop, const host_port& at,
                                                       std::string app_name,
                                                       std::string worker_name, std::string net,
                                                       limits lim);
    // The same on an event loop of its own, on a thread of its own.
    static result<std::unique_ptr<http_endpoint>> open(const host_port& at, std::string app_name,
                                                       std::string worker_name,
                                                       std::string net = "socket", limits lim = {});
    ~http_endpoint() override;
    http_endpoint(const http_endpoint&) = delete;
    http_endpoint& operator=(const http_endpoint&) = delete;

    void publish(const metrics_snapshot& snapshot) override;

    std::uint16_t bound_port() const { return _port; }

    // The bodies that GET /metrics and GET /status return now.
    std::string render_metrics() const;
    std::string render_status() const;

    static constexpr std::size_t header_limit_bytes = 8 * 1024;
    static constexpr std::size_t body_limit_bytes = 4 * 1024;
    // After the response: how long the client has to close its side.
    static constexpr std::uint64_t drain_timeout_ns = 1'000'000'000;

    // Connections refused for the cap, and closed for the timeout (statistics, any thread).
    std::uint64_t connections_refused() const;
    std::uint64_t connections_timed_out() const {
        return _timed_out.load(std::memory_order_relaxed);
    }
    // Prometheus histogram bounds, in seconds: 1 us to 1 s by powers of ten, then +Inf.
    static constexpr std::size_t latency_bucket_count = 7;

    // What publish() keeps of one metric.
    struct metric_summary {
        std::string name;
        std::string category;
        std::string pipeline;
        bool has_latency = false; // false for pipeline-ingestion (a count only)
        std::uint64_t count = 0;
        std::uint64_t p50_ns = 0;
        std::uint64_t p99_ns = 0;
        std::uint64_t p999_ns = 0;
        std::uint64_t max_ns = 0;
        double sum_seconds = 0;
        // Values <= bound k (cumulative); the +Inf bucket is `count`.
        std::array<std::uint64_t, latency_bucket_count> cumulative{};
    };
    struct published {
        bool valid = false;
        std::uint64_t period_ns = 0;
        std::uint64_t period_end_ns = 0;
        std::uint32_t shards = 0;
        std::uint64_t dropped_periods = 0;
        worker_counters totals;
        bool has_previous = false;
        worker_counters previous_totals;
        std::uint64_t previous_end_ns = 0;
        std::vector<metric_summary> metrics;
    };

private:
    struct client;

    static result<std::unique_ptr<http_endpoint>> open_on(std::unique_ptr<event_loop_thread> own,
                                                          event_loop& loop, const host_port& at,
                                                          std::string app_name,
                                                          std::string worker_name, std::string net,
                                                          limits lim);
    http_endpoint(std::unique_ptr<event_loop_thread> own, event_loop& loop, std::string app_name,
                  std::string worker_name, std::string net, limits lim);
    // The loop thread from here on.
    void on_accept(unique_fd fd);
    void on_ready(int fd);
    void on_readable(client& c);
    // Sets c.out to the response for the parsed request (route: by method and path).
    void respond(client& c);
    void route(client& c);
    void on_writable(client& c);
    void close_client(int fd);
    published copy_published() const;

    // Declared first, destroyed last: the loop thread when the endpoint has its own.
    std::unique_ptr<event_loop_thread> _own_loop;
    event_loop& _loop;
    limits _limits;
    std::uint16_t _port = 0;
    std::string _app_name;
    std::string _worker_name;
    std::string _net;

    mutable std::mutex _mu; // guards _published only
    published _published;

    // The loop thread only (set up and torn down through event_loop::call).
    std::unique_ptr<listener> _listener;
    std::unordered_map<int, std::unique_ptr<client>> _clients;
    std::atomic<std::uint64_t> _timed_out{ 0 };
};

} // namespace ringtail::net
