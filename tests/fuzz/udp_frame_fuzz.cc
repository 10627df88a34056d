// libFuzzer target for the Ethernet + IPv4 + UDP parser: arbitrary bytes must parse without UB,
// an accepted frame's payload must lie inside the input, and rebuilding it from what was parsed
// must give a frame that parses to the same endpoints and payload.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "net/dpdk/udp_frame.h"

namespace {

using ringtail::net::parse_udp_frame;
using ringtail::net::udp_parse_error;

void check(bool condition) {
    if (!condition) {
        std::abort();
    }
}

// A checksum is hard to guess, so that the checks after it are reached too, inputs whose first
// byte is odd get the IPv4 header checksum their IHL delimits written in.
void repair_checksum(std::vector<std::byte>& f) {
    constexpr std::size_t ip_at = ringtail::net::ethernet_header_bytes;
    if (f.size() < ip_at + ringtail::net::ipv4_header_min_bytes) {
        return;
    }
    std::size_t ihl = std::size_t{ std::to_integer<unsigned>(f[ip_at]) & 0x0Fu } * 4;
    if (ihl < ringtail::net::ipv4_header_min_bytes || ip_at + ihl > f.size()) {
        return;
    }
    f[ip_at + 10] = f[ip_at + 11] = std::byte{ 0 };
    std::uint16_t c = ringtail::net::internet_checksum(std::span(f.data() + ip_at, ihl));
    f[ip_at + 10] = static_cast<std::byte>(c >> 8);
    f[ip_at + 11] = static_cast<std::byte>(c);
}

} // namespace

// Input layout: byte 0 chooses checksum repair (low bit); the rest is the frame.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) {
        return 0;
    }
    std::vector<std::byte> frame(reinterpret_cast<const std::byte*>(data + 1),
                                 reinterpret_cast<const std::byte*>(data + size));
    if ((data[0] & 1u) != 0) {
        repair_checksum(frame);
    }
    udp_parse_error why = udp_parse_error::truncated;
    auto parsed = parse_udp_frame(frame, &why);
    check(parsed.has_value() == (why == udp_parse_error::none));
    check(!ringtail::net::to_string(why).empty());
    if (!parsed) {
        return 0;
    }
    const std::byte* begin = frame.data();
    const std::byte* end = begin + frame.size();
    check(parsed->payload.data() >= begin + ringtail::net::udp_frame_header_bytes);
    check(parsed->payload.data() + parsed->payload.size() <= end);
    check(parsed->payload.size() <= ringtail::net::udp_payload_max_bytes);

    std::vector<std::byte> again(ringtail::net::udp_frame_bytes(parsed->payload.size()));
    ringtail::net::build_udp_frame(again, parsed->src, parsed->dst, parsed->payload);
    auto reparsed = parse_udp_frame(again);
    check(reparsed.has_value());
    check(reparsed->src == parsed->src && reparsed->dst == parsed->dst);
    check(std::equal(reparsed->payload.begin(), reparsed->payload.end(), parsed->payload.begin(),
                     parsed->payload.end()));
    return 0;
}
