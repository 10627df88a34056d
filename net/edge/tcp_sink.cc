// The sink connection's state machine: connect with retries, flush until EAGAIN, reconnect on a
// broken connection, close once drained.
#include "net/edge/tcp_sink.h"

#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/log.h"
#include "net/io/send_buffer.h"
#include "net/io/tcp_connect.h"

namespace ringtail::net {
namespace {

// The receiver-close check costs a syscall, so a busy shard makes it at most this often.
constexpr std::uint64_t receiver_check_interval_ns = 1'000'000;
// The front of the output buffer is compacted away once it is this large and at least half of
// the buffer, which keeps the copying amortised O(1) per byte.
constexpr std::size_t compact_threshold = 64 * 1024;
// An emptied buffer above this size is released, so that one burst does not pin memory.
constexpr std::size_t keep_capacity = 4 * 1024 * 1024;

} // namespace

tcp_sink::tcp_sink(host_port address, std::string sink_name)
  : _address(std::move(address))
  , _name(std::move(sink_name)) {}

tcp_sink::~tcp_sink() {
    close_socket();
}

bool tcp_sink::needs_poll() const {
    if (_finished) {
        return false;
    }
    if (_state != state::connected) {
        return true;
    }
    return (pending_bytes() > 0 && !_blocked) || _receiver_check_deferred;
}

void tcp_sink::write(std::span<const std::byte> bytes) {
    _out.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

void tcp_sink::request_close() {
    _close_requested = true;
}

std::size_t tcp_sink::poll(shard_context& shard) {
    if (_finished) {
        return 0;
    }
    std::uint64_t now = shard.now_ns();
    if (_state == state::disconnected) {
        if (_close_requested && pending_bytes() == 0) {
            finish();
            return 0;
        }
        if (now < _next_attempt_ns) {
            return 0;
        }
        start_connect(shard, now);
    }
    if (_state == state::connecting) {
        check_connect(now);
        if (_state != state::connected) {
            return 0;
        }
    }
    std::size_t work = 0;
    if (pending_bytes() > 0 && flush(now) > 0) {
        work = 1;
    }
    if (_state == state::connected) {
        check_receiver(now);
    }
    if (_state == state::connected && _close_requested && pending_bytes() == 0) {
        finish();
    }
    return work;
}

void tcp_sink::start_connect(shard_context& shard, std::uint64_t now_ns) {
    if (!_resolved) {
        // A dotted address resolves without I/O; a name costs one lookup until it succeeds.
        auto ip = resolve_ipv4(_address.host);
        if (!ip) {
            connect_failed(now_ns, EHOSTUNREACH);
            return;
        }
        _ip = *ip;
        _resolved = true;
    }
    const int opened = open_tcp_socket();
    if (opened < 0) {
        connect_failed(now_ns, -opened);
        return;
    }
    _fd.reset(opened);
    // EPOLLOUT announces both a finished connect and room after EAGAIN; EPOLLRDHUP the receiver
    // closing. data.ptr stays nullptr: the event only wakes the shard.
    epoll_event ev{};
    ev.events = EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.ptr = nullptr;
    if (::epoll_ctl(shard.epoll_fd(), EPOLL_CTL_ADD, _fd.get(), &ev) != 0) {
        int err = errno;
        close_socket();
        connect_failed(now_ns, err);
        return;
    }
    _epoll_fd = shard.epoll_fd();
    _connect_started_ns = now_ns;
    int err = begin_connect(_fd.get(), _ip, _address.port);
    if (err == 0) {
        // Even an immediate success goes through check_connect, which logs it.
        _state = state::connecting;
        return;
    }
    close_socket();
    connect_failed(now_ns, err);
}

void tcp_sink::check_connect(std::uint64_t now_ns) {
    int err = 0;
    auto st = poll_connect(_fd.get(), err);
    if (st == connect_state::pending) {
        if (now_ns - _connect_started_ns > connect_timeout_ns) {
            close_socket();
            connect_failed(now_ns, ETIMEDOUT);
        }
        return;
    }
    if (st == connect_state::failed) {
        close_socket();
        connect_failed(now_ns, err);
        return;
    }
    _state = state::connected;
    _blocked = false;
    _warned_this_outage = false;
    _last_receiver_check_ns = now_ns;
    log::info("sink '{}' connected to {}", _name, _address.to_string());
}

void tcp_sink::connect_failed(std::uint64_t now_ns, int err) {
    _state = state::disconnected;
    _next_attempt_ns = now_ns + retry_interval_ns;
    if (!_warned_this_outage) {
        log::warn("sink '{}' at {} not reachable ({}); holding output and retrying every 250 ms",
                  _name, _address.to_string(), std::strerror(err));
        _warned_this_outage = true;
    }
}

std::size_t tcp_sink::flush(std::uint64_t now_ns) {
    std::size_t written = 0;
    _blocked = false;
    while (pending_bytes() > 0) {
        ssize_t n = ::send(_fd.get(), _out.data() + _out_offset, pending_bytes(),
                           MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            _out_offset += static_cast<std::size_t>(n);
            written += static_cast<std::size_t>(n);
            continue;
        }
        int err = n < 0 ? errno : EPIPE;
        if (err == EINTR) {
            continue;
        }
        if (err == EAGAIN || err == EWOULDBLOCK) {
            _blocked = true;
            break;
        }
        disconnect(now_ns, std::strerror(err));
        break;
    }
    settle_sent(_out, _out_offset, keep_capacity, compact_threshold);
    return written;
}

void tcp_sink::check_receiver(std::uint64_t now_ns) {
    if (now_ns - _last_receiver_check_ns < receiver_check_interval_ns) {
        // Possibly woken by the receiver's EPOLLRDHUP edge, which will not come again: make sure
        // the shard polls once more soon.
        _receiver_check_deferred = true;
        return;
    }
    _last_receiver_check_ns = now_ns;
    _receiver_check_deferred = false;
    // Receivers are not expected to send; anything they do send is read and discarded, so that
    // it cannot hide the end of the stream from this check.
    std::byte scratch[1024];
    for (int i = 0; i < 16; ++i) {
        ssize_t n = ::recv(_fd.get(), scratch, sizeof scratch, MSG_DONTWAIT);
        if (n > 0) {
            continue;
        }
        if (n == 0) {
            disconnect(now_ns, "the receiver closed the connection");
            return;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            disconnect(now_ns, std::strerror(errno));
        }
        return;
    }
}

void tcp_sink::disconnect(std::uint64_t now_ns, const char* why) {
    close_socket();
    _state = state::disconnected;
    // Try again at once: the receiver may already be back.
    _next_attempt_ns = now_ns;
    log::warn("sink '{}' at {}: {}; reconnecting and holding output (bytes already sent on the "
              "broken connection may be lost)",
              _name, _address.to_string(), why);
    // This outage has had its line; the first failed reconnect does not log another.
    _warned_this_outage = true;
}

void tcp_sink::close_socket() {
    if (!_fd) {
        return;
    }
    if (_epoll_fd >= 0) {
        ::epoll_ctl(_epoll_fd, EPOLL_CTL_DEL, _fd.get(), nullptr);
        _epoll_fd = -1;
    }
    _fd.reset();
    _blocked = false;
    _receiver_check_deferred = false;
}

void tcp_sink::finish() {
    if (_fd) {
        // Everything is written: tell the receiver the stream is complete before closing.
        ::shutdown(_fd.get(), SHUT_WR);
    }
    close_socket();
    _state = state::disconnected;
    _finished = true;
}

} // namespace ringtail::net
