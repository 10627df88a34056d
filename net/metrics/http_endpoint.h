// The worker's small HTTP endpoint (DESIGN.md §6): GET /metrics (Prometheus text format 0.0.4),
// GET /status (JSON) and GET /healthz, served from the last periods the metrics thread published.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/metrics.h"
#include "engine/result.h"
#include "net/io/host_port.h"

namespace ringtail::net {

// An exporter that keeps the numbers of the last published period (and the totals of the one
// before, for rates) and serves them over HTTP/1.1 from its own thread.
//
// Thread contract: open(), publish() and the destructor on the metrics (or control) thread;
// render_*() from any thread. publish() computes everything it needs from the snapshot on the
// calling thread, then swaps it in under a mutex that the HTTP thread holds only to copy it out,
// so a slow or stuck HTTP client never delays publish(). The HTTP thread serves any number of
// clients at once up to max_clients (more wait in the listen backlog), each with its own deadline
// and request size limit; a malformed, oversized or too slow request gets 400 (or is closed) and
// the connection is closed after every response ("Connection: close").
//
// Requests are parsed with Boost.Beast's HTTP parser (fed from our own non-blocking, deadline-
// driven poll loop: Beast's synchronous reads have no timeouts, and one slow client must not hold
// the others up); responses are written by hand, they are a status line and three headers.
class http_endpoint final : public ringtail::metrics_exporter {
public:
    // Listens on `at` (port 0: any free port, see bound_port()) and starts the HTTP thread.
    // Errors as listen_tcp's. `net` is what /status reports as "net" ("socket" or "dpdk").
    static result<std::unique_ptr<http_endpoint>> open(const host_port& at, std::string app_name,
                                                       std::string worker_name,
                                                       std::string net = "socket");
    ~http_endpoint() override;
    http_endpoint(const http_endpoint&) = delete;
    http_endpoint& operator=(const http_endpoint&) = delete;

    void publish(const metrics_snapshot& snapshot) override;

    std::uint16_t bound_port() const { return _port; }

    // The bodies that GET /metrics and GET /status return now.
    std::string render_metrics() const;
    std::string render_status() const;

    static constexpr std::size_t max_clients = 32;
    static constexpr std::size_t header_limit_bytes = 8 * 1024;
    static constexpr std::size_t body_limit_bytes = 4 * 1024;
    // From accept to the last byte of the response.
    static constexpr std::uint64_t client_timeout_ns = 5'000'000'000;
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
        worker_totals totals;
        bool has_previous = false;
        worker_totals previous_totals;
        std::uint64_t previous_end_ns = 0;
        std::vector<metric_summary> metrics;
    };

private:
    struct client;

    http_endpoint(int listen_fd, int wake_fd, std::string app_name, std::string worker_name,
                  std::string net);
    void run();
    void on_readable(client& c, std::uint64_t now_ns);
    // Sets c.out to the response for the parsed request (route: by method and path).
    void respond(client& c);
    void route(client& c);
    void on_writable(client& c, std::uint64_t now_ns);
    published copy_published() const;

    int _listen_fd;
    int _wake_fd; // an eventfd: written by the destructor to stop the thread
    std::uint16_t _port = 0;
    std::string _app_name;
    std::string _worker_name;
    std::string _net;

    mutable std::mutex _mu; // guards _published only
    published _published;

    std::thread _thread; // last: started once everything above is set
};

} // namespace ringtail::net
