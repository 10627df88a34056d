// Tests of CRC-32C: published check values, and the SSE4.2 path against the portable one over
// random lengths, alignments and resumed checksums.
#include "net/channel/crc32c.h"

#include <array>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace ringtail::net {
namespace {

std::uint64_t test_seed() {
    if (const char* s = std::getenv("RINGTAIL_TEST_SEED")) {
        return std::strtoull(s, nullptr, 10);
    }
    return std::random_device{}();
}

std::span<const std::byte> as_span(const std::vector<std::uint8_t>& v) {
    return std::as_bytes(std::span(v.data(), v.size()));
}

// The suite is named `crc`, not `crc32c`: the TSan run's filter takes suites of letters and
// underscores only.
TEST(crc, check_value_of_123456789) {
    EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
    EXPECT_EQ(crc32c_portable(std::as_bytes(std::span("123456789", 9))), 0xE3069283u);
}

TEST(crc, empty_input_is_zero_and_resuming_with_nothing_changes_nothing) {
    EXPECT_EQ(crc32c(std::string_view{}), 0u);
    EXPECT_EQ(crc32c_portable({}), 0u);
    EXPECT_EQ(crc32c(std::string_view{}, 0xE3069283u), 0xE3069283u);
    EXPECT_EQ(crc32c_portable({}, 0xE3069283u), 0xE3069283u);
}

// RFC 3720 (iSCSI), appendix B.4.
TEST(crc, rfc_3720_vectors) {
    std::vector<std::uint8_t> zeros(32, 0x00);
    std::vector<std::uint8_t> ones(32, 0xFF);
    std::vector<std::uint8_t> up(32);
    std::vector<std::uint8_t> down(32);
    for (std::size_t i = 0; i < 32; ++i) {
        up[i] = static_cast<std::uint8_t>(i);
        down[i] = static_cast<std::uint8_t>(31 - i);
    }
    EXPECT_EQ(crc32c(as_span(zeros)), 0x8A9136AAu);
    EXPECT_EQ(crc32c(as_span(ones)), 0x62A8AB43u);
    EXPECT_EQ(crc32c(as_span(up)), 0x46DD794Eu);
    EXPECT_EQ(crc32c(as_span(down)), 0x113FDB5Cu);
    EXPECT_EQ(crc32c_portable(as_span(zeros)), 0x8A9136AAu);
    EXPECT_EQ(crc32c_portable(as_span(ones)), 0x62A8AB43u);
    EXPECT_EQ(crc32c_portable(as_span(up)), 0x46DD794Eu);
    EXPECT_EQ(crc32c_portable(as_span(down)), 0x113FDB5Cu);
}

TEST(crc, fast_and_portable_agree_over_random_lengths_offsets_and_resumes) {
    const std::uint64_t seed = test_seed();
    SCOPED_TRACE("RINGTAIL_TEST_SEED=" + std::to_string(seed));
    std::mt19937_64 rng(seed);
    std::vector<std::uint8_t> buf(4096 + 16);
    for (auto& b : buf) {
        b = static_cast<std::uint8_t>(rng());
    }
    const auto all = as_span(buf);
    std::uniform_int_distribution<std::size_t> offset(0, 15);
    std::uniform_int_distribution<std::size_t> length(0, 4096);
    for (int round = 0; round < 2000; ++round) {
        // Short lengths often, so that the tail steps and every alignment are covered.
        std::size_t len = round % 2 == 0 ? length(rng) : length(rng) % 24;
        auto bytes = all.subspan(offset(rng), len);
        std::uint32_t fast = crc32c(bytes);
        ASSERT_EQ(fast, crc32c_portable(bytes))
          << "offset " << bytes.data() - all.data() << " length " << len;
        // Resuming at any cut gives the checksum of the whole, on either path and across them.
        std::size_t cut = len == 0 ? 0 : rng() % (len + 1);
        auto head = bytes.first(cut);
        auto tail = bytes.subspan(cut);
        ASSERT_EQ(crc32c(tail, crc32c(head)), fast) << "cut " << cut << " of " << len;
        ASSERT_EQ(crc32c_portable(tail, crc32c_portable(head)), fast) << "cut " << cut;
        ASSERT_EQ(crc32c_portable(tail, crc32c(head)), fast) << "cut " << cut;
        ASSERT_EQ(crc32c(tail, crc32c_portable(head)), fast) << "cut " << cut;
    }
}

// Every length up to 40 at every alignment: each combination of the 4-, 2- and 1-byte tail
// steps after the 8-byte words.
TEST(crc, fast_and_portable_agree_for_every_short_length_and_alignment) {
    std::vector<std::uint8_t> buf(64);
    for (std::size_t i = 0; i < buf.size(); ++i) {
        buf[i] = static_cast<std::uint8_t>(i * 37 + 11);
    }
    const auto all = as_span(buf);
    for (std::size_t offset = 0; offset < 16; ++offset) {
        for (std::size_t len = 0; len <= 40; ++len) {
            auto bytes = all.subspan(offset, len);
            ASSERT_EQ(crc32c(bytes), crc32c_portable(bytes))
              << "offset " << offset << " length " << len;
        }
    }
}

// In parts, the checksum is that of the parts one after the other, whatever their number,
// lengths and alignment.
TEST(crc, parts_are_the_checksum_of_the_parts_in_a_row) {
    std::vector<std::uint8_t> buf(400);
    for (std::size_t i = 0; i < buf.size(); ++i) {
        buf[i] = static_cast<std::uint8_t>(i * 53 + 7);
    }
    const auto all = as_span(buf);
    EXPECT_EQ(crc32c_parts({}), 0u);
    for (std::size_t offset = 0; offset < 8; ++offset) {
        for (std::size_t a_len = 0; a_len <= 20; ++a_len) {
            for (std::size_t b_len = 0; b_len <= 330; b_len += b_len < 60 ? 3 : 29) {
                const auto a = all.subspan(offset, a_len);
                const auto b = all.subspan(offset + a_len + 4, b_len);
                const auto c = all.subspan(offset + a_len + b_len + 5, (a_len + b_len) % 17);
                const std::uint32_t want =
                  crc32c_portable(c, crc32c_portable(b, crc32c_portable(a)));
                const std::array<std::span<const std::byte>, 3> parts{ a, b, c };
                ASSERT_EQ(crc32c_parts(parts), want)
                  << "offset " << offset << " parts " << a_len << ", " << b_len << ", " << c.size();
                ASSERT_EQ(crc32c(c, crc32c(b, crc32c(a))), want);
            }
        }
    }
}

// Around every multiple of the three-block round (3 x 48 bytes) up to four rounds, at every
// alignment: the rounds, the joining of their three registers, and what follows them.
TEST(crc, fast_and_portable_agree_around_the_three_stream_rounds) {
    std::vector<std::uint8_t> buf(4 * 144 + 40);
    for (std::size_t i = 0; i < buf.size(); ++i) {
        buf[i] = static_cast<std::uint8_t>(i * 131 + (i >> 8) * 17 + 3);
    }
    const auto all = as_span(buf);
    for (std::size_t offset = 0; offset < 8; ++offset) {
        for (std::size_t rounds = 1; rounds <= 4; ++rounds) {
            for (std::size_t len = rounds * 144 - 9; len <= rounds * 144 + 17; ++len) {
                const auto bytes = all.subspan(offset, len);
                ASSERT_EQ(crc32c(bytes), crc32c_portable(bytes))
                  << "offset " << offset << " length " << len;
                // Resumed from a register that is not the initial one.
                ASSERT_EQ(crc32c(bytes, 0x12345678u), crc32c_portable(bytes, 0x12345678u))
                  << "offset " << offset << " length " << len;
            }
        }
    }
}

// Long runs (256 bytes and more go to ISA-L where the build has it): around that threshold, over
// an MTU's worth and beyond 64 KiB, at every alignment, from a register that is not the initial
// one, and as the long part between two short ones.
TEST(crc, fast_and_portable_agree_over_long_runs) {
    std::vector<std::uint8_t> buf(70'000);
    for (std::size_t i = 0; i < buf.size(); ++i) {
        buf[i] = static_cast<std::uint8_t>(i * 167 + (i >> 9) * 29 + 5);
    }
    const auto all = as_span(buf);
    std::vector<std::size_t> lengths;
    for (std::size_t len = 56; len <= 80; ++len) {
        lengths.push_back(len);
    }
    for (std::size_t len : { 143, 144, 145, 255, 256, 257, 511, 512, 513, 1'400, 1'440, 1'472,
                             1'473, 9'000, 65'536, 65'543 }) {
        lengths.push_back(len);
    }
    for (std::size_t offset = 0; offset < 8; ++offset) {
        for (std::size_t len : lengths) {
            const auto bytes = all.subspan(offset, len);
            const std::uint32_t want = crc32c_portable(bytes);
            ASSERT_EQ(crc32c(bytes), want) << "offset " << offset << " length " << len;
            ASSERT_EQ(crc32c(bytes, 0x9E3779B9u), crc32c_portable(bytes, 0x9E3779B9u))
              << "offset " << offset << " length " << len;
            const auto head = all.subspan(offset + len + 1, 12);
            const auto tail = all.subspan(offset + len + 20, 16);
            const std::array<std::span<const std::byte>, 3> parts{ head, bytes, tail };
            ASSERT_EQ(crc32c_parts(parts),
                      crc32c_portable(tail, crc32c_portable(bytes, crc32c_portable(head))))
              << "offset " << offset << " length " << len;
        }
    }
}

TEST(crc, every_single_bit_flip_changes_the_checksum) {
    std::vector<std::uint8_t> buf(64);
    for (std::size_t i = 0; i < buf.size(); ++i) {
        buf[i] = static_cast<std::uint8_t>(i * 37 + 11);
    }
    const std::uint32_t good = crc32c(as_span(buf));
    for (std::size_t i = 0; i < buf.size(); ++i) {
        for (int bit = 0; bit < 8; ++bit) {
            buf[i] ^= static_cast<std::uint8_t>(1u << bit);
            EXPECT_NE(crc32c(as_span(buf)), good) << "byte " << i << " bit " << bit;
            buf[i] ^= static_cast<std::uint8_t>(1u << bit);
        }
    }
}

} // namespace
} // namespace ringtail::net
