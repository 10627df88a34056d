// One shard's outgoing TCP connection to one sink address, with reconnects and an output buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/fd.h"
#include "engine/shard_io.h"
#include "net/io/host_port.h"

namespace ringtail::net {

// Connects out to a sink receiver and writes exactly the bytes it is given, in order. Owned and
// used by one shard only (all calls, including write(), on that shard's thread).
//
// write() never blocks and never drops: bytes wait in the output buffer while the receiver is
// absent or slow, and the engine bounds the buffer through pending_bytes(). While disconnected the
// sink tries to connect every 250 ms (one warn line per outage, one info line per connect). When
// the connection breaks (EPIPE, ECONNRESET, the receiver closing) the sink reconnects and sends
// the bytes still in its buffer; bytes already handed to the kernel are lost with the connection,
// so a frame may be torn at that point and the receiver sees its tail missing.
class tcp_sink final : public ringtail::sink_output {
public:
    tcp_sink(host_port address, std::string sink_name);
    ~tcp_sink() override;
    tcp_sink(const tcp_sink&) = delete;
    tcp_sink& operator=(const tcp_sink&) = delete;

    std::size_t poll(shard_context& shard) override;
    bool finished() const override { return _finished; }
    // True while output is waiting and the socket has not said it is full (no event will come
    // then), while (re)connecting (the retry timer has no fd), and while a receiver-close check
    // was deferred.
    bool needs_poll() const override;

    // Appends to the output buffer; sent on a later poll. Not to be called after finished().
    void write(std::span<const std::byte> bytes) override;
    std::size_t pending_bytes() const override { return _out.size() - _out_offset; }
    std::string* append_buffer() override { return &_out; }
    // Finishes once every pending byte is written: then the socket is shut down and closed. A
    // sink that never reaches its receiver therefore never finishes; the engine's stop deadline
    // decides how long to wait.
    void request_close() override;

    bool connected() const { return _state == state::connected; }
    static constexpr std::uint64_t retry_interval_ns = 250'000'000;
    // A connect that neither succeeds nor fails within this is abandoned and retried.
    static constexpr std::uint64_t connect_timeout_ns = 2'000'000'000;

private:
    enum class state { disconnected, connecting, connected };

    void start_connect(shard_context& shard, std::uint64_t now_ns);
    void check_connect(std::uint64_t now_ns);
    void connect_failed(std::uint64_t now_ns, int err);
    // Returns bytes written; may disconnect.
    std::size_t flush(std::uint64_t now_ns);
    // Reads (and discards) anything the receiver sent, to notice that it closed.
    void check_receiver(std::uint64_t now_ns);
    void disconnect(std::uint64_t now_ns, const char* why);
    void close_socket();
    void finish();

    host_port _address;
    std::string _name;
    std::uint32_t _ip = 0; // network order, once resolved
    bool _resolved = false;

    state _state = state::disconnected;
    unique_fd _fd;
    int _epoll_fd = -1; // the shard's epoll while _fd is registered in it (not ours)
    std::uint64_t _next_attempt_ns = 0;
    std::uint64_t _connect_started_ns = 0;
    bool _warned_this_outage = false;

    // Output: bytes [_out_offset, _out.size()) are pending; compacted as the front is written.
    std::string _out;
    std::size_t _out_offset = 0;
    bool _blocked = false; // the last send hit EAGAIN; EPOLLOUT will announce room

    std::uint64_t _last_receiver_check_ns = 0;
    bool _receiver_check_deferred = false;

    bool _close_requested = false;
    bool _finished = false;
};

} // namespace ringtail::net
