// The control plane's event loop: epoll (level-triggered) over the watched fds and an eventfd for
// post() and stop(), a deadline-ordered map of timers, a mutex-guarded vector of posted functions
// (posts are rare: replies coming back from a blocking request, shutdowns; a lock-free queue would
// buy nothing here).
#include "net/io/event_loop.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <future>
#include <stdexcept>
#include <string>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include "engine/log.h"

namespace ringtail::net {
namespace {

// epoll's data: the watch's token above the fd; token 0 is the wake-up eventfd.
std::uint64_t event_data(std::uint64_t token, int fd) {
    return (token << 32) | static_cast<std::uint32_t>(fd);
}

std::uint32_t epoll_interest(std::uint32_t interest) {
    std::uint32_t ev = 0;
    if ((interest & event_loop::readable) != 0) {
        ev |= EPOLLIN | EPOLLRDHUP;
    }
    if ((interest & event_loop::writable) != 0) {
        ev |= EPOLLOUT;
    }
    return ev;
}

} // namespace

event_loop::event_loop()
  : _epoll(::epoll_create1(EPOLL_CLOEXEC))
  , _wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    if (!_epoll || !_wake) {
        throw std::runtime_error(std::string("cannot create the control plane's event loop: ") +
                                 std::strerror(errno));
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = event_data(0, _wake.get());
    if (::epoll_ctl(_epoll.get(), EPOLL_CTL_ADD, _wake.get(), &ev) != 0) {
        throw std::runtime_error(std::string("cannot create the control plane's event loop: ") +
                                 std::strerror(errno));
    }
}

event_loop::~event_loop() = default;

bool event_loop::watch(int fd, std::uint32_t interest, fd_callback cb) {
    // Tokens are 32 bits in epoll's data; skipping 0 (the eventfd's) on wrap-around.
    const std::uint64_t token = _next_token;
    _next_token = _next_token == 0xffff'ffffu ? 1 : _next_token + 1;
    epoll_event ev{};
    ev.events = epoll_interest(interest);
    ev.data.u64 = event_data(token, fd);
    if (::epoll_ctl(_epoll.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
        return false;
    }
    _watches[fd] = watch_entry{ token, std::make_shared<fd_callback>(std::move(cb)) };
    return true;
}

bool event_loop::modify(int fd, std::uint32_t interest) {
    auto it = _watches.find(fd);
    if (it == _watches.end()) {
        errno = ENOENT;
        return false;
    }
    epoll_event ev{};
    ev.events = epoll_interest(interest);
    ev.data.u64 = event_data(it->second.token, fd);
    return ::epoll_ctl(_epoll.get(), EPOLL_CTL_MOD, fd, &ev) == 0;
}

void event_loop::unwatch(int fd) {
    if (_watches.erase(fd) != 0) {
        // Fails only if the fd was closed first, which removed it from the set anyway.
        ::epoll_ctl(_epoll.get(), EPOLL_CTL_DEL, fd, nullptr);
    }
}

event_loop::timer_id event_loop::run_at(std::uint64_t deadline_ns, task fn) {
    const timer_id id = _next_timer++;
    _timers.emplace(std::pair{ deadline_ns, id }, std::move(fn));
    _timer_deadlines.emplace(id, deadline_ns);
    return id;
}

void event_loop::cancel(timer_id id) {
    auto it = _timer_deadlines.find(id);
    if (it == _timer_deadlines.end()) {
        return;
    }
    _timers.erase(std::pair{ it->second, id });
    _timer_deadlines.erase(it);
}

void event_loop::post(task fn) {
    bool was_empty = false;
    {
        std::lock_guard lock(_posted_mu);
        was_empty = _posted.empty();
        _posted.push_back(std::move(fn));
    }
    // One write per batch: a non-empty queue has a write pending that the loop has not read
    // (it reads the eventfd before it takes the queue).
    if (was_empty) {
        const std::uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(_wake.get(), &one, sizeof one);
    }
}

void event_loop::call(const task& fn) {
    const std::thread::id runner = _runner.load(std::memory_order_acquire);
    if (runner == std::thread::id{} || runner == std::this_thread::get_id()) {
        fn();
        return;
    }
    std::promise<void> done;
    auto finished = done.get_future();
    post([&fn, &done] {
        fn();
        done.set_value();
    });
    finished.wait();
}

void event_loop::stop() {
    _stop.store(true, std::memory_order_release);
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(_wake.get(), &one, sizeof one);
}

bool event_loop::in_loop_thread() const {
    return _runner.load(std::memory_order_acquire) == std::this_thread::get_id();
}

std::uint64_t event_loop::now_ns() {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

void event_loop::run() {
    _runner.store(std::this_thread::get_id(), std::memory_order_release);
    // Pairs with the release store in stop().
    while (!_stop.load(std::memory_order_acquire)) {
        run_once(-1);
    }
    _stop.store(false, std::memory_order_relaxed);
    _runner.store(std::thread::id{}, std::memory_order_release);
}

int event_loop::wait_timeout_ms(int cap_ms) const {
    if (_timers.empty()) {
        return cap_ms;
    }
    const std::uint64_t now = now_ns();
    const std::uint64_t deadline = _timers.begin()->first.first;
    if (deadline <= now) {
        return 0;
    }
    // Rounded up: waking early would only turn the loop once more for nothing.
    const std::uint64_t ms =
      std::min<std::uint64_t>((deadline - now + 999'999) / 1'000'000, 24u * 3600 * 1000);
    const int wait = static_cast<int>(ms);
    return cap_ms < 0 ? wait : std::min(wait, cap_ms);
}

void event_loop::run_once(int timeout_ms) {
    const bool nested = in_loop_thread();
    if (!nested) {
        _runner.store(std::this_thread::get_id(), std::memory_order_release);
    }
    std::array<epoll_event, 64> events;
    const int n = ::epoll_wait(_epoll.get(), events.data(), static_cast<int>(events.size()),
                               wait_timeout_ms(timeout_ms));
    if (n < 0 && errno != EINTR) {
        // Only a bug (a bad epoll fd) gets here; say so rather than spin silently.
        log::error("control event loop: epoll_wait failed: {}", std::strerror(errno));
    }
    for (int i = 0; i < n; ++i) {
        const std::uint64_t data = events[i].data.u64;
        const std::uint64_t token = data >> 32;
        const int fd = static_cast<int>(static_cast<std::uint32_t>(data));
        if (token == 0) {
            std::uint64_t drained = 0;
            [[maybe_unused]] auto r = ::read(_wake.get(), &drained, sizeof drained);
            continue;
        }
        auto it = _watches.find(fd);
        if (it == _watches.end() || it->second.token != token) {
            continue; // unwatched by an earlier callback of this turn
        }
        std::uint32_t what = 0;
        const std::uint32_t ev = events[i].events;
        if ((ev & (EPOLLIN | EPOLLRDHUP)) != 0) {
            what |= readable; // a half-close reads as EOF
        }
        if ((ev & EPOLLOUT) != 0) {
            what |= writable;
        }
        if ((ev & (EPOLLHUP | EPOLLERR)) != 0) {
            what |= hangup;
        }
        // A copy of the pointer: the callback may unwatch its own fd.
        const std::shared_ptr<fd_callback> cb = it->second.cb;
        (*cb)(what);
    }
    run_due_timers();
    run_posted();
    if (!nested) {
        _runner.store(std::thread::id{}, std::memory_order_release);
    }
}

void event_loop::run_due_timers() {
    const std::uint64_t now = now_ns();
    // Only timers that existed when the turn began: one that re-arms itself for now would
    // otherwise run again and again here. A newer one at the front holds the older due ones
    // back for one turn, which then waits for nothing.
    const timer_id newest = _next_timer;
    while (!_timers.empty() && _timers.begin()->first.first <= now &&
           _timers.begin()->first.second < newest) {
        auto node = _timers.extract(_timers.begin());
        _timer_deadlines.erase(node.key().second);
        node.mapped()();
    }
}

void event_loop::run_posted() {
    std::vector<task> batch;
    {
        std::lock_guard lock(_posted_mu);
        batch.swap(_posted);
    }
    for (task& fn : batch) {
        fn();
    }
}

event_loop_thread::event_loop_thread()
  : _loop(std::make_unique<event_loop>())
  , _thread([l = _loop.get()] { l->run(); }) {}

event_loop_thread::~event_loop_thread() {
    _loop->stop();
    _thread.join();
}

} // namespace ringtail::net
