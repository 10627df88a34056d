// The external channel server: non-blocking clients in one poll loop, each with its own decoder,
// reply buffer and stall deadline (modelled on http_endpoint's loop).
#include "net/external/external_channel.h"

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include "engine/log.h"
#include "net/io/send_buffer.h"
#include "net/io/tcp_listener.h"

namespace ringtail::net {
namespace {

std::uint64_t steady_now_ns() {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

std::string peer_name(const sockaddr_in& sa) {
    char text[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &sa.sin_addr, text, sizeof text);
    return std::string(text) + ":" + std::to_string(ntohs(sa.sin_port));
}

constexpr std::size_t read_chunk = 64 * 1024;

} // namespace

struct external_channel::connection {
    connection(int fd_, std::string peer_)
      : fd(fd_)
      , peer(std::move(peer_))
      , decoder(max_request_bytes) {}
    ~connection() { ::close(fd); }
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    // Read only once the requests already read are served and the client reads its replies.
    bool wants_read() const {
        return !peer_closed && queued.empty() && failure.empty() &&
               out.size() - out_offset < max_pending_reply_bytes;
    }
    bool wants_write() const { return out_offset < out.size(); }

    int fd;
    std::string peer;
    external_decoder decoder;
    // Requests read but not yet served: at most one read's worth (bounded by read_chunk).
    std::deque<external_frame> queued;
    std::string failure; // a bad frame followed the queued requests: close once they are served
    std::string out;     // replies not yet sent, from out_offset on
    std::size_t out_offset = 0;
    // Set while a frame is unfinished or replies wait to be sent; reset on every progress.
    std::uint64_t stall_deadline_ns = 0;
    bool peer_closed = false; // EOF read: send what is pending, then close
    bool done = false;        // to be closed and removed
};

result<std::unique_ptr<external_channel>> external_channel::open(const host_port& at,
                                                                 external_dispatch dispatch) {
    auto fd = listen_tcp(at, 64);
    if (!fd) {
        return fd.err();
    }
    const int wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd < 0) {
        const int err = errno;
        ::close(*fd);
        return error{ errc::unavailable,
                      std::string("cannot start the external channel: eventfd: ") +
                        std::strerror(err) };
    }
    return std::unique_ptr<external_channel>(
      new external_channel(*fd, wake_fd, std::move(dispatch)));
}

external_channel::external_channel(int listen_fd, int wake_fd, external_dispatch dispatch)
  : _listen_fd(listen_fd)
  , _wake_fd(wake_fd)
  , _port(ringtail::net::bound_port(listen_fd))
  , _dispatch(std::move(dispatch))
  , _thread([this] { run(); }) {}

external_channel::~external_channel() {
    const std::uint64_t one = 1;
    // Pairs with the poll on _wake_fd in run().
    [[maybe_unused]] auto n = ::write(_wake_fd, &one, sizeof one);
    _thread.join();
    _connections.clear();
    ::close(_listen_fd);
    ::close(_wake_fd);
}

void external_channel::fail(connection& c, std::string_view why) {
    log::warn("external channel: closing the connection from {}: {}", c.peer, why);
    _closed_for_errors.fetch_add(1, std::memory_order_relaxed);
    // Replies to the requests before the bad one go out if the socket takes them now; the close
    // does not wait for a client that is not reading.
    if (c.wants_write()) {
        [[maybe_unused]] auto n = ::send(c.fd, c.out.data() + c.out_offset,
                                         c.out.size() - c.out_offset, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    ::shutdown(c.fd, SHUT_WR);
    c.done = true;
}

void external_channel::run() {
    std::vector<pollfd> fds;
    for (;;) {
        std::uint64_t now = steady_now_ns();
        const bool accepting =
          _connections.size() < max_connections && now >= _accept_paused_until_ns;
        fds.clear();
        fds.push_back(pollfd{ _wake_fd, POLLIN, 0 });
        fds.push_back(pollfd{ _listen_fd, static_cast<short>(accepting ? POLLIN : 0), 0 });
        std::uint64_t next_deadline = now + 1'000'000'000;
        for (const auto& c : _connections) {
            if (!c->queued.empty() || !c->failure.empty()) {
                next_deadline = now; // requests wait: come straight back after the poll
            }
            short events = 0;
            if (c->wants_read()) {
                events |= POLLIN;
            }
            if (c->wants_write()) {
                events |= POLLOUT;
            }
            fds.push_back(pollfd{ c->fd, events, 0 });
            if (c->stall_deadline_ns != 0) {
                next_deadline = std::min(next_deadline, c->stall_deadline_ns);
            }
        }
        if (!accepting && _accept_paused_until_ns > now) {
            next_deadline = std::min(next_deadline, _accept_paused_until_ns);
        }
        const int timeout_ms =
          next_deadline > now ? static_cast<int>((next_deadline - now + 999'999) / 1'000'000) : 0;
        const int n = ::poll(fds.data(), fds.size(), timeout_ms);
        if (n < 0 && errno != EINTR) {
            log::error("external channel: poll failed: {}; serving stops", std::strerror(errno));
            return;
        }
        if (fds[0].revents != 0) {
            return; // the destructor asked
        }
        now = steady_now_ns();
        // Connections accepted below are not in fds yet: only the first `polled` are looked at.
        const std::size_t polled = fds.size() - 2;
        for (std::size_t i = 0; i < polled; ++i) {
            connection& c = *_connections[i];
            const short ev = fds[i + 2].revents;
            if (ev & (POLLIN | POLLHUP | POLLERR)) {
                on_readable(c, now);
            }
            if (!c.done) {
                serve(c, now);
            }
            // Replies just made go out at once; EAGAIN leaves them for POLLOUT.
            if (!c.done && c.wants_write()) {
                on_writable(c, now);
            }
            if (!c.done && c.stall_deadline_ns != 0 && now >= c.stall_deadline_ns) {
                fail(c, c.wants_write() ? "replies left unread for 10 s"
                                        : "a frame left unfinished for 10 s");
            }
            if (!c.done && c.peer_closed && !c.wants_write()) {
                c.done = true;
            }
        }
        std::erase_if(_connections, [](const auto& c) { return c->done; });
        if (fds[1].revents != 0) {
            accept_all(now);
        }
    }
}

void external_channel::accept_all(std::uint64_t now_ns) {
    while (_connections.size() < max_connections) {
        sockaddr_in sa{};
        socklen_t len = sizeof sa;
        const int fd = ::accept4(_listen_fd, reinterpret_cast<sockaddr*>(&sa), &len,
                                 SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                // EMFILE and friends: the listener stays readable; pause instead of spinning.
                if (!_accept_error_logged) {
                    log::warn("external channel: accept failed: {}; pausing accepts",
                              std::strerror(errno));
                    _accept_error_logged = true;
                }
                _accept_paused_until_ns = now_ns + 100'000'000;
            }
            return;
        }
        const int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        auto c = std::make_unique<connection>(fd, peer_name(sa));
        log::debug("external channel: connection from {}", c->peer);
        _connections.push_back(std::move(c));
    }
}

void external_channel::on_readable(connection& c, std::uint64_t now_ns) {
    char buf[read_chunk];
    // One read per wake-up, and none while requests wait: a client that floods requests gets
    // its turn like the others and no more.
    while (c.wants_read()) {
        const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                log::debug("external channel: {} reset the connection: {}", c.peer,
                           std::strerror(errno));
                c.done = true;
            }
            return;
        }
        if (n == 0) {
            if (c.decoder.mid_frame()) {
                log::debug("external channel: {} closed in the middle of a frame", c.peer);
            }
            c.peer_closed = true;
            return;
        }
        std::vector<external_frame> frames;
        const auto status =
          c.decoder.feed(std::span<const std::byte>(reinterpret_cast<const std::byte*>(buf),
                                                    static_cast<std::size_t>(n)),
                         frames);
        for (external_frame& f : frames) {
            c.queued.push_back(std::move(f));
        }
        if (status == external_decode_status::malformed) {
            // Requests before the bad frame are still answered, in order; then the close.
            const std::uint32_t length = c.decoder.bad_length();
            c.failure = length < 2 ? "malformed frame (length " + std::to_string(length) + " < 2)"
                                   : "frame of " + std::to_string(length) + " bytes exceeds the " +
                                       std::to_string(max_request_bytes) + "-byte limit";
        }
        // Progress: the stall clock restarts, or stops if nothing is unfinished.
        c.stall_deadline_ns =
          (c.decoder.mid_frame() || c.wants_write()) ? now_ns + stall_timeout_ns : 0;
        return;
    }
}

void external_channel::serve(connection& c, std::uint64_t now_ns) {
    for (std::size_t k = 0; k < max_requests_per_turn && !c.queued.empty(); ++k) {
        const external_frame f = std::move(c.queued.front());
        c.queued.pop_front();
        _requests.fetch_add(1, std::memory_order_relaxed);
        external_outcome o;
        try {
            o = _dispatch(f.id, f.body, c.peer);
        } catch (const std::exception& e) {
            fail(c, "request " + std::to_string(f.id) + " failed: " + e.what());
            return;
        }
        if (o.what == external_outcome::action::close) {
            fail(c, o.body);
            return;
        }
        if (o.what == external_outcome::action::reply) {
            append_external_frame(c.out, o.id, o.body);
            c.stall_deadline_ns = now_ns + stall_timeout_ns;
        }
    }
    if (c.queued.empty() && !c.failure.empty()) {
        fail(c, c.failure);
    }
}

void external_channel::on_writable(connection& c, std::uint64_t now_ns) {
    while (c.out_offset < c.out.size()) {
        const ssize_t n =
          ::send(c.fd, c.out.data() + c.out_offset, c.out.size() - c.out_offset, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                log::debug("external channel: {} went away: {}", c.peer, std::strerror(errno));
                c.done = true;
            }
            break;
        }
        c.out_offset += static_cast<std::size_t>(n);
        c.stall_deadline_ns = now_ns + stall_timeout_ns;
    }
    if (settle_sent(c.out, c.out_offset, read_chunk, read_chunk)) {
        c.stall_deadline_ns = c.decoder.mid_frame() ? c.stall_deadline_ns : 0;
    }
}

} // namespace ringtail::net
