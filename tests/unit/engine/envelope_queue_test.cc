// Tests of detail::envelope_queue: order and contents across compactions, `from` kept in step,
// and storage that stays within about twice what waits when the queue never empties.
#include "engine/detail/envelope_queue.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>

namespace ringtail::detail {
namespace {

envelope numbered(std::uint64_t n) {
    envelope e;
    e.ingest_ns = n;
    e.partition = static_cast<std::uint32_t>(n % 1024);
    e.value = value_box(n);
    return e;
}

// A producer that always outruns its consumer: every round appends `in` and takes `out` < `in`
// from the front until `waiting` envelopes wait, then appends and takes the same number, so the
// queue never empties. Checks every envelope taken, in order, and returns the largest capacity
// seen.
std::size_t run_never_empty(envelope_queue& q, std::size_t in, std::size_t out, std::size_t waiting,
                            std::size_t rounds, bool with_from) {
    std::uint64_t next_in = 0;
    std::uint64_t next_out = 0;
    std::size_t most_capacity = 0;
    for (std::size_t r = 0; r < rounds; ++r) {
        const std::size_t take = q.waiting() >= waiting ? in : out;
        for (std::size_t i = 0; i < in; ++i) {
            q.items.push_back(numbered(next_in));
            if (with_from) {
                q.from.push_back(static_cast<std::uint32_t>(next_in % 7));
            }
            ++next_in;
        }
        for (std::size_t i = 0; i < take; ++i) {
            const envelope& e = q.items[q.head + i];
            EXPECT_EQ(e.ingest_ns, next_out);
            EXPECT_EQ(e.value.get<std::uint64_t>(), next_out);
            if (with_from) {
                EXPECT_EQ(q.from[q.head + i], next_out % 7);
            }
            ++next_out;
        }
        q.pop(take);
        EXPECT_FALSE(q.empty());
        if (with_from) {
            EXPECT_EQ(q.from.size(), q.items.size());
        }
        most_capacity = std::max(most_capacity, q.items.capacity());
    }
    EXPECT_EQ(q.waiting(), next_in - next_out);
    return most_capacity;
}

TEST(envelope_queue, a_queue_that_never_empties_keeps_its_storage_bounded) {
    envelope_queue q;
    // 100 000 rounds of 64 in: 6.4 M envelopes pass through; about 20 000 wait at any time.
    const std::size_t capacity = run_never_empty(q, 64, 48, 20'000, 100'000, false);
    // Without compaction the vector would hold every envelope that ever passed: 6.4 M.
    EXPECT_LE(capacity, 4 * (20'000 + 64)) << capacity;
    EXPECT_GE(q.waiting(), 20'000u);
}

TEST(envelope_queue, from_stays_in_step_through_compactions) {
    envelope_queue q;
    const std::size_t capacity = run_never_empty(q, 32, 16, 3'000, 20'000, true);
    EXPECT_LE(capacity, 4 * (3'000 + 32)) << capacity;
    EXPECT_LE(q.from.capacity(), 4 * (3'000 + 32)) << q.from.capacity();
}

TEST(envelope_queue, taking_everything_empties_it) {
    envelope_queue q;
    for (std::uint64_t i = 0; i < 10; ++i) {
        q.items.push_back(numbered(i));
        q.from.push_back(1);
    }
    q.pop(4);
    EXPECT_EQ(q.head, 4u);
    EXPECT_EQ(q.waiting(), 6u);
    EXPECT_EQ(q.items[q.head].ingest_ns, 4u);
    q.pop(6);
    EXPECT_TRUE(q.empty());
    EXPECT_EQ(q.head, 0u);
    EXPECT_TRUE(q.items.empty());
    EXPECT_TRUE(q.from.empty());
}

TEST(envelope_queue, a_short_taken_front_waits_for_the_queue_to_empty) {
    // Below compact_min taken, nothing moves: the common case, a burst or two behind, costs no
    // copy of what waits.
    envelope_queue q;
    for (std::uint64_t i = 0; i < 100; ++i) {
        q.items.push_back(numbered(i));
    }
    q.pop(90);
    EXPECT_EQ(q.head, 90u);
    EXPECT_EQ(q.items.size(), 100u);
}

} // namespace
} // namespace ringtail::detail
