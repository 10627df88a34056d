// The sources' accepting: a listener per listening socket on the control plane's event loop, each
// connection handed on with its listener's index.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/fd.h"
#include "net/io/event_loop.h"
#include "net/io/listener.h"

namespace ringtail::net {

// Owns a set of listening fds (from listen_tcp), each known by its index in the constructor's
// vector, and accepts on all of them on an event loop (the worker's control loop, or one of its
// own). Each accepted connection is non-blocking, close-on-exec and has TCP_NODELAY; it is passed
// to `on_accept` together with the listener's index and the peer ("1.2.3.4:5678"). The callback
// runs on the loop thread and takes ownership of the fd (typically it hands the fd to a shard
// round-robin); it must not block. No cap: a source connection belongs to a shard from then on.
//
// start(), stop() and the destructor on the owning (control) thread, never on the loop's. Accept
// failures such as EMFILE are logged at most once per second and pause accepting briefly
// (net::listener); they never end it.
class acceptor {
public:
    using accept_callback =
      std::function<void(std::size_t listener_index, int fd, std::string peer)>;

    // On `loop`, which outlives the acceptor.
    acceptor(event_loop& loop, std::vector<int> listen_fds, accept_callback on_accept);
    // On an event loop of its own, on a thread of its own.
    acceptor(std::vector<int> listen_fds, accept_callback on_accept);
    // Stops accepting and closes the listening fds.
    ~acceptor();
    acceptor(const acceptor&) = delete;
    acceptor& operator=(const acceptor&) = delete;

    void start();
    // Stops accepting; returns once no callback runs any more. Idempotent. Connections already
    // handed to the callback are not affected; the listening fds stay open until destruction, so
    // clients wait in the backlog meanwhile.
    void stop();

    std::uint64_t accepted() const { return _accepted.load(std::memory_order_relaxed); }

private:
    // Declared first, destroyed last: the loop thread when the acceptor has its own.
    std::unique_ptr<event_loop_thread> _own_loop;
    event_loop& _loop;
    accept_callback _on_accept;
    // Held here while stopped; moved into the listeners while started.
    std::vector<unique_fd> _listen_fds;
    std::vector<std::unique_ptr<listener>> _listeners; // the loop thread only
    // Written on the loop thread, read by anyone (a statistic).
    std::atomic<std::uint64_t> _accepted{ 0 };
};

} // namespace ringtail::net
