// The control channel's framing: byte layout, round trips whole and cut anywhere, every corrupted
// byte caught, each kind of bad frame rejected with its own error, and the typed field reads.
#include "net/cluster/control_codec.h"

#include <cstdint>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "engine/big_endian.h"
#include "net/channel/crc32c.h"

namespace ringtail::net {
namespace {

using json = nlohmann::json;

// A frame with every header field chosen by the test, and the right CRC for them; the length is the
// right one unless `length` is given.
std::string raw_frame(std::uint8_t magic, std::uint8_t version, std::uint8_t type,
                      std::uint8_t flags, std::string_view body,
                      std::optional<std::uint32_t> length = std::nullopt) {
    const char fixed[4] = { static_cast<char>(magic), static_cast<char>(version),
                            static_cast<char>(type), static_cast<char>(flags) };
    std::string out;
    be::append<std::uint32_t>(out, length.value_or(static_cast<std::uint32_t>(8 + body.size())));
    out.append(fixed, 4);
    be::append<std::uint32_t>(out, crc32c(body, crc32c(std::string_view(fixed, sizeof fixed))));
    out.append(body);
    return out;
}

std::string good_frame(std::uint8_t type, std::string_view body) {
    return raw_frame(control_magic, control_version, type, 0, body);
}

struct decoded {
    std::vector<control_msg> messages;
    control_error error = control_error::none;
    std::string message;
};

decoded decode(std::string_view bytes, std::uint32_t max_frame = control_default_max_frame) {
    control_decoder d(max_frame);
    decoded out;
    out.error = d.feed(bytes, out.messages);
    out.message = d.error_message();
    EXPECT_EQ(d.dead(), out.error != control_error::none);
    return out;
}

std::vector<control_msg> sample_messages() {
    std::vector<control_msg> out;
    for (int t = control_type_first; t <= control_type_last; ++t) {
        json body = json::object();
        body["worker"] = "worker" + std::to_string(t);
        body["seq"] = static_cast<std::uint64_t>(t) * 1'000'000'007ull;
        body["ok"] = t % 2 == 0;
        body["names"] = json::array({ "a", "b\"c", "d\\e", "\u00e9t\u00e9" });
        body["nested"] = { { "x", -t }, { "y", 0.5 * t }, { "z", nullptr } };
        out.push_back({ static_cast<control_type>(t), std::move(body) });
    }
    out.push_back({ control_type::heartbeat, json::object() });
    return out;
}

std::string encode_all(const std::vector<control_msg>& messages) {
    std::string out;
    for (const auto& m : messages) {
        append_control(out, m.type, m.body);
    }
    return out;
}

TEST(ControlCodec, EncodesTheDocumentedLayout) {
    const std::string frame = encode_control(control_type::worker_lost, json{ { "w", "x" } });
    const std::string body = R"({"w":"x"})";
    ASSERT_EQ(frame.size(), control_header_bytes + body.size());
    const auto* p = reinterpret_cast<const std::byte*>(frame.data());
    EXPECT_EQ(be::read<std::uint32_t>(p), 8 + body.size());
    EXPECT_EQ(static_cast<std::uint8_t>(frame[4]), 0xC7);
    EXPECT_EQ(static_cast<std::uint8_t>(frame[5]), 1);
    EXPECT_EQ(static_cast<std::uint8_t>(frame[6]), 8);
    EXPECT_EQ(static_cast<std::uint8_t>(frame[7]), 0);
    EXPECT_EQ(be::read<std::uint32_t>(p + 8),
              crc32c(body, crc32c(std::string_view(frame.data() + 4, 4))));
    EXPECT_EQ(frame.substr(control_header_bytes), body);
    EXPECT_EQ(frame, good_frame(8, body));
    // append_control appends.
    std::string out = "prefix";
    append_control(out, control_type::worker_lost, json{ { "w", "x" } });
    EXPECT_EQ(out, "prefix" + frame);
}

TEST(ControlCodec, NamesEveryType) {
    std::set<std::string> names;
    for (int t = control_type_first; t <= control_type_last; ++t) {
        const std::string name = to_string(static_cast<control_type>(t));
        EXPECT_NE(name, "unknown") << t;
        names.insert(name);
    }
    EXPECT_EQ(names.size(), std::size_t{ control_type_last });
    EXPECT_STREQ(to_string(control_type::drain_status_request), "drain_status_request");
    EXPECT_STREQ(to_string(static_cast<control_type>(0)), "unknown");
    EXPECT_STREQ(to_string(static_cast<control_type>(17)), "unknown");
    EXPECT_FALSE(is_control_type(0));
    EXPECT_TRUE(is_control_type(16));
    EXPECT_FALSE(is_control_type(17));
    EXPECT_STREQ(to_string(control_error::bad_checksum), "bad_checksum");
}

TEST(ControlCodec, RoundTripsEveryType) {
    for (const auto& m : sample_messages()) {
        auto got = decode(encode_control(m.type, m.body));
        ASSERT_EQ(got.error, control_error::none) << got.message;
        ASSERT_EQ(got.messages.size(), 1u);
        EXPECT_EQ(got.messages[0], m) << to_string(m.type);
    }
}

TEST(ControlCodec, RoundTripsCutAtEveryByte) {
    const auto messages = sample_messages();
    const std::string stream = encode_all(messages);
    std::vector<std::size_t> frame_ends;
    for (const auto& m : messages) {
        const std::size_t before = frame_ends.empty() ? 0 : frame_ends.back();
        frame_ends.push_back(before + encode_control(m.type, m.body).size());
    }
    for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
        control_decoder d;
        std::vector<control_msg> got;
        ASSERT_EQ(d.feed(std::string_view(stream).substr(0, cut), got), control_error::none);
        const std::size_t whole = got.empty() ? 0 : frame_ends[got.size() - 1];
        EXPECT_EQ(d.mid_frame(), cut > whole) << "cut at " << cut;
        ASSERT_EQ(d.feed(std::string_view(stream).substr(cut), got), control_error::none);
        ASSERT_EQ(got, messages) << "cut at " << cut;
        EXPECT_FALSE(d.mid_frame());
    }
    // Byte by byte, pulling with next() after each byte.
    control_decoder d;
    std::vector<control_msg> got;
    for (char c : stream) {
        d.feed(std::string_view(&c, 1));
        while (auto m = d.next()) {
            got.push_back(std::move(*m));
        }
        ASSERT_FALSE(d.dead()) << d.error_message();
    }
    EXPECT_EQ(got, messages);
}

TEST(ControlCodec, RoundTripsRandomCuts) {
    const auto seed = std::random_device{}();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    const auto messages = sample_messages();
    const std::string stream = encode_all(messages);
    for (int round = 0; round < 200; ++round) {
        control_decoder d;
        std::vector<control_msg> got;
        std::size_t at = 0;
        while (at < stream.size()) {
            const std::size_t n = std::uniform_int_distribution<std::size_t>(0, 300)(rng);
            const auto piece = std::string_view(stream).substr(at, n);
            ASSERT_EQ(d.feed(piece, got), control_error::none);
            at += piece.size();
        }
        ASSERT_EQ(got, messages);
    }
}

// Each byte of a frame replaced by each of its 255 other values: the decoder rejects the frame or
// waits for bytes that never come, but never delivers a message, neither a changed one nor the
// frame after it.
TEST(ControlCodec, EveryByteChangeIsCaught) {
    const std::string first =
      encode_control(control_type::hello, json{ { "worker", "w1" }, { "partitions", { 1, 2 } } });
    const std::string second = encode_control(control_type::ready, json::object());
    std::size_t rejected = 0;
    std::size_t waiting = 0;
    for (std::size_t i = 0; i < first.size(); ++i) {
        for (int v = 0; v < 256; ++v) {
            if (static_cast<char>(v) == first[i]) {
                continue;
            }
            std::string bytes = first + second;
            bytes[i] = static_cast<char>(v);
            auto got = decode(bytes);
            ASSERT_TRUE(got.messages.empty())
              << "byte " << i << " set to " << v << " delivered " << got.messages[0].body.dump();
            if (got.error != control_error::none) {
                ++rejected;
            } else {
                ++waiting; // a larger length: the frame is not complete yet
                ASSERT_LT(i, 4u);
            }
        }
    }
    EXPECT_EQ(rejected + waiting, first.size() * 255);
    EXPECT_GT(rejected, waiting);
}

TEST(ControlCodec, RejectsAnotherProtocol) {
    auto got = decode("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(got.error, control_error::bad_magic);
    EXPECT_NE(got.message.find("not a Ringtail control-channel frame"), std::string::npos)
      << got.message;
    // Decided from the first eight bytes, without waiting for the announced length.
    got = decode(raw_frame(0x00, 1, 1, 0, "{}").substr(0, 8));
    EXPECT_EQ(got.error, control_error::bad_magic);
}

TEST(ControlCodec, RejectsAnotherVersion) {
    auto got = decode(raw_frame(control_magic, 2, 1, 0, "{}"));
    EXPECT_EQ(got.error, control_error::bad_version);
    EXPECT_EQ(got.message, "control-channel version 2, this build speaks 1");
    got = decode(raw_frame(control_magic, 0, 1, 0, "{}"));
    EXPECT_EQ(got.error, control_error::bad_version);
}

TEST(ControlCodec, RejectsOversizedFrames) {
    const std::string body = R"({"s":")" + std::string(200, 'x') + R"("})";
    const std::string frame = good_frame(1, body);
    const auto length = static_cast<std::uint32_t>(frame.size() - 4);
    EXPECT_EQ(decode(frame, length).messages.size(), 1u); // exactly at the limit
    auto got = decode(frame, length - 1);
    EXPECT_EQ(got.error, control_error::oversize);
    EXPECT_NE(got.message.find("over the"), std::string::npos) << got.message;
    // The default limit, decided from the header alone.
    got = decode(raw_frame(control_magic, 1, 1, 0, "", control_default_max_frame + 1).substr(0, 8));
    EXPECT_EQ(got.error, control_error::oversize);
    got = decode(raw_frame(control_magic, 1, 1, 0, "", 0xFFFFFFFFu).substr(0, 8));
    EXPECT_EQ(got.error, control_error::oversize);
}

TEST(ControlCodec, RejectsShortHeaderAndFlags) {
    for (std::uint32_t length : { 0u, 1u, 7u }) {
        auto got = decode(raw_frame(control_magic, 1, 1, 0, "", length));
        EXPECT_EQ(got.error, control_error::short_header) << length;
    }
    auto got = decode(raw_frame(control_magic, 1, 1, 0x01, "{}"));
    EXPECT_EQ(got.error, control_error::bad_flags);
    got = decode(raw_frame(control_magic, 1, 1, 0x80, "{}"));
    EXPECT_EQ(got.error, control_error::bad_flags);
}

TEST(ControlCodec, RejectsBadChecksum) {
    const std::string frame = good_frame(1, R"({"a":1})");
    std::string bad = frame;
    bad[11] = static_cast<char>(bad[11] ^ 1);
    auto got = decode(bad);
    EXPECT_EQ(got.error, control_error::bad_checksum);
    EXPECT_NE(got.message.find("checksum"), std::string::npos);
    // A type byte changed after the checksum was computed (another valid type) is caught too.
    std::string changed = frame;
    changed[6] = 3;
    EXPECT_EQ(decode(changed).error, control_error::bad_checksum);
}

TEST(ControlCodec, RejectsUnknownTypes) {
    for (int t : { 0, 17, 100, 255 }) {
        auto got = decode(good_frame(static_cast<std::uint8_t>(t), "{}"));
        EXPECT_EQ(got.error, control_error::unknown_type) << t;
        EXPECT_NE(got.message.find(std::to_string(t)), std::string::npos) << got.message;
    }
}

TEST(ControlCodec, RejectsBodiesThatAreNotObjects) {
    for (const char* body : { "[]", "[1,2]", "1", "-3.5", "\"s\"", "null", "true", " [ ] " }) {
        auto got = decode(good_frame(1, body));
        EXPECT_EQ(got.error, control_error::not_object) << body;
        EXPECT_NE(got.message.find("not a JSON object"), std::string::npos) << got.message;
    }
}

TEST(ControlCodec, RejectsInvalidJsonAndUtf8) {
    const std::vector<std::string> bodies = {
        "",
        "{",
        R"({"a":})",
        R"({"a":1,})",
        R"({"a":1} x)",
        "{\"a\":\"\xff\"}",         // not UTF-8
        "{\"a\":\"\xc0\x80\"}",     // overlong encoding of NUL
        "{\"a\":\"\xed\xa0\x80\"}", // a UTF-16 surrogate encoded as UTF-8
        "{\"a\":\"\xe2\x82\"}",     // truncated sequence
        "{\"a\":\"x\ny\"}",         // raw control character in a string
        R"({"a":1e999})",           // overflows a double
        R"({"a":1} // comment)",
        std::string("{\"a\":1}\0", 8), // nlohmann would take the NUL for the end of input
        std::string("{\"a\":1}\0xyz", 11),
    };
    for (const auto& body : bodies) {
        auto got = decode(good_frame(2, body));
        EXPECT_EQ(got.error, control_error::bad_json) << body;
        EXPECT_NE(got.message.find("welcome body is not valid JSON"), std::string::npos)
          << got.message;
    }
    // Well-formed UTF-8 and escapes are accepted.
    auto got = decode(good_frame(2, "{\"a\":\"\xc3\xa9\\u00e9\\ud83d\\ude00\"}"));
    ASSERT_EQ(got.error, control_error::none) << got.message;
    EXPECT_EQ(get_string(got.messages.at(0).body, "a"), "\u00e9\u00e9\U0001F600");
}

TEST(ControlCodec, RejectsDeepNesting) {
    auto nested = [](std::size_t levels) {
        // `levels` counts the outer object too.
        std::string s = R"({"a":)";
        s += std::string(levels - 1, '[');
        s += std::string(levels - 1, ']');
        return s + "}";
    };
    EXPECT_EQ(decode(good_frame(1, nested(control_max_depth))).error, control_error::none);
    auto got = decode(good_frame(1, nested(control_max_depth + 1)));
    EXPECT_EQ(got.error, control_error::too_deep);
    EXPECT_EQ(decode(good_frame(1, nested(100000))).error, control_error::too_deep);
    // Brackets inside strings, escaped quotes included, do not count.
    const std::string in_string = R"({"a":"\"[[[[)" + std::string(200, '[') + R"("})";
    EXPECT_EQ(decode(good_frame(1, in_string)).error, control_error::none);
}

TEST(ControlCodec, DeliversFramesBeforeAnErrorAndNothingAfter) {
    const std::string a = encode_control(control_type::hello, json{ { "n", 1 } });
    const std::string b = encode_control(control_type::welcome, json{ { "n", 2 } });
    control_decoder d;
    std::vector<control_msg> got;
    EXPECT_EQ(d.feed(a + "garbage!" + b, got), control_error::bad_magic);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].type, control_type::hello);
    // Dead for good.
    EXPECT_EQ(d.feed(b, got), control_error::bad_magic);
    EXPECT_EQ(got.size(), 1u);
    EXPECT_FALSE(d.next().has_value());
    EXPECT_FALSE(d.mid_frame());
}

TEST(ControlCodec, EncoderReplacesInvalidUtf8) {
    const json body{ { "name", std::string("a\xff") } };
    auto got = decode(encode_control(control_type::hello, body));
    ASSERT_EQ(got.error, control_error::none) << got.message;
    EXPECT_EQ(get_string(got.messages.at(0).body, "name"), "a\xef\xbf\xbd");
}

TEST(ControlCodec, TypedReadsNeverThrow) {
    const json body = json::parse(R"({
        "s": "text", "u": 42, "big": 18446744073709551615, "neg": -5, "f": 1.0, "b": true,
        "n": null, "arr": ["x", "y"], "mixed": ["x", 1], "nums": [1, 2, 3], "signed": [1, -2],
        "empty": [], "obj": {"k": "v"}
    })");
    EXPECT_EQ(get_string(body, "s"), "text");
    EXPECT_EQ(get_u64(body, "u"), 42u);
    EXPECT_EQ(get_u64(body, "big"), 18446744073709551615ull);
    EXPECT_EQ(get_i64(body, "neg"), -5);
    EXPECT_EQ(get_i64(body, "u"), 42);
    EXPECT_EQ(get_bool(body, "b"), true);
    EXPECT_EQ(get_string_array(body, "arr"), (std::vector<std::string>{ "x", "y" }));
    EXPECT_EQ(get_string_array(body, "empty"), std::vector<std::string>{});
    EXPECT_EQ(get_u64_array(body, "nums"), (std::vector<std::uint64_t>{ 1, 2, 3 }));
    ASSERT_NE(get_object(body, "obj"), nullptr);
    EXPECT_EQ(get_string(*get_object(body, "obj"), "k"), "v");
    ASSERT_NE(get_array(body, "arr"), nullptr);

    // Wrong types, missing keys.
    for (const char* key : { "u", "b", "n", "arr", "obj", "missing" }) {
        EXPECT_FALSE(get_string(body, key)) << key;
    }
    for (const char* key : { "s", "neg", "f", "b", "n", "arr", "missing" }) {
        EXPECT_FALSE(get_u64(body, key)) << key;
    }
    for (const char* key : { "big", "s", "f", "b", "missing" }) {
        EXPECT_FALSE(get_i64(body, key)) << key;
    }
    for (const char* key : { "s", "u", "n", "arr", "missing" }) {
        EXPECT_FALSE(get_bool(body, key)) << key;
    }
    for (const char* key : { "s", "mixed", "nums", "obj", "missing" }) {
        EXPECT_FALSE(get_string_array(body, key)) << key;
    }
    for (const char* key : { "arr", "signed", "u", "missing" }) {
        EXPECT_FALSE(get_u64_array(body, key)) << key;
    }
    EXPECT_EQ(get_object(body, "arr"), nullptr);
    EXPECT_EQ(get_array(body, "obj"), nullptr);
    // A body that is not an object at all.
    for (const json& not_object : { json::array({ 1 }), json("s"), json(3), json(nullptr) }) {
        EXPECT_FALSE(get_string(not_object, "s"));
        EXPECT_FALSE(get_u64(not_object, "u"));
        EXPECT_FALSE(get_bool(not_object, "b"));
        EXPECT_FALSE(get_string_array(not_object, "arr"));
        EXPECT_EQ(get_object(not_object, "obj"), nullptr);
    }
    // A locally built body with signed storage of a non-negative number.
    json local;
    local["i"] = std::int64_t{ 7 };
    EXPECT_EQ(get_u64(local, "i"), 7u);
}

} // namespace
} // namespace ringtail::net
