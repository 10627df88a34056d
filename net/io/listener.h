// listener: one listening socket served by an event_loop: accepts until EAGAIN, pauses after an
// error such as EMFILE, and refuses the newest connection beyond a cap, each logged at most once a
// second.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "engine/fd.h"
#include "net/io/event_loop.h"

namespace ringtail::net {

// Each accepted connection is non-blocking, close-on-exec and has TCP_NODELAY; it goes to
// `on_accept` with the peer ("1.2.3.4:5678"), which owns it from then on. With a cap
// (max_open > 0) the owner reports each of those connections' end through connection_closed();
// while max_open are open, a new connection is accepted and closed at once (the client sees EOF
// rather than waiting in the backlog), counted in refused() and logged at most once a second.
// An accept error such as EMFILE stops accepting for error_pause_ns (the listener would stay
// readable and spin the loop) and is logged at most once a second.
//
// Thread contract: constructed, used and destroyed on the loop's thread (or while no thread runs
// the loop); the counters from any thread. The callback runs on the loop thread.
class listener {
public:
    using accept_callback = std::function<void(unique_fd fd, std::string peer)>;

    static constexpr std::uint64_t error_pause_ns = 100'000'000;
    static constexpr std::uint64_t log_interval_ns = 1'000'000'000;

    // `name` starts the log lines ("http endpoint"). Starts watching `fd` at once.
    listener(event_loop& loop, unique_fd fd, std::string name, std::size_t max_open,
             accept_callback on_accept);
    ~listener();
    listener(const listener&) = delete;
    listener& operator=(const listener&) = delete;

    // Stops accepting and gives the listening fd back (the listener is inert from then on).
    unique_fd release();

    // One connection handed to on_accept has closed (loop thread; only with a cap).
    void connection_closed();

    std::size_t open_connections() const { return _open; }
    std::uint16_t port() const { return _port; }
    std::uint64_t accepted() const { return _accepted.load(std::memory_order_relaxed); }
    std::uint64_t refused() const { return _refused.load(std::memory_order_relaxed); }

private:
    void on_ready();
    void pause_after(int err);

    event_loop& _loop;
    unique_fd _fd;
    std::string _name;
    std::size_t _max_open;
    accept_callback _on_accept;
    std::uint16_t _port = 0;
    std::size_t _open = 0;
    event_loop::timer_id _resume = 0; // the pause's timer, 0 when not paused
    std::uint64_t _last_error_log_ns = 0;
    std::uint64_t _errors_since_log = 0;
    std::uint64_t _last_refusal_log_ns = 0;
    std::uint64_t _refused_since_log = 0;
    // Written on the loop thread, read by anyone (statistics).
    std::atomic<std::uint64_t> _accepted{ 0 };
    std::atomic<std::uint64_t> _refused{ 0 };
};

} // namespace ringtail::net
