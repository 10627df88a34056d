// Tests of settle_sent: a send buffer that never empties keeps its storage bounded and its bytes
// in order; an emptied one is cleared, and its memory given back above keep_capacity.
#include "net/io/send_buffer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <string>

namespace ringtail::net {
namespace {

char byte_at(std::size_t i) {
    return static_cast<char>('a' + i % 26);
}

TEST(send_buffer, a_buffer_that_never_empties_keeps_its_storage_bounded) {
    // Every round appends 1 000 bytes and sends 900 until 50 000 wait, then as many as it
    // appends: 100 MB pass, some 50 000 bytes wait at any time.
    std::string out;
    std::size_t offset = 0;
    std::size_t appended = 0;
    std::size_t sent = 0;
    std::size_t most_capacity = 0;
    for (int round = 0; round < 100'000; ++round) {
        for (int i = 0; i < 1000; ++i) {
            out.push_back(byte_at(appended++));
        }
        const std::size_t n = out.size() - offset >= 50'000 ? 1000 : 900;
        for (std::size_t i = 0; i < n; ++i) {
            ASSERT_EQ(out[offset + i], byte_at(sent + i)) << "round " << round;
        }
        offset += n;
        sent += n;
        EXPECT_FALSE(settle_sent(out, offset, 4096, 4096));
        most_capacity = std::max(most_capacity, out.capacity());
    }
    EXPECT_EQ(out.size() - offset, appended - sent);
    // Without compaction the string would hold all 100 MB.
    EXPECT_LE(most_capacity, 4 * (50'000 + 1000)) << most_capacity;
}

TEST(send_buffer, all_sent_clears_and_gives_back_a_large_buffer) {
    std::string out(10'000, 'x');
    std::size_t offset = out.size();
    EXPECT_TRUE(settle_sent(out, offset, 1 << 20, 4096));
    EXPECT_TRUE(out.empty());
    EXPECT_EQ(offset, 0u);
    EXPECT_GE(out.capacity(), 10'000u); // within keep_capacity: kept for the next writes

    out.assign(100'000, 'y');
    offset = out.size();
    EXPECT_TRUE(settle_sent(out, offset, 4096, 4096));
    EXPECT_TRUE(out.empty());
    EXPECT_LT(out.capacity(), 100'000u);
}

TEST(send_buffer, a_short_sent_front_stays_until_it_is_worth_a_copy) {
    std::string out(10'000, 'z');
    std::size_t offset = 3000; // below compact_min
    EXPECT_FALSE(settle_sent(out, offset, 1 << 20, 4096));
    EXPECT_EQ(offset, 3000u);
    offset = 4500; // past compact_min, but shorter than the 5 500 left
    EXPECT_FALSE(settle_sent(out, offset, 1 << 20, 4096));
    EXPECT_EQ(offset, 4500u);
    offset = 6000; // past both: the 4 000 left move to the front
    out[6000] = 'A';
    EXPECT_FALSE(settle_sent(out, offset, 1 << 20, 4096));
    EXPECT_EQ(offset, 0u);
    EXPECT_EQ(out.size(), 4000u);
    EXPECT_EQ(out[0], 'A');
}

} // namespace
} // namespace ringtail::net
