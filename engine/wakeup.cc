// The sleep and wake-up of poll-loop threads.
#include "engine/detail/wakeup.h"

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <sys/eventfd.h>
#include <unistd.h>

namespace ringtail::detail {

wakeup::wakeup()
  : _epoll_fd(::epoll_create1(EPOLL_CLOEXEC))
  , _wake_fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    if (!_epoll_fd || !_wake_fd) {
        // The one made, if any, is closed with the members.
        throw std::runtime_error(std::string("cannot create a poll loop's epoll/eventfd: ") +
                                 std::strerror(errno));
    }
    watch(_wake_fd.get());
}

void wakeup::watch(int fd) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;
    ::epoll_ctl(_epoll_fd.get(), EPOLL_CTL_ADD, fd, &ev);
}

void wakeup::wake() {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(_wake_fd.get(), &one, sizeof one);
}

void wakeup::wait(std::uint64_t bound_ns) {
    epoll_event events[32];
    // epoll_pwait2 (Linux 5.11) takes a timespec: an ack owed in 50 µs is not held to epoll_wait's
    // whole millisecond. Older kernels get the millisecond, rounded up.
    const timespec timeout{ static_cast<time_t>(bound_ns / 1'000'000'000),
                            static_cast<long>(bound_ns % 1'000'000'000) };
    if (::epoll_pwait2(_epoll_fd.get(), events, 32, &timeout, nullptr) < 0 && errno == ENOSYS) {
        ::epoll_wait(_epoll_fd.get(), events, 32,
                     static_cast<int>((bound_ns + 999'999) / 1'000'000));
    }
}

void wakeup::drain() {
    std::uint64_t v;
    [[maybe_unused]] auto n = ::read(_wake_fd.get(), &v, sizeof v);
}

} // namespace ringtail::detail
