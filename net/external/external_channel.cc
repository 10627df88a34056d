// The external channel server: non-blocking clients on an event loop, each with its own decoder,
// reply buffer and deadline; the dispatch function on a request thread of the channel's own.
#include "net/external/external_channel.h"

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <sys/socket.h>
#include <vector>

#include "engine/log.h"
#include "net/io/send_buffer.h"
#include "net/io/tcp_listener.h"

namespace ringtail::net {
namespace {

constexpr std::size_t read_chunk = 64 * 1024;

std::string seconds_text(std::uint64_t ns) {
    return ns % 1'000'000'000 == 0 ? std::to_string(ns / 1'000'000'000) + " s"
                                   : std::to_string(ns / 1'000'000) + " ms";
}

} // namespace

struct external_channel::connection {
    connection(std::uint64_t id_, unique_fd fd_, std::string peer_)
      : id(id_)
      , fd(std::move(fd_))
      , peer(std::move(peer_))
      , decoder(max_request_bytes) {}

    // Read only once the requests already read are served and the client reads its replies.
    bool wants_read() const {
        return !peer_closed && queued.empty() && failure.empty() &&
               out.size() - out_offset < max_pending_reply_bytes;
    }
    bool wants_write() const { return out_offset < out.size(); }
    // Nothing read and unanswered, nothing unsent: the idle clock runs.
    bool idle() const {
        return !in_flight && queued.empty() && !wants_write() && !decoder.mid_frame();
    }

    std::uint64_t id;
    unique_fd fd;
    std::string peer;
    external_decoder decoder;
    // Requests read but not yet handed on: at most one read's worth (bounded by read_chunk).
    std::deque<external_frame> queued;
    bool in_flight = false; // a request of this connection is with the request thread
    std::string failure;    // a bad frame followed the queued requests: close once they are served
    std::string out;        // replies not yet sent, from out_offset on
    std::size_t out_offset = 0;
    std::uint32_t interest = event_loop::readable; // as last given to the loop
    event_loop::timer_id deadline = 0;             // stall or idle; 0 while a request is in flight
    bool peer_closed = false;                      // EOF read: send what is pending, then close
    bool done = false;                             // to be closed and removed
};

// Requests on their way to the request thread: a mutex and a condition variable, as the thread
// sleeps between requests (a handful a second at most in practice).
struct external_channel::request_queue {
    struct request {
        std::uint64_t connection;
        external_frame frame;
        std::string peer;
    };
    std::mutex mu;
    std::condition_variable ready;
    std::deque<request> requests; // bounded: at most one per open connection
    bool stopping = false;
};

result<std::unique_ptr<external_channel>> external_channel::open(event_loop& loop,
                                                                 const host_port& at,
                                                                 external_dispatch dispatch,
                                                                 limits lim) {
    return open_on(nullptr, loop, at, std::move(dispatch), lim);
}

result<std::unique_ptr<external_channel>> external_channel::open(const host_port& at,
                                                                 external_dispatch dispatch,
                                                                 limits lim) {
    auto own = std::make_unique<event_loop_thread>();
    event_loop& loop = own->loop();
    return open_on(std::move(own), loop, at, std::move(dispatch), lim);
}

result<std::unique_ptr<external_channel>> external_channel::open_on(
  std::unique_ptr<event_loop_thread> own, event_loop& loop, const host_port& at,
  external_dispatch dispatch, limits lim) {
    auto fd = listen_tcp(at, 64);
    if (!fd) {
        return fd.err();
    }
    unique_fd listening(fd.value());
    std::unique_ptr<external_channel> ch(
      new external_channel(std::move(own), loop, std::move(dispatch), lim));
    ch->_port = ringtail::net::bound_port(listening.get());
    external_channel* self = ch.get();
    loop.call([&] {
        self->_listener = std::make_unique<listener>(
          self->_loop, std::move(listening), "external channel", self->_limits.max_connections,
          [self](unique_fd c, std::string peer) {
              self->on_accept(std::move(c), std::move(peer));
          });
    });
    return ch;
}

external_channel::external_channel(std::unique_ptr<event_loop_thread> own, event_loop& loop,
                                   external_dispatch dispatch, limits lim)
  : _own_loop(std::move(own))
  , _loop(loop)
  , _limits(lim)
  , _dispatch(std::move(dispatch))
  , _read_buffer(read_chunk)
  , _requests_queue(std::make_unique<request_queue>())
  , _request_thread([this] { run_requests(); }) {}

external_channel::~external_channel() {
    // The request thread first (a request in flight finishes, up to the dispatch's own limit):
    // its last outcomes are posted before the call below, so they run while `this` is whole.
    {
        std::lock_guard lock(_requests_queue->mu);
        _requests_queue->stopping = true;
    }
    _requests_queue->ready.notify_one();
    _request_thread.join();
    _loop.call([this] {
        while (!_connections.empty()) {
            close_connection(*_connections.begin()->second);
        }
        _listener.reset();
    });
    _own_loop.reset();
}

std::uint64_t external_channel::connections_refused() const {
    return _listener ? _listener->refused() : 0;
}

void external_channel::run_requests() {
    request_queue& q = *_requests_queue;
    for (;;) {
        request_queue::request r;
        {
            std::unique_lock lock(q.mu);
            q.ready.wait(lock, [&] { return q.stopping || !q.requests.empty(); });
            if (q.stopping) {
                return; // requests not yet taken are dropped with their connections
            }
            r = std::move(q.requests.front());
            q.requests.pop_front();
        }
        external_outcome o;
        try {
            o = _dispatch(r.frame.id, r.frame.body, r.peer);
        } catch (const std::exception& e) {
            o = external_outcome::close("request " + std::to_string(r.frame.id) +
                                        " failed: " + e.what());
        }
        _loop.post(
          [this, id = r.connection, o = std::move(o)]() mutable { on_outcome(id, std::move(o)); });
    }
}

void external_channel::on_accept(unique_fd fd, std::string peer) {
    const std::uint64_t id = _next_id++;
    auto c = std::make_unique<connection>(id, std::move(fd), std::move(peer));
    if (!_loop.watch(c->fd.get(), event_loop::readable,
                     [this, id](std::uint32_t events) { on_ready(id, events); })) {
        log::warn("external channel: cannot watch the connection from {}: {}", c->peer,
                  std::strerror(errno));
        _listener->connection_closed();
        return;
    }
    log::debug("external channel: connection from {}", c->peer);
    connection& ref = *c;
    _connections.emplace(id, std::move(c));
    settle(ref);
}

void external_channel::on_ready(std::uint64_t id, std::uint32_t events) {
    auto it = _connections.find(id);
    if (it == _connections.end()) {
        return;
    }
    connection& c = *it->second;
    if ((events & event_loop::readable) != 0 && c.wants_read()) {
        on_readable(c);
    } else if ((events & (event_loop::hangup | event_loop::readable)) == event_loop::hangup) {
        // Gone both ways (a reset) while not read from: nothing more can reach it, and the
        // hang-up would be reported again on every turn.
        c.done = true;
    }
    if (!c.done && (events & event_loop::writable) != 0) {
        on_writable(c);
    }
    settle(c);
}

void external_channel::on_outcome(std::uint64_t id, external_outcome o) {
    auto it = _connections.find(id);
    if (it == _connections.end()) {
        return; // closed meanwhile (reset, or the channel's end)
    }
    connection& c = *it->second;
    c.in_flight = false;
    if (o.what == external_outcome::action::close) {
        fail(c, o.body);
    } else if (o.what == external_outcome::action::reply) {
        append_external_frame(c.out, o.id, o.body);
        // Replies just made go out at once; EAGAIN leaves them for the writable callback.
        on_writable(c);
    }
    settle(c);
}

void external_channel::serve(connection& c) {
    if (c.in_flight || c.queued.empty() || c.done) {
        return;
    }
    c.in_flight = true;
    _requests.fetch_add(1, std::memory_order_relaxed);
    {
        std::lock_guard lock(_requests_queue->mu);
        _requests_queue->requests.push_back(
          request_queue::request{ c.id, std::move(c.queued.front()), c.peer });
    }
    c.queued.pop_front();
    _requests_queue->ready.notify_one();
}

void external_channel::settle(connection& c) {
    if (!c.done) {
        serve(c);
        if (c.failure.size() != 0 && c.queued.empty() && !c.in_flight) {
            fail(c, c.failure);
        } else if (c.peer_closed && c.queued.empty() && !c.in_flight && !c.wants_write()) {
            c.done = true; // answered all it sent before closing its side
        }
    }
    if (c.done) {
        close_connection(c);
        return;
    }
    const std::uint32_t interest =
      (c.wants_read() ? event_loop::readable : 0) | (c.wants_write() ? event_loop::writable : 0);
    if (interest != c.interest) {
        _loop.modify(c.fd.get(), interest);
        c.interest = interest;
    }
    // Progress happened (this runs after every event): the deadline starts again. None while a
    // request is with the request thread, which bounds its own wait.
    _loop.cancel(c.deadline);
    c.deadline = 0;
    if (c.in_flight) {
        return;
    }
    const bool stalled = c.wants_write() || c.decoder.mid_frame();
    const std::uint64_t after = stalled ? _limits.stall_timeout_ns : _limits.idle_timeout_ns;
    if (stalled || c.idle()) {
        const std::uint64_t id = c.id;
        c.deadline = _loop.run_after(after, [this, id] { on_deadline(id); });
    }
}

void external_channel::on_deadline(std::uint64_t id) {
    auto it = _connections.find(id);
    if (it == _connections.end()) {
        return;
    }
    connection& c = *it->second;
    c.deadline = 0;
    if (c.wants_write()) {
        fail(c, "replies left unread for " + seconds_text(_limits.stall_timeout_ns));
    } else if (c.decoder.mid_frame()) {
        fail(c, "a frame left unfinished for " + seconds_text(_limits.stall_timeout_ns));
    } else {
        // Idle is no error: debug only, or a crowd of idle clients would fill the log.
        log::debug("external channel: closing the connection from {}: idle for {}", c.peer,
                   seconds_text(_limits.idle_timeout_ns));
        _closed_idle.fetch_add(1, std::memory_order_relaxed);
        c.done = true;
    }
    settle(c);
}

void external_channel::fail(connection& c, std::string_view why) {
    log::warn("external channel: closing the connection from {}: {}", c.peer, why);
    _closed_for_errors.fetch_add(1, std::memory_order_relaxed);
    // Replies to the requests before the bad one go out if the socket takes them now; the close
    // does not wait for a client that is not reading.
    if (c.wants_write()) {
        [[maybe_unused]] auto n = ::send(c.fd.get(), c.out.data() + c.out_offset,
                                         c.out.size() - c.out_offset, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    ::shutdown(c.fd.get(), SHUT_WR);
    c.done = true;
}

void external_channel::close_connection(connection& c) {
    _loop.cancel(c.deadline);
    _loop.unwatch(c.fd.get());
    _listener->connection_closed();
    _connections.erase(c.id); // closes the fd; `c` is gone
}

void external_channel::on_readable(connection& c) {
    // One read per wake-up, and none while requests wait: a client that floods requests gets
    // its turn like the others and no more.
    for (;;) {
        const ssize_t n = ::recv(c.fd.get(), _read_buffer.data(), _read_buffer.size(), 0);
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
        const auto status = c.decoder.feed(
          std::span<const std::byte>(reinterpret_cast<const std::byte*>(_read_buffer.data()),
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
        return;
    }
}

void external_channel::on_writable(connection& c) {
    while (c.out_offset < c.out.size()) {
        const ssize_t n = ::send(c.fd.get(), c.out.data() + c.out_offset,
                                 c.out.size() - c.out_offset, MSG_NOSIGNAL);
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
    }
    settle_sent(c.out, c.out_offset, read_chunk, read_chunk);
}

} // namespace ringtail::net
