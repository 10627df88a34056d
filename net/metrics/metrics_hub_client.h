// The exporter that sends every period's metrics to a Wallaroo monitoring hub (`--metrics`,
// WIRE.md §5) over one outgoing TCP connection that it keeps up by itself.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>

#include "engine/fd.h"
#include "engine/metrics.h"
#include "net/io/host_port.h"

namespace ringtail::net {

// Connects out to the hub and, on each (re)connect, sends CONNECT and JOIN (topic
// "metrics:<app_name>"), then one PAYLOAD per metric per period.
//
// Thread contract: constructed on the control thread (it resolves the hub's name there), then
// published to and destroyed on the metrics thread only; the counters may be read from any thread.
// The client has no thread of its own: each publish() drives the connection (finishes a pending
// connect, writes until EAGAIN, notices a closed hub) and returns; it never blocks (non-blocking
// socket and connect). Only a name that failed to resolve at construction is looked up again, in
// publish(), on each attempt: a dotted address never costs a lookup.
//
// Periods wait in a bounded output buffer while the hub is away or slow: a period whose frames do
// not fit in buffer_limit_bytes beside what is already waiting is dropped whole and counted. When
// the connection breaks, the period being written when it broke is dropped too (counted; the hub
// sees only whole frames on each connection), the rest wait for the next connection. While
// disconnected, each publish() at least retry_interval_ns after the last attempt tries again; one
// warn line per outage, one info line per connect.
class metrics_hub_client final : public ringtail::metrics_exporter {
public:
    metrics_hub_client(host_port hub, std::string app_name, std::string worker_name,
                       std::size_t buffer_limit_bytes = default_buffer_limit_bytes);
    ~metrics_hub_client() override;
    metrics_hub_client(const metrics_hub_client&) = delete;
    metrics_hub_client& operator=(const metrics_hub_client&) = delete;

    void publish(const metrics_snapshot& snapshot) override;

    // Periods whose every frame was handed to the kernel on a connection.
    std::uint64_t periods_sent() const { return _periods_sent.load(std::memory_order_relaxed); }
    // Periods dropped: no room in the buffer, or cut by a broken connection.
    std::uint64_t periods_dropped() const {
        return _periods_dropped.load(std::memory_order_relaxed);
    }
    std::uint64_t dropped_periods() const { return periods_dropped(); }
    // Periods buffered, not yet (completely) written.
    std::size_t pending_periods() const { return _pending_periods.load(std::memory_order_relaxed); }
    bool connected() const { return _connected.load(std::memory_order_relaxed); }

    static constexpr std::size_t default_buffer_limit_bytes = 4 * 1024 * 1024;
    static constexpr std::uint64_t retry_interval_ns = 250'000'000;
    // A connect that neither succeeds nor fails within this is abandoned and retried.
    static constexpr std::uint64_t connect_timeout_ns = 2'000'000'000;

private:
    enum class state { disconnected, connecting, connected };

    void drive(std::uint64_t now_ns);
    void start_connect(std::uint64_t now_ns);
    void check_connect(std::uint64_t now_ns);
    void connect_failed(std::uint64_t now_ns, int err);
    // Writes the handshake, then whole periods, until EAGAIN or nothing is left.
    void flush(std::uint64_t now_ns);
    // Reads and discards what the hub sends, to notice that it closed.
    void check_hub(std::uint64_t now_ns);
    void disconnect(std::uint64_t now_ns, const char* why);
    void close_socket();
    void update_pending();

    host_port _hub;
    std::string _app_name;
    std::string _worker_name;
    std::string _topic;
    std::size_t _buffer_limit_bytes;
    std::uint32_t _ip = 0; // network order, once resolved
    bool _resolved = false;

    state _state = state::disconnected;
    unique_fd _fd;
    std::uint64_t _next_attempt_ns = 0;
    std::uint64_t _connect_started_ns = 0;
    bool _warned_this_outage = false;

    // CONNECT + JOIN for the current connection; [_handshake_offset, size) still to write.
    std::string _handshake;
    std::size_t _handshake_offset = 0;
    // One string of PAYLOAD frames per period; the front one is written from _front_offset.
    std::deque<std::string> _periods;
    std::size_t _front_offset = 0;
    std::size_t _buffered_bytes = 0;
    std::string _scratch;

    std::atomic<std::uint64_t> _periods_sent{ 0 };
    std::atomic<std::uint64_t> _periods_dropped{ 0 };
    std::atomic<std::size_t> _pending_periods{ 0 };
    std::atomic<bool> _connected{ false };
};

} // namespace ringtail::net
