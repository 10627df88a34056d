// The control connection's non-blocking reads and writes, and the blocking connect used to reach
// a control address at start-up.
#include "net/cluster/control_connection.h"
#include "engine/assert.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <utility>

#include <fmt/format.h>

#include "engine/log.h"
#include "net/io/send_buffer.h"
#include "net/io/tcp_connect.h"

namespace ringtail::net {
namespace {

using clock_type = std::chrono::steady_clock;

// Milliseconds left until `deadline`, rounded up so that a wait never ends just short of it.
int ms_until(clock_type::time_point deadline) {
    const auto left = deadline - clock_type::now();
    if (left <= clock_type::duration::zero()) {
        return 0;
    }
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
    return ms > 60'000 ? 60'000 : static_cast<int>(ms);
}

// Output buffers above this are released once drained, so that one large message does not leave
// an idle connection holding a large allocation.
constexpr std::size_t keep_capacity = 64 * 1024;

} // namespace

control_connection::control_connection(int fd, std::string peer_description,
                                       std::uint32_t max_frame, std::size_t max_queued_bytes)
  : _fd(fd)
  , _peer(std::move(peer_description))
  , _max_queued_bytes(max_queued_bytes)
  , _decoder(max_frame) {
    RINGTAIL_ASSERT(_fd.valid(), "control connection constructed with an invalid fd ({})", fd);
    // Whoever made the socket (accept, connect_tcp_blocking, socketpair), poll() must not block.
    const int flags = ::fcntl(_fd.get(), F_GETFL);
    if (flags >= 0 && (flags & O_NONBLOCK) == 0) {
        ::fcntl(_fd.get(), F_SETFL, flags | O_NONBLOCK);
    }
}

void control_connection::send(control_type type, const nlohmann::json& body) {
    if (closed()) {
        return;
    }
    // Judged on the backlog before this message, so that one message as large as max_frame is
    // accepted whatever the bound, once the peer has read what came before it.
    if (queued_bytes() > _max_queued_bytes) {
        close_with(fmt::format("the peer is not reading: over {} bytes of control messages queued",
                               _max_queued_bytes));
        log::warn("control: closing the connection to {}: {}", _peer, _close_reason);
        return;
    }
    if (_out_offset == _out.size()) {
        _out.clear();
        _out_offset = 0;
    }
    const std::size_t before = _out.size();
    append_control(_out, type, body);
    const std::size_t frame = _out.size() - before;
    // The peer's decoder would reject a larger one and close the connection: a message this
    // large must be built differently (split, or sent on another channel).
    RINGTAIL_ASSERT(frame <= std::size_t{ _decoder.max_frame() } + 4,
                    "a {} message of {} bytes is over the {}-byte control frame limit",
                    to_string(type), frame, _decoder.max_frame());
    ++_messages_sent;
}

std::size_t control_connection::poll(const std::function<void(control_msg&&)>& on_message) {
    if (closed()) {
        return 0;
    }
    std::size_t moved = write_some();
    if (_read_buffer.size() != read_chunk_bytes) {
        _read_buffer.resize(read_chunk_bytes);
    }
    std::size_t read_total = 0;
    while (!closed() && read_total < read_budget_bytes) {
        const ssize_t n = ::recv(_fd.get(), _read_buffer.data(), _read_buffer.size(), MSG_DONTWAIT);
        if (n > 0) {
            const auto got = static_cast<std::size_t>(n);
            read_total += got;
            _decoder.feed(std::string_view(_read_buffer.data(), got));
            while (auto msg = _decoder.next()) {
                ++_messages_received;
                on_message(std::move(*msg));
                if (closed()) {
                    break; // the callback closed us: deliver nothing more
                }
            }
            if (closed()) {
                break;
            }
            if (_decoder.dead()) {
                ++_protocol_errors;
                log::warn("control: closing the connection to {}: {}", _peer,
                          _decoder.error_message());
                close_with(_decoder.error_message());
                break;
            }
            if (got < _read_buffer.size()) {
                break; // a short read: the socket is drained for now
            }
            continue;
        }
        if (n == 0) {
            close_with(_decoder.mid_frame() ? "connection closed mid-frame" : "connection closed");
            break;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        }
        close_with(errno == ECONNRESET ? std::string("connection reset")
                                       : fmt::format("read failed: {}", std::strerror(errno)));
    }
    moved += read_total;
    if (!closed()) {
        moved += write_some();
    }
    return moved;
}

std::size_t control_connection::write_some() {
    std::size_t total = 0;
    while (_fd && _out_offset < _out.size()) {
        const ssize_t n = ::send(_fd.get(), _out.data() + _out_offset, _out.size() - _out_offset,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                break;
            }
            if (errno == EPIPE) {
                close_with("connection closed");
            } else if (errno == ECONNRESET) {
                close_with("connection reset");
            } else {
                close_with(fmt::format("write failed: {}", std::strerror(errno)));
            }
            return total;
        }
        _out_offset += static_cast<std::size_t>(n);
        total += static_cast<std::size_t>(n);
    }
    settle_sent(_out, _out_offset, keep_capacity, keep_capacity);
    return total;
}

bool control_connection::flush(std::chrono::milliseconds max_wait) {
    const auto deadline = clock_type::now() + max_wait;
    while (!closed()) {
        write_some();
        if (!wants_write()) {
            return !closed();
        }
        const int wait_ms = ms_until(deadline);
        if (wait_ms == 0) {
            return false;
        }
        pollfd p{ _fd.get(), POLLOUT, 0 };
        if (::poll(&p, 1, wait_ms) < 0 && errno != EINTR) {
            close_with(fmt::format("write failed: poll: {}", std::strerror(errno)));
        }
    }
    return false;
}

void control_connection::close() {
    close_with("closed locally");
}

void control_connection::close_with(std::string reason) {
    if (!_fd) {
        return;
    }
    _fd.reset();
    _close_reason = std::move(reason);
    std::string{}.swap(_out);
    _out_offset = 0;
    std::string{}.swap(_read_buffer);
}

result<int> connect_tcp_blocking(const host_port& address, std::chrono::milliseconds timeout) {
    const auto deadline = clock_type::now() + timeout;
    auto ip = resolve_ipv4(address.host);
    if (!ip) {
        return ip.err();
    }
    const int opened = open_tcp_socket();
    if (opened < 0) {
        return error{ errc::unavailable, fmt::format("cannot open a socket to connect to {}: {}",
                                                     address.to_string(), std::strerror(-opened)) };
    }
    unique_fd fd(opened); // closed on every failure below
    auto fail = [&](const std::string& why) {
        return error{ errc::unavailable,
                      fmt::format("cannot connect to {}: {}", address.to_string(), why) };
    };
    if (int err = begin_connect(fd.get(), *ip, address.port); err != 0) {
        return fail(std::strerror(err));
    }
    for (;;) {
        int err = 0;
        const auto state = poll_connect(fd.get(), err);
        if (state == connect_state::connected) {
            return fd.release();
        }
        if (state == connect_state::failed) {
            return fail(std::strerror(err));
        }
        const int wait_ms = ms_until(deadline);
        if (wait_ms == 0) {
            return fail(fmt::format("no answer within {} ms", timeout.count()));
        }
        pollfd p{ fd.get(), POLLOUT, 0 };
        if (::poll(&p, 1, wait_ms) < 0 && errno != EINTR) {
            return fail(fmt::format("poll: {}", std::strerror(errno)));
        }
    }
}

} // namespace ringtail::net
