// The worker's external channel server (WIRE.md §3): accepts control clients on an event loop,
// splits their bytes into frames and answers each through a dispatch function run off the loop.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/fd.h"
#include "engine/result.h"
#include "net/external/external_codec.h"
#include "net/io/event_loop.h"
#include "net/io/host_port.h"
#include "net/io/listener.h"

namespace ringtail::net {

// What the dispatch function asks the channel to do with one request.
struct external_outcome {
    enum class action { none, reply, close };
    action what = action::none;
    std::uint16_t id = 0; // reply only
    std::string body;     // reply: its body; close: the reason, for the log line

    static external_outcome none() { return {}; }
    static external_outcome reply(std::uint16_t id, std::string body) {
        return { action::reply, id, std::move(body) };
    }
    // Close the connection that sent the request (unknown id, unanswerable request); counted and
    // logged with `reason`.
    static external_outcome close(std::string reason) {
        return { action::close, 0, std::move(reason) };
    }
};

// Called on the channel's request thread, one request at a time, with the peer ("1.2.3.4:5678")
// for logs. It may block briefly (a state query waits for the shards), which delays only other
// control requests, never the data path nor the event loop. Exceptions it throws close that
// connection.
using external_dispatch =
  std::function<external_outcome(std::uint16_t id, std::string_view body, const std::string& peer)>;

// The external channel's hostile-client limits (net/external/README.md); tests make them small.
struct external_channel_limits {
    static constexpr std::size_t default_max_connections = 256;
    static constexpr std::uint64_t default_stall_timeout_ns = 10'000'000'000;
    static constexpr std::uint64_t default_idle_timeout_ns = 60'000'000'000;

    // Open connections; the newest beyond it is refused.
    std::size_t max_connections = default_max_connections;
    // A frame left unfinished or replies left unread: closed as failed.
    std::uint64_t stall_timeout_ns = default_stall_timeout_ns;
    // Nothing in flight (no first frame yet included): closed quietly.
    std::uint64_t idle_timeout_ns = default_idle_timeout_ns;
};

// Owns the listening socket and the request thread; serves its clients on an event loop (the
// worker's control loop, or one of its own). Thread contract: open() and the destructor on the
// control (main) thread, never on the loop's; the counters from any thread.
//
// Requests are read, split and answered on the loop; the dispatch function runs on the request
// thread (it may wait for the shards), one request at a time in the order they were read, at most
// one per connection in flight, so that a client that floods requests delays the others by one
// request at a time; its outcome is posted back to the loop.
//
// Limits (net/external/README.md): at most limits::max_connections clients at once (the newest
// beyond it is closed at once, logged at most once a second), requests up to max_request_bytes, a
// client that leaves a frame unfinished or its replies unread for limits::stall_timeout_ns is
// closed as failed, one with nothing in flight for limits::idle_timeout_ns (a connection that never
// sends its first frame included) is closed quietly, and a client whose unread replies exceed
// max_pending_reply_bytes is not read from until it catches up.
class external_channel {
public:
    using limits = external_channel_limits;

    // Listens on `at` (port 0: any free port) and serves on `loop`, which outlives the channel and
    // runs while it is destroyed (outcomes posted to it then run before the connections go).
    // Errors as listen_tcp's.
    static result<std::unique_ptr<external_channel>> open(event_loop& loop, const host_port& at,
                                                          external_dispatch dispatch, limits lim);
    // The same on an event loop of its own, on a thread of its own.
    static result<std::unique_ptr<external_channel>> open(const host_port& at,
                                                          external_dispatch dispatch,
                                                          limits lim = {});
    ~external_channel();
    external_channel(const external_channel&) = delete;
    external_channel& operator=(const external_channel&) = delete;

    std::uint16_t bound_port() const { return _port; }
    // Connections closed for a malformed or oversized frame, an unknown or unanswerable request,
    // or a stall.
    std::uint64_t connections_closed_for_errors() const {
        return _closed_for_errors.load(std::memory_order_relaxed);
    }
    // Connections closed for having nothing in flight for idle_timeout_ns.
    std::uint64_t connections_closed_idle() const {
        return _closed_idle.load(std::memory_order_relaxed);
    }
    // Connections refused because max_connections were open.
    std::uint64_t connections_refused() const;
    std::uint64_t requests_served() const { return _requests.load(std::memory_order_relaxed); }

    static constexpr std::uint32_t max_request_bytes = external_default_max_frame;
    static constexpr std::size_t max_pending_reply_bytes = 64u << 20;

private:
    struct connection;
    struct request_queue;

    static result<std::unique_ptr<external_channel>> open_on(std::unique_ptr<event_loop_thread> own,
                                                             event_loop& loop, const host_port& at,
                                                             external_dispatch dispatch,
                                                             limits lim);
    external_channel(std::unique_ptr<event_loop_thread> own, event_loop& loop,
                     external_dispatch dispatch, limits lim);
    // The request thread.
    void run_requests();
    // The loop thread from here on.
    void on_accept(unique_fd fd, std::string peer);
    void on_ready(std::uint64_t id, std::uint32_t events);
    void on_outcome(std::uint64_t id, external_outcome o);
    void on_readable(connection& c);
    // Hands the next request read from `c` to the request thread, if none is in flight.
    void serve(connection& c);
    void on_writable(connection& c);
    // After every event: closes `c` when it is finished, else sets its interest and deadline.
    void settle(connection& c);
    void on_deadline(std::uint64_t id);
    void fail(connection& c, std::string_view why);
    void close_connection(connection& c);

    // Declared first, destroyed last: the loop thread when the channel has its own.
    std::unique_ptr<event_loop_thread> _own_loop;
    event_loop& _loop;
    limits _limits;
    std::uint16_t _port = 0;
    external_dispatch _dispatch;
    std::atomic<std::uint64_t> _closed_for_errors{ 0 };
    std::atomic<std::uint64_t> _closed_idle{ 0 };
    std::atomic<std::uint64_t> _requests{ 0 };

    // The loop thread only (set up and torn down through event_loop::call).
    std::unique_ptr<listener> _listener;
    std::unordered_map<std::uint64_t, std::unique_ptr<connection>> _connections;
    std::uint64_t _next_id = 1;
    std::vector<char> _read_buffer;

    std::unique_ptr<request_queue> _requests_queue;
    std::thread _request_thread; // last: started once everything above is set
};

} // namespace ringtail::net
