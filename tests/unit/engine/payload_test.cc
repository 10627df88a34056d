// The decoders' and encoders' helpers: a payload read as text, and frames written with their
// length counted (WIRE.md §1-2: `[u32 N big-endian][N bytes]`).
#include "engine/payload.h"

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

#include "engine/big_endian.h"

namespace ringtail {
namespace {

std::span<const std::byte> bytes_of(std::string_view s) {
    return std::as_bytes(std::span(s.data(), s.size()));
}

TEST(Payload, AsTextViewsTheSameBytes) {
    const std::string payload("hello\0world\xff", 12);
    std::string_view text = as_text(bytes_of(payload));
    EXPECT_EQ(text, payload) << "every byte, a zero and a high byte included";
    EXPECT_EQ(static_cast<const void*>(text.data()), static_cast<const void*>(payload.data()))
      << "a view, not a copy";
    EXPECT_TRUE(as_text({}).empty());
    EXPECT_EQ(as_text(bytes_of(payload).subspan(6)), std::string_view("world\xff"));
}

TEST(Payload, AppendFrameWritesABigEndianLengthThenThePayload) {
    std::string out = "before";
    append_frame(out, std::string_view("abc"));
    EXPECT_EQ(out, std::string("before\0\0\0\x03"
                               "abc",
                               13));
    append_frame(out, std::string_view{});
    EXPECT_EQ(out.substr(13), std::string("\0\0\0\0", 4)) << "an empty payload is a frame too";
}

TEST(Payload, AppendFrameCountsWhatTheWriterAppends) {
    std::string out = "xy";
    append_frame(out, [](std::string& payload) {
        payload.push_back('A');
        be::append<std::uint64_t>(payload, 0x0102030405060708);
    });
    ASSERT_EQ(out.size(), 2u + 4u + 9u);
    EXPECT_EQ(out.substr(0, 2), "xy") << "what was in the buffer stays";
    EXPECT_EQ(be::read<std::uint32_t>(bytes_of(out).data() + 2), 9u);
    EXPECT_EQ(out.substr(6), std::string("A\x01\x02\x03\x04\x05\x06\x07\x08"));

    // The same bytes as the length written by hand, as the apps did.
    std::string by_hand = "xy";
    be::append<std::uint32_t>(by_hand, 9);
    by_hand.push_back('A');
    be::append<std::uint64_t>(by_hand, 0x0102030405060708);
    EXPECT_EQ(out, by_hand);
}

TEST(Payload, AppendFrameWithNothingWrittenIsAnEmptyFrame) {
    std::string out;
    append_frame(out, [](std::string&) {});
    EXPECT_EQ(out, std::string("\0\0\0\0", 4));
}

TEST(Payload, LargePayloadsGetTheirFullLength) {
    std::string out;
    const std::string big(70000, 'z'); // more than a u16 can say
    append_frame(out, [&](std::string& payload) { payload += big; });
    EXPECT_EQ(be::read<std::uint32_t>(bytes_of(out).data()), 70000u);
    EXPECT_EQ(out.size(), 70004u);
}

} // namespace
} // namespace ringtail
