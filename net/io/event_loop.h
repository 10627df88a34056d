// event_loop: the control plane's one event loop (fd readiness, timers, posted work), and
// event_loop_thread, which runs one on a thread of its own.
//
// Written by hand on epoll rather than taken from Boost.Asio's io_context: what the control plane
// needs is readiness callbacks on fds it already owns (non-blocking sockets, eventfds), deadline
// timers and a thread-safe post, about 300 lines; Asio's headers would add seconds to every file
// that includes this one on CI's two cores, and its completion model would make each connection's
// code a chain of handlers where a readiness callback is a plain function. Beast's HTTP parser
// (no Asio I/O) still parses the HTTP endpoint's requests.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/fd.h"

namespace ringtail::net {

// One epoll set, a timer queue and a queue of posted functions, run by one thread at a time
// (the loop thread: whoever calls run()).
//
// Thread contract: post(), call(), stop() and now_ns() from any thread; everything else on the
// loop thread, or on any thread while no thread runs the loop. Callbacks run on the loop thread,
// one at a time, and must not block: work that waits goes to a thread of its own and posts its
// completion back. A callback may watch, unwatch, add and cancel anything, itself included.
//
// Fds are watched level-triggered: a callback that leaves bytes unread is called again on the
// next turn, so a connection may stop after a budget and still be served fairly.
class event_loop {
public:
    // Readiness bits, given to watch()/modify() as interest and to fd callbacks as what happened.
    static constexpr std::uint32_t readable = 1;
    static constexpr std::uint32_t writable = 2;
    // Reported only: both directions are shut down or the socket has an error (epoll reports
    // these whatever the interest). A half-close by the peer is reported as readable (EOF).
    static constexpr std::uint32_t hangup = 4;

    using fd_callback = std::function<void(std::uint32_t events)>;
    using task = std::function<void()>;
    using timer_id = std::uint64_t;

    // Throws std::runtime_error when epoll or the wake-up eventfd cannot be created (set-up of the
    // control plane: caught once in main).
    event_loop();
    ~event_loop();
    event_loop(const event_loop&) = delete;
    event_loop& operator=(const event_loop&) = delete;

    // Calls `cb` on the loop thread whenever `fd` is ready for `interest` (readable | writable,
    // or 0 to be told of hang-ups only). The fd stays owned by the caller, who unwatches it
    // before closing it. Returns false (errno set) when epoll refuses the fd.
    bool watch(int fd, std::uint32_t interest, fd_callback cb);
    bool modify(int fd, std::uint32_t interest);
    // Stops the callbacks for `fd`, including any already reported in the current turn.
    void unwatch(int fd);
    std::size_t watched() const { return _watches.size(); }

    // Calls `fn` once on the loop thread at or after `deadline_ns` (now_ns()'s clock).
    timer_id run_at(std::uint64_t deadline_ns, task fn);
    timer_id run_after(std::uint64_t delay_ns, task fn) {
        return run_at(now_ns() + delay_ns, std::move(fn));
    }
    // Forgets a timer that has not fired; a fired or unknown id is ignored. Ids are never reused.
    void cancel(timer_id id);
    std::size_t timers() const { return _timer_deadlines.size(); }

    // Any thread: runs `fn` on the loop thread soon after, in the order posted; wakes the loop.
    // Functions still queued when the loop is destroyed are destroyed without being run.
    void post(task fn);
    // Any thread: runs `fn` on the loop thread and returns when it has run (after the functions
    // posted before it). On the loop thread, or while no thread runs the loop, runs it at once on
    // the calling thread. Not while the loop's thread is stopping: the call would never return.
    void call(const task& fn);

    // Runs turns until stop(). One turn: wait (until the next timer at most), call the ready fds'
    // callbacks, the due timers', then the posted functions.
    void run();
    // One turn that waits at most timeout_ms (-1: until something happens). Tests drive it.
    void run_once(int timeout_ms);
    // Any thread: makes run() return after the current turn. A later run() runs again.
    void stop();

    bool in_loop_thread() const;

    // CLOCK_MONOTONIC in nanoseconds (std::chrono::steady_clock).
    static std::uint64_t now_ns();

private:
    struct watch_entry {
        std::uint64_t token; // epoll's data: a stale event for a reused fd number finds no match
        std::shared_ptr<fd_callback> cb; // shared: a callback may unwatch its own fd
    };

    void run_posted();
    void run_due_timers();
    int wait_timeout_ms(int cap_ms) const;

    unique_fd _epoll;
    unique_fd _wake; // an eventfd: post() and stop() write it, the loop reads it
    std::unordered_map<int, watch_entry> _watches;
    std::uint64_t _next_token = 1;
    // Deadline-ordered timers, and each id's deadline so that cancel() finds its entry.
    std::map<std::pair<std::uint64_t, timer_id>, task> _timers;
    std::unordered_map<timer_id, std::uint64_t> _timer_deadlines;
    timer_id _next_timer = 1;

    std::mutex _posted_mu; // guards _posted only; held to push or to swap the queue out
    std::vector<task> _posted;
    std::atomic<bool> _stop{ false };
    // The thread inside run()/run_once(), for in_loop_thread() and call(); default id: none.
    std::atomic<std::thread::id> _runner{};
};

// An event_loop run by a thread it owns: started by the constructor, stopped and joined by the
// destructor (on any thread but its own). The control plane's loop in the worker is one.
class event_loop_thread {
public:
    event_loop_thread();
    ~event_loop_thread();
    event_loop_thread(const event_loop_thread&) = delete;
    event_loop_thread& operator=(const event_loop_thread&) = delete;

    event_loop& loop() { return *_loop; }

private:
    std::unique_ptr<event_loop> _loop;
    std::thread _thread;
};

} // namespace ringtail::net
