// Accepting connections on a dedicated thread with poll(2) over the listeners and a wake eventfd.
#include "net/io/acceptor.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdexcept>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/log.h"

namespace ringtail::net {
namespace {

// How long accepting pauses after an accept error: the listener stays readable, so accepting
// again at once would spin a core while the error lasts.
constexpr int resource_pause_ms = 100;

std::string peer_name(const sockaddr_in& sa) {
    char text[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &sa.sin_addr, text, sizeof text);
    return std::string(text) + ":" + std::to_string(ntohs(sa.sin_port));
}

} // namespace

acceptor::acceptor(std::vector<int> listen_fds, accept_callback on_accept)
  : _listen_fds(std::move(listen_fds))
  , _on_accept(std::move(on_accept)) {
    _wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (_wake_fd < 0) {
        // Set-up failure on the control plane: an exception, caught once in main.
        throw std::runtime_error(std::string("cannot create the acceptor's eventfd: ") +
                                 std::strerror(errno));
    }
}

acceptor::~acceptor() {
    stop();
    for (int fd : _listen_fds) {
        ::close(fd);
    }
    ::close(_wake_fd);
}

void acceptor::start() {
    if (!_thread.joinable()) {
        _thread = std::thread([this] { run(); });
    }
}

void acceptor::stop() {
    if (!_thread.joinable()) {
        return;
    }
    std::uint64_t one = 1;
    // The eventfd counter cannot overflow from one write; a failed write would be a bug.
    [[maybe_unused]] auto n = ::write(_wake_fd, &one, sizeof one);
    _thread.join();
    std::uint64_t drained = 0;
    [[maybe_unused]] auto m = ::read(_wake_fd, &drained, sizeof drained);
}

void acceptor::run() {
    // Slot 0 is the wake eventfd, slot i + 1 is listener i.
    std::vector<pollfd> fds(_listen_fds.size() + 1);
    fds[0] = pollfd{ _wake_fd, POLLIN, 0 };
    for (std::size_t i = 0; i < _listen_fds.size(); ++i) {
        fds[i + 1] = pollfd{ _listen_fds[i], POLLIN, 0 };
    }
    bool paused = false;
    for (;;) {
        // While paused only the eventfd is watched, for at most resource_pause_ms.
        nfds_t count = paused ? 1 : static_cast<nfds_t>(fds.size());
        int n = ::poll(fds.data(), count, paused ? resource_pause_ms : -1);
        paused = false;
        if (n < 0) {
            if (errno != EINTR) {
                log_accept_error(errno);
                paused = true;
            }
            continue;
        }
        if (fds[0].revents != 0) {
            return;
        }
        for (std::size_t i = 0; i + 1 < static_cast<std::size_t>(count); ++i) {
            if (fds[i + 1].revents != 0 && !accept_all(i)) {
                paused = true;
            }
        }
    }
}

bool acceptor::accept_all(std::size_t index) {
    for (;;) {
        sockaddr_in sa{};
        socklen_t len = sizeof sa;
        int fd = ::accept4(_listen_fds[index], reinterpret_cast<sockaddr*>(&sa), &len,
                           SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            if (err == EAGAIN || err == EWOULDBLOCK) {
                return true;
            }
            if (err == EINTR || err == ECONNABORTED || err == EPROTO || err == EPERM) {
                // The connection died before we took it, or a firewall refused it: try the next.
                continue;
            }
            // EMFILE and the like, or anything unexpected: the listener stays readable, so pause
            // instead of spinning on the same error.
            log_accept_error(err);
            return false;
        }
        // Frames are small and latency matters more than packet count.
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        _accepted.fetch_add(1, std::memory_order_relaxed);
        _on_accept(index, fd, peer_name(sa));
    }
}

void acceptor::log_accept_error(int err) {
    ++_errors_since_log;
    auto now = std::chrono::steady_clock::now();
    if (_last_error_log != std::chrono::steady_clock::time_point{} &&
        now - _last_error_log < std::chrono::seconds(1)) {
        return;
    }
    log::warn("cannot accept connections: {} ({} failures since the last report); new clients "
              "wait until it clears{}",
              std::strerror(err), _errors_since_log,
              err == EMFILE || err == ENFILE ? ", raise the open-file limit (ulimit -n)" : "");
    _last_error_log = now;
    _errors_since_log = 0;
}

} // namespace ringtail::net
