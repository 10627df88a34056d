// Reliable, ordered delivery over a link that may lose, duplicate, reorder or corrupt frames
// (DESIGN.md §4, the DPDK back end): a go-back-N sender and receiver, independent of the back end
// and driven by the caller's clock, so that tests run them on a simulated one.
//
// The protocol: the sender numbers frames 1, 2, 3, ... and keeps each until it is acknowledged;
// the receiver accepts only the next frame in order and acknowledges cumulatively (the last seq
// it delivered), piggybacked on its own traffic or in a frame of its own. When the oldest
// unacknowledged frame has waited a retransmission timeout (RTO), every outstanding frame is sent
// again in order and the RTO doubles, up to a cap; an ack that moves the window resets it. A peer
// that lets max_timeouts RTOs in a row pass without progress is unreachable. Before a timeout,
// acks that repeat (the receiver sends one for every frame after a gap) resend only the missing
// frame: fast retransmission (gbn_sender::ack_repeated), which matters because the datagram
// transport's receiver keeps the frames after a gap instead of dropping them.
//
// The checksum is not here: a frame that fails it is dropped before its seq is looked at, so to
// this layer it was lost.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

namespace ringtail::net {

struct gbn_config {
    // Frames sent and not yet acknowledged, at most. Bounds the memory held for a peer.
    std::uint32_t window_frames = 256;
    // The first retransmission timeout, and the one every ack that makes progress returns to.
    std::uint64_t rto_initial_ns = 2'000'000;
    // The RTO doubles on every timeout up to this.
    std::uint64_t rto_max_ns = 200'000'000;
    // Consecutive timeouts without progress before the peer is unreachable.
    std::uint32_t max_timeouts = 8;
    // How long a receiver may wait for traffic to piggyback an ack on before it owes one alone.
    std::uint64_t ack_delay_ns = 50'000;
    // Repeated acks (see gbn_sender::ack_repeated) after which the oldest outstanding frame is
    // sent again without waiting for its timeout; 0 turns fast retransmission off.
    std::uint32_t fast_retransmit_repeats = 3;
};

// No deadline: what next_deadline_ns() and friends return when nothing is waiting.
inline constexpr std::uint64_t gbn_no_deadline = std::numeric_limits<std::uint64_t>::max();

namespace detail {
// Logs `what` and aborts: the programmer errors of this file (always on).
void gbn_require(bool condition, const char* what);
} // namespace detail

// The sending half of one direction of one peer's link.
//
// `Held` is a sent frame as the back end keeps it until acknowledged: std::string in tests and on
// sockets, a reference-counted mbuf handle on DPDK. It must be movable; it is destroyed (which
// releases the mbuf) when its frame is acknowledged or the sender is destroyed.
//
// Threading: one thread, the owner of the peer's link (the exchange thread). Memory: the
// window's slots are allocated once, at construction.
template<typename Held>
class gbn_sender {
public:
    explicit gbn_sender(gbn_config config = {})
      : _config(config)
      , _slots(config.window_frames)
      , _rto_ns(config.rto_initial_ns) {
        detail::gbn_require(config.window_frames > 0, "gbn_config: window_frames must be > 0");
        detail::gbn_require(config.rto_initial_ns > 0 && config.rto_initial_ns <= config.rto_max_ns,
                            "gbn_config: 0 < rto_initial_ns <= rto_max_ns");
        detail::gbn_require(config.max_timeouts > 0, "gbn_config: max_timeouts must be > 0");
    }

    // True while another frame may be sent: fewer than window_frames are outstanding.
    bool window_open() const { return _count < _config.window_frames; }
    // The seq the next frame sent must carry (the first is 1).
    std::uint64_t next_seq() const { return _next_seq; }
    // Frames sent and not yet acknowledged.
    std::size_t outstanding() const { return _count; }
    // The highest seq acknowledged so far (0 before any).
    std::uint64_t last_acked() const { return _next_seq - 1 - _count; }
    // The RTO the next timeout will be armed with.
    std::uint64_t rto_ns() const { return _rto_ns; }
    // Timeouts since the last progress.
    std::uint32_t consecutive_timeouts() const { return _consecutive_timeouts; }
    // True once max_timeouts RTOs in a row passed without progress. Final: the owner reports the
    // peer (one line) and stops sending to it; a late ack still releases frames but revives
    // nothing, since the engine has already acted on the loss.
    bool unreachable() const { return _unreachable; }
    // When poll() next has work: the oldest outstanding frame's timeout, or gbn_no_deadline.
    std::uint64_t next_deadline_ns() const {
        return _count == 0 || _unreachable ? gbn_no_deadline : _deadline_ns;
    }

    // Frames sent again, after a timeout or by fast retransmission.
    std::uint64_t retransmissions() const { return _retransmissions; }
    // Of those, frames sent again by fast retransmission.
    std::uint64_t fast_retransmissions() const { return _fast_retransmissions; }
    std::uint64_t timeouts() const { return _timeouts; }
    // Acks for a seq never sent: ignored (a corrupt or foreign frame that passed the checksum).
    std::uint64_t bad_acks() const { return _bad_acks; }
    // Acks that acknowledged nothing new (duplicated or reordered acks): harmless.
    std::uint64_t stale_acks() const { return _stale_acks; }

    // Records `frame`, which the caller has just sent with seq next_seq(), and holds it until it
    // is acknowledged. Starts the timer if nothing else was outstanding. The window must be open.
    void sent(Held frame, std::uint64_t now_ns) {
        detail::gbn_require(window_open(), "gbn_sender::sent with the window closed");
        if (_count == 0) {
            _deadline_ns = now_ns + _rto_ns;
        }
        _slots[slot_of(_next_seq)].emplace(std::move(frame));
        ++_count;
        ++_next_seq;
    }

    // Releases every held frame with seq <= cumulative_ack and returns how many. Progress resets
    // the RTO to rto_initial, the timeout count, and restarts the timer for what is still
    // outstanding. An ack beyond the last seq sent is ignored and counted in bad_acks.
    std::size_t acked(std::uint64_t cumulative_ack, std::uint64_t now_ns) {
        if (cumulative_ack >= _next_seq) {
            ++_bad_acks;
            return 0;
        }
        std::uint64_t first = last_acked() + 1;
        if (cumulative_ack < first) {
            ++_stale_acks;
            return 0;
        }
        auto released = static_cast<std::size_t>(cumulative_ack - first + 1);
        for (std::uint64_t seq = first; seq <= cumulative_ack; ++seq) {
            _slots[slot_of(seq)].reset();
        }
        _count -= released;
        _repeats = 0;
        if (_unreachable) {
            // Too late: the frames go, but the verdict and the counts that led to it stay.
            return released;
        }
        _rto_ns = _config.rto_initial_ns;
        _consecutive_timeouts = 0;
        _deadline_ns = now_ns + _rto_ns;
        return released;
    }

    // An ack that the receiver sent because a frame arrived after a gap (an ACK frame of its own,
    // which the datagram transport sends for every such frame), after acked() took it. When it
    // repeats the last ack while frames are outstanding, the frame after that ack is likely lost;
    // at fast_retransmit_repeats such acks in a row, `resend(const Held&, seq)` sends it again,
    // once per ack value (a lost retransmission is left to the timeout), and the timer runs on.
    // Go-back-N resends the whole window on a timeout; this resends only the missing frame, which
    // a receiver that keeps frames after a gap (net/datagram_transport.h) is waiting for. Reordered
    // frames cause repeats too: a few in a row are needed, so that a frame overtaken by one or two
    // others is not sent twice. Returns the frames resent (0 or 1).
    template<typename Resend>
    std::size_t ack_repeated(std::uint64_t cumulative_ack, Resend&& resend) {
        if (_config.fast_retransmit_repeats == 0 || _unreachable || _count == 0 ||
            cumulative_ack != last_acked()) {
            return 0;
        }
        if (++_repeats < _config.fast_retransmit_repeats || _fast_resent_after == cumulative_ack) {
            return 0;
        }
        _fast_resent_after = cumulative_ack;
        const std::uint64_t seq = cumulative_ack + 1;
        resend(static_cast<const Held&>(*_slots[slot_of(seq)]), seq);
        ++_retransmissions;
        ++_fast_retransmissions;
        return 1;
    }

    // When the oldest outstanding frame's timeout has expired: counts a timeout and, unless that
    // makes the peer unreachable, calls `resend(const Held&, std::uint64_t seq)` for every
    // outstanding frame, oldest first (go-back-N), doubles the RTO up to rto_max and re-arms the
    // timer. Returns the frames resent. `resend` must not call back into the sender.
    template<typename Resend>
    std::size_t poll(std::uint64_t now_ns, Resend&& resend) {
        if (_count == 0 || _unreachable || now_ns < _deadline_ns) {
            return 0;
        }
        ++_timeouts;
        if (++_consecutive_timeouts >= _config.max_timeouts) {
            // Nothing more is resent: the owner drops the peer, and the held frames with it.
            _unreachable = true;
            return 0;
        }
        for (std::uint64_t seq = last_acked() + 1; seq < _next_seq; ++seq) {
            resend(static_cast<const Held&>(*_slots[slot_of(seq)]), seq);
        }
        _retransmissions += _count;
        _rto_ns = _rto_ns > _config.rto_max_ns / 2 ? _config.rto_max_ns : _rto_ns * 2;
        _deadline_ns = now_ns + _rto_ns;
        return _count;
    }

private:
    std::size_t slot_of(std::uint64_t seq) const { return seq % _config.window_frames; }

    gbn_config _config;
    // A ring of window_frames slots; seq s lives in slot s % window_frames while outstanding.
    std::vector<std::optional<Held>> _slots;
    std::uint64_t _next_seq = 1;
    std::size_t _count = 0;
    std::uint64_t _rto_ns;
    std::uint64_t _deadline_ns = 0;
    std::uint32_t _consecutive_timeouts = 0;
    bool _unreachable = false;
    std::uint32_t _repeats = 0; // acks repeating last_acked() since it last moved
    // The ack value after which the frame was fast-retransmitted (none yet: the largest seq).
    std::uint64_t _fast_resent_after = std::numeric_limits<std::uint64_t>::max();
    std::uint64_t _retransmissions = 0;
    std::uint64_t _fast_retransmissions = 0;
    std::uint64_t _timeouts = 0;
    std::uint64_t _bad_acks = 0;
    std::uint64_t _stale_acks = 0;
};

// The receiving half of one direction of one peer's link: says which frames to deliver and when
// an ack is owed. Holds no frames (go-back-N drops everything out of order).
//
// Threading: one thread, the owner of the peer's link.
class gbn_receiver {
public:
    enum class verdict {
        deliver,      // the next frame in order: deliver it
        duplicate,    // already delivered: drop it; an ack is owed at once
        out_of_order, // a frame before it is missing: drop it; an ack is owed at once
    };

    explicit gbn_receiver(gbn_config config = {});

    // The verdict on a frame with `seq` that passed its checksum.
    verdict received(std::uint64_t seq, std::uint64_t now_ns);
    // The seq to acknowledge: the last one delivered in order (0 before any).
    std::uint64_t cumulative_ack() const { return _expected - 1; }
    // The seq received() will deliver next.
    std::uint64_t expected_seq() const { return _expected; }
    // True when an ack should go out now: one is owed, and either ack_delay_ns has passed since
    // the first delivery it covers, half a window has been delivered since the last ack (so a
    // fast sender does not stall on the delay), or a duplicate or out-of-order frame came in
    // (the sender may have lost our ack, or be about to time out).
    bool ack_due(std::uint64_t now_ns) const;
    // When ack_due() turns true with no more frames: gbn_no_deadline if no ack is owed.
    std::uint64_t next_ack_deadline_ns() const;
    // The owner sent cumulative_ack(), piggybacked on a data frame or alone.
    void ack_sent();

    std::uint64_t delivered() const { return _delivered; }
    std::uint64_t duplicates() const { return _duplicates; }
    std::uint64_t out_of_order() const { return _out_of_order; }

private:
    gbn_config _config;
    std::uint64_t _expected = 1;
    bool _ack_owed = false;
    bool _ack_now = false;
    std::uint64_t _owed_since_ns = 0;
    std::uint32_t _unacked_deliveries = 0;
    std::uint64_t _delivered = 0;
    std::uint64_t _duplicates = 0;
    std::uint64_t _out_of_order = 0;
};

} // namespace ringtail::net
