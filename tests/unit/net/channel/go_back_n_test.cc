// Tests of go-back-N on a fake clock: windows, acks, timeouts with backoff, unreachable peers,
// receiver verdicts and ack timing, and a whole simulated link through fault injectors that lose,
// duplicate, reorder and corrupt data-channel frames.
#include "net/channel/go_back_n.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "engine/big_endian.h"
#include "net/channel/data_codec.h"
#include "net/fault/fault_injector.h"

namespace ringtail::net {
namespace {

using verdict = gbn_receiver::verdict;

std::uint64_t test_seed() {
    if (const char* s = std::getenv("RINGTAIL_TEST_SEED")) {
        return std::strtoull(s, nullptr, 10);
    }
    return std::random_device{}();
}

// Plain go-back-N timeouts, every one resending what is due: the probe on the first timeout
// (probe_on_timeout) has tests of its own.
gbn_config small_config() {
    gbn_config c;
    c.window_frames = 4;
    c.rto_initial_ns = 1000;
    c.rto_max_ns = 8000;
    c.max_timeouts = 5;
    c.ack_delay_ns = 100;
    c.probe_on_timeout = false;
    return c;
}

gbn_config probing_config() {
    gbn_config c = small_config();
    c.probe_on_timeout = true;
    c.rto_from_rtt = false; // the RTO after progress stays 1000, for round numbers
    return c;
}

// What poll() resent, as (frame, seq) pairs.
struct resent_log {
    std::vector<std::pair<std::string, std::uint64_t>> frames;
    auto callback() {
        return [this](const std::string& f, std::uint64_t seq) { frames.emplace_back(f, seq); };
    }
};

TEST(go_back_n, in_order_delivery_and_acks) {
    gbn_sender<std::string> tx(small_config());
    gbn_receiver rx(small_config());
    EXPECT_EQ(tx.next_seq(), 1u);
    EXPECT_EQ(rx.cumulative_ack(), 0u);
    for (std::uint64_t i = 1; i <= 3; ++i) {
        std::uint64_t seq = tx.next_seq();
        EXPECT_EQ(seq, i);
        tx.sent("f" + std::to_string(seq), 10);
        EXPECT_EQ(rx.received(seq, 20), verdict::deliver);
        EXPECT_EQ(rx.cumulative_ack(), seq);
    }
    EXPECT_EQ(tx.outstanding(), 3u);
    EXPECT_EQ(tx.acked(rx.cumulative_ack(), 30), 3u);
    EXPECT_EQ(tx.outstanding(), 0u);
    EXPECT_EQ(tx.last_acked(), 3u);
    EXPECT_EQ(tx.next_deadline_ns(), gbn_no_deadline);
    EXPECT_EQ(rx.delivered(), 3u);
    EXPECT_EQ(rx.duplicates(), 0u);
    EXPECT_EQ(rx.out_of_order(), 0u);
}

TEST(go_back_n, window_fills_and_reopens_on_ack) {
    gbn_sender<std::string> tx(small_config());
    for (int i = 0; i < 4; ++i) {
        ASSERT_TRUE(tx.window_open());
        tx.sent("x", 0);
    }
    EXPECT_FALSE(tx.window_open());
    EXPECT_EQ(tx.outstanding(), 4u);
    EXPECT_EQ(tx.acked(1, 10), 1u);
    EXPECT_TRUE(tx.window_open());
    tx.sent("y", 10);
    EXPECT_FALSE(tx.window_open());
    EXPECT_EQ(tx.next_seq(), 6u);
    EXPECT_EQ(tx.acked(5, 20), 4u);
    EXPECT_EQ(tx.outstanding(), 0u);
    EXPECT_TRUE(tx.window_open());
}

TEST(go_back_n, sending_with_the_window_closed_aborts) {
    gbn_sender<std::string> tx(small_config());
    for (int i = 0; i < 4; ++i) {
        tx.sent("x", 0);
    }
    EXPECT_DEATH(tx.sent("y", 0), "window closed");
}

TEST(go_back_n, timeout_resends_everything_outstanding_in_order_with_backoff) {
    gbn_config c = small_config();
    c.max_timeouts = 100;
    gbn_sender<std::string> tx(c);
    tx.sent("a", 0);
    tx.sent("b", 0);
    tx.sent("c", 0);
    EXPECT_EQ(tx.next_deadline_ns(), 1000u);
    resent_log log;
    EXPECT_EQ(tx.poll(999, log.callback()), 0u);
    EXPECT_TRUE(log.frames.empty());
    EXPECT_EQ(tx.poll(1000, log.callback()), 3u);
    std::vector<std::pair<std::string, std::uint64_t>> want{ { "a", 1 }, { "b", 2 }, { "c", 3 } };
    EXPECT_EQ(log.frames, want);
    EXPECT_EQ(tx.rto_ns(), 2000u);
    EXPECT_EQ(tx.next_deadline_ns(), 3000u);
    EXPECT_EQ(tx.outstanding(), 3u); // resending holds nothing more

    // Doubling up to the cap: 2000, 4000, 8000, 8000, ...
    std::uint64_t now = 1000;
    std::vector<std::uint64_t> rtos;
    for (int i = 0; i < 5; ++i) {
        now = tx.next_deadline_ns();
        log.frames.clear();
        EXPECT_EQ(tx.poll(now, log.callback()), 3u);
        EXPECT_EQ(log.frames, want);
        rtos.push_back(tx.rto_ns());
    }
    EXPECT_EQ(rtos, (std::vector<std::uint64_t>{ 4000, 8000, 8000, 8000, 8000 }));
    EXPECT_EQ(tx.timeouts(), 6u);
    EXPECT_EQ(tx.retransmissions(), 18u);
    EXPECT_FALSE(tx.unreachable());
}

// A timeout resends the oldest frame alone. An ack beyond it says the first copies had arrived
// (the timeout was spurious): nothing else is resent, and the next timeout probes again.
TEST(go_back_n, a_timeout_probes_with_the_oldest_frame_and_an_ack_beyond_it_ends_there) {
    gbn_sender<std::string> tx(probing_config());
    for (const char* f : { "a", "b", "c", "d" }) {
        tx.sent(f, 0);
    }
    resent_log log;
    EXPECT_EQ(tx.poll(999, log.callback()), 0u);
    EXPECT_EQ(tx.poll(1000, log.callback()), 1u);
    using frames = std::vector<std::pair<std::string, std::uint64_t>>;
    EXPECT_EQ(log.frames, (frames{ { "a", 1 } }));
    EXPECT_EQ(tx.timeouts(), 1u);
    EXPECT_EQ(tx.rto_ns(), 2000u);
    EXPECT_EQ(tx.next_deadline_ns(), 3000u);
    // b, c and d are an RTO old too, but wait for the probe's answer.
    EXPECT_EQ(tx.poll(2999, log.callback()), 0u);
    EXPECT_EQ(tx.acked(3, 2000), 3u);
    EXPECT_EQ(tx.spurious_timeouts(), 1u);
    EXPECT_EQ(tx.rto_ns(), 1000u);
    EXPECT_EQ(tx.next_deadline_ns(), 3000u);
    EXPECT_EQ(tx.poll(2999, log.callback()), 0u);
    EXPECT_EQ(log.frames.size(), 1u);
    // d's timeout: a probe again.
    EXPECT_EQ(tx.poll(3000, log.callback()), 1u);
    EXPECT_EQ(log.frames, (frames{ { "a", 1 }, { "d", 4 } }));
    EXPECT_EQ(tx.timeouts(), 2u);
    EXPECT_EQ(tx.retransmissions(), 2u);
    EXPECT_EQ(tx.acked(4, 3100), 1u);
    EXPECT_EQ(tx.spurious_timeouts(), 1u); // the probe alone: nothing was left to resend
}

// An ack that covers the probe and nothing after it: the frames sent before the timeout and
// still missing go at once, on the next poll, without a timeout of their own (nor a doubled
// RTO); a frame sent after the timeout waits for its own.
TEST(go_back_n, a_probe_acked_alone_resends_the_rest_at_once) {
    gbn_sender<std::string> tx(probing_config());
    for (const char* f : { "a", "b", "c", "d" }) {
        tx.sent(f, 0);
    }
    resent_log log;
    EXPECT_EQ(tx.poll(1000, log.callback()), 1u);
    EXPECT_EQ(tx.acked(1, 1100), 1u);
    EXPECT_EQ(tx.spurious_timeouts(), 0u);
    EXPECT_EQ(tx.next_deadline_ns(), 1100u);
    tx.sent("e", 1100);
    // A selective ack says the receiver holds c (bit 0: seq ack + 2): c is spared.
    const std::array<std::uint64_t, 1> bits{ 0b1 };
    EXPECT_EQ(tx.selective_ack(1, bits, 1100, log.callback()), 0u);
    EXPECT_EQ(tx.poll(1100, log.callback()), 2u);
    using frames = std::vector<std::pair<std::string, std::uint64_t>>;
    EXPECT_EQ(log.frames, (frames{ { "a", 1 }, { "b", 2 }, { "d", 4 } }));
    EXPECT_EQ(tx.timeouts(), 1u);
    EXPECT_EQ(tx.consecutive_timeouts(), 0u);
    EXPECT_EQ(tx.rto_ns(), 1000u);
    EXPECT_EQ(tx.retransmissions(), 3u);
    // Then e's timeout (the oldest, b, was resent at 1100 too): a probe with b.
    EXPECT_EQ(tx.next_deadline_ns(), 2100u);
    log.frames.clear();
    EXPECT_EQ(tx.poll(2100, log.callback()), 1u);
    EXPECT_EQ(log.frames, (frames{ { "b", 2 } }));
}

// A peer that answers nothing gets one frame per timeout, the RTO doubling, until it is
// unreachable; when it answers the probe alone at last, the rest goes at once.
TEST(go_back_n, unanswered_probes_cost_one_frame_per_timeout) {
    gbn_sender<std::string> tx(probing_config());
    for (const char* f : { "a", "b", "c" }) {
        tx.sent(f, 0);
    }
    resent_log log;
    EXPECT_EQ(tx.poll(1000, log.callback()), 1u);
    EXPECT_EQ(tx.poll(2999, log.callback()), 0u);
    EXPECT_EQ(tx.poll(3000, log.callback()), 1u);
    EXPECT_EQ(tx.timeouts(), 2u);
    EXPECT_EQ(tx.rto_ns(), 4000u);
    EXPECT_EQ(tx.poll(7000, log.callback()), 1u);
    EXPECT_EQ(tx.timeouts(), 3u);
    using frames = std::vector<std::pair<std::string, std::uint64_t>>;
    EXPECT_EQ(log.frames, (frames{ { "a", 1 }, { "a", 1 }, { "a", 1 } }));
    EXPECT_EQ(tx.acked(1, 7100), 1u);
    EXPECT_EQ(tx.poll(7100, log.callback()), 2u);
    EXPECT_EQ(log.frames, (frames{ { "a", 1 }, { "a", 1 }, { "a", 1 }, { "b", 2 }, { "c", 3 } }));
    EXPECT_EQ(tx.spurious_timeouts(), 0u);
    EXPECT_EQ(tx.consecutive_timeouts(), 0u);
}

// With probes too, a peer that never answers is unreachable after max_timeouts, at the same
// time as without them.
TEST(go_back_n, unreachable_with_probes_at_the_same_time_as_without) {
    for (const bool probe : { true, false }) {
        gbn_config c = probing_config(); // max_timeouts 5, RTO 1000 doubling to 8000
        c.probe_on_timeout = probe;
        gbn_sender<std::string> tx(c);
        tx.sent("a", 0);
        tx.sent("b", 0);
        resent_log log;
        std::uint64_t now = 0;
        while (!tx.unreachable() && now < 100'000) {
            now = tx.next_deadline_ns();
            tx.poll(now, log.callback());
        }
        EXPECT_TRUE(tx.unreachable());
        EXPECT_EQ(now, 1000u + 2000 + 4000 + 8000 + 8000);
        EXPECT_EQ(tx.timeouts(), 5u);
        EXPECT_EQ(log.frames.size(), probe ? 4u : 8u);
    }
}

// Each frame times out an RTO after it was sent: the timer is armed by the first, and frames
// sent later are resent at their own timeouts, which do not count as timeouts of the peer nor
// double the RTO.
TEST(go_back_n, each_frame_times_out_an_rto_after_it_was_sent) {
    gbn_sender<std::string> tx(small_config());
    tx.sent("a", 0);
    tx.sent("b", 50);
    tx.sent("c", 60);
    EXPECT_EQ(tx.next_deadline_ns(), 1000u); // armed by the first frame
    resent_log log;
    EXPECT_EQ(tx.poll(1000, log.callback()), 1u);
    EXPECT_EQ(log.frames, (std::vector<std::pair<std::string, std::uint64_t>>{ { "a", 1 } }));
    EXPECT_EQ(tx.timeouts(), 1u);
    EXPECT_EQ(tx.rto_ns(), 2000u);
    EXPECT_EQ(tx.next_deadline_ns(), 2050u); // "b": sent at 50, and the RTO is now 2000
    EXPECT_EQ(tx.poll(2050, log.callback()), 1u);
    EXPECT_EQ(tx.poll(2059, log.callback()), 0u);
    EXPECT_EQ(tx.poll(2060, log.callback()), 1u);
    EXPECT_EQ(log.frames, (std::vector<std::pair<std::string, std::uint64_t>>{
                            { "a", 1 }, { "b", 2 }, { "c", 3 } }));
    EXPECT_EQ(tx.timeouts(), 1u);
    EXPECT_EQ(tx.rto_ns(), 2000u);
    EXPECT_EQ(tx.next_deadline_ns(), 3000u); // "a" again
    EXPECT_EQ(tx.poll(3000, log.callback()), 1u);
    EXPECT_EQ(tx.timeouts(), 2u);
    EXPECT_EQ(tx.retransmissions(), 4u);
}

// The selective-ack bits that say the receiver holds `seqs`, relative to `cumulative_ack`.
std::vector<std::uint64_t> held(std::uint64_t cumulative_ack, std::vector<std::uint64_t> seqs) {
    std::vector<std::uint64_t> words(4, 0);
    for (std::uint64_t seq : seqs) {
        const std::uint64_t bit = seq - cumulative_ack - 2;
        words.at(bit / 64) |= std::uint64_t{ 1 } << (bit % 64);
    }
    return words;
}

// Sends `frames`, one every 10 ns from `t0`.
void send_every_10ns(gbn_sender<std::string>& tx, std::vector<std::string> frames,
                     std::uint64_t t0 = 0) {
    for (auto& f : frames) {
        tx.sent(std::move(f), t0);
        t0 += 10;
    }
}

gbn_config selective_config() {
    gbn_config c = small_config();
    c.window_frames = 16;
    c.reorder_window_ns = 25;
    return c;
}

// Selective acks (sent by a receiver for every frame after a gap) resend each missing frame once
// three frames sent after it are held, the newest sent at least the reorder window after it;
// several gaps in one window each on its own, without touching the timer. A timeout then resends
// only the frames the receiver does not hold.
TEST(go_back_n, selective_acks_resend_each_missing_frame_once) {
    gbn_sender<std::string> tx(selective_config());
    send_every_10ns(tx, { "a", "b", "c", "d", "e", "f", "g", "h" }); // seq s sent at 10 (s - 1)
    EXPECT_EQ(tx.acked(1, 100), 1u); // "a" arrived; "b" (2) and "e" (5) are lost
    const std::uint64_t deadline = tx.next_deadline_ns();
    resent_log log;
    // Held after the gap at 2: one, then two frames, which may just have overtaken it.
    EXPECT_EQ(tx.selective_ack(1, held(1, { 3 }), 110, log.callback()), 0u);
    EXPECT_EQ(tx.selective_ack(1, held(1, { 3, 4 }), 120, log.callback()), 0u);
    // The third, sent 40 ns after 2: 2 is resent; 5 has one held frame after it, and waits.
    EXPECT_EQ(tx.selective_ack(1, held(1, { 3, 4, 6 }), 130, log.callback()), 1u);
    EXPECT_EQ(tx.selective_ack(1, held(1, { 3, 4, 6, 7 }), 140, log.callback()), 0u);
    EXPECT_EQ(tx.selective_ack(1, held(1, { 3, 4, 6, 7, 8 }), 150, log.callback()), 1u);
    std::vector<std::pair<std::string, std::uint64_t>> want{ { "b", 2 }, { "e", 5 } };
    EXPECT_EQ(log.frames, want);
    // Once each: the same news again resends nothing (a lost resend is the timeout's).
    EXPECT_EQ(tx.selective_ack(1, held(1, { 3, 4, 6, 7, 8 }), 160, log.callback()), 0u);
    EXPECT_EQ(tx.held_by_peer(), 5u);
    EXPECT_EQ(tx.next_deadline_ns(), deadline);
    EXPECT_EQ(tx.retransmissions(), 2u);
    EXPECT_EQ(tx.fast_retransmissions(), 2u);
    EXPECT_EQ(tx.timeouts(), 0u);
    // Timeouts resend the two frames not held, each an RTO after its resend, and none of the
    // five held: not the window of seven.
    log.frames.clear();
    EXPECT_EQ(tx.poll(deadline, log.callback()), 0u); // both were resent since the last progress
    EXPECT_EQ(tx.next_deadline_ns(), 1130u);
    EXPECT_EQ(tx.poll(1130, log.callback()), 1u);
    EXPECT_EQ(tx.next_deadline_ns(), 2150u); // "e": resent at 150, and the RTO is now 2000
    EXPECT_EQ(tx.poll(2150, log.callback()), 1u);
    EXPECT_EQ(log.frames, want);
    EXPECT_EQ(tx.timeouts(), 1u);
    EXPECT_EQ(tx.retransmissions(), 4u);
    EXPECT_EQ(tx.fast_retransmissions(), 2u);
    // The gap at 2 filled: the cumulative ack covers the held frames and releases them.
    EXPECT_EQ(tx.acked(4, 3000), 3u);
    EXPECT_EQ(tx.held_by_peer(), 3u);
    EXPECT_EQ(tx.acked(8, 3010), 4u);
    EXPECT_EQ(tx.held_by_peer(), 0u);
    EXPECT_EQ(tx.outstanding(), 0u);
}

// A frame overtaken by fewer than reorder_threshold others, or only by frames sent within the
// reorder window after it, is not sent twice.
TEST(go_back_n, a_frame_overtaken_on_the_way_is_not_resent) {
    gbn_sender<std::string> tx(selective_config());
    send_every_10ns(tx, { "a", "b", "c" }, 0);
    send_every_10ns(tx, { "d", "e", "f" }, 1000);
    resent_log log;
    // Two held after "a": fewer than three, however late they were sent.
    EXPECT_EQ(tx.selective_ack(0, held(0, { 5, 6 }), 1100, log.callback()), 0u);
    EXPECT_EQ(tx.acked(3, 1110), 3u); // "a" to "c" arrived late after all
    // "d" (4) is missing: three held after it now, but sent 10, 20 and 24 ns after it.
    send_every_10ns(tx, { "g" }, 1024);
    EXPECT_EQ(tx.selective_ack(3, held(3, { 5, 6, 7 }), 1120, log.callback()), 0u);
    EXPECT_TRUE(log.frames.empty());
    // A frame sent 25 ns after "d" held too: "d" is lost.
    send_every_10ns(tx, { "h" }, 1025);
    EXPECT_EQ(tx.selective_ack(3, held(3, { 5, 6, 7, 8 }), 1130, log.callback()), 1u);
    EXPECT_EQ(log.frames, (std::vector<std::pair<std::string, std::uint64_t>>{ { "d", 4 } }));
}

// A frame overtaken only by frames sent just after it (a burst) is resent by poll() if it is
// still missing a reorder window after the selective ack that showed it overtaken; one that
// arrives within the window is not.
TEST(go_back_n, a_frame_overtaken_in_a_burst_is_resent_after_the_reorder_window) {
    gbn_sender<std::string> tx(selective_config());
    for (std::uint64_t t = 0; t < 4; ++t) {
        tx.sent(std::string(1, static_cast<char>('a' + t)), t); // a burst: 1 ns apart
    }
    resent_log log;
    EXPECT_EQ(tx.selective_ack(0, held(0, { 2, 3, 4 }), 100, log.callback()), 0u);
    EXPECT_EQ(tx.next_deadline_ns(), 125u); // before the RTO at 1000
    EXPECT_EQ(tx.poll(124, log.callback()), 0u);
    EXPECT_EQ(tx.poll(125, log.callback()), 1u);
    EXPECT_EQ(log.frames, (std::vector<std::pair<std::string, std::uint64_t>>{ { "a", 1 } }));
    EXPECT_EQ(tx.fast_retransmissions(), 1u);
    EXPECT_EQ(tx.timeouts(), 0u);
    EXPECT_EQ(tx.next_deadline_ns(), 1000u);
    EXPECT_EQ(tx.acked(4, 130), 4u);

    // The next burst's first frame was only late: acked within the window, not resent.
    for (std::uint64_t t = 200; t < 204; ++t) {
        tx.sent("late", t);
    }
    EXPECT_EQ(tx.selective_ack(4, held(4, { 6, 7, 8 }), 300, log.callback()), 0u);
    EXPECT_EQ(tx.acked(8, 310), 4u);
    EXPECT_EQ(tx.poll(325, log.callback()), 0u);
    EXPECT_EQ(tx.retransmissions(), 1u);
}

// Bits for frames not outstanding, and acks beyond what was sent, change nothing.
TEST(go_back_n, selective_bits_outside_the_window_are_ignored) {
    gbn_sender<std::string> tx(selective_config());
    send_every_10ns(tx, { "a", "b", "c" });
    EXPECT_EQ(tx.acked(1, 100), 1u);
    resent_log log;
    // Seqs 4 and up were never sent; an ack of 3 or more is for frames never sent.
    EXPECT_EQ(tx.selective_ack(1, held(1, { 4, 5, 6, 7, 100, 200 }), 100, log.callback()), 0u);
    EXPECT_EQ(tx.held_by_peer(), 0u);
    const std::vector<std::uint64_t> all_ones(4, ~std::uint64_t{ 0 });
    EXPECT_EQ(tx.selective_ack(3, all_ones, 100, log.callback()), 0u);
    EXPECT_EQ(tx.selective_ack(~std::uint64_t{ 0 } - 1, all_ones, 100, log.callback()), 0u);
    EXPECT_EQ(tx.held_by_peer(), 0u);
    // A stale ack's bits still count where they name outstanding frames: 3 is held.
    EXPECT_EQ(tx.selective_ack(0, held(0, { 3 }), 100, log.callback()), 0u);
    EXPECT_EQ(tx.held_by_peer(), 1u);
    EXPECT_EQ(tx.poll(tx.next_deadline_ns(), log.callback()), 1u);
    EXPECT_EQ(log.frames, (std::vector<std::pair<std::string, std::uint64_t>>{ { "b", 2 } }));
}

TEST(go_back_n, fast_retransmission_can_be_turned_off) {
    gbn_config c = selective_config();
    c.reorder_threshold = 0;
    gbn_sender<std::string> tx(c);
    send_every_10ns(tx, { "a", "b", "c", "d", "e", "f" });
    resent_log log;
    for (int i = 0; i < 10; ++i) {
        EXPECT_EQ(tx.selective_ack(0, held(0, { 2, 3, 4, 5, 6 }), 100, log.callback()), 0u);
    }
    EXPECT_TRUE(log.frames.empty());
    // Held frames are still spared on a timeout.
    EXPECT_EQ(tx.poll(tx.next_deadline_ns(), log.callback()), 1u);
    EXPECT_EQ(log.frames, (std::vector<std::pair<std::string, std::uint64_t>>{ { "a", 1 } }));
}

TEST(go_back_n, progress_resets_the_backoff) {
    gbn_sender<std::string> tx(small_config());
    tx.sent("a", 0);
    tx.sent("b", 0);
    resent_log log;
    EXPECT_EQ(tx.poll(1000, log.callback()), 2u);
    EXPECT_EQ(tx.poll(3000, log.callback()), 2u);
    EXPECT_EQ(tx.consecutive_timeouts(), 2u);
    EXPECT_EQ(tx.rto_ns(), 4000u);
    EXPECT_EQ(tx.acked(1, 3500), 1u);
    EXPECT_EQ(tx.consecutive_timeouts(), 0u);
    EXPECT_EQ(tx.rto_ns(), 1000u);
    // The timer restarts from the ack for what is left.
    EXPECT_EQ(tx.next_deadline_ns(), 4500u);
    log.frames.clear();
    EXPECT_EQ(tx.poll(4500, log.callback()), 1u);
    ASSERT_EQ(log.frames.size(), 1u);
    EXPECT_EQ(log.frames[0].second, 2u);
}

// The RTO after progress follows the measured round trip (SRTT + 4 RTTVAR, RFC 6298), never
// below rto_initial nor above rto_max; frames sent again, or held at the receiver behind a gap,
// give no sample (Karn).
TEST(go_back_n, the_rto_follows_the_measured_round_trip) {
    gbn_config c = small_config(); // rto 1000 .. 8000
    c.window_frames = 16;
    gbn_sender<std::string> tx(c);
    tx.sent("a", 0);
    EXPECT_EQ(tx.acked(1, 100), 1u); // 100 ns: SRTT 100, RTTVAR 50, 300 is below the floor
    EXPECT_EQ(tx.srtt_ns(), 100u);
    EXPECT_EQ(tx.rttvar_ns(), 50u);
    EXPECT_EQ(tx.rto_ns(), 1000u);
    tx.sent("b", 1000);
    EXPECT_EQ(tx.acked(2, 3000),
              1u); // 2000 ns: SRTT 100 + (2000 - 100) / 8, RTTVAR 50 * 3/4 + 1900 / 4
    EXPECT_EQ(tx.srtt_ns(), 100u - 100u / 8 + 2000u / 8);
    EXPECT_EQ(tx.rttvar_ns(), 50u - 50u / 4 + 1900u / 4);
    EXPECT_EQ(tx.rto_ns(), tx.srtt_ns() + 4 * tx.rttvar_ns());
    EXPECT_GT(tx.rto_ns(), 1000u);
    // Capped at rto_max.
    for (std::uint64_t i = 0; i < 5; ++i) {
        tx.sent("slow", 10'000 * (i + 1));
        tx.acked(3 + i, 10'000 * (i + 1) + 50'000);
    }
    EXPECT_EQ(tx.rto_ns(), 8000u);

    // Resent, or held behind a gap: no sample.
    gbn_sender<std::string> fresh(c);
    fresh.sent("a", 0);
    resent_log log;
    EXPECT_EQ(fresh.poll(1000, log.callback()), 1u);
    EXPECT_EQ(fresh.acked(1, 1010), 1u);
    EXPECT_EQ(fresh.srtt_ns(), 0u);
    fresh.sent("b", 2000);
    fresh.sent("c", 2000);
    EXPECT_EQ(fresh.selective_ack(1, held(1, { 3 }), 2100, log.callback()), 0u);
    EXPECT_EQ(fresh.acked(3, 9000), 2u); // "c" waited for "b"
    EXPECT_EQ(fresh.srtt_ns(), 0u);
    EXPECT_EQ(fresh.rto_ns(), 1000u);

    // Off: the RTO returns to rto_initial whatever the round trip.
    c.rto_from_rtt = false;
    gbn_sender<std::string> fixed(c);
    fixed.sent("a", 0);
    EXPECT_EQ(fixed.acked(1, 5000), 1u);
    EXPECT_EQ(fixed.rto_ns(), 1000u);
}

TEST(go_back_n, unreachable_after_max_timeouts_without_progress) {
    gbn_config c = small_config(); // max_timeouts 5
    gbn_sender<std::string> tx(c);
    for (int i = 0; i < 4; ++i) {
        tx.sent("x", 0);
    }
    resent_log log;
    std::uint64_t expected_at = 0;
    std::uint64_t rto = c.rto_initial_ns;
    for (std::uint32_t i = 0; i < c.max_timeouts; ++i) {
        expected_at += rto;
        rto = std::min(rto * 2, c.rto_max_ns);
    }
    // 1000 + 2000 + 4000 + 8000 + 8000: the 5th timeout gives up instead of resending.
    EXPECT_EQ(expected_at, 23'000u);
    std::uint64_t now = 0;
    while (!tx.unreachable()) {
        ASSERT_LT(now, 1'000'000u);
        now += 100;
        tx.poll(now, log.callback());
        EXPECT_EQ(tx.outstanding(), 4u); // nothing more is held while it retries
        EXPECT_FALSE(tx.window_open());
    }
    EXPECT_EQ(now, expected_at);
    EXPECT_EQ(tx.timeouts(), 5u);
    EXPECT_EQ(log.frames.size(), 16u); // 4 retries of 4 frames
    EXPECT_EQ(tx.next_deadline_ns(), gbn_no_deadline);
    EXPECT_EQ(tx.poll(now + 1'000'000, log.callback()), 0u);
    // A late ack releases frames but does not revive the peer.
    EXPECT_EQ(tx.acked(4, now + 1), 4u);
    EXPECT_TRUE(tx.unreachable());
    EXPECT_EQ(tx.consecutive_timeouts(), 5u);
}

TEST(go_back_n, stale_and_future_acks) {
    gbn_sender<std::string> tx(small_config());
    EXPECT_EQ(tx.acked(1, 0), 0u); // nothing sent: an ack for 1 is from the future
    EXPECT_EQ(tx.bad_acks(), 1u);
    EXPECT_EQ(tx.acked(0, 0), 0u); // acknowledges nothing, harmlessly
    EXPECT_EQ(tx.stale_acks(), 1u);
    tx.sent("a", 0);
    tx.sent("b", 0);
    tx.sent("c", 0);
    EXPECT_EQ(tx.acked(4, 10), 0u);
    EXPECT_EQ(tx.acked(~std::uint64_t{ 0 }, 10), 0u);
    EXPECT_EQ(tx.bad_acks(), 3u);
    EXPECT_EQ(tx.outstanding(), 3u);
    EXPECT_EQ(tx.acked(2, 10), 2u);
    EXPECT_EQ(tx.acked(1, 11), 0u); // a reordered older ack
    EXPECT_EQ(tx.acked(2, 12), 0u); // a duplicated ack
    EXPECT_EQ(tx.stale_acks(), 3u);
    EXPECT_EQ(tx.outstanding(), 1u);
    EXPECT_EQ(tx.acked(3, 13), 1u);
    EXPECT_EQ(tx.bad_acks(), 3u);
}

TEST(go_back_n, held_frames_are_released_on_ack) {
    // A lifetime-tracking frame: what the DPDK back end's mbuf handle will be.
    struct tracked {
        int* live;
        explicit tracked(int* l)
          : live(l) {
            ++*live;
        }
        tracked(tracked&& o) noexcept
          : live(std::exchange(o.live, nullptr)) {}
        tracked& operator=(tracked&&) = delete;
        ~tracked() {
            if (live != nullptr) {
                --*live;
            }
        }
    };
    int live = 0;
    {
        gbn_sender<tracked> tx(small_config());
        for (int i = 0; i < 4; ++i) {
            tx.sent(tracked(&live), 0);
        }
        EXPECT_EQ(live, 4);
        tx.acked(3, 1);
        EXPECT_EQ(live, 1);
        tx.sent(tracked(&live), 2);
        EXPECT_EQ(live, 2);
    }
    EXPECT_EQ(live, 0);
}

TEST(go_back_n, duplicate_and_out_of_order_verdicts_owe_an_ack_at_once) {
    gbn_receiver rx(small_config()); // ack_delay 100
    EXPECT_FALSE(rx.ack_due(0));
    EXPECT_EQ(rx.next_ack_deadline_ns(), gbn_no_deadline);
    EXPECT_EQ(rx.received(1, 0), verdict::deliver);
    EXPECT_FALSE(rx.ack_due(0));
    rx.ack_sent();
    EXPECT_EQ(rx.received(1, 10), verdict::duplicate);
    EXPECT_TRUE(rx.ack_due(10));
    EXPECT_EQ(rx.next_ack_deadline_ns(), 0u);
    rx.ack_sent();
    EXPECT_FALSE(rx.ack_due(10));
    EXPECT_EQ(rx.received(3, 20), verdict::out_of_order);
    EXPECT_TRUE(rx.ack_due(20));
    EXPECT_EQ(rx.cumulative_ack(), 1u);
    rx.ack_sent();
    EXPECT_EQ(rx.received(0, 30), verdict::duplicate); // seq 0 is never sent
    EXPECT_EQ(rx.received(2, 40), verdict::deliver);
    EXPECT_EQ(rx.received(3, 40), verdict::deliver);
    EXPECT_EQ(rx.cumulative_ack(), 3u);
    EXPECT_EQ(rx.delivered(), 3u);
    EXPECT_EQ(rx.duplicates(), 2u);
    EXPECT_EQ(rx.out_of_order(), 1u);
}

TEST(go_back_n, delayed_ack_after_ack_delay) {
    gbn_config c = small_config();
    c.window_frames = 64;
    gbn_receiver rx(c);
    EXPECT_EQ(rx.received(1, 1000), verdict::deliver);
    EXPECT_EQ(rx.next_ack_deadline_ns(), 1100u);
    EXPECT_EQ(rx.received(2, 1050), verdict::deliver); // covered by the same ack, same deadline
    EXPECT_FALSE(rx.ack_due(1099));
    EXPECT_TRUE(rx.ack_due(1100));
    rx.ack_sent();
    EXPECT_FALSE(rx.ack_due(5000));
    EXPECT_EQ(rx.received(3, 6000), verdict::deliver);
    EXPECT_FALSE(rx.ack_due(6099));
    EXPECT_TRUE(rx.ack_due(6100));
}

TEST(go_back_n, half_a_window_delivered_owes_an_ack_at_once) {
    gbn_config c = small_config();
    c.window_frames = 8;
    gbn_receiver rx(c);
    for (std::uint64_t seq = 1; seq <= 3; ++seq) {
        rx.received(seq, 0);
        EXPECT_FALSE(rx.ack_due(0));
    }
    rx.received(4, 0);
    EXPECT_TRUE(rx.ack_due(0));
}

// --- A whole link over fault injectors ---------------------------------------------------------

std::span<const std::byte> as_span(std::string_view s) {
    return std::as_bytes(std::span(s.data(), s.size()));
}

// One datagram that must hold exactly one well-formed frame: what a UDP back end gets. A fresh
// decoder per datagram, since one bad datagram says nothing about the next.
struct datagram_frame {
    data_frame_type type;
    std::uint64_t seq;
    std::uint32_t count;
    std::string body;
};
std::optional<datagram_frame> decode_datagram(std::string_view datagram) {
    data_frame f;
    if (decode_data_datagram(as_span(datagram), f) != data_decode_error::none) {
        return std::nullopt;
    }
    return datagram_frame{ f.type, f.seq, f.count,
                           std::string(reinterpret_cast<const char*>(f.body.data()),
                                       f.body.size()) };
}

// In these tests an ack travels as a CREDIT frame whose seq field is the cumulative ack: the
// codec's checksum covers it, and CREDIT has the bodiless shape an ack needs.
std::string ack_frame(std::uint64_t cumulative_ack) {
    std::string out;
    append_data_frame(out, data_frame_type::credit, cumulative_ack, 1);
    return out;
}

struct link_result {
    std::uint64_t finished_at_ns = 0;
    std::uint64_t delivered_messages = 0;
    std::uint64_t corrupt_data = 0;
    std::uint64_t corrupt_acks = 0;
    std::size_t max_outstanding = 0;
    std::size_t max_link_held = 0;
    bool unreachable = false;
};

// A sends `messages` u64 messages (0, 1, 2, ...) to B, up to `per_frame` in a DATA frame and at
// most `burst` frames per clock step; B checks each arrives exactly once and in order and acks
// cumulatively. Runs until everything is acknowledged, A gives up, or `limit_ns` passes.
link_result run_link(const gbn_config& gbn, fault_injector& a_to_b, fault_injector& b_to_a,
                     std::uint64_t messages, std::uint32_t per_frame, std::uint64_t limit_ns,
                     bool b_acks = true) {
    constexpr std::uint64_t step_ns = 5'000;
    constexpr int burst = 16;
    gbn_sender<std::string> a(gbn);
    gbn_receiver b(gbn);
    link_result r;
    std::uint64_t next_message = 0; // the next one A sends
    std::uint64_t expected = 0;     // the next one B must receive
    std::string body;
    for (std::uint64_t now = 0; now <= limit_ns; now += step_ns) {
        // A: acks first, then timeouts, then new frames.
        b_to_a.deliver_due(now, [&](std::string&& datagram) {
            auto f = decode_datagram(datagram);
            if (!f || f->type != data_frame_type::credit) {
                ++r.corrupt_acks;
                return;
            }
            a.acked(f->seq, now);
        });
        a.poll(now, [&](const std::string& frame, std::uint64_t) { a_to_b.submit(frame, now); });
        if (a.unreachable()) {
            r.unreachable = true;
            r.finished_at_ns = now;
            break;
        }
        for (int i = 0; i < burst && a.window_open() && next_message < messages; ++i) {
            auto count = static_cast<std::uint32_t>(
              std::min<std::uint64_t>(per_frame, messages - next_message));
            body.clear();
            for (std::uint32_t m = 0; m < count; ++m) {
                be::append<std::uint64_t>(body, next_message++);
            }
            std::string frame;
            append_data_frame(frame, data_frame_type::data, a.next_seq(), count, as_span(body));
            a.sent(frame, now);
            a_to_b.submit(std::move(frame), now);
        }
        r.max_outstanding = std::max(r.max_outstanding, a.outstanding());
        EXPECT_LE(a.outstanding(), gbn.window_frames);

        // B: decode, check, deliver, ack.
        a_to_b.deliver_due(now, [&](std::string&& datagram) {
            auto f = decode_datagram(datagram);
            if (!f || f->type != data_frame_type::data) {
                ++r.corrupt_data;
                return;
            }
            if (b.received(f->seq, now) != verdict::deliver) {
                return;
            }
            ASSERT_EQ(f->body.size(), std::size_t{ f->count } * 8);
            for (std::uint32_t m = 0; m < f->count; ++m) {
                std::uint64_t v = be::read<std::uint64_t>(
                  reinterpret_cast<const std::byte*>(f->body.data()) + 8 * m);
                ASSERT_EQ(v, expected) << "message out of order, lost or duplicated";
                ++expected;
                ++r.delivered_messages;
            }
        });
        if (b_acks && b.ack_due(now)) {
            b_to_a.submit(ack_frame(b.cumulative_ack()), now);
            b.ack_sent();
        }
        r.max_link_held = std::max(r.max_link_held, a_to_b.held() + b_to_a.held());
        if (next_message == messages && a.outstanding() == 0) {
            if (r.finished_at_ns == 0) {
                r.finished_at_ns = now;
            }
            // Run on until the links are empty, so that every corrupted frame is seen.
            if (a_to_b.held() == 0 && b_to_a.held() == 0) {
                break;
            }
        }
    }
    return r;
}

TEST(go_back_n, simulated_lossy_link_delivers_every_message_once_in_order) {
    std::uint64_t seed = test_seed();
    SCOPED_TRACE("RINGTAIL_TEST_SEED=" + std::to_string(seed));
    std::printf("RINGTAIL_TEST_SEED=%llu\n", static_cast<unsigned long long>(seed));
    fault_config faults;
    faults.loss = 0.05;
    faults.duplicate = 0.01;
    faults.reorder = 0.10;
    faults.corrupt = 0.001;
    faults.delay_ns = 20'000;
    faults.jitter_ns = 10'000;
    faults.seed = seed;
    fault_injector a_to_b(faults);
    faults.seed = seed ^ 0x9e3779b97f4a7c15ULL;
    fault_injector b_to_a(faults);
    gbn_config gbn; // the defaults: window 256, RTO 2 ms .. 200 ms, 8 timeouts
    constexpr std::uint64_t messages = 200'000;
    // Go-back-N pays a whole RTO for every frame lost or reordered (about 15 % of them here), so
    // this takes about 29 simulated seconds (36, and 1.6 times the frames, without the probe on
    // each timeout); a limit of 60 catches a protocol that stalls.
    constexpr std::uint64_t limit_ns = 60'000'000'000;
    link_result r = run_link(gbn, a_to_b, b_to_a, messages, 8, limit_ns);

    std::printf("finished at %.3f s simulated; data frames submitted %llu, lost %llu, corrupted "
                "%llu (caught %llu), duplicated %llu, reordered %llu; max outstanding %zu\n",
                static_cast<double>(r.finished_at_ns) / 1e9,
                static_cast<unsigned long long>(a_to_b.submitted()),
                static_cast<unsigned long long>(a_to_b.dropped()),
                static_cast<unsigned long long>(a_to_b.corrupted()),
                static_cast<unsigned long long>(r.corrupt_data),
                static_cast<unsigned long long>(a_to_b.duplicated()),
                static_cast<unsigned long long>(a_to_b.reordered()), r.max_outstanding);
    EXPECT_FALSE(r.unreachable);
    EXPECT_GT(r.finished_at_ns, 0u) << "not finished within the simulated time limit";
    EXPECT_EQ(r.delivered_messages, messages);
    // Every corrupted frame failed its checks (CRC-32C catches any one-bit error), and was
    // counted: on each side, exactly as many as the injector corrupted.
    EXPECT_GT(a_to_b.corrupted(), 0u);
    EXPECT_EQ(r.corrupt_data, a_to_b.corrupted());
    EXPECT_EQ(r.corrupt_acks, b_to_a.corrupted());
    EXPECT_GT(a_to_b.dropped(), 0u);
    EXPECT_GT(a_to_b.reordered(), 0u);
    EXPECT_GT(a_to_b.duplicated(), 0u);
    EXPECT_LE(r.max_outstanding, gbn.window_frames);
    EXPECT_EQ(a_to_b.overflowed(), 0u);
    EXPECT_EQ(b_to_a.overflowed(), 0u);
    // What is in flight on the links is bounded by the window and its retransmissions.
    EXPECT_LE(r.max_link_held, 8u * gbn.window_frames);
}

TEST(go_back_n, peer_that_stops_acking_is_unreachable_in_bounded_time) {
    fault_config faults;
    faults.delay_ns = 20'000;
    fault_injector a_to_b(faults);
    fault_injector b_to_a(faults);
    gbn_config gbn;
    // Sum of the RTOs before giving up: 2, 4, ..., 128, 200 ms.
    std::uint64_t expected_ns = 0;
    std::uint64_t rto = gbn.rto_initial_ns;
    for (std::uint32_t i = 0; i < gbn.max_timeouts; ++i) {
        expected_ns += rto;
        rto = std::min(rto * 2, gbn.rto_max_ns);
    }
    EXPECT_EQ(expected_ns, 454'000'000u);
    link_result r = run_link(gbn, a_to_b, b_to_a, 1'000'000, 4, 10'000'000'000, false);
    EXPECT_TRUE(r.unreachable);
    // The first frame went out at 0; A notices on the first step at or after the last deadline.
    EXPECT_GE(r.finished_at_ns, expected_ns);
    EXPECT_LT(r.finished_at_ns, expected_ns + 5'000);
    EXPECT_EQ(r.max_outstanding, gbn.window_frames);
    // Only the first window was ever sent: the retries added nothing new. Each timeout but the
    // last, which gives up, resent one frame (a probe).
    EXPECT_EQ(a_to_b.submitted(), gbn.window_frames + std::uint64_t{ gbn.max_timeouts } - 1);
}

} // namespace
} // namespace ringtail::net
