// Tests of the data-channel frame (version 2): exact layout against golden bytes, a checksum that
// covers the header, the ACK trailer and MORE fragments of DATA frames, round trips, any split of
// the stream, and that corrupted, foreign, other-version or oversized frames are refused, never
// delivered changed.
#include "net/channel/data_codec.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "engine/big_endian.h"
#include "net/channel/crc32c.h"

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

bytes to_bytes(const std::string& s) {
    auto sp = as_span(s);
    return bytes(sp.begin(), sp.end());
}

// "00ff 10" -> the three bytes 0x00 0xff 0x10 (spaces ignored).
std::string from_hex(std::string_view hex) {
    std::string digits;
    for (char c : hex) {
        if (c != ' ') {
            digits += c;
        }
    }
    std::string out;
    for (std::size_t i = 0; i + 1 < digits.size(); i += 2) {
        out += static_cast<char>(std::stoi(digits.substr(i, 2), nullptr, 16));
    }
    return out;
}

// A decoded frame, copied out of the callback.
struct frame_copy {
    data_frame_type type;
    std::uint64_t seq;
    std::uint32_t count;
    bytes body;
    std::uint8_t flags = 0;
    std::uint64_t ack = 0;
    std::uint64_t credit_limit = 0;
    friend bool operator==(const frame_copy&, const frame_copy&) = default;
};

frame_copy copy_of(const data_frame& f) {
    return { f.type,  f.seq, f.count,       bytes(f.body.begin(), f.body.end()),
             f.flags, f.ack, f.credit_limit };
}

struct collector {
    std::vector<frame_copy> frames;
    auto callback() {
        return [this](const data_frame& f) { frames.push_back(copy_of(f)); };
    }
};

// The checksum of version 2, computed here from the spec (every byte but the crc field at 8..11)
// with the portable CRC-32C, independently of the codec's own helper.
std::uint32_t spec_checksum(const std::string& frame) {
    return crc32c_portable(as_span(frame.substr(0, 8) + frame.substr(12)));
}

// Writes `crc` into the crc field of `frame`.
void put_crc(std::string& frame, std::uint32_t crc) {
    be::write<std::uint32_t>(reinterpret_cast<std::byte*>(frame.data() + 8), crc);
}

// Gives `frame` the checksum its (possibly changed) bytes call for.
std::string with_good_checksum(std::string frame) {
    put_crc(frame, spec_checksum(frame));
    return frame;
}

// A frame as raw bytes with any header values and a version-2 checksum: for frames the encoder
// refuses to make. `body` includes any ACK trailer.
std::string raw_frame(std::uint8_t type, std::uint64_t seq, std::uint32_t count,
                      const std::string& body, std::uint8_t version = 2, std::uint8_t flags = 0,
                      std::uint8_t magic = 0xD7) {
    std::string out;
    be::append<std::uint32_t>(out, static_cast<std::uint32_t>(20 + body.size()));
    out += static_cast<char>(magic);
    out += static_cast<char>(version);
    out += static_cast<char>(type);
    out += static_cast<char>(flags);
    be::append<std::uint32_t>(out, 0);
    be::append<std::uint64_t>(out, seq);
    be::append<std::uint32_t>(out, count);
    out += body;
    return with_good_checksum(std::move(out));
}

// The 16-byte ACK trailer, encoded here by hand.
std::string trailer_of(std::uint64_t ack, std::uint64_t credit_limit) {
    std::string t;
    be::append<std::uint64_t>(t, ack);
    be::append<std::uint64_t>(t, credit_limit);
    return t;
}

// A DATA frame with `flags`, its body and (with data_flag_ack) trailer built in place.
std::string flagged_data_frame(std::uint8_t flags, std::uint64_t seq, std::uint32_t count,
                               const std::string& body, std::uint64_t ack = 0,
                               std::uint64_t credit_limit = 0) {
    std::string out;
    std::size_t start = begin_data_frame(out);
    out += body;
    if ((flags & data_flag_ack) != 0) {
        out.append(data_ack_trailer_bytes, '\0');
        write_ack_trailer(
          std::span<std::byte, data_ack_trailer_bytes>(
            reinterpret_cast<std::byte*>(out.data() + out.size() - data_ack_trailer_bytes),
            data_ack_trailer_bytes),
          ack, credit_limit);
    }
    finish_data_frame(out, start, data_frame_type::data, seq, count, flags);
    return out;
}

// Decodes `frame` alone with a fresh decoder: the error, the message and what came out.
struct decode_result {
    data_decode_error error;
    std::string message;
    std::vector<frame_copy> frames;
};

decode_result decode(const std::string& stream) {
    data_frame_decoder decoder;
    collector got;
    auto error = decoder.feed(as_span(stream), got.callback());
    return { error, decoder.error_message(), got.frames };
}

// One frame of each type and of each DATA flag, and the same frames as expected from the decoder.
struct sample {
    std::string stream;
    std::vector<std::string> frames; // each frame's bytes, in the order of `stream`
    std::vector<frame_copy> decoded;
};

sample sample_frames() {
    sample s;
    const std::string body = "three encoded messages, back to back";
    const std::string fragment = "the first part of a body";
    auto add = [&](std::string frame, frame_copy want) {
        s.stream += frame;
        s.frames.push_back(std::move(frame));
        s.decoded.push_back(std::move(want));
    };
    std::string f;
    append_hello_frame(f, 0, { 0x0123456789ABCDEFull, 2, 5 });
    std::string hello_body;
    be::append<std::uint64_t>(hello_body, 0x0123456789ABCDEFull);
    be::append<std::uint32_t>(hello_body, 2);
    be::append<std::uint32_t>(hello_body, 5);
    add(f, { data_frame_type::hello, 0, 0, to_bytes(hello_body) });
    f.clear();
    append_data_frame(f, data_frame_type::data, 1, 3, as_span(body));
    add(f, { data_frame_type::data, 1, 3, to_bytes(body) });
    f.clear();
    append_data_frame(f, data_frame_type::credit, 2, 16384);
    add(f, { data_frame_type::credit, 2, 16384, {} });
    f.clear();
    append_ack_frame(f, data_ack{ 41, 9000, 77 });
    std::string ack_body;
    be::append<std::uint64_t>(ack_body, 41);
    be::append<std::uint64_t>(ack_body, 9000);
    be::append<std::uint64_t>(ack_body, 77);
    add(f, { data_frame_type::ack, 0, 0, to_bytes(ack_body) });
    add(flagged_data_frame(data_flag_ack, 3, 2, body, 0x1112131415161718ull, 0x2122232425262728ull),
        { data_frame_type::data, 3, 2, to_bytes(body), data_flag_ack, 0x1112131415161718ull,
          0x2122232425262728ull });
    add(flagged_data_frame(data_flag_more, 4, 0, fragment),
        { data_frame_type::data, 4, 0, to_bytes(fragment), data_flag_more });
    add(flagged_data_frame(data_flag_ack | data_flag_more, 5, 0, fragment, 7, 8),
        { data_frame_type::data, 5, 0, to_bytes(fragment), data_flag_ack | data_flag_more, 7, 8 });
    f.clear();
    append_data_frame(f, data_frame_type::bye, 6, 0);
    add(f, { data_frame_type::bye, 6, 0, {} });
    return s;
}

// ---- layout --------------------------------------------------------------------------------

// Golden frames, computed outside the project (a bitwise CRC-32C in Python over bytes 0..7 and
// 12..end of the frame), so that the layout and the checksum's scope cannot drift together.
// [len][magic][version][type][flags][crc][seq][count][body][ack trailer]
constexpr std::string_view golden_plain_data =
  "00000017 d7 02 02 00 3dd4a79f 0102030405060708 00000007 78797a";
constexpr std::string_view golden_data_with_ack =
  "00000027 d7 02 02 01 7cd3b8f2 0102030405060708 00000007 78797a "
  "1112131415161718 2122232425262728";

TEST(data_codec, layout_is_byte_exact) {
    std::string out;
    append_data_frame(out, data_frame_type::data, 0x0102030405060708ull, 7,
                      as_span(std::string("xyz")));
    EXPECT_EQ(out, from_hex(golden_plain_data));
    ASSERT_EQ(out.size(), data_frame_header_bytes + 3);
    const auto* p = reinterpret_cast<const std::byte*>(out.data());
    EXPECT_EQ(be::read<std::uint32_t>(p), out.size() - 4);
    EXPECT_EQ(static_cast<std::uint8_t>(out[4]), 0xD7);
    EXPECT_EQ(out[5], 2); // the version
    EXPECT_EQ(out[6], 2); // DATA
    EXPECT_EQ(out[7], 0); // no flags
    // The checksum covers len, magic, version, type and flags too, not only seq onwards.
    EXPECT_EQ(be::read<std::uint32_t>(p + 8), spec_checksum(out));
    EXPECT_EQ(be::read<std::uint32_t>(p + 8), 0x3dd4a79fu);
    EXPECT_NE(be::read<std::uint32_t>(p + 8), crc32c_portable(as_span(out.substr(12))));
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

TEST(data_codec, layout_with_the_ack_trailer_is_byte_exact) {
    const std::string out = flagged_data_frame(data_flag_ack, 0x0102030405060708ull, 7, "xyz",
                                               0x1112131415161718ull, 0x2122232425262728ull);
    EXPECT_EQ(out, from_hex(golden_data_with_ack));
    ASSERT_EQ(out.size(), data_frame_header_bytes + 3 + data_ack_trailer_bytes);
    EXPECT_EQ(out[7], 1); // the ACK flag
    EXPECT_EQ(be::read<std::uint32_t>(reinterpret_cast<const std::byte*>(out.data()) + 8),
              spec_checksum(out));
    // The trailer, big-endian, after the messages.
    EXPECT_EQ(out.substr(27), trailer_of(0x1112131415161718ull, 0x2122232425262728ull));
    EXPECT_EQ(raw_frame(2, 0x0102030405060708ull, 7,
                        "xyz" + trailer_of(0x1112131415161718ull, 0x2122232425262728ull), 2,
                        data_flag_ack),
              out);
}

TEST(data_codec, seal_in_a_raw_buffer_gives_the_same_bytes_as_the_string_builders) {
    struct seal_case {
        data_frame_type type;
        std::uint8_t flags;
        std::uint64_t seq;
        std::uint32_t count;
        std::string body; // without the trailer
    };
    const std::vector<seal_case> cases = {
        { data_frame_type::data, 0, 1, 3, "abc" },
        { data_frame_type::data, data_flag_ack, 2, 1, "m" },
        { data_frame_type::data, data_flag_more, 3, 0, std::string(1000, 'f') },
        { data_frame_type::data, data_flag_ack | data_flag_more, 4, 0, "fragment" },
        { data_frame_type::credit, 0, 5, 16, "" },
        { data_frame_type::bye, 0, 0, 0, "" },
        { data_frame_type::ack, 0, 0, 0, std::string(24, 'a') },
        { data_frame_type::hello, 0, 0, 0, std::string(16, 'h') },
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(std::string(to_string(c.type)) + " flags " + std::to_string(c.flags));
        const bool ack = (c.flags & data_flag_ack) != 0;
        const std::size_t size =
          data_frame_header_bytes + c.body.size() + (ack ? data_ack_trailer_bytes : 0);
        // Guard bytes on both sides: seal writes only inside the frame it is given.
        bytes buffer(size + 8, std::byte{ 0xEE });
        std::span<std::byte> frame(buffer.data() + 4, size);
        std::memcpy(frame.data() + data_frame_header_bytes, c.body.data(), c.body.size());
        if (ack) {
            write_ack_trailer(frame.last<data_ack_trailer_bytes>(), 99, 1234);
        }
        seal_data_frame(frame, c.type, c.flags, c.seq, c.count);
        for (std::size_t i = 0; i < 4; ++i) {
            EXPECT_EQ(buffer[i], std::byte{ 0xEE });
            EXPECT_EQ(buffer[buffer.size() - 1 - i], std::byte{ 0xEE });
        }
        const std::string sealed(reinterpret_cast<const char*>(frame.data()), frame.size());
        std::string built;
        if (c.type == data_frame_type::data) {
            built = flagged_data_frame(c.flags, c.seq, c.count, c.body, 99, 1234);
        } else {
            append_data_frame(built, c.type, c.seq, c.count, as_span(c.body));
        }
        EXPECT_EQ(sealed, built);
        if (c.flags == 0) {
            std::string appended;
            append_data_frame(appended, c.type, c.seq, c.count, as_span(c.body));
            EXPECT_EQ(sealed, appended);
        }
        EXPECT_EQ(sealed, raw_frame(static_cast<std::uint8_t>(c.type), c.seq, c.count,
                                    c.body + (ack ? trailer_of(99, 1234) : ""), 2, c.flags));
        auto r = decode(sealed);
        EXPECT_EQ(r.error, data_decode_error::none) << r.message;
        ASSERT_EQ(r.frames.size(), 1u);
        EXPECT_EQ(r.frames[0].body, to_bytes(c.body));
        EXPECT_EQ(r.frames[0].flags, c.flags);
        EXPECT_EQ(r.frames[0].ack, ack ? 99u : 0u);
        EXPECT_EQ(r.frames[0].credit_limit, ack ? 1234u : 0u);
    }
}

TEST(data_codec, the_encoder_refuses_frames_that_break_the_rules) {
    auto seal = [](std::size_t body_bytes, data_frame_type type, std::uint8_t flags,
                   std::uint32_t count) {
        bytes frame(data_frame_header_bytes + body_bytes, std::byte{ 'x' });
        seal_data_frame(frame, type, flags, 1, count);
    };
    EXPECT_DEATH(seal(0, data_frame_type::credit, data_flag_ack, 1), "flags its type");
    EXPECT_DEATH(seal(16, data_frame_type::hello, data_flag_more, 0), "flags its type");
    EXPECT_DEATH(seal(20, data_frame_type::data, 0x04, 1), "flags its type");
    EXPECT_DEATH(seal(15, data_frame_type::data, data_flag_ack, 1), "ACK flag without");
    EXPECT_DEATH(seal(16, data_frame_type::data, data_flag_ack, 1), "breaks its type's rules");
    EXPECT_DEATH(seal(5, data_frame_type::data, data_flag_more, 1), "breaks its type's rules");
    EXPECT_DEATH(seal(0, data_frame_type::data, data_flag_more, 0), "breaks its type's rules");
    EXPECT_DEATH(seal(5, data_frame_type::data, 0, 0), "breaks its type's rules");
    EXPECT_DEATH(seal(0, data_frame_type::data, 0, 1), "breaks its type's rules");
}

// ---- round trips -----------------------------------------------------------------------------

TEST(data_codec, round_trips_each_type) {
    sample s = sample_frames();
    data_frame_decoder decoder;
    collector got;
    std::optional<data_hello> hello;
    std::optional<data_ack> ack;
    auto status = decoder.feed(as_span(s.stream), [&](const data_frame& f) {
        got.callback()(f);
        if (f.type == data_frame_type::hello) {
            hello = parse_hello(f);
        }
        if (f.type == data_frame_type::ack) {
            ack = parse_ack(f);
        }
        EXPECT_EQ(f.has_ack(), (f.flags & data_flag_ack) != 0);
        EXPECT_EQ(f.more(), (f.flags & data_flag_more) != 0);
    });
    EXPECT_EQ(status, data_decode_error::none);
    EXPECT_EQ(got.frames, s.decoded);
    ASSERT_TRUE(hello.has_value());
    EXPECT_EQ(*hello, (data_hello{ 0x0123456789ABCDEFull, 2, 5 }));
    ASSERT_TRUE(ack.has_value());
    EXPECT_EQ(*ack, (data_ack{ 41, 9000, 77 }));
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
        EXPECT_EQ(got.frames, s.decoded) << "cut at " << cut;
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
        // Every combination of the two flags; a fragment with MORE has count 0.
        const auto flags = static_cast<std::uint8_t>(rng() % 4);
        const bool more = (flags & data_flag_more) != 0;
        const bool ack = (flags & data_flag_ack) != 0;
        auto count = more ? 0u : static_cast<std::uint32_t>(1 + rng() % 100);
        const std::uint64_t ack_seq = ack ? rng() : 0;
        const std::uint64_t limit = ack ? rng() : 0;
        if (flags == 0 && rng() % 2 == 0) {
            append_data_frame(stream, data_frame_type::data, seq, count, as_span(body));
        } else {
            stream += flagged_data_frame(flags, seq, count, body, ack_seq, limit);
        }
        want.push_back(
          { data_frame_type::data, seq, count, to_bytes(body), flags, ack_seq, limit });
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
    for (std::uint8_t flags : { std::uint8_t{ 0 }, data_flag_ack }) {
        const std::string stream = flagged_data_frame(flags, 0, 1, "payload", 5, 6);
        data_frame_decoder decoder;
        std::span<const std::byte> body;
        decoder.feed(as_span(stream), [&](const data_frame& f) { body = f.body; });
        EXPECT_EQ(body.data(), as_span(stream).data() + data_frame_header_bytes);
        EXPECT_EQ(body.size(), 7u); // without the trailer
    }
}

// ---- corruption ------------------------------------------------------------------------------

// The checksum covers every byte but its own, so any change outside the len field is refused at
// once; a changed len is refused or waits for bytes that never come. No single corrupted byte
// yields a changed frame.
TEST(data_codec, every_single_byte_change_is_refused_or_delivers_nothing) {
    sample s = sample_frames();
    // Each frame alone, and followed by a good frame (a shortened len then lands inside it).
    const std::string trailer = s.frames.back();
    std::size_t refused = 0;
    std::size_t waiting = 0;
    for (std::size_t fi = 0; fi < s.frames.size(); ++fi) {
        for (bool with_trailer : { false, true }) {
            const std::string good = s.frames[fi] + (with_trailer ? trailer : "");
            for (std::size_t i = 0; i < s.frames[fi].size(); ++i) {
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
                    if (i >= 4) {
                        // Outside len the whole frame is there: refused, never waiting.
                        ASSERT_NE(status, data_decode_error::none)
                          << "frame " << fi << " byte " << i << " xor " << x;
                    }
                    if (i >= 8) {
                        // crc, seq, count, body: only the checksum can tell.
                        ASSERT_EQ(status, data_decode_error::bad_checksum)
                          << "frame " << fi << " byte " << i << " xor " << x;
                    }
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

// Header changes that give another well-formed frame: under version 1 (a checksum from seq on)
// each would have been delivered as a different frame; version 2's checksum refuses them all.
// Each changed frame with its checksum recomputed decodes, so only the checksum catches it.
TEST(data_codec, the_checksum_covers_len_type_and_flags) {
    struct change {
        const char* what;
        std::string good;
        std::function<void(std::string&)> edit;
    };
    const std::string body16 = "sixteen bytes..!";
    ASSERT_EQ(body16.size(), 16u);
    std::string hello;
    append_hello_frame(hello, 0, { 1, 2, 3 });
    std::string ack;
    append_ack_frame(ack, data_ack{ 1, 2, 3 });
    std::string plain;
    append_data_frame(plain, data_frame_type::data, 9, 3, as_span(body16 + "abcd"));
    const std::vector<change> changes = {
        { "the ACK flag set on a DATA frame (its last 16 bytes read as an ack)", plain,
          [](std::string& f) { f[7] = static_cast<char>(data_flag_ack); } },
        { "the ACK flag cleared (the trailer read as messages)",
          flagged_data_frame(data_flag_ack, 9, 3, "abcd", 1, 2), [](std::string& f) { f[7] = 0; } },
        { "the ACK flag added to a fragment",
          flagged_data_frame(data_flag_more, 9, 0, body16 + "x"),
          [](std::string& f) { f[7] = static_cast<char>(data_flag_more | data_flag_ack); } },
        { "a HELLO turned into a DATA fragment", hello,
          [](std::string& f) {
              f[6] = static_cast<char>(data_frame_type::data);
              f[7] = static_cast<char>(data_flag_more);
          } },
        { "an ACK frame turned into a DATA fragment", ack,
          [](std::string& f) {
              f[6] = static_cast<char>(data_frame_type::data);
              f[7] = static_cast<char>(data_flag_more);
          } },
        { "a DATA fragment turned into a HELLO", flagged_data_frame(data_flag_more, 0, 0, body16),
          [](std::string& f) {
              f[6] = static_cast<char>(data_frame_type::hello);
              f[7] = 0;
          } },
        { "len one shorter (the last body byte cut off)", plain,
          [](std::string& f) {
              f[3] = static_cast<char>(f[3] - 1);
              f.pop_back();
          } },
        { "len one longer (a byte appended to the body)", plain,
          [](std::string& f) {
              f[3] = static_cast<char>(f[3] + 1);
              f += 'z';
          } },
    };
    for (const auto& c : changes) {
        SCOPED_TRACE(c.what);
        ASSERT_EQ(decode(c.good).error, data_decode_error::none);
        std::string bad = c.good;
        c.edit(bad);
        auto r = decode(bad);
        EXPECT_EQ(r.error, data_decode_error::bad_checksum) << r.message;
        EXPECT_EQ(r.message.rfind("bad checksum", 0), 0u) << r.message;
        EXPECT_TRUE(r.frames.empty());
        // The same bytes with the checksum they call for are a well-formed frame.
        auto fixed = decode(with_good_checksum(bad));
        EXPECT_EQ(fixed.error, data_decode_error::none) << fixed.message;
        EXPECT_EQ(fixed.frames.size(), 1u);
    }
}

TEST(data_codec, a_version_1_checksum_is_refused) {
    // A version-2 header with the checksum version 1 computed (from seq on).
    std::string frame;
    append_data_frame(frame, data_frame_type::data, 3, 1, as_span(std::string("payload")));
    put_crc(frame, crc32c_portable(as_span(frame.substr(12))));
    auto r = decode(frame);
    EXPECT_EQ(r.error, data_decode_error::bad_checksum);
    EXPECT_TRUE(r.frames.empty());
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
    std::string frame = raw_frame(2, 0, 1, "x", 2, 0, 0x42);
    EXPECT_EQ(early.feed(as_span(frame).first(8), got.callback()), data_decode_error::bad_magic);
}

TEST(data_codec, other_version_is_refused_by_number) {
    for (std::uint8_t version : { 0, 1, 3, 255 }) {
        data_frame_decoder decoder;
        collector got;
        std::string frame = raw_frame(2, 0, 1, "x", version);
        // Refused from the first 8 bytes, before the checksum is looked at.
        EXPECT_EQ(decoder.feed(as_span(frame).first(8), got.callback()),
                  data_decode_error::bad_version);
        EXPECT_EQ(decoder.error_message(),
                  "data-channel version " + std::to_string(version) + ", this build speaks 2");
        EXPECT_TRUE(got.frames.empty());
    }
    // A whole frame as version 1 wrote it (its checksum from seq on): bad version, not a bad
    // checksum, so that the log says what is wrong.
    std::string v1 = raw_frame(2, 0, 1, "x", 1);
    put_crc(v1, crc32c_portable(as_span(v1.substr(12))));
    auto r = decode(v1);
    EXPECT_EQ(r.error, data_decode_error::bad_version);
    EXPECT_EQ(r.message, "data-channel version 1, this build speaks 2");
}

TEST(data_codec, bad_checksum_is_refused) {
    std::string frame = raw_frame(2, 5, 1, "payload");
    frame.back() = 'X';
    data_frame_decoder decoder;
    collector got;
    EXPECT_EQ(decoder.feed(as_span(frame), got.callback()), data_decode_error::bad_checksum);
    EXPECT_EQ(decoder.error_message().rfind("bad checksum", 0), 0u) << decoder.error_message();
}

// ---- types, flags and shapes -----------------------------------------------------------------

TEST(data_codec, unknown_type_and_flag_bits_are_refused) {
    for (std::uint8_t type : { 0, 6, 255 }) {
        data_frame_decoder decoder;
        collector got;
        std::string frame = raw_frame(type, 0, 1, "x");
        EXPECT_EQ(decoder.feed(as_span(frame), got.callback()), data_decode_error::unknown_type);
        EXPECT_EQ(decoder.error_message(), "unknown frame type " + std::to_string(type));
    }
    // Every bit but ACK and MORE, alone and with the known ones, on an otherwise good DATA frame.
    const std::string body = "payload" + trailer_of(1, 2);
    for (unsigned bit = 0x04; bit <= 0x80; bit <<= 1) {
        for (std::uint8_t known : { std::uint8_t{ 0 }, data_flag_ack, data_flag_more,
                                    static_cast<std::uint8_t>(data_flag_ack | data_flag_more) }) {
            const auto flags = static_cast<std::uint8_t>(bit | known);
            SCOPED_TRACE("flags " + std::to_string(flags));
            data_frame_decoder decoder;
            collector got;
            std::string frame =
              raw_frame(2, 0, (known & data_flag_more) != 0 ? 0 : 1, body, 2, flags);
            // Refused from the first 8 bytes.
            EXPECT_EQ(decoder.feed(as_span(frame).first(8), got.callback()),
                      data_decode_error::malformed);
            EXPECT_EQ(decoder.error_message(),
                      fmt::format("flags 0x{:02x} on a DATA frame", flags));
            EXPECT_TRUE(got.frames.empty());
        }
    }
}

TEST(data_codec, flags_on_any_type_but_data_are_refused) {
    struct good_frame {
        std::uint8_t type;
        std::uint32_t count;
        std::string body;
        const char* name;
    };
    const std::vector<good_frame> frames = {
        { 1, 0, std::string(16, 'h'), "HELLO" },
        { 3, 5, "", "CREDIT" },
        { 4, 0, "", "BYE" },
        { 5, 0, std::string(24, 'a'), "ACK" },
    };
    for (const auto& g : frames) {
        ASSERT_EQ(decode(raw_frame(g.type, 0, g.count, g.body)).error, data_decode_error::none);
        for (std::uint8_t flags : { 0x01, 0x02, 0x03, 0x80 }) {
            SCOPED_TRACE(std::string(g.name) + " flags " + std::to_string(flags));
            // The body made long enough for a trailer, in case the flag were taken as ACK.
            for (const std::string& body : { g.body, g.body + trailer_of(1, 2) }) {
                data_frame_decoder decoder;
                collector got;
                std::string frame = raw_frame(g.type, 0, g.count, body, 2, flags);
                EXPECT_EQ(decoder.feed(as_span(frame).first(8), got.callback()),
                          data_decode_error::malformed);
                EXPECT_EQ(decoder.error_message(),
                          fmt::format("flags 0x{:02x} on a {} frame", flags, g.name));
                EXPECT_TRUE(got.frames.empty());
            }
        }
    }
}

TEST(data_codec, each_type_keeps_its_shape) {
    struct bad_case {
        std::uint8_t type;
        std::uint32_t count;
        std::string body;
        std::uint8_t flags = 0;
    };
    const std::vector<bad_case> cases = {
        { 1, 1, std::string(16, 'h') },                  // HELLO with a count
        { 1, 0, std::string(15, 'h') },                  // HELLO body too short
        { 2, 0, "x" },                                   // DATA without messages or MORE
        { 2, 1, "" },                                    // DATA without a body
        { 3, 0, "" },                                    // CREDIT of nothing
        { 3, 1, "x" },                                   // CREDIT with a body
        { 4, 1, "" },                                    // BYE with a count
        { 4, 0, "x" },                                   // BYE with a body
        { 5, 1, std::string(24, 'a') },                  // ACK with a count
        { 5, 0, std::string(16, 'a') },                  // ACK body of a HELLO's size
        { 2, 1, "x", data_flag_more },                   // a fragment with a count
        { 2, 0, "", data_flag_more },                    // a fragment without a body
        { 2, 1, trailer_of(1, 2), data_flag_ack },       // a trailer and no messages
        { 2, 0, trailer_of(1, 2), 0x03 },                // a fragment that is all trailer
        { 2, 1, std::string(15, 't'), data_flag_ack },   // a trailer cut short
        { 2, 1, "", data_flag_ack },                     // no trailer at all
        { 2, 0, "x" + trailer_of(1, 2), data_flag_ack }, // count 0 without MORE
    };
    for (const auto& c : cases) {
        data_frame_decoder decoder;
        collector got;
        std::string frame = raw_frame(c.type, 0, c.count, c.body, 2, c.flags);
        EXPECT_EQ(decoder.feed(as_span(frame), got.callback()), data_decode_error::malformed)
          << "type " << int(c.type) << " count " << c.count << " body " << c.body.size()
          << " flags " << int(c.flags);
        EXPECT_TRUE(got.frames.empty());
    }
}

TEST(data_codec, ack_trailer_is_stripped_and_its_values_exact) {
    const std::string messages = "two messages";
    for (auto [ack, limit] : std::vector<std::pair<std::uint64_t, std::uint64_t>>{
           { 0, 0 },
           { 0x0102030405060708ull, 0xF0E0D0C0B0A09080ull },
           { std::numeric_limits<std::uint64_t>::max(), 1 } }) {
        SCOPED_TRACE("ack " + std::to_string(ack) + " limit " + std::to_string(limit));
        // Built by the codec, and by hand.
        for (const std::string& frame :
             { flagged_data_frame(data_flag_ack, 7, 2, messages, ack, limit),
               raw_frame(2, 7, 2, messages + trailer_of(ack, limit), 2, data_flag_ack) }) {
            auto r = decode(frame);
            ASSERT_EQ(r.error, data_decode_error::none) << r.message;
            ASSERT_EQ(r.frames.size(), 1u);
            EXPECT_EQ(r.frames[0], (frame_copy{ data_frame_type::data, 7, 2, to_bytes(messages),
                                                data_flag_ack, ack, limit }));
        }
    }
    // The smallest: one body byte and the trailer.
    auto r = decode(raw_frame(2, 1, 1, "m" + trailer_of(3, 4), 2, data_flag_ack));
    ASSERT_EQ(r.error, data_decode_error::none) << r.message;
    EXPECT_EQ(r.frames[0].body, to_bytes("m"));
    EXPECT_EQ(r.frames[0].ack, 3u);
    EXPECT_EQ(r.frames[0].credit_limit, 4u);
    // Without the flag the same 16 bytes are messages, and no ack is read.
    r = decode(raw_frame(2, 1, 1, "m" + trailer_of(3, 4)));
    ASSERT_EQ(r.error, data_decode_error::none) << r.message;
    EXPECT_EQ(r.frames[0].body, to_bytes("m" + trailer_of(3, 4)));
    EXPECT_EQ(r.frames[0].ack, 0u);
    EXPECT_EQ(r.frames[0].credit_limit, 0u);
}

TEST(data_codec, the_ack_flag_needs_its_whole_trailer) {
    for (std::size_t n : { 0, 1, 8, 15 }) {
        auto r = decode(raw_frame(2, 1, 1, std::string(n, 't'), 2, data_flag_ack));
        EXPECT_EQ(r.error, data_decode_error::malformed) << n;
        EXPECT_EQ(r.message,
                  "DATA frame with the ACK flag and only " + std::to_string(n) + " body bytes");
        EXPECT_TRUE(r.frames.empty());
    }
}

TEST(data_codec, more_fragments_have_count_0_and_a_body) {
    // A fragment, and the last one with the count of the whole body.
    auto r = decode(raw_frame(2, 1, 0, "first half ", 2, data_flag_more) +
                    raw_frame(2, 2, 5, "second half", 2, 0));
    ASSERT_EQ(r.error, data_decode_error::none) << r.message;
    ASSERT_EQ(r.frames.size(), 2u);
    EXPECT_EQ(r.frames[0],
              (frame_copy{ data_frame_type::data, 1, 0, to_bytes("first half "), data_flag_more }));
    EXPECT_EQ(r.frames[1], (frame_copy{ data_frame_type::data, 2, 5, to_bytes("second half") }));
    // A fragment with a count.
    r = decode(raw_frame(2, 1, 3, "x", 2, data_flag_more));
    EXPECT_EQ(r.error, data_decode_error::malformed);
    EXPECT_NE(r.message.find("a DATA fragment with MORE set has count 0 and a body"),
              std::string::npos)
      << r.message;
    // A fragment without a body (its trailer does not count).
    r = decode(raw_frame(2, 1, 0, trailer_of(1, 2), 2, data_flag_more | data_flag_ack));
    EXPECT_EQ(r.error, data_decode_error::malformed);
    EXPECT_NE(r.message.find("a DATA fragment with MORE set has count 0 and a body"),
              std::string::npos)
      << r.message;
    // Count 0 without MORE is not a fragment but a DATA frame without messages.
    r = decode(raw_frame(2, 1, 0, "x"));
    EXPECT_EQ(r.error, data_decode_error::malformed);
    EXPECT_NE(r.message.find("a DATA frame carries at least one message"), std::string::npos)
      << r.message;
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
                               EXPECT_EQ(f.flags, 0u);
                               got = parse_ack(f);
                           }),
              data_decode_error::none);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(*got, sent);
}

// Selective acknowledgement: up to 4 words after the 24 bytes, trailing 0 words left out by the
// encoder; any other body size is refused.
TEST(data_codec, ack_selective_words_round_trip) {
    const data_ack sparse{ 7, 99, 0, { 0x5, 0, 0x8000000000000000ull, 0 } };
    const data_ack full{ 7, 99, 1, { 1, 2, 3, 4 } };
    const data_ack none{ 7, 99, 2, {} };
    for (const auto& [sent, words] :
         { std::pair{ sparse, 3u }, std::pair{ full, 4u }, std::pair{ none, 0u } }) {
        std::string stream;
        append_ack_frame(stream, sent);
        EXPECT_EQ(stream.size(), data_frame_header_bytes + data_ack_body_bytes + 8 * words);
        std::optional<data_ack> got;
        EXPECT_EQ(data_frame_decoder{}.feed(as_span(stream),
                                            [&](const data_frame& f) { got = parse_ack(f); }),
                  data_decode_error::none);
        ASSERT_TRUE(got.has_value());
        EXPECT_EQ(*got, sent);
    }
    // The words are big-endian u64s after the echo, the first word first.
    std::string body = trailer_of(7, 99) + std::string(8, '\0');
    be::append<std::uint64_t>(body, 0x5);
    be::append<std::uint64_t>(body, 0);
    be::append<std::uint64_t>(body, 0x8000000000000000ull);
    std::string encoded;
    append_ack_frame(encoded, sparse);
    EXPECT_EQ(encoded, raw_frame(5, 0, 0, body));
    // A trailing 0 word from elsewhere is accepted and means what its absence means.
    std::optional<data_ack> got;
    EXPECT_EQ(data_frame_decoder{}.feed(as_span(raw_frame(5, 0, 0, body + std::string(8, '\0'))),
                                        [&](const data_frame& f) { got = parse_ack(f); }),
              data_decode_error::none);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(*got, sparse);
    for (std::size_t size : { 0u, 16u, 28u, 60u, 64u, 200u }) {
        auto r = decode(raw_frame(5, 0, 0, std::string(size, '\1')));
        EXPECT_EQ(r.error, data_decode_error::malformed) << size;
        EXPECT_NE(
          r.message.find("an ACK frame has count 0 and a body of 24 bytes plus 0 to 4 words"),
          std::string::npos)
          << r.message;
    }
}

// ---- limits ----------------------------------------------------------------------------------

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
        // The ACK trailer counts towards the limit.
        std::string with_ack =
          flagged_data_frame(data_flag_ack, 0, 1, body.substr(data_ack_trailer_bytes), 1, 2);
        ASSERT_EQ(with_ack.size(), 100u);
        data_frame_decoder fits(100);
        collector got;
        EXPECT_EQ(fits.feed(as_span(with_ack), got.callback()), data_decode_error::none);
        data_frame_decoder too_small(99);
        EXPECT_EQ(too_small.feed(as_span(with_ack), got.callback()), data_decode_error::oversized);
        EXPECT_EQ(got.frames.size(), 1u);
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
    std::string stream = s.stream + "garbage after the good frames" + s.stream;
    data_frame_decoder decoder;
    collector got;
    EXPECT_EQ(decoder.feed(as_span(stream), got.callback()), data_decode_error::bad_magic);
    EXPECT_EQ(got.frames, s.decoded);
    EXPECT_TRUE(decoder.dead());
    EXPECT_FALSE(decoder.mid_frame());
    EXPECT_EQ(decoder.feed(as_span(s.stream), got.callback()), data_decode_error::bad_magic);
    EXPECT_EQ(got.frames.size(), s.decoded.size());
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

// ---- one frame per datagram ------------------------------------------------------------------

// decode_data_datagram on `datagram`: the error, and the frame when there is none.
std::pair<data_decode_error, std::optional<frame_copy>> decode_one(
  const std::string& datagram, std::size_t max_frame_bytes = default_max_data_frame_bytes) {
    data_frame f;
    auto error = decode_data_datagram(as_span(datagram), f, max_frame_bytes);
    return { error, error == data_decode_error::none ? std::optional(copy_of(f)) : std::nullopt };
}

TEST(data_codec, a_datagram_of_one_frame_decodes_as_the_decoder_decodes_it) {
    sample s = sample_frames();
    for (std::size_t i = 0; i < s.frames.size(); ++i) {
        SCOPED_TRACE(i);
        auto [error, frame] = decode_one(s.frames[i]);
        ASSERT_EQ(error, data_decode_error::none);
        EXPECT_EQ(*frame, s.decoded[i]);
    }
}

TEST(data_codec, a_datagram_that_is_not_exactly_one_frame_is_refused) {
    sample s = sample_frames();
    const std::string& one = s.frames[1];
    // Two whole frames: the decoder delivers both, a datagram carries one.
    EXPECT_EQ(decode_one(one + s.frames[2]).first, data_decode_error::not_one_frame);
    EXPECT_EQ(decode(one + s.frames[2]).frames.size(), 2u);
    // A frame and a byte more, a frame a byte short, and less than a frame's prefix.
    EXPECT_EQ(decode_one(one + "x").first, data_decode_error::not_one_frame);
    EXPECT_EQ(decode_one(one.substr(0, one.size() - 1)).first, data_decode_error::not_one_frame);
    EXPECT_EQ(decode_one(one.substr(0, 7)).first, data_decode_error::not_one_frame);
    EXPECT_EQ(decode_one("").first, data_decode_error::not_one_frame);
}

TEST(data_codec, a_bad_datagram_gets_the_decoders_verdict) {
    const std::string good = raw_frame(2, 9, 1, "body");
    // Each of the decoder's checks, in the datagram path as in the stream one.
    std::string bad_magic = good, bad_version = good, bad_crc = good, bad_type = good;
    bad_magic[4] = 'X';
    bad_version[5] = 3;
    bad_crc[20] ^= 1;
    bad_type[6] = 9;
    const std::pair<std::string, data_decode_error> cases[] = {
        { bad_magic, data_decode_error::bad_magic },
        { bad_version, data_decode_error::bad_version },
        { bad_crc, data_decode_error::bad_checksum },
        { with_good_checksum(bad_type), data_decode_error::unknown_type },
        { raw_frame(3, 1, 1, "a credit frame has no body"), data_decode_error::malformed },
        { raw_frame(2, 1, 1, "short", 2, data_flag_ack), data_decode_error::malformed },
        { raw_frame(4, 1, 0, "", 2, data_flag_more), data_decode_error::malformed },
    };
    for (const auto& [datagram, want] : cases) {
        SCOPED_TRACE(to_string(want));
        EXPECT_EQ(decode_one(datagram).first, want);
        EXPECT_EQ(decode(datagram).error, want);
    }
    // The size limit, at its edge.
    EXPECT_EQ(decode_one(good, good.size()).first, data_decode_error::none);
    EXPECT_EQ(decode_one(good, good.size() - 1).first, data_decode_error::oversized);
    // A length field shorter than the header after it.
    std::string short_len = good;
    be::write<std::uint32_t>(reinterpret_cast<std::byte*>(short_len.data()), 19);
    EXPECT_EQ(decode_one(short_len).first, data_decode_error::short_header);
}

} // namespace
} // namespace ringtail::net
