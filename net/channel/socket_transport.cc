// The socket transport's poll loop: level-triggered epoll over the peer connections, one read
// buffer, per-peer output buffers written until the kernel refuses.
#include "net/channel/socket_transport.h"
#include "engine/assert.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <system_error>
#include <unistd.h>

#include <fmt/format.h>

#include "engine/log.h"
#include "net/io/send_buffer.h"

namespace ringtail::net {
namespace {

constexpr std::size_t read_buf_bytes = 64 * 1024;
// Reads per peer per poll: a busy peer cannot starve the others, and the level-triggered epoll
// reports what is left.
constexpr int max_reads_per_poll = 16;
// The front of an output buffer is compacted away once it is this large and at least half of the
// buffer, which keeps the copying amortised O(1) per byte.
constexpr std::size_t compact_threshold = 64 * 1024;
// An emptied output buffer above this size is released, so that one burst does not pin memory.
constexpr std::size_t keep_capacity = 4 * 1024 * 1024;

// One writer (the exchange thread), any number of readers: a plain store is enough.
void bump(std::atomic<std::uint64_t>& counter, std::uint64_t n = 1) {
    counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

std::uint32_t epoll_events(bool want_output) {
    return EPOLLIN | EPOLLRDHUP | (want_output ? EPOLLOUT : 0u);
}

} // namespace

socket_transport::socket_transport(std::vector<int> fds, std::uint32_t self,
                                   socket_transport_config config)
  : _config(config)
  , _self(self)
  , _read_buf(read_buf_bytes) {
    RINGTAIL_ASSERT(self < fds.size() && fds[self] == -1, "fds[self] must be -1");
    RINGTAIL_ASSERT(config.initial_credit > 0, "initial_credit must be above 0");
    RINGTAIL_ASSERT(config.max_body_bytes > 0 &&
                      config.max_frame_bytes >= config.max_body_bytes + data_frame_header_bytes,
                    "max_frame_bytes must hold a header and max_body_bytes");
    _epoll_fd.reset(::epoll_create1(EPOLL_CLOEXEC));
    int epoll_error = _epoll_fd ? 0 : errno;
    _peers.reserve(fds.size());
    for (std::size_t i = 0; i < fds.size(); ++i) {
        peer& p = _peers.emplace_back(config.max_frame_bytes);
        if (i == self) {
            continue;
        }
        RINGTAIL_ASSERT(fds[i] >= 0, "every peer but self needs a connection");
        p.fd.reset(fds[i]);
        p.alive = true;
        p.credit = config.initial_credit;
        p.next_seq_in = config.first_seq;
        p.next_seq_out = config.first_seq;
        int flags = ::fcntl(p.fd.get(), F_GETFL);
        if (flags >= 0) {
            ::fcntl(p.fd.get(), F_SETFL, flags | O_NONBLOCK);
        }
        // Fails harmlessly on a Unix socketpair (tests).
        int one = 1;
        ::setsockopt(p.fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (epoll_error == 0) {
            epoll_event ev{};
            ev.events = epoll_events(false);
            ev.data.u32 = static_cast<std::uint32_t>(i);
            if (::epoll_ctl(_epoll_fd.get(), EPOLL_CTL_ADD, p.fd.get(), &ev) != 0) {
                epoll_error = errno;
            }
        }
    }
    if (epoll_error != 0) {
        // The destructor does not run for a constructor that throws, but the members' do: the
        // sockets (every one is in _peers by now) are closed, then the epoll.
        throw std::system_error(epoll_error, std::generic_category(),
                                "data channel: cannot set up the epoll of the socket transport");
    }
}

socket_transport::~socket_transport() {
    for (peer& p : _peers) {
        if (!p.fd) {
            continue;
        }
        // Closing with unread input makes the kernel send a reset instead of a FIN, which could
        // reach the peer before it reads our last frames (a BYE): read what is there first.
        for (int i = 0; i < max_reads_per_poll; ++i) {
            if (::recv(p.fd.get(), _read_buf.data(), _read_buf.size(), MSG_DONTWAIT) <= 0) {
                break;
            }
        }
        p.fd.reset();
    }
    // _epoll_fd is closed with the members, after the sockets.
}

socket_transport::peer& socket_transport::live_peer_or_abort(peer_id id, const char* what) {
    RINGTAIL_ASSERT(id < _peers.size() && id != _self, "{}: no live peer {}", what, id);
    return _peers[id];
}

std::uint32_t socket_transport::credit(peer_id id) const {
    return id < _peers.size() && _peers[id].alive ? _peers[id].credit : 0;
}

bool socket_transport::peer_alive(peer_id id) const {
    return id < _peers.size() && _peers[id].alive;
}

socket_transport_counters socket_transport::counters() const {
    constexpr auto relaxed = std::memory_order_relaxed;
    socket_transport_counters c;
    c.frames_in = _counters.frames_in.load(relaxed);
    c.frames_out = _counters.frames_out.load(relaxed);
    c.bytes_in = _counters.bytes_in.load(relaxed);
    c.bytes_out = _counters.bytes_out.load(relaxed);
    c.messages_in = _counters.messages_in.load(relaxed);
    c.messages_out = _counters.messages_out.load(relaxed);
    c.corrupt_frames = _counters.corrupt_frames.load(relaxed);
    c.peers_lost = _counters.peers_lost.load(relaxed);
    c.peers_left = _counters.peers_left.load(relaxed);
    c.messages_dropped = _counters.messages_dropped.load(relaxed);
    return c;
}

void socket_transport::send(peer_id id, std::span<const std::byte> body, std::uint32_t count) {
    peer& p = live_peer_or_abort(id, "send() to a worker that is not a peer");
    if (!p.alive) {
        // The engine learns of the loss from on_peer_lost; what it sent meanwhile is dropped.
        bump(_counters.messages_dropped, count);
        return;
    }
    RINGTAIL_ASSERT(count > 0 && !body.empty(), "send() carries at least one message");
    RINGTAIL_ASSERT(body.size() <= _config.max_body_bytes, "send() of a body above max_body_bytes");
    RINGTAIL_ASSERT(count <= p.credit, "send() beyond the peer's credit");
    p.credit -= count;
    queue_frame(id, data_frame_type::data, count, body);
    bump(_counters.messages_out, count);
}

void socket_transport::grant(peer_id id, std::uint32_t count) {
    peer& p = live_peer_or_abort(id, "grant() to a worker that is not a peer");
    if (!p.alive) {
        return;
    }
    // Paired with the window check in on_frame: the engine returns only what arrived.
    RINGTAIL_ASSERT(count <= p.unreturned_in, "grant() of more messages than the peer sent");
    p.unreturned_in -= count;
    p.grant_pending += count;
}

void socket_transport::queue_frame(peer_id id, data_frame_type type, std::uint32_t count,
                                   std::span<const std::byte> body) {
    peer& p = _peers[id];
    std::size_t before = p.out.size();
    append_data_frame(p.out, type, p.next_seq_out++, count, body);
    _pending_bytes += p.out.size() - before;
    bump(_counters.frames_out);
}

std::size_t socket_transport::poll(transport_events& events) {
    if (_said_goodbye) {
        return 0;
    }
    std::size_t work = 0;
    epoll_event ready[64];
    int n = ::epoll_wait(_epoll_fd.get(), ready, 64, 0);
    // More than 64 ready peers: the rest stay ready (level-triggered) for the next poll.
    for (int i = 0; i < n; ++i) {
        peer_id id = ready[i].data.u32;
        if (id >= _peers.size() || !_peers[id].alive) {
            continue;
        }
        if ((ready[i].events & EPOLLOUT) != 0) {
            _peers[id].blocked = false;
        }
        if ((ready[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) {
            work += read_peer(id, events);
        }
    }
    for (peer_id id = 0; id < _peers.size(); ++id) {
        peer& p = _peers[id];
        if (!p.alive) {
            continue;
        }
        if (p.grant_pending > 0) {
            queue_frame(id, data_frame_type::credit, p.grant_pending, {});
            p.grant_pending = 0;
        }
        if (p.pending() > 0 && !p.blocked && flush_peer(id) > 0) {
            ++work;
        }
    }
    // Losses are reported last, after every frame that arrived before them.
    for (peer_id id = 0; id < _peers.size(); ++id) {
        peer& p = _peers[id];
        if (p.report_pending) {
            p.report_pending = false;
            events.on_peer_lost(id, p.lost_reason);
            ++work;
        }
    }
    return work;
}

std::size_t socket_transport::read_peer(peer_id id, transport_events& events) {
    peer& p = _peers[id];
    std::size_t frames = 0;
    auto on_decoded = [&](const data_frame& frame) {
        // Frames after one that lost the peer (in the same read) are not delivered.
        if (p.alive && on_frame(id, frame, events)) {
            ++frames;
        }
    };
    for (int i = 0; i < max_reads_per_poll && p.alive; ++i) {
        ssize_t got = ::recv(p.fd.get(), _read_buf.data(), _read_buf.size(), 0);
        if (got > 0) {
            auto bytes = static_cast<std::size_t>(got);
            bump(_counters.bytes_in, bytes);
            auto status = p.decoder.feed(std::span(_read_buf.data(), bytes), on_decoded);
            if (status != data_decode_error::none) {
                lose_peer(id, "corrupt frame: " + p.decoder.error_message(), true);
                break;
            }
            if (bytes < _read_buf.size()) {
                // Drained for now; anything newer keeps the socket ready in the epoll.
                break;
            }
            continue;
        }
        if (got == 0) {
            lose_peer(id,
                      p.decoder.mid_frame() ? "connection closed in the middle of a frame"
                                            : "connection closed",
                      false);
            break;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            lose_peer(id, fmt::format("connection failed: {}", std::strerror(errno)), false);
        }
        break;
    }
    return frames;
}

bool socket_transport::on_frame(peer_id id, const data_frame& frame, transport_events& events) {
    peer& p = _peers[id];
    if (frame.seq != p.next_seq_in) {
        lose_peer(
          id,
          fmt::format("corrupt frame: sequence number {}, expected {}", frame.seq, p.next_seq_in),
          true);
        return false;
    }
    ++p.next_seq_in;
    bump(_counters.frames_in);
    switch (frame.type) {
        case data_frame_type::data:
            if (frame.flags != 0) {
                // Piggybacked acks and fragments are for datagram links; TCP needs neither.
                lose_peer(
                  id,
                  fmt::format("corrupt frame: flags 0x{:02x} on a stream connection", frame.flags),
                  true);
                return false;
            }
            // Paired with send()'s credit check on the peer's side: a well-behaved peer never has
            // more than initial_credit messages unreturned, which is what bounds the receiving
            // rings.
            if (frame.count > _config.initial_credit - p.unreturned_in) {
                lose_peer(id,
                          fmt::format("corrupt frame: {} messages with only {} of credit left",
                                      frame.count, _config.initial_credit - p.unreturned_in),
                          true);
                return false;
            }
            p.unreturned_in += frame.count;
            bump(_counters.messages_in, frame.count);
            events.on_messages(id, frame.body, frame.count);
            return true;
        case data_frame_type::credit:
            // Paired with grant()'s check here: a peer only returns what we sent it.
            if (frame.count > _config.initial_credit - p.credit) {
                lose_peer(id,
                          fmt::format("corrupt frame: a grant of {} messages with {} of {} credit "
                                      "already held",
                                      frame.count, p.credit, _config.initial_credit),
                          true);
                return false;
            }
            p.credit += frame.count;
            return true;
        case data_frame_type::bye:
            lose_peer(id, "left the cluster", false, true);
            return false;
        case data_frame_type::hello:
            lose_peer(id, "corrupt frame: a HELLO after the handshake", true);
            return false;
        case data_frame_type::ack:
            // TCP is reliable: only the datagram back ends acknowledge frames.
            lose_peer(id, "corrupt frame: an ACK on a stream connection", true);
            return false;
    }
    return false;
}

std::size_t socket_transport::flush_peer(peer_id id) {
    peer& p = _peers[id];
    std::size_t written = 0;
    // One contiguous buffer per peer: every frame queued since the last flush goes in one call,
    // which is the batching writev would give.
    while (p.pending() > 0) {
        ssize_t n = ::send(p.fd.get(), p.out.data() + p.out_offset, p.pending(), MSG_NOSIGNAL);
        if (n > 0) {
            auto bytes = static_cast<std::size_t>(n);
            p.out_offset += bytes;
            _pending_bytes -= bytes;
            written += bytes;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!p.blocked) {
                p.blocked = true;
                set_want_output(id, true);
            }
            break;
        }
        bump(_counters.bytes_out, written);
        lose_peer(id, fmt::format("connection failed: {}", std::strerror(errno)), false);
        return written;
    }
    bump(_counters.bytes_out, written);
    if (settle_sent(p.out, p.out_offset, keep_capacity, compact_threshold)) {
        p.blocked = false;
        set_want_output(id, false);
    }
    return written;
}

void socket_transport::set_want_output(peer_id id, bool want) {
    peer& p = _peers[id];
    if (p.want_output == want) {
        return;
    }
    epoll_event ev{};
    ev.events = epoll_events(want);
    ev.data.u32 = id;
    if (::epoll_ctl(_epoll_fd.get(), EPOLL_CTL_MOD, p.fd.get(), &ev) != 0) {
        lose_peer(id, fmt::format("epoll failed: {}", std::strerror(errno)), false);
        return;
    }
    p.want_output = want;
}

void socket_transport::drop_output(peer& p) {
    _pending_bytes -= p.pending();
    std::string{}.swap(p.out);
    p.out_offset = 0;
}

void socket_transport::lose_peer(peer_id id, std::string reason, bool corrupt, bool left) {
    peer& p = _peers[id];
    if (!p.alive) {
        return;
    }
    p.alive = false;
    p.credit = 0;
    p.grant_pending = 0;
    drop_output(p);
    // Closing also removes the socket from the epoll.
    p.fd.reset();
    if (corrupt) {
        bump(_counters.corrupt_frames);
    }
    if (left) {
        bump(_counters.peers_left);
        log::info("data channel: worker {} left the cluster", id);
    } else {
        bump(_counters.peers_lost);
        log::warn("data channel: lost worker {}: {}", id, reason);
    }
    p.lost_reason = std::move(reason);
    p.report_pending = true;
}

void socket_transport::say_goodbye() {
    if (_said_goodbye) {
        return;
    }
    _said_goodbye = true;
    for (peer_id id = 0; id < _peers.size(); ++id) {
        if (_peers[id].alive) {
            queue_frame(id, data_frame_type::bye, 0, {});
        }
    }
    auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(goodbye_timeout_ms);
    std::vector<pollfd> waiting;
    for (;;) {
        waiting.clear();
        for (peer_id id = 0; id < _peers.size(); ++id) {
            peer& p = _peers[id];
            if (p.alive && p.pending() > 0) {
                flush_peer(id);
                if (p.alive && p.pending() > 0) {
                    waiting.push_back({ p.fd.get(), POLLOUT, 0 });
                }
            }
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
        if (waiting.empty() || left.count() <= 0) {
            break;
        }
        // Only POLLOUT: unread input must not wake this wait (nothing reads it any more).
        ::poll(waiting.data(), waiting.size(), static_cast<int>(left.count()) + 1);
    }
    for (peer& p : _peers) {
        if (!p.alive) {
            continue;
        }
        // FIN after the BYE; the socket stays open (closed by the destructor) so that the peer
        // reads the BYE before anything else.
        ::shutdown(p.fd.get(), SHUT_WR);
        p.alive = false;
        p.credit = 0;
        p.grant_pending = 0;
        drop_output(p);
    }
}

} // namespace ringtail::net
