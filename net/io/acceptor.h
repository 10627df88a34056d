// The thread that accepts TCP connections on a worker's listening sockets and hands each one on.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace ringtail::net {

// Owns a set of listening fds (from listen_tcp), each known by its index in the constructor's
// vector, and runs one thread that accepts on all of them. Each accepted connection is
// non-blocking, close-on-exec and has TCP_NODELAY; it is passed to `on_accept` together with the
// listener's index and the peer ("1.2.3.4:5678"). The callback runs on the acceptor thread and
// takes ownership of the fd (typically it hands the fd to a shard round-robin).
//
// start() and stop() are called by the owning (control) thread. Accept failures such as EMFILE are
// logged at most once per second and make the thread pause accepting briefly; they never end it.
class acceptor {
public:
    using accept_callback =
      std::function<void(std::size_t listener_index, int fd, std::string peer)>;

    acceptor(std::vector<int> listen_fds, accept_callback on_accept);
    // Stops the thread and closes the listening fds.
    ~acceptor();
    acceptor(const acceptor&) = delete;
    acceptor& operator=(const acceptor&) = delete;

    void start();
    // Wakes the thread through its eventfd and joins it. Idempotent. Connections already handed
    // to the callback are not affected; the listening fds stay open until destruction.
    void stop();

    std::uint64_t accepted() const { return _accepted.load(std::memory_order_relaxed); }

private:
    void run();
    // Accepts on one ready listener until EAGAIN. Returns false after an error such as EMFILE,
    // which pauses accepting.
    bool accept_all(std::size_t index);
    void log_accept_error(int err);

    std::vector<int> _listen_fds;
    accept_callback _on_accept;
    int _wake_fd = -1; // eventfd written by stop()
    std::thread _thread;
    // Written by the acceptor thread, read by anyone (a statistic).
    std::atomic<std::uint64_t> _accepted{ 0 };
    // Touched by the acceptor thread only.
    std::chrono::steady_clock::time_point _last_error_log{};
    std::uint64_t _errors_since_log = 0;
};

} // namespace ringtail::net
