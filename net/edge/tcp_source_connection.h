// One client connection of a TCP source, read by the shard it was handed to.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/fd.h"
#include "engine/shard_io.h"
#include "net/edge/frame_decoder.h"

namespace ringtail::net {

// Reads `[u32 N][payload]` frames from one accepted, non-blocking socket and hands each payload
// to shard.ingest(). Created by the acceptor thread, then owned and polled by one shard only.
//
// It registers its fd edge-triggered with the shard's epoll on the first poll. It reads only while
// the shard can admit work (otherwise the kernel buffer fills and TCP pushes back to the client),
// and at most a few reads per poll, so that one busy client cannot starve the shard's other work.
// It closes its fd and reports finished() when the client closes, the shard stops, a read fails,
// or the client breaks the framing (counted with count_protocol_error and logged once).
class tcp_source_connection final : public ringtail::io_handler {
public:
    // Takes ownership of `fd`.
    tcp_source_connection(int fd, std::uint32_t source_index, std::uint32_t max_size,
                          std::string peer);
    ~tcp_source_connection() override;
    tcp_source_connection(const tcp_source_connection&) = delete;
    tcp_source_connection& operator=(const tcp_source_connection&) = delete;

    // Returns frames ingested, plus 1 if any bytes were read.
    std::size_t poll(shard_context& shard) override;
    bool finished() const override { return !_fd; }
    bool needs_poll() const override { return _needs_poll; }

    const std::string& peer() const { return _peer; }

    // Read size and reads per poll; the buffer is one per thread (see the .cc).
    static constexpr std::size_t read_buffer_size = 64 * 1024;
    static constexpr int reads_per_poll = 4;
    // After a stop, at most this much more is read before the connection is closed.
    static constexpr std::size_t stop_drain_limit_bytes = 64u << 20;
    static constexpr std::uint64_t stop_quiet_ns = 200'000'000;
    static constexpr std::uint64_t stop_grace_ns = 1'000'000'000;

private:
    void close_fd();

    unique_fd _fd;
    int _epoll_fd = -1; // the shard's epoll, once registered (not ours)
    std::uint32_t _source_index;
    std::string _peer;
    frame_decoder _decoder;
    bool _needs_poll = false;
    std::size_t _stop_drained_bytes = 0;
    std::uint64_t _last_read_ns = 0; // shard clock at the last read that returned bytes
    std::uint64_t _stop_seen_ns = 0; // shard clock when this connection first saw the stop
};

} // namespace ringtail::net
