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

void wakeup::drain() {
    std::uint64_t v;
    [[maybe_unused]] auto n = ::read(_wake_fd, &v, sizeof v);
}

} // namespace ringtail::detail
