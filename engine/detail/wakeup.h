// How a poll-loop thread (a shard, the exchange) sleeps when idle and is woken by producers: an
// epoll instance holding an eventfd (and whatever fds the owner adds), and a flag that producers
// read after publishing into the owner's rings.
#pragma once

#include <atomic>
#include <cstdint>
#include <sys/epoll.h>
#include <utility>

#include "engine/fd.h"

namespace ringtail::detail {

class wakeup {
public:
    // Throws std::runtime_error when the epoll instance or the eventfd cannot be made.
    wakeup();
    wakeup(const wakeup&) = delete;
    wakeup& operator=(const wakeup&) = delete;

    // The epoll instance: the owner registers more fds here (data.ptr nullptr: an event only
    // wakes the owner, which then polls what it owns).
    int epoll_fd() const { return _epoll_fd.get(); }
    // Adds `fd` for readability (level-triggered).
    void watch(int fd);

    // Producer side, after publishing into one of the owner's rings: wakes the owner if it
    // sleeps. The fence pairs with the one in sleep(): either the owner sees the ring update
    // before it sleeps, or the producer sees the sleeping flag.
    void notify() {
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (_sleeping.load(std::memory_order_relaxed)) {
            wake();
        }
    }
    // Wakes the owner whether or not it sleeps (commands, stop requests).
    void wake();

    // The longest sleeps: with work waiting elsewhere (short_wait), and without.
    static constexpr std::uint64_t short_sleep_ns = 1'000'000;
    static constexpr std::uint64_t long_sleep_ns = 5'000'000;

    // How long sleep() waits at most: short_sleep_ns (short_wait) or long_sleep_ns, less when
    // `deadline_ns` (on clock::now_ns's clock; the largest value for none) comes sooner, 0 once it
    // has passed.
    static std::uint64_t sleep_bound_ns(bool short_wait, std::uint64_t now_ns,
                                        std::uint64_t deadline_ns) {
        const std::uint64_t bound = short_wait ? short_sleep_ns : long_sleep_ns;
        if (deadline_ns <= now_ns) {
            return 0;
        }
        return deadline_ns - now_ns < bound ? deadline_ns - now_ns : bound;
    }

    // Owner side: sleeps until woken, an fd is ready, or `bound_ns` (sleep_bound_ns) has passed.
    // `pending()` is checked after the sleeping flag is raised, so work published before a
    // producer's notify() is never slept through. The bound keeps admission and stop requests,
    // which no fd announces, visible within a few milliseconds, and the owner's own deadlines
    // (a retransmission, an ack owed) on time.
    template<typename Pending>
    void sleep(std::uint64_t bound_ns, Pending&& pending) {
        if (bound_ns == 0) {
            return;
        }
        _sleeping.store(true, std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_seq_cst); // pairs with notify()
        if (pending()) {
            _sleeping.store(false, std::memory_order_relaxed);
            return;
        }
        wait(bound_ns);
        _sleeping.store(false, std::memory_order_relaxed);
        drain();
    }
    // Without a deadline of the owner's own: short_sleep_ns or long_sleep_ns.
    template<typename Pending>
    void sleep(bool short_wait, Pending&& pending) {
        sleep(short_wait ? short_sleep_ns : long_sleep_ns, std::forward<Pending>(pending));
    }

private:
    void wait(std::uint64_t bound_ns); // epoll with a timeout to the nanosecond
    void drain();                      // resets the eventfd

    // Declared before _wake_fd, so destroyed after it: the epoll instance outlives the fds it
    // holds.
    unique_fd _epoll_fd;
    unique_fd _wake_fd;
    alignas(64) std::atomic<bool> _sleeping{ false };
};

} // namespace ringtail::detail
