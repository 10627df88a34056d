// Tests of the data-channel frame: exact layout, round trips, any split of the stream, and that
// corrupted, foreign, future or oversized frames are refused, never delivered changed.
#include "net/data_codec.h"

#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "engine/big_endian.h"
#include "net/crc32c.h"

namespace ringtail::net {
namespace {

using bytes = std::vector<std::byte>;

std::uint64_t test_seed() {
    if (const char* s = std::getenv("RINGTAIL_TEST_SEED")) {
        return std::strtoull(s, nullptr, 10);
    }
    return std::random_device{}();
}

std::span<const std::byte> as_span(const std::string& s) {
    return std::as_bytes(std::span(s.data(), s.size()));
}

// A decoded frame, copied out of the callback.
struct frame_copy {
    data_frame_type type;
    std::uint64_t seq;
    std::uint32_t count;
    bytes body;
    friend bool operator==(const frame_copy&, const frame_copy&) = default;
};

struct collector {
    std::vector<frame_copy> frames;
    auto callback() {
        return [this](const data_frame& f) {
            frames.push_back({ f.type, f.seq, f.count, bytes(f.body.begin(), f.body.end()) });
        };
    }
};

// A frame as raw bytes with any header values, the checksum computed over the rest as the
// encoder does: for frames the encoder refuses to make.
std::string raw_frame(std::uint8_t type, std::uint64_t seq, std::uint32_t count,
                      const std::string& body, std::uint8_t version = 1, std::uint8_t flags = 0,
                      std::uint8_t magic = 0xD7) {
    std::string checked;
    be::append<std::uint64_t>(checked, seq);
    be::append<std::uint32_t>(checked, count);
    checked += body;
    std::string out;
    be::append<std::uint32_t>(out, static_cast<std::uint32_t>(8 + checked.size()));
    out += static_cast<char>(magic);
    out += static_cast<char>(version);
    out += static_cast<char>(type);
    out += static_cast<char>(flags);
    be::append<std::uint32_t>(out, crc32c(checked));
    return out + checked;
}

// One frame of each type, and the same frames as expected from the decoder.
struct sample {
    std::string stream;
    std::vector<frame_copy> frames;
};

sample sample_frames() {
    sample s;
    const std::string body = "three encoded messages, back to back";
    append_hello_frame(s.stream, 0, { 0x0123456789ABCDEFull, 2, 5 });
    append_data_frame(s.stream, data_frame_type::data, 1, 3, as_span(body));
    append_data_frame(s.stream, data_frame_type::credit, 2, 16384);
    append_data_frame(s.stream, data_frame_type::bye, 3, 0);
    std::string hello_body;
    be::append<std::uint64_t>(hello_body, 0x0123456789ABCDEFull);
    be::append<std::uint32_t>(hello_body, 2);
    be::append<std::uint32_t>(hello_body, 5);
    auto to_bytes = [](const std::string& t) {
        auto sp = as_span(t);
        return bytes(sp.begin(), sp.end());
    };
    s.frames = {
        { data_frame_type::hello, 0, 0, to_bytes(hello_body) },
        { data_frame_type::data, 1, 3, to_bytes(body) },
        { data_frame_type::credit, 2, 16384, {} },
        { data_frame_type::bye, 3, 0, {} },
    };
    return s;
}

TEST(data_codec, layout_is_byte_exact) {
    std::string out;
    append_data_frame(out, data_frame_type::data, 0x0102030405060708ull, 7,
                      as_span(std::string("xyz")));
    ASSERT_EQ(out.size(), data_frame_header_bytes + 3);
    const auto* p = reinterpret_cast<const std::byte*>(out.data());
    EXPECT_EQ(be::read<std::uint32_t>(p), out.size() - 4);
    EXPECT_EQ(static_cast<std::uint8_t>(out[4]), 0xD7);
    EXPECT_EQ(out[5], 1);
    EXPECT_EQ(out[6], 2);
    EXPECT_EQ(out[7], 0);
    EXPECT_EQ(be::read<std::uint32_t>(p + 8), crc32c(std::string_view(out).substr(12)));
    EXPECT_EQ(be::read<std::uint64_t>(p + 12), 0x0102030405060708ull);
    EXPECT_EQ(be::read<std::uint32_t>(p + 20), 7u);
    EXPECT_EQ(out.substr(24), "xyz");
    // The same frame written in place.
    std::string in_place = "prefix";
    std::size_t start = begin_data_frame(in_place);
    in_place += "xyz";
    finish_data_frame(in_place, start, data_frame_type::data, 0x0102030405060708ull, 7);
    EXPECT_EQ(in_place, "prefix" + out);
    EXPECT_EQ(raw_frame(2, 0x0102030405060708ull, 7, "xyz"), out);
}

TEST(data_codec, round_trips_each_type) {
    sample s = sample_frames();
    data_frame_decoder decoder;
    collector got;
    std::optional<data_hello> hello;
    auto status = decoder.feed(as_span(s.stream), [&](const data_frame& f) {
        got.callback()(f);
        if (f.type == data_frame_type::hello) {
            hello = parse_hello(f);
        }
    });
    EXPECT_EQ(status, data_decode_error::none);
    EXPECT_EQ(got.frames, s.frames);
    ASSERT_TRUE(hello.has_value());
    EXPECT_EQ(*hello, (data_hello{ 0x0123456789ABCDEFull, 2, 5 }));
    EXPECT_FALSE(decoder.mid_frame());
    EXPECT_FALSE(decoder.dead());
    EXPECT_TRUE(decoder.error_message().empty());
    EXPECT_EQ(to_string(data_frame_type::credit), "CREDIT");
}

TEST(data_codec, every_two_way_split_gives_the_same_frames) {
    sample s = sample_frames();
    for (std::size_t cut = 0; cut <= s.stream.size(); ++cut) {
        data_frame_decoder decoder;
        collector got;
        auto all = as_span(s.stream);
        ASSERT_EQ(decoder.feed(all.first(cut), got.callback()), data_decode_error::none);
        ASSERT_EQ(decoder.feed(all.subspan(cut), got.callback()), data_decode_error::none);
        EXPECT_EQ(got.frames, s.frames) << "cut at " << cut;
        EXPECT_FALSE(decoder.mid_frame());
    }
}

TEST(data_codec, byte_by_byte_and_random_chunks_give_the_same_frames) {
    const std::uint64_t seed = test_seed();
    SCOPED_TRACE("RINGTAIL_TEST_SEED=" + std::to_string(seed));
    std::mt19937_64 rng(seed);
    std::string stream;
    std::vector<frame_copy> want;
    for (std::uint64_t seq = 0; seq < 200; ++seq) {
        std::string body(1 + rng() % 3000, '\0');
        for (char& c : body) {
            c = static_cast<char>(rng());
        }
        auto count = static_cast<std::uint32_t>(1 + rng() % 100);
        append_data_frame(stream, data_frame_type::data, seq, count, as_span(body));
        auto sp = as_span(body);
        want.push_back({ data_frame_type::data, seq, count, bytes(sp.begin(), sp.end()) });
    }
    for (int pass = 0; pass < 2; ++pass) {
        data_frame_decoder decoder;
        collector got;
        auto rest = as_span(stream);
        while (!rest.empty()) {
            std::size_t n = pass == 0 ? 1 : std::min<std::size_t>(rest.size(), rng() % 5000);
            ASSERT_EQ(decoder.feed(rest.first(n), got.callback()), data_decode_error::none);
            rest = rest.subspan(n);
        }
        EXPECT_EQ(got.frames, want) << (pass == 0 ? "byte by byte" : "random chunks");
    }
}

TEST(data_codec, whole_frames_are_passed_without_a_copy) {
    std::string stream;
    append_data_frame(stream, data_frame_type::data, 0, 1, as_span(std::string("payload")));
    data_frame_decoder decoder;
    const std::byte* body_at = nullptr;
    decoder.feed(as_span(stream), [&](const data_frame& f) { body_at = f.body.data(); });
    EXPECT_EQ(body_at, as_span(stream).data() + data_frame_header_bytes);
}

// The checksum leaves the len, magic, version, type and flags bytes out; the type rules and the
// framing must catch those, so that no single corrupted byte anywhere yields a changed frame.
TEST(data_codec, every_single_byte_change_is_refused_or_delivers_nothing) {
    sample s = sample_frames();
    // Each frame alone, and followed by a good frame (a shortened len then lands inside it).
    std::vector<std::string> frames;
    std::size_t at = 0;
    for (const auto& f : s.frames) {
        std::size_t size = data_frame_header_bytes + f.body.size();
        frames.push_back(s.stream.substr(at, size));
        at += size;
    }
    const std::string trailer = s.stream.substr(s.stream.size() - data_frame_header_bytes);
    std::size_t refused = 0;
    std::size_t waiting = 0;
    for (std::size_t fi = 0; fi < frames.size(); ++fi) {
        for (bool with_trailer : { false, true }) {
            const std::string good = frames[fi] + (with_trailer ? trailer : "");
            for (std::size_t i = 0; i < frames[fi].size(); ++i) {
                for (int x = 1; x < 256; ++x) {
                    std::string bad = good;
                    bad[i] = static_cast<char>(bad[i] ^ x);
                    data_frame_decoder decoder;
                    collector got;
                    auto status = decoder.feed(as_span(bad), got.callback());
                    // Nothing comes out: the changed frame is refused or waits for more
                    // bytes (a longer len), swallowing the good frame after it.
                    ASSERT_TRUE(got.frames.empty())
                      << "frame " << fi << " byte " << i << " xor " << x << ": "
                      << got.frames.size() << " frame(s) delivered";
                    if (status != data_decode_error::none) {
                        ++refused;
                    } else {
                        ++waiting;
                    }
                }
            }
        }
    }
    // Most changes are refused at once; the rest (a longer len) wait for bytes that never come.
    EXPECT_GT(refused, 5 * waiting);
}

TEST(data_codec, bad_magic_is_not_a_ringtail_frame) {
    data_frame_decoder decoder;
    collector got;
    std::string text = "GET / HTTP/1.1\r\nHost: example\r\n\r\n";
    EXPECT_EQ(decoder.feed(as_span(text), got.callback()), data_decode_error::bad_magic);
    EXPECT_NE(decoder.error_message().find("not a Ringtail data-channel frame"), std::string::npos)
      << decoder.error_message();
    EXPECT_TRUE(got.frames.empty());
    // Recognised from 8 bytes, without waiting for the length that garbage announces.
    data_frame_decoder early;
    std::string frame = raw_frame(2, 0, 1, "x", 1, 0, 0x42);
    EXPECT_EQ(early.feed(as_span(frame).first(8), got.callback()), data_decode_error::bad_magic);
}

TEST(data_codec, other_version_is_refused_by_number) {
    data_frame_decoder decoder;
    collector got;
    std::string frame = raw_frame(2, 0, 1, "x", 2);
    EXPECT_EQ(decoder.feed(as_span(frame), got.callback()), data_decode_error::bad_version);
    EXPECT_EQ(decoder.error_message(), "data-channel version 2, this build speaks 1");
    EXPECT_TRUE(got.frames.empty());
}

TEST(data_codec, bad_checksum_is_refused) {
    std::string frame = raw_frame(2, 5, 1, "payload");
    frame.back() = 'X';
    data_frame_decoder decoder;
    collector got;
    EXPECT_EQ(decoder.feed(as_span(frame), got.callback()), data_decode_error::bad_checksum);
    EXPECT_EQ(decoder.error_message().rfind("bad checksum", 0), 0u) << decoder.error_message();
}

TEST(data_codec, unknown_type_and_flags_are_refused) {
    for (std::uint8_t type : { 0, 6, 255 }) {
        data_frame_decoder decoder;
        collector got;
        std::string frame = raw_frame(type, 0, 1, "x");
        EXPECT_EQ(decoder.feed(as_span(frame), got.callback()), data_decode_error::unknown_type);
        EXPECT_EQ(decoder.error_message(), "unknown frame type " + std::to_string(type));
    }
    data_frame_decoder decoder;
    collector got;
    std::string frame = raw_frame(2, 0, 1, "x", 1, 0x80);
    EXPECT_EQ(decoder.feed(as_span(frame), got.callback()), data_decode_error::malformed);
}

TEST(data_codec, each_type_keeps_its_shape) {
    struct bad_case {
        std::uint8_t type;
        std::uint32_t count;
        std::string body;
    };
    const std::vector<bad_case> cases = {
        { 1, 1, std::string(16, 'h') }, // HELLO with a count
        { 1, 0, std::string(15, 'h') }, // HELLO body too short
        { 2, 0, "x" },                  // DATA without messages
        { 2, 1, "" },                   // DATA without a body
        { 3, 0, "" },                   // CREDIT of nothing
        { 3, 1, "x" },                  // CREDIT with a body
        { 4, 1, "" },                   // BYE with a count
        { 4, 0, "x" },                  // BYE with a body
        { 5, 1, std::string(24, 'a') }, // ACK with a count
        { 5, 0, std::string(16, 'a') }, // ACK body of a HELLO's size
    };
    for (const auto& c : cases) {
        data_frame_decoder decoder;
        collector got;
        std::string frame = raw_frame(c.type, 0, c.count, c.body);
        EXPECT_EQ(decoder.feed(as_span(frame), got.callback()), data_decode_error::malformed)
          << "type " << int(c.type) << " count " << c.count << " body " << c.body.size();
        EXPECT_TRUE(got.frames.empty());
    }
}

TEST(data_codec, ack_round_trip) {
    std::string stream;
    const data_ack sent{ 0x0102030405060708ull, 99, 123456789 };
    append_ack_frame(stream, sent);
    EXPECT_EQ(stream.size(), data_frame_header_bytes + data_ack_body_bytes);
    data_frame_decoder decoder;
    std::optional<data_ack> got;
    EXPECT_EQ(decoder.feed(as_span(stream),
                           [&](const data_frame& f) {
                               EXPECT_EQ(f.type, data_frame_type::ack);
                               EXPECT_EQ(f.seq, 0u);
                               got = parse_ack(f);
                           }),
              data_decode_error::none);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(*got, sent);
}

TEST(data_codec, frame_size_limit_holds_at_its_edge) {
    std::string body(100 - data_frame_header_bytes, 'b');
    std::string frame;
    append_data_frame(frame, data_frame_type::data, 0, 1, as_span(body));
    ASSERT_EQ(frame.size(), 100u);
    {
        data_frame_decoder decoder(100);
        collector got;
        EXPECT_EQ(decoder.feed(as_span(frame), got.callback()), data_decode_error::none);
        EXPECT_EQ(got.frames.size(), 1u);
    }
    {
        data_frame_decoder decoder(99);
        collector got;
        // Refused from the header alone.
        EXPECT_EQ(decoder.feed(as_span(frame).first(8), got.callback()),
                  data_decode_error::oversized);
        EXPECT_EQ(decoder.error_message(), "frame of 100 bytes is larger than the limit of 99");
    }
    {
        // The largest len: refused without allocating.
        std::string huge = raw_frame(2, 0, 1, "x");
        huge[0] = huge[1] = huge[2] = huge[3] = '\xFF';
        data_frame_decoder decoder;
        collector got;
        EXPECT_EQ(decoder.feed(as_span(huge), got.callback()), data_decode_error::oversized);
    }
    EXPECT_EQ(data_frame_decoder().max_frame_bytes(), 1024u * 1024u);
}

TEST(data_codec, length_shorter_than_the_header_is_refused) {
    std::string frame = raw_frame(4, 0, 0, "");
    frame[3] = 19;
    data_frame_decoder decoder;
    collector got;
    EXPECT_EQ(decoder.feed(as_span(frame), got.callback()), data_decode_error::short_header);
}

TEST(data_codec, decoder_stays_dead_after_an_error_and_delivers_what_came_before) {
    sample s = sample_frames();
    std::string stream = s.stream + "garbage after four good frames" + s.stream;
    data_frame_decoder decoder;
    collector got;
    EXPECT_EQ(decoder.feed(as_span(stream), got.callback()), data_decode_error::bad_magic);
    EXPECT_EQ(got.frames, s.frames);
    EXPECT_TRUE(decoder.dead());
    EXPECT_FALSE(decoder.mid_frame());
    EXPECT_EQ(decoder.feed(as_span(s.stream), got.callback()), data_decode_error::bad_magic);
    EXPECT_EQ(got.frames.size(), s.frames.size());
}

TEST(data_codec, mid_frame_tracks_unfinished_frames) {
    std::string frame = raw_frame(2, 0, 1, "abc");
    data_frame_decoder decoder;
    collector got;
    EXPECT_FALSE(decoder.mid_frame());
    decoder.feed(as_span(frame).first(3), got.callback());
    EXPECT_TRUE(decoder.mid_frame());
    decoder.feed(as_span(frame).subspan(3, 10), got.callback());
    EXPECT_TRUE(decoder.mid_frame());
    decoder.feed(as_span(frame).subspan(13), got.callback());
    EXPECT_FALSE(decoder.mid_frame());
    EXPECT_EQ(got.frames.size(), 1u);
}

} // namespace
} // namespace ringtail::net
