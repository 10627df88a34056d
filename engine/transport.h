// The engine's seam to the data channel between workers (DESIGN.md §4). net/ implements it (the
// socket back end; DPDK later); tests use an in-process fake. The engine never sees a socket: it
// hands a transport frames' worth of encoded messages and takes received ones back.
//
// Threading: every call is made on one thread, the engine's exchange thread (the network I/O
// subsystem of DESIGN.md §2).
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>

namespace ringtail {

// A worker's index in the cluster topology (the initializer is 0).
using peer_id = std::uint32_t;

// What a transport reports while it polls.
class transport_events {
public:
    virtual ~transport_events() = default;
    // `count` messages from `peer`, encoded back to back in `body` (engine/remote_codec.h), in the
    // order the peer sent them. The callee takes them all (the credit window bounds how many can
    // be outstanding) and calls transport::grant once they have entered the receiving rings.
    virtual void on_messages(peer_id peer, std::span<const std::byte> body,
                             std::uint32_t count) = 0;
    // The data connection to `peer` is gone (closed, reset, a corrupt or foreign frame). Called
    // once per peer; nothing more is sent to it or delivered from it.
    virtual void on_peer_lost(peer_id peer, const std::string& reason) = 0;
};

class transport {
public:
    virtual ~transport() = default;
    // The peers are 0..peer_count()-1, this worker included (never sent to).
    virtual std::uint32_t peer_count() const = 0;
    // A file descriptor that becomes readable when poll() may have work; the exchange thread
    // sleeps on it. -1 when the transport must be polled without waiting.
    virtual int wait_fd() const = 0;
    // When poll() must run again though wait_fd() may stay quiet (a retransmission or an ack that
    // comes due, a frame held back on purpose), on clock::now_ns's clock; no_deadline when nothing
    // is waiting. The exchange thread sleeps no longer than this.
    virtual std::uint64_t next_deadline_ns() const { return no_deadline; }
    static constexpr std::uint64_t no_deadline = std::numeric_limits<std::uint64_t>::max();
    // Does the I/O: reads frames and reports them through `events`, writes queued frames and
    // credit grants. Returns the units of work done (0 = nothing to do right now).
    virtual std::size_t poll(transport_events& events) = 0;
    // Messages that may still be sent to `peer` before it grants more; 0 once the peer is lost.
    virtual std::uint32_t credit(peer_id peer) const = 0;
    // Queues one frame for `peer` carrying `count` messages encoded back to back in `body`
    // (count <= credit(peer), body no larger than max_body_bytes()). Frames to one peer arrive in
    // the order they were sent. Never blocks; poll() writes.
    virtual void send(peer_id peer, std::span<const std::byte> body, std::uint32_t count) = 0;
    // The largest body one frame carries.
    virtual std::size_t max_body_bytes() const = 0;
    // `count` messages received from `peer` have entered the receiving rings: the peer may send
    // that many more (flow control tied to the rings, so backpressure crosses workers).
    virtual void grant(peer_id peer, std::uint32_t count) = 0;
    // Bytes queued for peers and not yet handed to the kernel or the NIC.
    virtual std::size_t pending_bytes() const = 0;
    // False once the peer is lost.
    virtual bool peer_alive(peer_id peer) const = 0;
    // This worker leaves: tell every live peer (so it reports "left the cluster", not a loss).
    // Called once the exchange thread has stopped.
    virtual void say_goodbye() {}
};

} // namespace ringtail
