// The seam between a shard's poll loop and the I/O that net/ implements: the engine knows file
// descriptors and byte spans, never sockets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace ringtail {

// What a shard offers to the I/O handlers it runs. Every call is made on the owning shard only.
class shard_context {
public:
    virtual ~shard_context() = default;

    // The shard's epoll instance. A handler registers its fds here (data.ptr must be nullptr; the
    // event only wakes the shard, which then polls every handler). A handler removes its fds
    // before it reports finished().
    virtual int epoll_fd() const = 0;
    virtual std::uint32_t shard_index() const = 0;

    // False while the worker is over its in-flight budget or stopping: sources stop reading (TCP
    // flow control pushes back to the client) and try again on a later poll.
    virtual bool can_admit() const = 0;
    // True once the worker is stopping: sources stop reading and close.
    virtual bool stopping() const = 0;

    // Hands one framed payload from source `source_index` to the application: decode, then run the
    // fused stages on this shard. A payload the decoder rejects is dropped and counted.
    virtual void ingest(std::uint32_t source_index, std::span<const std::byte> payload) = 0;

    // A connection that broke the framing rules (oversized frame, closed mid-frame) was closed.
    virtual void count_protocol_error(std::uint32_t source_index) = 0;

    // Monotonic clock in nanoseconds, read once per poll where possible.
    virtual std::uint64_t now_ns() const = 0;
};

// Something a shard polls each loop iteration: a source connection, a sink connection.
class io_handler {
public:
    virtual ~io_handler() = default;
    // Runs on the owning shard. Returns the units of work done (0 = nothing to do right now).
    virtual std::size_t poll(shard_context& shard) = 0;
    // The shard drops a handler once it reports finished (its fds already removed from epoll).
    virtual bool finished() const = 0;
    // True while the handler holds work it could not finish without another poll even though
    // no fd event will announce it (input left unread because of backpressure, a reconnect timer).
    // The shard then sleeps at most a millisecond instead of waiting for an event. Handlers use
    // edge-triggered epoll registrations.
    virtual bool needs_poll() const { return false; }
};

// One shard's connection to one sink address. Owned by the shard; written only by it.
class sink_output : public io_handler {
public:
    // Queues bytes for the receiver. Never blocks and never drops: the bytes wait in the output
    // buffer until the receiver takes them.
    virtual void write(std::span<const std::byte> bytes) = 0;
    // A buffer encoders may append to directly (one copy less than write()); whatever is appended
    // is queued output, exactly as if passed to write(). nullptr when the sink has none. The
    // pointer stays valid for the sink's life.
    virtual std::string* append_buffer() { return nullptr; }
    // Bytes accepted and not yet handed to the kernel; the engine stops admitting new messages
    // while the total over all sinks is above its bound.
    virtual std::size_t pending_bytes() const = 0;
    // finished() for a sink means: stop was requested and everything pending was written.
    virtual void request_close() = 0;
};

} // namespace ringtail
