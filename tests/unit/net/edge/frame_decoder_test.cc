// Tests of the source framing decoder: any split of the stream gives the same frames, and the
// size limit holds at its edges.
#include "net/edge/frame_decoder.h"

#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace ringtail::net {
namespace {

using bytes = std::vector<std::byte>;

void append_frame(bytes& out, const bytes& payload) {
    auto n = static_cast<std::uint32_t>(payload.size());
    out.push_back(std::byte(n >> 24));
    out.push_back(std::byte(n >> 16));
    out.push_back(std::byte(n >> 8));
    out.push_back(std::byte(n));
    out.insert(out.end(), payload.begin(), payload.end());
}

bytes encode(const std::vector<bytes>& payloads) {
    bytes out;
    for (const auto& p : payloads) {
        append_frame(out, p);
    }
    return out;
}

bytes text(const std::string& s) {
    bytes out;
    for (char c : s) {
        out.push_back(std::byte(static_cast<unsigned char>(c)));
    }
    return out;
}

// Feeds `stream` cut at the given chunk sizes (the last chunk takes the rest) and collects frames.
struct collector {
    std::vector<bytes> frames;
    auto callback() {
        return [this](std::span<const std::byte> p) { frames.emplace_back(p.begin(), p.end()); };
    }
};

std::uint64_t test_seed() {
    if (const char* s = std::getenv("RINGTAIL_TEST_SEED")) {
        return std::strtoull(s, nullptr, 10);
    }
    return std::random_device{}();
}

std::vector<bytes> random_payloads(std::mt19937_64& rng, std::size_t count, std::size_t max_len) {
    std::vector<bytes> payloads;
    std::uniform_int_distribution<std::size_t> len(0, max_len);
    std::uniform_int_distribution<int> byte(0, 255);
    for (std::size_t i = 0; i < count; ++i) {
        // One frame in five is empty, one in ten exactly max_len: the edges matter most.
        std::size_t n = i % 5 == 0 ? 0 : i % 10 == 1 ? max_len : len(rng);
        bytes p(n);
        for (auto& b : p) {
            b = std::byte(byte(rng));
        }
        payloads.push_back(std::move(p));
    }
    return payloads;
}

TEST(frame_decoder, every_two_way_split_gives_the_same_frames) {
    auto seed = test_seed();
    SCOPED_TRACE("seed=" + std::to_string(seed) + " (rerun with RINGTAIL_TEST_SEED)");
    std::mt19937_64 rng(seed);
    constexpr std::uint32_t max_size = 40;
    auto payloads = random_payloads(rng, 30, max_size);
    auto stream = encode(payloads);
    for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
        frame_decoder d(max_size);
        collector c;
        std::span<const std::byte> all(stream);
        ASSERT_EQ(d.feed(all.first(cut), c.callback()), frame_status::ok) << "cut=" << cut;
        ASSERT_EQ(d.feed(all.subspan(cut), c.callback()), frame_status::ok) << "cut=" << cut;
        ASSERT_EQ(c.frames, payloads) << "cut=" << cut;
        ASSERT_FALSE(d.mid_frame());
    }
}

TEST(frame_decoder, random_chunk_sizes_give_the_same_frames) {
    auto seed = test_seed();
    SCOPED_TRACE("seed=" + std::to_string(seed) + " (rerun with RINGTAIL_TEST_SEED)");
    std::mt19937_64 rng(seed);
    constexpr std::uint32_t max_size = 300;
    for (int round = 0; round < 200; ++round) {
        auto payloads = random_payloads(rng, 50, max_size);
        auto stream = encode(payloads);
        // Small chunks exercise the partial header, large ones the zero-copy path.
        std::size_t chunk_max = round % 2 == 0 ? 7 : 1000;
        std::uniform_int_distribution<std::size_t> chunk(0, chunk_max);
        frame_decoder d(max_size);
        collector c;
        std::span<const std::byte> rest(stream);
        while (!rest.empty()) {
            std::size_t n = std::min(chunk(rng), rest.size());
            ASSERT_EQ(d.feed(rest.first(n), c.callback()), frame_status::ok) << "round " << round;
            rest = rest.subspan(n);
        }
        ASSERT_EQ(c.frames, payloads) << "round " << round;
        ASSERT_FALSE(d.mid_frame());
    }
}

TEST(frame_decoder, whole_frames_are_passed_without_a_copy) {
    auto stream = encode({ text("abc"), text("defgh") });
    frame_decoder d(100);
    std::vector<const std::byte*> starts;
    d.feed(stream, [&](std::span<const std::byte> p) { starts.push_back(p.data()); });
    ASSERT_EQ(starts.size(), 2u);
    EXPECT_EQ(starts[0], stream.data() + 4);
    EXPECT_EQ(starts[1], stream.data() + 4 + 3 + 4);
}

TEST(frame_decoder, zero_length_frames_are_valid) {
    auto stream = encode({ bytes{}, text("x"), bytes{}, bytes{} });
    frame_decoder d(10);
    collector c;
    EXPECT_EQ(d.feed(stream, c.callback()), frame_status::ok);
    EXPECT_EQ(c.frames, (std::vector<bytes>{ bytes{}, text("x"), bytes{}, bytes{} }));
    // Byte by byte, a zero-length frame completes with its last header byte.
    frame_decoder slow(10);
    collector c2;
    for (auto b : stream) {
        EXPECT_EQ(slow.feed(std::span<const std::byte>(&b, 1), c2.callback()), frame_status::ok);
    }
    EXPECT_EQ(c2.frames, c.frames);
    EXPECT_FALSE(slow.mid_frame());
}

TEST(frame_decoder, max_size_zero_accepts_only_empty_frames) {
    frame_decoder d(0);
    collector c;
    EXPECT_EQ(d.feed(encode({ bytes{}, bytes{} }), c.callback()), frame_status::ok);
    EXPECT_EQ(c.frames.size(), 2u);
    EXPECT_EQ(d.feed(encode({ text("a") }), c.callback()), frame_status::oversized);
    EXPECT_EQ(d.last_oversized_length(), 1u);
}

TEST(frame_decoder, exactly_max_size_is_accepted) {
    bytes payload(64, std::byte{ 7 });
    auto stream = encode({ payload });
    for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
        frame_decoder d(64);
        collector c;
        std::span<const std::byte> all(stream);
        ASSERT_EQ(d.feed(all.first(cut), c.callback()), frame_status::ok);
        ASSERT_EQ(d.feed(all.subspan(cut), c.callback()), frame_status::ok);
        ASSERT_EQ(c.frames, std::vector<bytes>{ payload });
    }
}

TEST(frame_decoder, max_size_plus_one_is_rejected_and_the_decoder_stays_dead) {
    auto stream = encode({ text("ok"), bytes(65, std::byte{ 1 }), text("never") });
    frame_decoder d(64);
    collector c;
    EXPECT_EQ(d.feed(stream, c.callback()), frame_status::oversized);
    EXPECT_EQ(d.last_oversized_length(), 65u);
    // Frames before the bad header were delivered; nothing after it is.
    EXPECT_EQ(c.frames, std::vector<bytes>{ text("ok") });
    EXPECT_EQ(d.feed(encode({ text("more") }), c.callback()), frame_status::oversized);
    EXPECT_EQ(d.feed({}, c.callback()), frame_status::oversized);
    EXPECT_EQ(c.frames.size(), 1u);
}

TEST(frame_decoder, oversized_header_split_across_feeds) {
    bytes header{ std::byte{ 0x12 }, std::byte{ 0x34 }, std::byte{ 0x56 }, std::byte{ 0x78 } };
    frame_decoder d(1000);
    collector c;
    for (std::size_t i = 0; i < 3; ++i) {
        ASSERT_EQ(d.feed(std::span<const std::byte>(&header[i], 1), c.callback()),
                  frame_status::ok);
        EXPECT_TRUE(d.mid_frame());
    }
    EXPECT_EQ(d.feed(std::span<const std::byte>(&header[3], 1), c.callback()),
              frame_status::oversized);
    EXPECT_EQ(d.last_oversized_length(), 0x12345678u);
    EXPECT_TRUE(c.frames.empty());
}

TEST(frame_decoder, largest_length_is_rejected_without_allocating) {
    bytes header(4, std::byte{ 0xff });
    frame_decoder d(16384);
    collector c;
    EXPECT_EQ(d.feed(header, c.callback()), frame_status::oversized);
    EXPECT_EQ(d.last_oversized_length(), 0xffffffffu);
}

TEST(frame_decoder, mid_frame_tracks_unfinished_frames) {
    auto stream = encode({ text("hello") });
    frame_decoder d(100);
    collector c;
    EXPECT_FALSE(d.mid_frame());
    d.feed(std::span<const std::byte>(stream).first(2), c.callback());
    EXPECT_TRUE(d.mid_frame());
    d.feed(std::span<const std::byte>(stream).subspan(2, 4), c.callback());
    EXPECT_TRUE(d.mid_frame());
    d.feed(std::span<const std::byte>(stream).subspan(6), c.callback());
    EXPECT_FALSE(d.mid_frame());
    EXPECT_EQ(c.frames, std::vector<bytes>{ text("hello") });
}

} // namespace
} // namespace ringtail::net
