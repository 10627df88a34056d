// Reliable, ordered delivery over a link that may lose, duplicate, reorder or corrupt frames
// (DESIGN.md §4, the DPDK back end): a go-back-N sender and receiver, independent of the back end
// and driven by the caller's clock, so that tests run them on a simulated one.
//
// The protocol: the sender numbers frames 1, 2, 3, ... and keeps each until it is acknowledged;
// the receiver accepts only the next frame in order and acknowledges cumulatively (the last seq
// it delivered), piggybacked on its own traffic or in a frame of its own. A frame not
// acknowledged a retransmission timeout (RTO) after it was sent is sent again, in order; when the
// oldest one's timeout passes, the RTO doubles, up to a cap, and an ack that moves the window
// resets it (to a floor, or to what the measured round trip calls for if that is longer). A peer
// that lets max_timeouts RTOs in a row pass without progress is unreachable.
//
// Selective acknowledgement (gbn_sender::selective_ack): the datagram transport's receiver keeps
// the frames that arrive after a gap, within the window, and says which in its ACK frames. The
// sender then resends, before any timeout, each missing frame that reorder_threshold kept frames
// have overtaken (fast retransmission, with a reorder window in time so that reordering is not
// taken for loss), and a timeout resends only the frames the receiver does not hold.
//
// The checksum is not here: a frame that fails it is dropped before its seq is looked at, so to
// this layer it was lost.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "engine/assert.h"

namespace ringtail::net {

struct gbn_config {
    // Frames sent and not yet acknowledged, at most. Bounds the memory held for a peer.
    std::uint32_t window_frames = 256;
    // The first retransmission timeout, and the least one: every ack that makes progress returns
    // the RTO to this, or (rto_from_rtt) to the measured round trip's SRTT + 4 RTTVAR if larger.
    std::uint64_t rto_initial_ns = 2'000'000;
    // Measure the round trip (frames sent once, from send to cumulative ack, RFC 6298 with Karn's
    // rule) and let the RTO follow it: a loaded host or a long link that answers in milliseconds
    // gets a longer RTO instead of spurious retransmissions.
    bool rto_from_rtt = true;
    // The RTO doubles on every timeout up to this.
    std::uint64_t rto_max_ns = 200'000'000;
    // Consecutive timeouts without progress before the peer is unreachable.
    std::uint32_t max_timeouts = 8;
    // How long a receiver may wait for traffic to piggyback an ack on before it owes one alone.
    std::uint64_t ack_delay_ns = 50'000;
    // A missing frame is sent again before its timeout once this many frames sent after it are
    // selectively acknowledged (gbn_sender::selective_ack); fewer are taken for reordering.
    // 0 turns fast retransmission off (selective acks still spare held frames on a timeout).
    std::uint32_t reorder_threshold = 3;
    // ... and the newest of those was sent at least this long after it: frames sent within this
    // of each other may overtake one another on the way (the fault layer's jitter, a NIC's
    // queues), and a frame overtaken that way is not lost.
    std::uint64_t reorder_window_ns = 50'000;
    // A timeout resends the oldest frame alone, as a probe, as TCP resends only its first
    // unacknowledged segment (RFC 6298, 5.4). If the ack that covers it covers frames after it
    // too, which were sent once only, their first copies had arrived and the timeout was spurious
    // (a peer or a link stalled for longer than the RTO: F-RTO, RFC 5682); nothing else is
    // resent. If it covers the probe alone, every frame sent before the timeout and not held by
    // the receiver is resent at once. A peer that answers nothing costs one frame per timeout,
    // not a window, until it is unreachable. Off, every timeout resends all those frames.
    bool probe_on_timeout = true;
};

// No deadline: what next_deadline_ns() and friends return when nothing is waiting.
inline constexpr std::uint64_t gbn_no_deadline = std::numeric_limits<std::uint64_t>::max();

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
      , _slots(std::bit_ceil(std::size_t{ config.window_frames }))
      , _slot_mask(_slots.size() - 1)
      , _rto_ns(config.rto_initial_ns) {
        _lost.reserve(config.window_frames);
        RINGTAIL_ASSERT(config.window_frames > 0, "gbn_config: window_frames must be > 0");
        RINGTAIL_ASSERT(config.rto_initial_ns > 0 && config.rto_initial_ns <= config.rto_max_ns,
                        "gbn_config: 0 < rto_initial_ns <= rto_max_ns");
        RINGTAIL_ASSERT(config.max_timeouts > 0, "gbn_config: max_timeouts must be > 0");
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
    // When poll() next has work: the oldest outstanding frame's timeout, or an overtaken frame's
    // reorder window (selective_ack) if sooner; gbn_no_deadline when nothing is outstanding.
    std::uint64_t next_deadline_ns() const {
        return _count == 0 || _unreachable ? gbn_no_deadline
                                           : std::min(_deadline_ns, _reorder_deadline_ns);
    }

    // Outstanding frames the receiver said it holds (selective_ack).
    std::size_t held_by_peer() const { return _held_by_peer; }
    // Frames sent again, after a timeout or by fast retransmission.
    std::uint64_t retransmissions() const { return _retransmissions; }
    // Of those, frames sent again by fast retransmission (selective_ack).
    std::uint64_t fast_retransmissions() const { return _fast_retransmissions; }
    std::uint64_t timeouts() const { return _timeouts; }
    // Timeouts found spurious (gbn_config::probe_on_timeout): the probe's ack covered frames
    // sent only once, which the timeout would otherwise have resent.
    std::uint64_t spurious_timeouts() const { return _spurious_timeouts; }
    // Acks for a seq never sent: ignored (a corrupt or foreign frame that passed the checksum).
    std::uint64_t bad_acks() const { return _bad_acks; }
    // Acks that acknowledged nothing new (duplicated or reordered acks): harmless.
    std::uint64_t stale_acks() const { return _stale_acks; }

    // Records `frame`, which the caller has just sent with seq next_seq(), and holds it until it
    // is acknowledged. Starts the timer if nothing else was outstanding. The window must be open.
    void sent(Held frame, std::uint64_t now_ns) { sent_in_place(now_ns, std::move(frame)); }
    // sent(), with the held frame made in its slot from `args`: no temporary to copy from, whose
    // fields, just written one by one, a wider copy would wait for.
    template<typename... Args>
    void sent_in_place(std::uint64_t now_ns, Args&&... args) {
        RINGTAIL_ASSERT(window_open(), "gbn_sender::sent with the window closed");
        if (_count == 0) {
            _deadline_ns = now_ns + _rto_ns;
        }
        slot& s = _slots[slot_of(_next_seq)];
        s.frame.emplace(std::forward<Args>(args)...);
        s.held_by_peer = false;
        s.resent = false;
        s.sent_ns = now_ns;
        s.overtaken_ns = 0;
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
        if (const slot& newest = _slots[slot_of(cumulative_ack)];
            _config.rto_from_rtt && !newest.resent && !newest.held_by_peer &&
            now_ns >= newest.sent_ns) {
            // Karn: only a frame sent once says how long a round trip takes; and not one that
            // waited at the receiver for a gap to fill (held_by_peer).
            sample_rtt(now_ns - newest.sent_ns);
        }
        for (std::uint64_t seq = first; seq <= cumulative_ack; ++seq) {
            slot& s = _slots[slot_of(seq)];
            s.frame.reset();
            _held_by_peer -= s.held_by_peer ? 1 : 0;
            s.held_by_peer = false;
        }
        _count -= released;
        if (_unreachable) {
            // Too late: the frames go, but the verdict and the counts that led to it stay.
            return released;
        }
        _rto_ns = base_rto_ns();
        _consecutive_timeouts = 0;
        _deadline_ns = now_ns + _rto_ns;
        if (_probe_seq != 0) {
            // The probe was the oldest frame, so any progress covers it.
            if (cumulative_ack > _probe_seq) {
                ++_spurious_timeouts;
            } else {
                // The probe alone: the frames sent before the timeout go again, on the next
                // poll (sent before the timeout, they are an RTO old by now).
                _recover_pending = true;
            }
            _probe_seq = 0;
        }
        _recover_pending = _recover_pending && _count > 0;
        if (_recover_pending) {
            _deadline_ns = now_ns; // still due, whatever other acks came first
        }
        return released;
    }

    // A selective acknowledgement, after acked() took its cumulative ack: bit i of `bits` (bit
    // i % 64 of word i / 64, the least significant first) says the receiver holds the frame with
    // seq cumulative_ack + 2 + i, which arrived after a gap (cumulative_ack + 1 is the gap). The
    // receiver keeps such frames until the gap is filled, so none of them is sent again, on a
    // timeout or otherwise; bits for frames not outstanding are ignored, and so is an ack beyond
    // the last seq sent. Then every missing frame that is not yet sent again, with at least
    // reorder_threshold held frames after it, the newest of them sent reorder_window_ns after it
    // or later, is passed to `resend(const Held&, seq)`, oldest first: fast retransmission, with
    // the timer left running (the way RFC 6675 counts, and RACK's time, RFC 8985, simplified). A
    // frame overtaken only by frames sent within the reorder window after it (a burst) may just
    // be late: poll() resends it if it is still missing a reorder window from now. Several gaps
    // in one window are each resent. Returns the frames resent.
    template<typename Resend>
    std::size_t selective_ack(std::uint64_t cumulative_ack, std::span<const std::uint64_t> bits,
                              std::uint64_t now_ns, Resend&& resend) {
        if (_unreachable || _count == 0 || cumulative_ack >= _next_seq) {
            return 0;
        }
        const std::uint64_t first = last_acked() + 1;
        for (std::size_t w = 0; w < bits.size(); ++w) {
            for (std::uint64_t word = bits[w]; word != 0; word &= word - 1) {
                const std::uint64_t seq =
                  cumulative_ack + 2 + 64 * w + static_cast<std::uint64_t>(std::countr_zero(word));
                if (seq < first || seq >= _next_seq) {
                    continue;
                }
                slot& s = _slots[slot_of(seq)];
                if (!s.held_by_peer) {
                    s.held_by_peer = true;
                    ++_held_by_peer;
                }
            }
        }
        const std::uint32_t threshold = _config.reorder_threshold;
        if (threshold == 0 || _held_by_peer < threshold) {
            return 0;
        }
        // From the newest down, counting the held frames above each missing one and the latest
        // time one of them was sent.
        _lost.clear();
        std::size_t held_above = 0;
        std::uint64_t newest_held_sent_ns = 0;
        for (std::uint64_t seq = _next_seq - 1; seq >= first; --seq) {
            slot& s = _slots[slot_of(seq)];
            if (s.held_by_peer) {
                ++held_above;
                newest_held_sent_ns = std::max(newest_held_sent_ns, s.sent_ns);
            } else if (!s.resent && held_above >= threshold) {
                if (newest_held_sent_ns >= s.sent_ns + _config.reorder_window_ns) {
                    _lost.push_back(seq);
                } else if (s.overtaken_ns == 0) {
                    // Overtaken only by frames sent just after it (a burst): lost unless it
                    // arrives within the reorder window from now (poll() sees to it).
                    s.overtaken_ns = now_ns;
                    _reorder_deadline_ns =
                      std::min(_reorder_deadline_ns, now_ns + _config.reorder_window_ns);
                }
            }
        }
        const std::size_t resent = _lost.size();
        for (auto it = _lost.rbegin(); it != _lost.rend(); ++it) {
            resend_slot(*it, now_ns, resend);
        }
        _retransmissions += resent;
        _fast_retransmissions += resent;
        return resent;
    }

    // When a frame overtaken in a burst (selective_ack) has stayed missing for the reorder
    // window: resends it and every other such frame (fast retransmission) and returns.
    // When the timer expires (an RTO after the last progress, or after the earliest send of a
    // frame still missing): calls `resend(const Held&, std::uint64_t seq)`, oldest first, for
    // every outstanding frame that the receiver has not said it holds (selective_ack) and that
    // was last sent an RTO ago or more; frames sent since have their own timeout, and the timer
    // is re-armed for the earliest. When the oldest frame's timeout is among them, that counts a
    // timeout, doubles the RTO up to rto_max and, at max_timeouts in a row, makes the peer
    // unreachable instead of resending; and such a timeout resends only the oldest frame, as a
    // probe (gbn_config::probe_on_timeout). Returns the frames resent.
    // `resend` must not call back into the sender.
    template<typename Resend>
    std::size_t poll(std::uint64_t now_ns, Resend&& resend) {
        if (_count == 0 || _unreachable) {
            return 0;
        }
        if (now_ns >= _reorder_deadline_ns) {
            return resend_overtaken(now_ns, resend);
        }
        if (now_ns < _deadline_ns) {
            return 0;
        }
        // Each frame's timeout is an RTO after it was last sent; the RTO doubles, and the
        // timeout counts towards max_timeouts, when the oldest frame's passes. After a probe
        // answered alone, the frames it stood for go now, without a timeout of their own.
        const std::uint64_t oldest = last_acked() + 1;
        const bool oldest_expired =
          !_recover_pending && _slots[slot_of(oldest)].sent_ns + _rto_ns <= now_ns;
        _recover_pending = false;
        if (oldest_expired) {
            ++_timeouts;
            if (++_consecutive_timeouts >= _config.max_timeouts) {
                // Nothing more is resent: the owner drops the peer, and the held frames with it.
                _unreachable = true;
                return 0;
            }
            if (_config.probe_on_timeout && !_slots[slot_of(oldest)].held_by_peer) {
                resend_slot(oldest, now_ns, resend);
                _probe_seq = oldest;
                ++_retransmissions;
                back_off();
                _deadline_ns = now_ns + _rto_ns;
                return 1;
            }
            _probe_seq = 0; // everything due goes below
        }
        std::size_t resent = 0;
        // The earliest send of the frames the receiver does not hold (the oldest is one), after
        // the resends: the timer is re-armed for its timeout.
        std::uint64_t earliest_sent_ns = now_ns;
        for (std::uint64_t seq = last_acked() + 1; seq < _next_seq; ++seq) {
            slot& s = _slots[slot_of(seq)];
            if (s.held_by_peer) {
                continue;
            }
            if (s.sent_ns + _rto_ns <= now_ns) {
                resend_slot(seq, now_ns, resend);
                ++resent;
            }
            earliest_sent_ns = std::min(earliest_sent_ns, s.sent_ns);
        }
        _retransmissions += resent;
        if (oldest_expired) {
            back_off();
        }
        _deadline_ns = earliest_sent_ns + _rto_ns;
        return resent;
    }

    // The smoothed round-trip time and its mean deviation (RFC 6298), 0 before the first sample.
    std::uint64_t srtt_ns() const { return _srtt_ns; }
    std::uint64_t rttvar_ns() const { return _rttvar_ns; }

private:
    // A mask, not `seq % window_frames`: a 64-bit division takes tens of cycles, and go-back-N
    // touches a slot or two for every frame sent and acknowledged.
    std::size_t slot_of(std::uint64_t seq) const { return seq & _slot_mask; }

    // Sends the outstanding frame `seq` again, now, through `resend`; counted by the caller.
    template<typename Resend>
    void resend_slot(std::uint64_t seq, std::uint64_t now_ns, Resend& resend) {
        slot& s = _slots[slot_of(seq)];
        s.resent = true;
        s.sent_ns = now_ns;
        resend(static_cast<const Held&>(*s.frame), seq);
    }

    // A timeout's backoff: the RTO doubles, up to rto_max.
    void back_off() {
        _rto_ns = _rto_ns > _config.rto_max_ns / 2 ? _config.rto_max_ns : _rto_ns * 2;
    }

    void sample_rtt(std::uint64_t rtt_ns) {
        if (_srtt_ns == 0) {
            _srtt_ns = std::max<std::uint64_t>(rtt_ns, 1);
            _rttvar_ns = rtt_ns / 2;
            return;
        }
        const std::uint64_t deviation = _srtt_ns > rtt_ns ? _srtt_ns - rtt_ns : rtt_ns - _srtt_ns;
        _rttvar_ns = _rttvar_ns - _rttvar_ns / 4 + deviation / 4;
        _srtt_ns = std::max<std::uint64_t>(_srtt_ns - _srtt_ns / 8 + rtt_ns / 8, 1);
    }

    // The RTO after progress: SRTT + 4 RTTVAR (RFC 6298), between rto_initial and rto_max.
    std::uint64_t base_rto_ns() const {
        if (!_config.rto_from_rtt || _srtt_ns == 0) {
            return _config.rto_initial_ns;
        }
        return std::clamp(_srtt_ns + 4 * _rttvar_ns, _config.rto_initial_ns, _config.rto_max_ns);
    }

    // Resends, as fast retransmissions, the missing frames overtaken (selective_ack) a reorder
    // window ago or more, and sets the deadline for the rest.
    template<typename Resend>
    std::size_t resend_overtaken(std::uint64_t now_ns, Resend& resend) {
        std::size_t resent = 0;
        _reorder_deadline_ns = gbn_no_deadline;
        for (std::uint64_t seq = last_acked() + 1; seq < _next_seq; ++seq) {
            slot& s = _slots[slot_of(seq)];
            if (s.held_by_peer || s.resent || s.overtaken_ns == 0) {
                continue;
            }
            const std::uint64_t due = s.overtaken_ns + _config.reorder_window_ns;
            if (now_ns < due) {
                _reorder_deadline_ns = std::min(_reorder_deadline_ns, due);
                continue;
            }
            resend_slot(seq, now_ns, resend);
            ++resent;
        }
        _retransmissions += resent;
        _fast_retransmissions += resent;
        return resent;
    }

    gbn_config _config;
    struct slot {
        std::optional<Held> frame;
        bool held_by_peer = false; // selectively acknowledged: never sent again
        bool resent = false;       // sent again since it was first sent
        std::uint64_t sent_ns = 0; // when it was last sent
        // When selective acks first showed it missing and overtaken by frames sent just after
        // it (0: not so); lost if still missing a reorder window later.
        std::uint64_t overtaken_ns = 0;
    };
    // A ring of window_frames slots or more (a power of two); seq s lives in slot s & _slot_mask
    // while outstanding, and at most window_frames consecutive seqs are.
    std::vector<slot> _slots;
    std::size_t _slot_mask;
    std::uint64_t _next_seq = 1;
    std::size_t _count = 0;
    std::uint64_t _rto_ns;
    std::uint64_t _srtt_ns = 0;
    std::uint64_t _rttvar_ns = 0;
    std::uint64_t _deadline_ns = 0;
    std::uint32_t _consecutive_timeouts = 0;
    bool _unreachable = false;
    std::size_t _held_by_peer = 0;    // outstanding frames selectively acknowledged
    std::vector<std::uint64_t> _lost; // selective_ack's work list, newest first
    // The earliest time an overtaken frame (slot::overtaken_ns) is due to be taken for lost.
    std::uint64_t _reorder_deadline_ns = gbn_no_deadline;
    std::uint64_t _retransmissions = 0;
    std::uint64_t _fast_retransmissions = 0;
    std::uint64_t _timeouts = 0;
    std::uint64_t _spurious_timeouts = 0;
    // The oldest frame, resent alone on a timeout (probe_on_timeout); 0 when no probe is out.
    std::uint64_t _probe_seq = 0;
    // The probe's ack covered it alone: poll() resends what it stood for.
    bool _recover_pending = false;
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
