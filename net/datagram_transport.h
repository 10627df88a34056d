// The data channel over an unreliable datagram link (DESIGN.md §4): the DPDK back end's UDP frames,
// or a link in a test. The link may lose, duplicate, reorder or corrupt datagrams; this layer
// makes delivery per peer reliable and ordered: one data-channel frame per datagram, checked by
// its CRC-32C; DATA frames numbered and retransmitted go-back-N (net/go_back_n.h) until a
// cumulative ACK covers them; and credit carried in the same ACKs (a credit limit, cumulative, so
// a lost ACK is made good by the next), tied to the receiving rings through transport::grant.
//
// A peer is lost when it says BYE ("left the cluster"), when its frames go unacknowledged through
// every retransmission ("unreachable: ..."), or when nothing at all was heard from it for
// silence_timeout_ns; memory stays bounded (the go-back-N window) whatever the peer does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/transport.h"
#include "net/go_back_n.h"

namespace ringtail::net {

// What carries datagrams between workers. One thread (the exchange's) calls it.
class datagram_link {
public:
    virtual ~datagram_link() = default;
    // Workers 0..peer_count()-1, this one included.
    virtual std::uint32_t peer_count() const = 0;
    // Readable when receive() may have datagrams; -1 when the link must be polled.
    virtual int wait_fd() const = 0;
    // The largest datagram send() takes.
    virtual std::size_t max_datagram_bytes() const = 0;
    // Sends one datagram to `peer`, or drops it (a full TX queue is a loss the protocol repairs).
    // A link may hold datagrams back to send them in a burst, until flush().
    virtual void send(peer_id peer, std::span<const std::byte> datagram) = 0;
    // Sends whatever send() held back. The transport calls it at the start and end of every
    // poll, so a datagram waits at most one turn of the exchange loop.
    virtual void flush() {}
    // Hands every datagram that arrived to `on(peer, bytes)` (bytes valid during the call only);
    // datagrams from no known peer are the link's to drop and count. Returns how many.
    virtual std::size_t receive(
      const std::function<void(peer_id, std::span<const std::byte>)>& on) = 0;
};

// Go-back-N as the data channel uses it: a peer is given up only after about 3 s without an
// acknowledgement (RTO 2 ms doubling to 200 ms, 20 timeouts), as the control channel's heartbeat
// does, so that a worker descheduled for a moment is not taken for lost.
inline gbn_config data_channel_gbn() {
    gbn_config c;
    c.max_timeouts = 20;
    return c;
}

struct datagram_transport_config {
    std::uint32_t initial_credit = 16384; // messages each peer may send before a grant
    gbn_config gbn = data_channel_gbn();
    // An ACK goes out at least this often while a peer is alive (credit and liveness).
    std::uint64_t ack_interval_ns = 20'000'000;
    // A peer heard from not at all for this long is lost.
    std::uint64_t silence_timeout_ns = 3'000'000'000;
};

struct datagram_transport_counters {
    std::uint64_t frames_in = 0, frames_out = 0, messages_in = 0, messages_out = 0;
    std::uint64_t corrupt_frames = 0;  // failed the checksum or the frame rules: dropped
    std::uint64_t duplicates = 0;      // DATA frames already delivered: dropped
    std::uint64_t out_of_order = 0;    // DATA frames after a gap: dropped (go-back-N)
    std::uint64_t retransmissions = 0; // DATA frames sent again
    std::uint64_t acks_out = 0, acks_in = 0;
    std::uint64_t credit_violations = 0; // DATA beyond the credit we gave: dropped
    std::uint64_t peers_lost = 0;
};

class datagram_transport final : public transport {
public:
    using clock_fn = std::function<std::uint64_t()>;
    // `clock` returns monotonic nanoseconds (default: the engine's clock); tests pass a
    // simulated one.
    datagram_transport(datagram_link& link, peer_id self, datagram_transport_config config = {},
                       clock_fn clock = {});
    ~datagram_transport() override;

    std::uint32_t peer_count() const override { return _link.peer_count(); }
    int wait_fd() const override { return _link.wait_fd(); }
    std::size_t poll(transport_events& events) override;
    std::uint32_t credit(peer_id peer) const override;
    void send(peer_id peer, std::span<const std::byte> body, std::uint32_t count) override;
    std::size_t max_body_bytes() const override;
    void grant(peer_id peer, std::uint32_t count) override;
    // Bytes of DATA frames sent and not yet acknowledged: a worker that stops waits for them.
    std::size_t pending_bytes() const override { return _unacked_bytes; }
    bool peer_alive(peer_id peer) const override;

    // Sends BYE to every live peer (three times: datagrams may be lost). After the exchange
    // stopped.
    void say_goodbye() override;
    // When poll() next has something to do without any datagram arriving (retransmission, ACK).
    std::uint64_t next_deadline_ns() const;
    const datagram_transport_counters& counters() const { return _counters; }

private:
    struct peer;
    void handle(peer_id id, std::span<const std::byte> datagram, transport_events& events);
    void send_ack(peer_id id, std::uint64_t now);
    void lose(peer_id id, std::string reason);

    datagram_link& _link;
    peer_id _self;
    datagram_transport_config _config;
    clock_fn _clock;
    std::vector<std::unique_ptr<peer>> _peers;
    std::size_t _unacked_bytes = 0;
    std::string _scratch;
    datagram_transport_counters _counters;
};

} // namespace ringtail::net
