// libFuzzer target for go-back-N: a sender and a receiver driven by fuzzer-chosen events (send,
// ack values, clock steps, frames received) must keep their invariants: never more outstanding
// than the window, frames resent in order and only after their timeout or by selective acks (and
// then once), frames the peer holds never resent, delivered seqs strictly consecutive, and acks
// that never pass what was sent.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "net/channel/go_back_n.h"

namespace {

using ringtail::net::gbn_config;
using ringtail::net::gbn_no_deadline;
using ringtail::net::gbn_receiver;
using ringtail::net::gbn_sender;

void check(bool condition) {
    if (!condition) {
        std::abort();
    }
}

// Reads the input a byte at a time; 0 once it runs out.
struct input {
    const std::uint8_t* data;
    std::size_t size;
    std::uint8_t byte() {
        if (size == 0) {
            return 0;
        }
        --size;
        return *data++;
    }
    std::uint64_t u64() {
        std::uint64_t v = 0;
        for (int i = 0; i < 8; ++i) {
            v = v << 8 | byte();
        }
        return v;
    }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    input in{ data, size };
    gbn_config config;
    config.window_frames = 1 + in.byte() % 64;
    config.rto_initial_ns = 1 + in.byte() * 10;
    config.rto_max_ns = config.rto_initial_ns << (in.byte() % 8);
    config.max_timeouts = 1 + in.byte() % 10;
    config.ack_delay_ns = in.byte() * 10;
    config.reorder_threshold = in.byte() % 5;
    config.reorder_window_ns = in.byte() * 10;
    config.rto_from_rtt = in.byte() % 2 == 0;
    config.probe_on_timeout = in.byte() % 2 == 0;
    // The held frame is its own seq, so that every resend can be checked against its number.
    gbn_sender<std::uint64_t> tx(config);
    gbn_receiver rx(config);
    std::uint64_t now = 0;
    std::uint64_t last_delivered = 0;
    std::uint64_t bad_acks = 0;
    // By seq: 1 once the frame was sent again (fast retransmission resends a frame at most once).
    std::vector<std::uint8_t> resent_before(1, 0);

    while (in.size > 0) {
        std::uint64_t last_acked = tx.last_acked();
        std::size_t outstanding = tx.outstanding();
        switch (in.byte() % 6) {
            case 0: { // send
                if (tx.window_open()) {
                    resent_before.push_back(0); // index next_seq()
                    tx.sent(tx.next_seq(), now);
                    check(tx.outstanding() == outstanding + 1);
                }
                break;
            }
            case 1: { // an arbitrary ack: near the window, or anything at all
                std::uint8_t b = in.byte();
                std::uint64_t ack = b < 200 ? last_acked + b % 40 - 8 : in.u64();
                std::size_t released = tx.acked(ack, now);
                if (ack >= tx.next_seq()) {
                    check(released == 0 && tx.bad_acks() == ++bad_acks);
                } else if (ack <= last_acked) {
                    check(released == 0);
                } else {
                    check(released == ack - last_acked && tx.last_acked() == ack);
                    // Progress resets the backoff, unless the peer was already given up on: to
                    // rto_initial, or to what the measured round trip calls for, within the caps.
                    check(tx.unreachable() ||
                          (tx.consecutive_timeouts() == 0 &&
                           (config.rto_from_rtt ? tx.rto_ns() >= config.rto_initial_ns &&
                                                    tx.rto_ns() <= config.rto_max_ns
                                                : tx.rto_ns() == config.rto_initial_ns)));
                }
                // A selective ack with it (an ACK frame sent for a frame after a gap): fuzzer
                // bits, of 0 to 4 words. What is resent is outstanding, not held by the peer,
                // oldest first, and never a frame already sent again.
                std::uint64_t words[4] = {};
                const std::size_t n_words = in.byte() % 5;
                for (std::size_t w = 0; w < n_words; ++w) {
                    words[w] = in.u64();
                }
                const std::uint64_t fast_before = tx.fast_retransmissions();
                std::uint64_t previous = tx.last_acked();
                const std::size_t fast =
                  tx.selective_ack(ack, std::span<const std::uint64_t>(words, n_words), now,
                                   [&](const std::uint64_t& held, std::uint64_t seq) {
                                       check(held == seq && seq > previous && seq < tx.next_seq());
                                       check(resent_before[seq] == 0);
                                       resent_before[seq] = 1;
                                       previous = seq;
                                   });
                check(tx.fast_retransmissions() == fast_before + fast);
                check(fast == 0 || config.reorder_threshold > 0);
                check(tx.held_by_peer() <= tx.outstanding());
                break;
            }
            case 2: { // the clock moves; timeouts and reorder windows fire
                now += std::uint64_t{ in.byte() } * in.byte();
                std::uint64_t deadline = tx.next_deadline_ns();
                bool was_unreachable = tx.unreachable();
                const std::size_t held_by_peer = tx.held_by_peer();
                const std::uint64_t timeouts = tx.timeouts();
                const std::uint64_t fast_before = tx.fast_retransmissions();
                std::uint64_t previous = last_acked;
                bool resent_twice_fast = false;
                std::size_t resent =
                  tx.poll(now, [&](const std::uint64_t& held, std::uint64_t seq) {
                      // Oldest first, and never a frame the peer holds.
                      check(held == seq && seq > previous && seq < tx.next_seq());
                      resent_twice_fast = resent_twice_fast || resent_before[seq] != 0;
                      resent_before[seq] = 1;
                      previous = seq;
                  });
                // Either a reorder window passed (overtaken frames, each sent again only once,
                // as fast retransmissions), or timeouts did (frames the peer does not hold, sent
                // an RTO ago; at most one timeout of the peer, when the oldest is among them).
                const std::uint64_t fast = tx.fast_retransmissions() - fast_before;
                check(fast == 0 ||
                      (fast == resent && !resent_twice_fast && tx.timeouts() == timeouts));
                check(tx.timeouts() <= timeouts + 1);
                check(resent <= outstanding - held_by_peer);
                check(resent == 0 || (now >= deadline && !was_unreachable));
                if (was_unreachable) {
                    check(tx.unreachable() && resent == 0);
                }
                break;
            }
            case 3: { // the receiver gets a frame that was sent: in order, a duplicate, or early
                if (tx.next_seq() == 1) {
                    break;
                }
                std::uint64_t seq = rx.expected_seq() + in.byte() % 8;
                seq = seq < 4 ? 1 : seq - 4;
                if (seq >= tx.next_seq()) {
                    seq = tx.next_seq() - 1;
                }
                std::uint64_t expected = rx.expected_seq();
                auto v = rx.received(seq, now);
                if (seq == expected) {
                    check(v == gbn_receiver::verdict::deliver);
                    check(seq == last_delivered + 1);
                    last_delivered = seq;
                } else {
                    check(v != gbn_receiver::verdict::deliver);
                    check(rx.ack_due(now)); // a duplicate or a gap is answered at once
                }
                check(rx.cumulative_ack() == last_delivered);
                break;
            }
            case 4: { // the receiver's ack reaches the sender
                if (rx.ack_due(now) || in.byte() % 2 == 0) {
                    std::uint64_t ack = rx.cumulative_ack();
                    check(ack < tx.next_seq());
                    tx.acked(ack, now);
                    check(tx.last_acked() >= ack || tx.last_acked() == last_acked);
                    rx.ack_sent();
                    check(!rx.ack_due(now));
                }
                break;
            }
            case 5: { // a short step, for the delayed ack
                now += in.byte();
                if (rx.next_ack_deadline_ns() != gbn_no_deadline) {
                    check(rx.ack_due(now) == (now >= rx.next_ack_deadline_ns()));
                }
                break;
            }
        }
        check(tx.outstanding() <= config.window_frames);
        check(tx.last_acked() + tx.outstanding() + 1 == tx.next_seq());
        check(tx.rto_ns() >= config.rto_initial_ns && tx.rto_ns() <= config.rto_max_ns);
        check(!tx.unreachable() || tx.consecutive_timeouts() >= config.max_timeouts);
        check(tx.spurious_timeouts() <= tx.timeouts());
        check(config.probe_on_timeout || tx.spurious_timeouts() == 0);
        check(rx.cumulative_ack() < tx.next_seq());
        check(rx.delivered() == last_delivered);
    }
    return 0;
}
