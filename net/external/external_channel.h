// The worker's external channel server (WIRE.md §3): a poll loop on its own thread that accepts
// control clients, splits their bytes into frames and answers each through a dispatch function.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "engine/result.h"
#include "net/external/external_codec.h"
#include "net/io/host_port.h"

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

// Called on the channel thread, one request at a time, with the peer ("1.2.3.4:5678") for logs.
// It may block briefly (a state query waits for the shards), which delays only other control
// clients, never the data path. Exceptions it throws close that connection.
using external_dispatch =
  std::function<external_outcome(std::uint16_t id, std::string_view body, const std::string& peer)>;

// Owns the listening socket and the serving thread. Thread contract: open() and the destructor on
// the control (main) thread; the counters from any thread. Limits: at most max_connections clients
// at once (more wait in the backlog), requests up to max_request_bytes, a client that leaves a
// frame unfinished or its replies unread for stall_timeout_ns is closed, a client whose unread
// replies exceed max_pending_reply_bytes is not read from until it catches up, and each client
// gets at most max_requests_per_turn requests served per turn of the loop.
class external_channel {
public:
    // Listens on `at` (port 0: any free port) and starts the thread. Errors as listen_tcp's.
    static result<std::unique_ptr<external_channel>> open(const host_port& at,
                                                          external_dispatch dispatch);
    ~external_channel();
    external_channel(const external_channel&) = delete;
    external_channel& operator=(const external_channel&) = delete;

    std::uint16_t bound_port() const { return _port; }
    // Connections closed for a malformed or oversized frame, an unknown or unanswerable request,
    // or a stall.
    std::uint64_t connections_closed_for_errors() const {
        return _closed_for_errors.load(std::memory_order_relaxed);
    }
    std::uint64_t requests_served() const { return _requests.load(std::memory_order_relaxed); }

    static constexpr std::size_t max_connections = 64;
    static constexpr std::uint32_t max_request_bytes = external_default_max_frame;
    static constexpr std::size_t max_pending_reply_bytes = 64u << 20;
    static constexpr std::uint64_t stall_timeout_ns = 10'000'000'000;
    // Requests served per client per turn of the loop, so that one client flooding requests
    // delays the others by a few requests at most.
    static constexpr std::size_t max_requests_per_turn = 8;

private:
    struct connection;

    external_channel(int listen_fd, int wake_fd, external_dispatch dispatch);
    void run();
    void accept_all(std::uint64_t now_ns);
    void on_readable(connection& c, std::uint64_t now_ns);
    // Dispatches at most max_requests_per_turn of the requests read from `c`.
    void serve(connection& c, std::uint64_t now_ns);
    void on_writable(connection& c, std::uint64_t now_ns);
    void fail(connection& c, std::string_view why);

    int _listen_fd;
    int _wake_fd; // an eventfd: written by the destructor to stop the thread
    std::uint16_t _port = 0;
    external_dispatch _dispatch;
    std::atomic<std::uint64_t> _closed_for_errors{ 0 };
    std::atomic<std::uint64_t> _requests{ 0 };
    std::uint64_t _accept_paused_until_ns = 0;
    bool _accept_error_logged = false;
    std::vector<std::unique_ptr<connection>> _connections; // the channel thread only

    std::thread _thread; // last: started once everything above is set
};

} // namespace ringtail::net
