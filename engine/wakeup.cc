// The sleep and wake-up of poll-loop threads.
#include "engine/detail/wakeup.h"

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <sys/eventfd.h>
#include <unistd.h>

namespace ringtail::detail {

wakeup::wakeup() {
    _epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
    _wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (_epoll_fd < 0 || _wake_fd < 0) {
        const std::string why = std::strerror(errno);
        if (_epoll_fd >= 0) {
            ::close(_epoll_fd);
        }
        if (_wake_fd >= 0) {
            ::close(_wake_fd);
        }
        throw std::runtime_error("cannot create a poll loop's epoll/eventfd: " + why);
    }
    watch(_wake_fd);
}

wakeup::~wakeup() {
    ::close(_wake_fd);
    ::close(_epoll_fd);
}

void wakeup::watch(int fd) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;
    ::epoll_ctl(_epoll_fd, EPOLL_CTL_ADD, fd, &ev);
}

void wakeup::wake() {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(_wake_fd, &one, sizeof one);
}

void wakeup::wait(std::uint64_t bound_ns) {
    epoll_event events[32];
    // epoll_pwait2 (Linux 5.11) takes a timespec: an ack owed in 50 µs is not held to epoll_wait's
    // whole millisecond. Older kernels get the millisecond, rounded up.
    const timespec timeout{ static_cast<time_t>(bound_ns / 1'000'000'000),
                            static_cast<long>(bound_ns % 1'000'000'000) };
    if (::epoll_pwait2(_epoll_fd, events, 32, &timeout, nullptr) < 0 && errno == ENOSYS) {
        ::epoll_wait(_epoll_fd, events, 32, static_cast<int>((bound_ns + 999'999) / 1'000'000));
    }
}

void wakeup::drain() {
    std::uint64_t v;
    [[maybe_unused]] auto n = ::read(_wake_fd, &v, sizeof v);
}

} // namespace ringtail::detail
