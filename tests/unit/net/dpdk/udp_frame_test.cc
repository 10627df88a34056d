// Tests of the Ethernet + IPv4 + UDP framing: a built frame parses back to the same endpoints and
// payload, its IPv4 checksum matches a hand-checked value, and each malformation is rejected with
// its own reason.
#include "net/dpdk/udp_frame.h"

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

const udp_endpoint alice{ { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 }, 0xC0A80001, 40000 };
const udp_endpoint bob{ { 0x02, 0x00, 0x00, 0x00, 0x00, 0x02 }, 0xC0A80002, 40001 };

std::vector<std::byte> frame_of(std::size_t payload_bytes, std::uint8_t fill = 0xAB) {
    std::vector<std::byte> payload(payload_bytes, std::byte{ fill });
    std::vector<std::byte> out(udp_frame_bytes(payload_bytes));
    build_udp_frame(out, alice, bob, payload);
    return out;
}

udp_parse_error reason(std::span<const std::byte> frame) {
    udp_parse_error why = udp_parse_error::none;
    EXPECT_FALSE(parse_udp_frame(frame, &why).has_value());
    return why;
}

// Rewrites the IPv4 header checksum after a test changed a header field, so that the check under
// test is the one that fires.
void fix_ip_checksum(std::vector<std::byte>& f, std::size_t ihl_bytes = ipv4_header_min_bytes) {
    std::byte* ip = f.data() + ethernet_header_bytes;
    ip[10] = ip[11] = std::byte{ 0 };
    std::uint16_t c = internet_checksum(std::span(ip, ihl_bytes));
    ip[10] = static_cast<std::byte>(c >> 8);
    ip[11] = static_cast<std::byte>(c);
}

TEST(udp_frame, built_frame_parses_back) {
    auto f = frame_of(100);
    ASSERT_EQ(f.size(), 42u + 100u);
    udp_parse_error why = udp_parse_error::truncated;
    auto p = parse_udp_frame(f, &why);
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(why, udp_parse_error::none);
    EXPECT_EQ(p->src, alice);
    EXPECT_EQ(p->dst, bob);
    ASSERT_EQ(p->payload.size(), 100u);
    EXPECT_EQ(p->payload.data(), f.data() + udp_frame_header_bytes);
    for (auto b : p->payload) {
        EXPECT_EQ(b, std::byte{ 0xAB });
    }
}

TEST(udp_frame, header_bytes_are_the_documented_ones) {
    auto f = frame_of(4);
    auto u = [&](std::size_t i) { return std::to_integer<unsigned>(f[i]); };
    // Ethernet: dst, src, ethertype.
    EXPECT_EQ(u(5), 0x02u);
    EXPECT_EQ(u(11), 0x01u);
    EXPECT_EQ(u(12), 0x08u);
    EXPECT_EQ(u(13), 0x00u);
    // IPv4: 0x45, total length 20 + 8 + 4 = 32, DF, TTL 64, UDP.
    EXPECT_EQ(u(14), 0x45u);
    EXPECT_EQ(u(16) << 8 | u(17), 32u);
    EXPECT_EQ(u(20), 0x40u);
    EXPECT_EQ(u(22), 64u);
    EXPECT_EQ(u(23), 17u);
    // Header checksum of 45 00 0020 0000 4000 4011 xxxx c0a80001 c0a80002, computed by hand:
    // 4500 + 0020 + 4000 + 4011 + c0a8 + 0001 + c0a8 + 0002 = 0x24684 -> 4686 -> ~ = 0xB979.
    EXPECT_EQ(u(24) << 8 | u(25), 0xB979u);
    // UDP: ports, length 12, checksum 0.
    EXPECT_EQ(u(34) << 8 | u(35), 40000u);
    EXPECT_EQ(u(36) << 8 | u(37), 40001u);
    EXPECT_EQ(u(38) << 8 | u(39), 12u);
    EXPECT_EQ(u(40) << 8 | u(41), 0u);
}

TEST(udp_frame, internet_checksum_matches_rfc1071_example) {
    // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2, whose complement is 220d.
    std::vector<std::byte> b{ std::byte{ 0x00 }, std::byte{ 0x01 }, std::byte{ 0xf2 },
                              std::byte{ 0x03 }, std::byte{ 0xf4 }, std::byte{ 0xf5 },
                              std::byte{ 0xf6 }, std::byte{ 0xf7 } };
    EXPECT_EQ(internet_checksum(b), 0x220Du);
    // An odd length pads the last byte with zero.
    b.pop_back();
    EXPECT_EQ(internet_checksum(b), static_cast<std::uint16_t>(~(0xddf2u - 0xf7u) & 0xFFFF));
}

TEST(udp_frame, empty_and_largest_payloads) {
    auto empty = frame_of(0);
    auto p = parse_udp_frame(empty);
    ASSERT_TRUE(p.has_value());
    EXPECT_TRUE(p->payload.empty());

    auto big = frame_of(udp_payload_max_bytes, 0x5A);
    auto q = parse_udp_frame(big);
    ASSERT_TRUE(q.has_value());
    EXPECT_EQ(q->payload.size(), udp_payload_max_bytes);
}

TEST(udp_frame, ethernet_padding_is_not_payload) {
    // A NIC pads frames to 60 bytes; the UDP length says where the payload ends.
    auto f = frame_of(2);
    f.resize(60, std::byte{ 0 });
    auto p = parse_udp_frame(f);
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->payload.size(), 2u);
}

TEST(udp_frame, payload_already_in_place_is_kept) {
    std::vector<std::byte> out(udp_frame_bytes(16));
    for (std::size_t i = 0; i < 16; ++i) {
        out[udp_frame_header_bytes + i] = static_cast<std::byte>(i);
    }
    build_udp_frame(out, alice, bob, std::span(out).subspan(udp_frame_header_bytes));
    auto p = parse_udp_frame(out);
    ASSERT_TRUE(p.has_value());
    for (std::size_t i = 0; i < 16; ++i) {
        EXPECT_EQ(p->payload[i], static_cast<std::byte>(i));
    }
}

TEST(udp_frame, ip_options_are_skipped_by_ihl) {
    // Insert 8 bytes of options (NOPs and an end-of-list) after the 20-byte IPv4 header.
    auto f = frame_of(10);
    std::vector<std::byte> g(f.begin(), f.begin() + 34);
    g.insert(g.end(), { std::byte{ 1 }, std::byte{ 1 }, std::byte{ 1 }, std::byte{ 1 },
                        std::byte{ 1 }, std::byte{ 1 }, std::byte{ 1 }, std::byte{ 0 } });
    g.insert(g.end(), f.begin() + 34, f.end());
    g[14] = std::byte{ 0x47 };
    std::uint16_t total = 28 + 8 + 10;
    g[16] = static_cast<std::byte>(total >> 8);
    g[17] = static_cast<std::byte>(total);
    fix_ip_checksum(g, 28);
    auto p = parse_udp_frame(g);
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->payload.size(), 10u);
    EXPECT_EQ(p->src.port, alice.port);
}

TEST(udp_frame, rejects_each_malformation_with_its_reason) {
    auto good = frame_of(8);
    {
        EXPECT_EQ(reason(std::span(good).first(33)), udp_parse_error::truncated);
        EXPECT_EQ(reason({}), udp_parse_error::truncated);
    }
    {
        auto f = good;
        f[12] = std::byte{ 0x81 }; // 802.1Q tag
        EXPECT_EQ(reason(f), udp_parse_error::not_ipv4);
    }
    {
        auto f = good;
        f[14] = std::byte{ 0x65 };
        fix_ip_checksum(f);
        EXPECT_EQ(reason(f), udp_parse_error::bad_ip_version);
    }
    {
        auto f = good;
        f[14] = std::byte{ 0x44 };
        EXPECT_EQ(reason(f), udp_parse_error::bad_ihl);
        f[14] = std::byte{ 0x4F }; // 60 bytes of header, more than the frame holds after 14
        EXPECT_EQ(reason(std::span(f).first(14 + 40)), udp_parse_error::bad_ihl);
    }
    {
        auto f = good;
        f[22] = std::byte{ 63 }; // TTL changed, checksum not
        EXPECT_EQ(reason(f), udp_parse_error::bad_ip_checksum);
    }
    {
        auto f = good;
        f[16] = std::byte{ 0 };
        f[17] = std::byte{ 27 }; // below 20 + 8
        fix_ip_checksum(f);
        EXPECT_EQ(reason(f), udp_parse_error::bad_ip_length);
        f[17] = std::byte{ 37 }; // one past the frame
        fix_ip_checksum(f);
        EXPECT_EQ(reason(f), udp_parse_error::bad_ip_length);
    }
    {
        auto f = good;
        f[20] = std::byte{ 0x20 }; // more fragments
        fix_ip_checksum(f);
        EXPECT_EQ(reason(f), udp_parse_error::fragmented);
        f[20] = std::byte{ 0x40 };
        f[21] = std::byte{ 0x01 }; // offset 8
        fix_ip_checksum(f);
        EXPECT_EQ(reason(f), udp_parse_error::fragmented);
    }
    {
        auto f = good;
        f[23] = std::byte{ 6 }; // TCP
        fix_ip_checksum(f);
        EXPECT_EQ(reason(f), udp_parse_error::not_udp);
    }
    {
        auto f = good;
        f[39] = std::byte{ 15 }; // UDP length 15, IPv4 says 16
        EXPECT_EQ(reason(f), udp_parse_error::bad_udp_length);
    }
    for (auto e :
         { udp_parse_error::none, udp_parse_error::truncated, udp_parse_error::bad_udp_length }) {
        EXPECT_FALSE(to_string(e).empty());
    }
}

udp_endpoint random_endpoint(std::mt19937_64& rng) {
    udp_endpoint e{ {}, static_cast<std::uint32_t>(rng()), static_cast<std::uint16_t>(rng()) };
    for (auto& m : e.mac) {
        m = static_cast<std::uint8_t>(rng());
    }
    return e;
}

TEST(udp_frame, random_payloads_round_trip) {
    const auto seed = test_seed();
    SCOPED_TRACE(testing::Message() << "seed " << seed << " (replay with RINGTAIL_TEST_SEED)");
    std::mt19937_64 rng(seed);
    for (int i = 0; i < 500; ++i) {
        std::size_t n = rng() % 2000;
        std::vector<std::byte> payload(n);
        for (auto& b : payload) {
            b = static_cast<std::byte>(rng());
        }
        udp_endpoint src = random_endpoint(rng);
        udp_endpoint dst = random_endpoint(rng);
        std::vector<std::byte> f(udp_frame_bytes(n));
        build_udp_frame(f, src, dst, payload);
        auto p = parse_udp_frame(f);
        ASSERT_TRUE(p.has_value());
        EXPECT_EQ(p->src, src);
        EXPECT_EQ(p->dst, dst);
        ASSERT_TRUE(
          std::equal(p->payload.begin(), p->payload.end(), payload.begin(), payload.end()));
        // Any single flipped bit in the IPv4 header is caught (by the checksum or a field check).
        std::size_t bit = 8 * ethernet_header_bytes + rng() % (8 * ipv4_header_min_bytes);
        f[bit / 8] ^= static_cast<std::byte>(1u << (bit % 8));
        EXPECT_FALSE(parse_udp_frame(f).has_value()) << "bit " << bit;
    }
}

// The per-peer header template writes exactly what write_udp_headers does, for any endpoints
// and any payload size (its IPv4 checksum is an update of the empty payload's, not a new sum).
TEST(udp_frame, header_template_writes_what_write_udp_headers_does) {
    const auto seed = test_seed();
    SCOPED_TRACE(testing::Message() << "seed " << seed << " (replay with RINGTAIL_TEST_SEED)");
    std::mt19937_64 rng(seed);
    std::vector<std::size_t> sizes{ 0, 1, 2, 63, 64, 1458, udp_payload_max_bytes };
    for (int i = 0; i < 200; ++i) {
        sizes.push_back(rng() % (udp_payload_max_bytes + 1));
    }
    for (int e = 0; e < 50; ++e) {
        udp_endpoint src = random_endpoint(rng);
        udp_endpoint dst = random_endpoint(rng);
        if (e == 0) {
            src.ip = dst.ip = 0xFFFFFFFF; // sums that carry most
        } else if (e == 1) {
            src.ip = dst.ip = 0; // and least
        }
        const udp_header_template t(src, dst);
        for (std::size_t n : sizes) {
            std::array<std::byte, udp_frame_header_bytes> expected{}, got{};
            write_udp_headers(expected, src, dst, n);
            got.fill(std::byte{ 0x5A });
            t.write(got, n);
            ASSERT_EQ(got, expected) << "endpoint set " << e << ", payload " << n;
        }
    }
}

} // namespace
} // namespace ringtail::net
