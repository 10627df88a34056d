// Single-threaded functional tests of spsc_ring: capacity, full/empty edges, burst counts, order,
// wrap-around, and exact element lifetimes (no leak, no double destroy, no copy).
#include "engine/spsc_ring.h"

#include <gtest/gtest.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <set>
#include <vector>

namespace ringtail {
namespace {

// Counts every construction, move and destruction and remembers which addresses hold a live
// object, so a destroy of a dead (or never-constructed) object is caught exactly, without reading
// its memory.
struct tracked {
    static inline std::set<const tracked*> live;
    static inline std::size_t constructions = 0; // all kinds, moves and copies included
    static inline std::size_t moves = 0;         // move constructions and move assignments
    static inline std::size_t copies = 0;
    static inline std::size_t destructions = 0;
    static inline std::size_t bad_destroys = 0; // destroy of an address not holding a live object
    static inline std::size_t bad_uses = 0;     // move from / assign to a dead object

    static void reset() {
        live.clear();
        constructions = moves = copies = destructions = bad_destroys = bad_uses = 0;
    }

    static constexpr std::int64_t moved_from = -1;

    std::int64_t value = 0;

    tracked() noexcept { born(); }
    explicit tracked(std::int64_t v) noexcept
      : value(v) {
        born();
    }
    tracked(tracked&& other) noexcept
      : value(other.value) {
        check_alive(&other);
        other.value = moved_from;
        ++moves;
        born();
    }
    tracked(const tracked& other) noexcept
      : value(other.value) {
        check_alive(&other);
        ++copies;
        born();
    }
    tracked& operator=(tracked&& other) noexcept {
        check_alive(this);
        check_alive(&other);
        value = other.value;
        other.value = moved_from;
        ++moves;
        return *this;
    }
    tracked& operator=(const tracked& other) noexcept {
        check_alive(this);
        check_alive(&other);
        value = other.value;
        ++copies;
        return *this;
    }
    ~tracked() {
        ++destructions;
        if (live.erase(this) != 1) {
            ++bad_destroys;
        }
    }

private:
    void born() {
        ++constructions;
        live.insert(this);
    }
    static void check_alive(const tracked* t) {
        if (live.count(t) == 0) {
            ++bad_uses;
        }
    }
};

class SpscRingLifetime : public ::testing::Test {
protected:
    void SetUp() override { tracked::reset(); }
    void TearDown() override {
        EXPECT_TRUE(tracked::live.empty()) << tracked::live.size() << " objects leaked";
        EXPECT_EQ(tracked::constructions, tracked::destructions);
        EXPECT_EQ(tracked::bad_destroys, 0U);
        EXPECT_EQ(tracked::bad_uses, 0U);
        EXPECT_EQ(tracked::copies, 0U) << "the ring must move, never copy";
    }
};

TEST(SpscRing, CapacityRoundsUpToPowerOfTwo) {
    const std::array<std::pair<std::size_t, std::size_t>, 9> cases{ {
      { 0, 2 },
      { 1, 2 },
      { 2, 2 },
      { 3, 4 },
      { 4, 4 },
      { 5, 8 },
      { 1000, 1024 },
      { 1024, 1024 },
      { 1025, 2048 },
    } };
    for (const auto& [asked, expected] : cases) {
        spsc_ring<std::uint64_t> ring(asked);
        EXPECT_EQ(ring.capacity(), expected) << "asked for " << asked;
    }
}

TEST(SpscRing, NewRingIsEmpty) {
    spsc_ring<int> ring(8);
    EXPECT_TRUE(ring.empty_approx());
    EXPECT_TRUE(ring.empty_sc());
    EXPECT_EQ(ring.size_approx(), 0U);
    int out = 7;
    EXPECT_FALSE(ring.pop_sc(out));
    EXPECT_EQ(out, 7) << "a failed pop leaves the output alone";
    std::array<int, 4> outs{};
    EXPECT_EQ(ring.pop_burst_sc(outs.data(), outs.size()), 0U);
    EXPECT_EQ(ring.consume_burst_sc(4, [](int&&) { ADD_FAILURE() << "visited an empty ring"; }),
              0U);
}

TEST(SpscRing, PushUntilFullReturnsFalse) {
    spsc_ring<int> ring(8);
    for (int i = 0; i < 8; ++i) {
        EXPECT_TRUE(ring.push_sp(int{ i })) << i;
        EXPECT_EQ(ring.size_approx(), static_cast<std::size_t>(i + 1));
    }
    EXPECT_FALSE(ring.push_sp(100));
    EXPECT_FALSE(ring.push_sp(101));
    EXPECT_EQ(ring.size_approx(), 8U);

    int out = -1;
    ASSERT_TRUE(ring.pop_sc(out));
    EXPECT_EQ(out, 0);
    EXPECT_TRUE(ring.push_sp(8)) << "one slot was freed";
    EXPECT_FALSE(ring.push_sp(9));

    for (int expected = 1; expected <= 8; ++expected) {
        ASSERT_TRUE(ring.pop_sc(out));
        EXPECT_EQ(out, expected);
    }
    EXPECT_FALSE(ring.pop_sc(out));
    EXPECT_TRUE(ring.empty_sc());
}

TEST(SpscRing, FailedPushLeavesValueAlone) {
    spsc_ring<std::unique_ptr<int>> ring(2);
    EXPECT_TRUE(ring.push_sp(std::make_unique<int>(1)));
    EXPECT_TRUE(ring.push_sp(std::make_unique<int>(2)));
    auto kept = std::make_unique<int>(3);
    EXPECT_FALSE(ring.push_sp(std::move(kept)));
    ASSERT_NE(kept, nullptr) << "push_sp on a full ring must not move from its argument";
    EXPECT_EQ(*kept, 3);
}

TEST(SpscRing, PushBurstPartialFillReturnsCount) {
    spsc_ring<std::unique_ptr<int>> ring(8);
    for (int i = 0; i < 5; ++i) {
        ASSERT_TRUE(ring.push_sp(std::make_unique<int>(i)));
    }
    std::vector<std::unique_ptr<int>> values;
    for (int i = 5; i < 15; ++i) {
        values.push_back(std::make_unique<int>(i));
    }
    EXPECT_EQ(ring.push_burst_sp(values.data(), values.size()), 3U);
    for (std::size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(values[i], nullptr) << "moved into the ring: " << i;
    }
    for (std::size_t i = 3; i < values.size(); ++i) {
        ASSERT_NE(values[i], nullptr) << "did not fit, still the caller's: " << i;
        EXPECT_EQ(*values[i], static_cast<int>(i) + 5);
    }
    EXPECT_EQ(ring.push_burst_sp(values.data() + 3, values.size() - 3), 0U) << "full";
    EXPECT_EQ(ring.push_burst_sp(values.data(), 0), 0U) << "empty burst";

    std::array<std::unique_ptr<int>, 16> out;
    EXPECT_EQ(ring.pop_burst_sc(out.data(), out.size()), 8U);
    for (int i = 0; i < 8; ++i) {
        ASSERT_NE(out[i], nullptr);
        EXPECT_EQ(*out[i], i);
    }
}

TEST(SpscRing, PopBurstTakesWhatIsThereInOrder) {
    spsc_ring<std::uint64_t> ring(16);
    std::array<std::uint64_t, 10> in{};
    for (std::size_t i = 0; i < in.size(); ++i) {
        in[i] = 100 + i;
    }
    ASSERT_EQ(ring.push_burst_sp(in.data(), in.size()), in.size());

    std::array<std::uint64_t, 4> out{};
    EXPECT_EQ(ring.pop_burst_sc(out.data(), out.size()), 4U);
    EXPECT_EQ(out, (std::array<std::uint64_t, 4>{ 100, 101, 102, 103 }));
    EXPECT_EQ(ring.pop_burst_sc(out.data(), 0), 0U);
    EXPECT_EQ(ring.size_approx(), 6U);

    std::array<std::uint64_t, 32> rest{};
    EXPECT_EQ(ring.pop_burst_sc(rest.data(), rest.size()), 6U) << "partial: only 6 left";
    for (std::size_t i = 0; i < 6; ++i) {
        EXPECT_EQ(rest[i], 104 + i);
    }
    EXPECT_TRUE(ring.empty_sc());
}

TEST(SpscRing, ConsumeBurstVisitsInOrderThenFreesSlots) {
    spsc_ring<std::uint64_t> ring(8);
    for (std::uint64_t i = 0; i < 8; ++i) {
        ASSERT_TRUE(ring.push_sp(std::uint64_t{ i }));
    }
    std::vector<std::uint64_t> seen;
    EXPECT_EQ(ring.consume_burst_sc(3, [&](std::uint64_t&& v) { seen.push_back(v); }), 3U);
    EXPECT_EQ(seen, (std::vector<std::uint64_t>{ 0, 1, 2 }));
    EXPECT_EQ(ring.consume_burst_sc(0, [&](std::uint64_t&& v) { seen.push_back(v); }), 0U);
    EXPECT_EQ(ring.size_approx(), 5U);

    // The three freed slots are usable again, behind the five still queued.
    std::array<std::uint64_t, 4> more{ 8, 9, 10, 11 };
    EXPECT_EQ(ring.push_burst_sp(more.data(), more.size()), 3U);

    EXPECT_EQ(ring.consume_burst_sc(100, [&](std::uint64_t&& v) { seen.push_back(v); }), 8U);
    EXPECT_EQ(seen, (std::vector<std::uint64_t>{ 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }));
    EXPECT_TRUE(ring.empty_sc());
}

TEST(SpscRing, WrapsAroundManyTimes) {
    // Capacity 4 with bursts of 1..7 on both sides: the indices wrap the slot array tens of
    // thousands of times, at every offset, through full and empty.
    spsc_ring<std::uint64_t> ring(4);
    std::uint64_t next_in = 0;
    std::uint64_t next_out = 0;
    std::array<std::uint64_t, 7> buf{};
    for (std::size_t round = 0; round < 100'000; ++round) {
        const std::size_t push_n = 1 + round % 7;
        for (std::size_t i = 0; i < push_n; ++i) {
            buf[i] = next_in + i;
        }
        const std::size_t pushed = ring.push_burst_sp(buf.data(), push_n);
        ASSERT_LE(pushed, push_n);
        next_in += pushed;
        ASSERT_LE(ring.size_approx(), ring.capacity());

        const std::size_t pop_n = 1 + (round * 3) % 5;
        std::size_t popped = 0;
        if (round % 2 == 0) {
            popped = ring.pop_burst_sc(buf.data(), pop_n);
            for (std::size_t i = 0; i < popped; ++i) {
                ASSERT_EQ(buf[i], next_out + i) << "round " << round;
            }
        } else {
            popped = ring.consume_burst_sc(pop_n, [&](std::uint64_t&& v) {
                ASSERT_EQ(v, next_out + popped) << "round " << round;
                ++popped;
            });
        }
        next_out += popped;
        ASSERT_EQ(ring.size_approx(), next_in - next_out);
    }
    EXPECT_GT(next_out, 100'000U) << "the ring must have wrapped many times";
}

TEST_F(SpscRingLifetime, PushPopConsumeMovesWithoutLeakOrDoubleDestroy) {
    {
        spsc_ring<tracked> ring(8);
        EXPECT_TRUE(tracked::live.empty()) << "an empty ring constructs no elements";

        EXPECT_TRUE(ring.push_sp(tracked{ 1 }));
        std::array<tracked, 5> burst{ tracked{ 2 }, tracked{ 3 }, tracked{ 4 }, tracked{ 5 },
                                      tracked{ 6 } };
        EXPECT_EQ(ring.push_burst_sp(burst.data(), burst.size()), 5U);
        for (const auto& t : burst) {
            EXPECT_EQ(t.value, tracked::moved_from);
        }
        EXPECT_EQ(tracked::live.size(), burst.size() + 6) << "6 in the ring, 5 moved-from";

        tracked one;
        ASSERT_TRUE(ring.pop_sc(one));
        EXPECT_EQ(one.value, 1);

        std::array<tracked, 2> two;
        ASSERT_EQ(ring.pop_burst_sc(two.data(), two.size()), 2U);
        EXPECT_EQ(two[0].value, 2);
        EXPECT_EQ(two[1].value, 3);

        std::vector<std::int64_t> seen;
        ASSERT_EQ(ring.consume_burst_sc(2, [&](tracked&& t) { seen.push_back(t.value); }), 2U);
        EXPECT_EQ(seen, (std::vector<std::int64_t>{ 4, 5 }));
        EXPECT_EQ(tracked::live.size(), burst.size() + 3 + 1) << "only element 6 left in the ring";
    }
    // TearDown checks that the ring destroyed element 6 exactly once and everything else balanced.
}

TEST_F(SpscRingLifetime, RingDestroysWhatIsLeftInside) {
    const std::size_t before = tracked::destructions;
    {
        spsc_ring<tracked> ring(4);
        // Fill, drain half, refill so that the leftovers straddle the end of the slot array.
        for (int i = 0; i < 4; ++i) {
            ASSERT_TRUE(ring.push_sp(tracked{ i }));
        }
        tracked out;
        ASSERT_TRUE(ring.pop_sc(out));
        ASSERT_TRUE(ring.pop_sc(out));
        ASSERT_TRUE(ring.push_sp(tracked{ 4 }));
        ASSERT_TRUE(ring.push_sp(tracked{ 5 }));
        EXPECT_EQ(ring.size_approx(), 4U);
        EXPECT_EQ(tracked::live.size(), 5U) << "4 in the ring plus `out`";
    }
    EXPECT_TRUE(tracked::live.empty());
    EXPECT_GE(tracked::destructions - before, 5U);
}

TEST_F(SpscRingLifetime, FullRingDestructionAndPartialBurstOwnership) {
    std::array<tracked, 6> values{ tracked{ 0 }, tracked{ 1 }, tracked{ 2 },
                                   tracked{ 3 }, tracked{ 4 }, tracked{ 5 } };
    {
        spsc_ring<tracked> ring(4);
        EXPECT_EQ(ring.push_burst_sp(values.data(), values.size()), 4U);
        EXPECT_EQ(values[3].value, tracked::moved_from);
        EXPECT_EQ(values[4].value, 4) << "the caller keeps what did not fit";
        EXPECT_EQ(values[5].value, 5);
    }
    EXPECT_EQ(tracked::live.size(), values.size()) << "only the caller's array is alive";
}

TEST(SpscRing, MoveOnlyElements) {
    spsc_ring<std::unique_ptr<std::uint64_t>> ring(4);
    std::uint64_t expected = 0;
    std::uint64_t next = 0;
    for (int round = 0; round < 1000; ++round) {
        std::array<std::unique_ptr<std::uint64_t>, 3> in;
        for (auto& p : in) {
            p = std::make_unique<std::uint64_t>(next++);
        }
        std::size_t pushed = ring.push_burst_sp(in.data(), in.size());
        for (std::size_t i = pushed; i < in.size(); ++i) {
            ASSERT_NE(in[i], nullptr);
        }
        next -= in.size() - pushed; // what did not fit is dropped here and renumbered next round

        std::unique_ptr<std::uint64_t> one;
        if (ring.pop_sc(one)) {
            ASSERT_NE(one, nullptr);
            EXPECT_EQ(*one, expected++);
        }
        ring.consume_burst_sc(1, [&](std::unique_ptr<std::uint64_t>&& p) {
            ASSERT_NE(p, nullptr);
            EXPECT_EQ(*p, expected++);
            auto owned = std::move(p); // taking ownership inside the visitor is allowed
        });
    }
    // Leftovers are freed by the ring's destructor (ASan's leak check covers this build).
    EXPECT_LE(ring.size_approx(), ring.capacity());
}

} // namespace
} // namespace ringtail
