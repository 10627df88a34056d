// The external channel's framing: byte-exact encoding, round trips whole and cut at every byte,
// and malformed, oversized and truncated input.
#include "net/external/external_codec.h"

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace ringtail::net {
namespace {

std::vector<external_frame> decode_all(external_decoder& d, std::string_view bytes,
                                       external_decode_status expect = external_decode_status::ok) {
    std::vector<external_frame> out;
    EXPECT_EQ(d.feed(bytes, out), expect);
    return out;
}

TEST(external_codec, encodes_byte_exact) {
    // L = 2 + 5 = 7, id 9, body "hello": big-endian both.
    EXPECT_EQ(encode_external_frame(9, "hello"), std::string("\x00\x00\x00\x07\x00\x09hello", 11));
    EXPECT_EQ(encode_external_frame(0x1234, ""), std::string("\x00\x00\x00\x02\x12\x34", 6));
    std::string out = "x";
    append_external_frame(out, to_id(external_msg::cluster_state_entity_count_query_reply), "{}");
    EXPECT_EQ(out, std::string("x\x00\x00\x00\x04\x00\x1a{}", 9));
}

TEST(external_codec, round_trips_whole_and_cut_at_every_byte) {
    std::vector<external_frame> frames{ { 1, "print me" },
                                        { 9, "" },
                                        { 65535, std::string(1000, '\0') },
                                        { 17, std::string("bin\x00\xff", 5) } };
    std::string stream;
    for (const auto& f : frames) {
        append_external_frame(stream, f.id, f.body);
    }
    {
        external_decoder d;
        EXPECT_EQ(decode_all(d, stream), frames);
        EXPECT_FALSE(d.mid_frame());
    }
    for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
        external_decoder d;
        auto got = decode_all(d, std::string_view(stream).substr(0, cut));
        auto rest = decode_all(d, std::string_view(stream).substr(cut));
        got.insert(got.end(), rest.begin(), rest.end());
        ASSERT_EQ(got, frames) << "cut at " << cut;
    }
    // Byte by byte.
    external_decoder d;
    std::vector<external_frame> got;
    for (char c : stream) {
        ASSERT_EQ(d.feed(std::string_view(&c, 1), got), external_decode_status::ok);
    }
    EXPECT_EQ(got, frames);
}

TEST(external_codec, random_chunks_round_trip) {
    const unsigned seed = std::random_device{}();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    std::vector<external_frame> frames;
    std::string stream;
    for (int i = 0; i < 200; ++i) {
        external_frame f;
        f.id = static_cast<std::uint16_t>(rng());
        f.body.resize(rng() % 300);
        for (char& c : f.body) {
            c = static_cast<char>(rng());
        }
        append_external_frame(stream, f.id, f.body);
        frames.push_back(std::move(f));
    }
    external_decoder d(400);
    std::vector<external_frame> got;
    std::size_t at = 0;
    while (at < stream.size()) {
        const std::size_t n = std::min<std::size_t>(rng() % 700, stream.size() - at);
        ASSERT_EQ(d.feed(std::string_view(stream).substr(at, n), got), external_decode_status::ok);
        at += n;
    }
    EXPECT_EQ(got, frames);
}

TEST(external_codec, length_below_two_is_malformed) {
    for (std::uint32_t length : { 0u, 1u }) {
        external_decoder d;
        std::string bytes = encode_external_frame(7, "ok");
        bytes += std::string("\x00\x00\x00", 3) + static_cast<char>(length) + "\x00\x07";
        auto got = decode_all(d, bytes, external_decode_status::malformed);
        // The frame before the bad one is delivered.
        ASSERT_EQ(got.size(), 1u);
        EXPECT_EQ(got[0], (external_frame{ 7, "ok" }));
        EXPECT_TRUE(d.dead());
        EXPECT_EQ(d.bad_length(), length);
        // Dead for good.
        decode_all(d, encode_external_frame(7, ""), external_decode_status::malformed);
    }
}

TEST(external_codec, oversized_is_malformed_without_buffering) {
    external_decoder d(100);
    EXPECT_EQ(decode_all(d, encode_external_frame(3, std::string(98, 'a'))).size(), 1u);
    // L = 101 > 100: refused on the header alone, before any body arrives.
    decode_all(d, std::string("\x00\x00\x00\x65", 4), external_decode_status::malformed);
    EXPECT_EQ(d.bad_length(), 101u);
    external_decoder big;
    decode_all(big, std::string("\xff\xff\xff\xff\x00\x01", 6), external_decode_status::malformed);
    EXPECT_EQ(big.bad_length(), 0xffffffffu);
    EXPECT_FALSE(big.mid_frame());
}

TEST(external_codec, truncated_input_waits) {
    const std::string frame = encode_external_frame(21, "body");
    for (std::size_t n = 1; n < frame.size(); ++n) {
        external_decoder d;
        EXPECT_TRUE(decode_all(d, frame.substr(0, n)).empty()) << n;
        EXPECT_TRUE(d.mid_frame()) << n;
        EXPECT_FALSE(d.dead());
    }
    external_decoder d;
    EXPECT_TRUE(decode_all(d, "").empty());
    EXPECT_FALSE(d.mid_frame());
}

} // namespace
} // namespace ringtail::net
