// Reading one source connection on its shard: edge-triggered, bounded reads per poll, framing
// errors closed and counted.
#include "net/edge/tcp_source_connection.h"

#include <cerrno>
#include <cstring>
#include <memory>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/log.h"

namespace ringtail::net {
namespace {

// One read buffer per shard thread rather than per connection: a shard reads one connection at a
// time and the decoder copies any unfinished tail out of it before the next read, so thousands of
// idle connections do not each hold 64 KiB.
std::byte* thread_read_buffer() {
    thread_local std::unique_ptr<std::byte[]> buffer;
    if (!buffer) {
        buffer = std::make_unique<std::byte[]>(tcp_source_connection::read_buffer_size);
    }
    return buffer.get();
}

} // namespace

tcp_source_connection::tcp_source_connection(int fd, std::uint32_t source_index,
                                             std::uint32_t max_size, std::string peer)
  : _fd(fd)
  , _source_index(source_index)
  , _peer(std::move(peer))
  , _decoder(max_size) {}

tcp_source_connection::~tcp_source_connection() {
    close_fd();
}

void tcp_source_connection::close_fd() {
    if (!_fd) {
        return;
    }
    if (_epoll_fd >= 0) {
        ::epoll_ctl(_epoll_fd, EPOLL_CTL_DEL, _fd.get(), nullptr);
    }
    _fd.reset();
    _needs_poll = false;
}

std::size_t tcp_source_connection::poll(shard_context& shard) {
    if (!_fd) {
        return 0;
    }
    // On stop, what the client sent before the stop is read and processed before the connection
    // closes: up to EOF, or until nothing has come for stop_quiet_ns (bytes a client wrote just
    // before it exited may still be in its kernel's send queue). A client that keeps sending
    // cannot hold the stop up: reading ends stop_grace_ns after the stop, or after
    // stop_drain_limit_bytes.
    const bool stopping = shard.stopping();
    if (stopping && _stop_seen_ns == 0) {
        _stop_seen_ns = shard.now_ns();
    }
    if (_epoll_fd < 0 && !stopping) {
        // data.ptr stays nullptr: the event only wakes the shard, which then polls every handler.
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
        ev.data.ptr = nullptr;
        if (::epoll_ctl(shard.epoll_fd(), EPOLL_CTL_ADD, _fd.get(), &ev) != 0) {
            log::warn("cannot watch source connection from {}: {}; closing it", _peer,
                      std::strerror(errno));
            close_fd();
            return 0;
        }
        _epoll_fd = shard.epoll_fd();
    }

    std::byte* buffer = thread_read_buffer();
    std::size_t frames = 0;
    bool progress = false;
    auto on_frame = [&](std::span<const std::byte> payload) {
        shard.ingest(_source_index, payload);
        ++frames;
    };
    // Until a read returns EAGAIN, edge-triggered epoll will not announce the bytes still queued,
    // so every early exit below leaves _needs_poll set.
    _needs_poll = true;
    const int max_reads = stopping ? reads_per_poll * 16 : reads_per_poll;
    for (int reads = 0; reads < max_reads; ++reads) {
        // Checked before every read: the frames of the previous read may have spent the budget.
        if (!stopping && !shard.can_admit()) {
            break;
        }
        ssize_t n = ::recv(_fd.get(), buffer, read_buffer_size, 0);
        if (n > 0) {
            progress = true;
            _stop_drained_bytes += stopping ? static_cast<std::size_t>(n) : 0;
            _last_read_ns = shard.now_ns();
            auto status = _decoder.feed(
              std::span<const std::byte>(buffer, static_cast<std::size_t>(n)), on_frame);
            if (status == frame_status::oversized) {
                shard.count_protocol_error(_source_index);
                log::warn("source connection from {} sent a frame of {} bytes, more than the "
                          "source's max_size {}; closing that connection",
                          _peer, _decoder.last_oversized_length(), _decoder.max_size());
                close_fd();
                break;
            }
            continue;
        }
        if (n == 0) {
            if (_decoder.mid_frame()) {
                shard.count_protocol_error(_source_index);
                log::warn("source connection from {} closed mid-frame", _peer);
            }
            close_fd();
            break;
        }
        int err = errno;
        if (err == EINTR) {
            continue;
        }
        if (err == EAGAIN || err == EWOULDBLOCK) {
            _needs_poll = false;
            if (stopping) {
                if (_last_read_ns == 0 || shard.now_ns() - _last_read_ns > stop_quiet_ns) {
                    close_fd();
                } else {
                    _needs_poll = true; // no event will tell us the quiet time has passed
                }
            }
            break;
        }
        log::info("source connection from {} failed: {}; closing it", _peer, std::strerror(err));
        close_fd();
        break;
    }
    if (stopping && _fd &&
        (_stop_drained_bytes > stop_drain_limit_bytes ||
         shard.now_ns() - _stop_seen_ns > stop_grace_ns)) {
        log::warn("source connection from {} still sending after the stop; closing it", _peer);
        close_fd();
    }
    return frames + (progress ? 1 : 0);
}

} // namespace ringtail::net
