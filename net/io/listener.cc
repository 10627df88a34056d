// Accepting on an event loop: accept4 until EAGAIN, with the pause, the cap and their log lines.
#include "net/io/listener.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "engine/log.h"
#include "net/io/tcp_listener.h"

namespace ringtail::net {
namespace {

std::string peer_name(const sockaddr_in& sa) {
    char text[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &sa.sin_addr, text, sizeof text);
    return std::string(text) + ":" + std::to_string(ntohs(sa.sin_port));
}

// True when `last_ns` is at least a second old (or never was): time for the next log line.
bool log_due(std::uint64_t last_ns, std::uint64_t now_ns) {
    return last_ns == 0 || now_ns - last_ns >= listener::log_interval_ns;
}

} // namespace

listener::listener(event_loop& loop, unique_fd fd, std::string name, std::size_t max_open,
                   accept_callback on_accept)
  : _loop(loop)
  , _fd(std::move(fd))
  , _name(std::move(name))
  , _max_open(max_open)
  , _on_accept(std::move(on_accept))
  , _port(bound_port(_fd.get())) {
    if (!_loop.watch(_fd.get(), event_loop::readable, [this](std::uint32_t) { on_ready(); })) {
        log::error("{}: cannot watch the listening socket: {}; no connection will be accepted",
                   _name, std::strerror(errno));
    }
}

listener::~listener() {
    _loop.cancel(_resume);
    _loop.unwatch(_fd.get());
}

unique_fd listener::release() {
    _loop.cancel(_resume);
    _resume = 0;
    _loop.unwatch(_fd.get());
    return std::move(_fd);
}

void listener::connection_closed() {
    if (_open > 0) {
        --_open;
    }
}

void listener::on_ready() {
    for (;;) {
        sockaddr_in sa{};
        socklen_t len = sizeof sa;
        unique_fd fd(::accept4(_fd.get(), reinterpret_cast<sockaddr*>(&sa), &len,
                               SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!fd) {
            const int err = errno;
            if (err == EAGAIN || err == EWOULDBLOCK) {
                return;
            }
            if (err == EINTR || err == ECONNABORTED || err == EPROTO || err == EPERM) {
                // The connection died before we took it, or a firewall refused it: the next.
                continue;
            }
            pause_after(err);
            return;
        }
        if (_max_open != 0 && _open >= _max_open) {
            // The newest goes: those already served keep their turn.
            _refused.fetch_add(1, std::memory_order_relaxed);
            ++_refused_since_log;
            const std::uint64_t now = event_loop::now_ns();
            if (log_due(_last_refusal_log_ns, now)) {
                log::warn("{}: {} connections open, the limit: refusing new ones ({} refused "
                          "since the last report)",
                          _name, _open, _refused_since_log);
                _last_refusal_log_ns = now;
                _refused_since_log = 0;
            }
            continue; // `fd` closes here
        }
        // Control frames are small and latency matters more than packet count.
        const int one = 1;
        ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        _accepted.fetch_add(1, std::memory_order_relaxed);
        if (_max_open != 0) {
            ++_open;
        }
        _on_accept(std::move(fd), peer_name(sa));
    }
}

void listener::pause_after(int err) {
    ++_errors_since_log;
    const std::uint64_t now = event_loop::now_ns();
    if (log_due(_last_error_log_ns, now)) {
        log::warn("{}: cannot accept connections: {} ({} failures since the last report); new "
                  "clients wait until it clears{}",
                  _name, std::strerror(err), _errors_since_log,
                  err == EMFILE || err == ENFILE ? ", raise the open-file limit (ulimit -n)" : "");
        _last_error_log_ns = now;
        _errors_since_log = 0;
    }
    // The listener stays readable while the error lasts: stop watching it for a while.
    _loop.modify(_fd.get(), 0);
    _resume = _loop.run_after(error_pause_ns, [this] {
        _resume = 0;
        _loop.modify(_fd.get(), event_loop::readable);
    });
}

} // namespace ringtail::net
