// The data channel over an unreliable datagram link (DESIGN.md §4): the DPDK back end's UDP frames,
// UDP kernel sockets when a test injects faults, or a link in a test. The link may lose,
// duplicate, reorder or corrupt datagrams; this layer makes delivery per peer reliable and
// ordered: one data-channel frame per datagram, checked by its CRC-32C; DATA frames numbered and
// retransmitted go-back-N (net/channel/go_back_n.h) until a cumulative acknowledgement covers them;
// and credit carried with the acknowledgements (a credit limit, cumulative, so a lost one is made
// good by the next), tied to the receiving rings through transport::grant.
//
// Acknowledgements ride on DATA frames going the other way (the ACK flag and trailer of
// net/channel/data_codec.h); an ACK frame of its own goes out only when no DATA frame took one in
// time. A body larger than one datagram is cut into fragments (the MORE flag) and put back together
// in order by the receiver, so the engine sees the same max_body_bytes() as on TCP. Sent frames are
// held in the link's own buffers (mbufs on DPDK: a reference, not a copy) until acknowledged.
//
// The receiver keeps the frames that arrive after a gap, up to the window, delivers them once the
// gap is filled, and says which it keeps in an ACK frame sent at once (a selective
// acknowledgement). So a frame overtaken on the way costs no retransmission; a lost one is resent
// once three frames sent after it are kept (fast retransmission), several gaps in a window each
// alone; and a timeout resends the oldest unacknowledged frame alone, as a probe that finds a
// spurious timeout (a stalled peer) before the rest are resent needlessly, then the others the
// receiver does not keep (gbn_config::probe_on_timeout).
//
// A peer is lost when it says BYE ("left the cluster"), when its frames go unacknowledged through
// every retransmission ("unreachable: ..."), or when nothing at all was heard from it for
// silence_timeout_ns; memory stays bounded (the go-back-N window each way, one body being
// fragmented and one being reassembled per peer) whatever the peer does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/transport.h"
#include "net/channel/data_codec.h"
#include "net/channel/go_back_n.h"

namespace ringtail::net {

// What carries datagrams between workers. One thread (the exchange's) calls it.
class datagram_link {
public:
    virtual ~datagram_link() = default;
    // Workers 0..peer_count()-1, this one included.
    virtual std::uint32_t peer_count() const = 0;
    // Readable when receive() may have datagrams; -1 when the link must be polled.
    virtual int wait_fd() const = 0;
    // The largest datagram send() takes; the same for the life of the link.
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
    // When receive() next has datagrams that wait_fd() does not announce (ones the link holds
    // back, as the fault layer does), on the transport's clock; gbn_no_deadline when none.
    virtual std::uint64_t next_deadline_ns() const { return gbn_no_deadline; }

    // A datagram built in the link's own memory and held by its sender until acknowledged, so
    // that a retransmission sends the same buffer again instead of a copy. On DPDK it is an mbuf
    // whose headers are written once; the defaults below use the heap and send().
    struct buffer {
        void* handle = nullptr;    // the link's own (an rte_mbuf*, or nullptr for heap memory)
        std::byte* data = nullptr; // the datagram's bytes, for the caller to fill
        std::size_t size = 0;
    };
    // A buffer for a datagram of `bytes` (at most max_datagram_bytes()) to `peer`.
    virtual buffer allocate(peer_id peer, std::size_t bytes);
    // Sends the datagram in `b` to `peer` as send() would (it may wait for a burst, and it may be
    // lost). The caller keeps `b`: to send it again, or to release it.
    virtual void send_buffer(peer_id peer, const buffer& b);
    // Gives back a buffer from allocate().
    virtual void release(buffer& b);
};

// Go-back-N as the data channel uses it: a peer is given up only after about 3 s without an
// acknowledgement (RTO 2 ms, or longer when the measured round trip calls for it, doubling to
// 200 ms, 20 timeouts), as the control channel's heartbeat does, so that a worker descheduled
// for a moment is not taken for lost.
inline gbn_config data_channel_gbn() {
    gbn_config c;
    c.max_timeouts = 20;
    return c;
}

struct datagram_transport_config {
    std::uint32_t initial_credit = 16384; // messages each peer may send before a grant
    // The largest body one send() takes (cut into fragments as the link needs): as on TCP.
    std::size_t max_body_bytes = default_max_data_frame_bytes - data_frame_header_bytes;
    gbn_config gbn = data_channel_gbn();
    // ACK frames say which frames arrived after a gap and are kept (selective acknowledgement).
    // Off, the sender learns nothing of them: fast retransmission never fires and a timeout
    // resends the whole window, as plain go-back-N does; for comparison in tests.
    bool selective_ack = true;
    // An ACK goes out at least this often while a peer is alive (credit and liveness).
    std::uint64_t ack_interval_ns = 20'000'000;
    // A peer heard from not at all for this long is lost.
    std::uint64_t silence_timeout_ns = 3'000'000'000;
};

struct datagram_transport_counters {
    std::uint64_t frames_in = 0, frames_out = 0, messages_in = 0, messages_out = 0;
    std::uint64_t corrupt_frames = 0;  // failed the checksum or the frame rules: dropped
    std::uint64_t duplicates = 0;      // DATA frames already delivered: dropped
    std::uint64_t out_of_order = 0;    // DATA frames after a gap
    std::uint64_t kept_early = 0;      // of those, kept until the gap is filled (within the window)
    std::uint64_t retransmissions = 0; // DATA frames sent again
    std::uint64_t fast_retransmissions = 0; // of those, before their timeout (selective acks)
    // Timeouts whose probe's ack covered frames sent once only (gbn_config::probe_on_timeout):
    // a peer or the link stalled, nothing was lost, and nothing more was resent.
    std::uint64_t spurious_timeouts = 0;
    std::uint64_t acks_out = 0, acks_in = 0; // ACK frames of their own
    std::uint64_t acks_piggybacked = 0;      // acknowledgements carried by DATA frames
    std::uint64_t fragments_out = 0;         // DATA frames that carry part of a larger body
    std::uint64_t credit_violations = 0;     // DATA beyond the credit we gave: dropped
    std::uint64_t peers_lost = 0;

    // Sums another lane's counters into these.
    datagram_transport_counters& operator+=(const datagram_transport_counters& o);
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
    std::size_t pending_bytes() const override { return _unacked_bytes + _backlog_bytes; }
    bool peer_alive(peer_id peer) const override;

    // Sends BYE to every live peer (three times: datagrams may be lost). After the exchange
    // stopped.
    void say_goodbye() override;
    // When poll() next has something to do without any datagram arriving (retransmission, ACK,
    // a datagram the link holds back), on this transport's clock.
    std::uint64_t next_deadline_ns() const override;
    const datagram_transport_counters& counters() const { return _counters; }

private:
    struct peer;
    void handle(peer_id id, std::span<const std::byte> datagram, std::uint64_t now,
                transport_events& events);
    std::uint64_t now_ns() const;
    // When a frame is sent, for its timeout and round-trip sample. On the engine's clock, one
    // reading serves sends_per_clock_reading sends (the last poll's serves the first ones):
    // reading the TSC cost some 7 % of the time spent sending a small frame. A frame is then
    // stamped at most a turn of the exchange loop early (microseconds; it waits for the turn's
    // end to go out anyway), which can only make its timeout sooner and its round-trip sample
    // longer, against an RTO of 2 ms or more.
    std::uint64_t send_ns();
    static constexpr std::uint32_t sends_per_clock_reading = 32;
    void deliver(peer_id id, const data_frame& f, transport_events& events);
    // Keeps a DATA frame that arrived after a gap; delivers the kept frames the gap held back.
    void keep_early(peer_id id, const data_frame& f);
    // Only when the peer has frames kept (early_frames).
    void deliver_early(peer_id id, std::uint64_t now, transport_events& events);
    void apply_ack(peer_id id, std::uint64_t ack, std::uint64_t credit_limit, std::uint64_t now);
    // Sends one DATA frame carrying `body` and our acknowledgement, and holds it until acked.
    void send_frame(peer_id id, std::span<const std::byte> body, std::uint32_t count,
                    std::uint8_t flags, std::uint64_t now);
    // Sends the fragments of the peer's backlog while the window is open.
    std::size_t push_backlog(peer_id id, std::uint64_t now);
    // The most body bytes one DATA frame carries.
    std::size_t fragment_bytes() const;
    // Sends the ACK the peer is owed, with the frames kept after a gap (selective acknowledgement).
    void send_ack(peer_id id, std::uint64_t now);
    // Sends a held DATA frame again and counts it.
    template<typename Held>
    void resend(peer_id id, const Held& frame);
    void lose(peer_id id, std::string reason);

    datagram_link& _link;
    peer_id _self;
    datagram_transport_config _config;
    clock_fn _clock; // empty: the engine's clock
    // The link's, read once: a virtual call per datagram received cost more than the check.
    std::size_t _max_datagram_bytes;
    // Bytes of the DATA frames the peers' senders hold, kept up to date by the held frames
    // themselves: declared before _peers, so that it outlives them.
    std::size_t _unacked_bytes = 0;
    std::vector<std::unique_ptr<peer>> _peers;
    std::size_t _backlog_bytes = 0;
    std::uint64_t _send_reading_ns = 0;
    std::uint32_t _sends_on_reading = 0; // sends stamped with _send_reading_ns so far
    std::string _scratch;
    std::string _early_scratch; // a kept frame's body while it is delivered
    datagram_transport_counters _counters;
};

} // namespace ringtail::net
