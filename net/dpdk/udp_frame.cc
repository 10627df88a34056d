// Building and parsing the Ethernet + IPv4 + UDP headers of the DPDK back end's frames.
#include "net/dpdk/udp_frame.h"
#include "engine/assert.h"

#include <cstdlib>
#include <cstring>

#include "engine/log.h"

namespace ringtail::net {

namespace {

// Offsets from the start of the IPv4 header.
constexpr std::size_t ip_ver_ihl_at = 0;
constexpr std::size_t ip_total_len_at = 2;
constexpr std::size_t ip_flags_frag_at = 6;
constexpr std::size_t ip_ttl_at = 8;
constexpr std::size_t ip_proto_at = 9;
constexpr std::size_t ip_checksum_at = 10;
constexpr std::size_t ip_src_at = 12;
constexpr std::size_t ip_dst_at = 16;
// Don't Fragment: our frames fit the MTU by construction, and a fragment would defeat the
// payload's own framing.
constexpr std::uint16_t ip_flag_df = 0x4000;
constexpr std::uint16_t ip_flag_mf = 0x2000;
constexpr std::uint16_t ip_frag_offset_mask = 0x1FFF;
constexpr std::uint8_t default_ttl = 64;

void put16(std::byte* p, std::uint16_t v) {
    p[0] = static_cast<std::byte>(v >> 8);
    p[1] = static_cast<std::byte>(v);
}

void put32(std::byte* p, std::uint32_t v) {
    put16(p, static_cast<std::uint16_t>(v >> 16));
    put16(p + 2, static_cast<std::uint16_t>(v));
}

std::uint16_t get16(const std::byte* p) {
    return static_cast<std::uint16_t>(std::to_integer<unsigned>(p[0]) << 8 |
                                      std::to_integer<unsigned>(p[1]));
}

std::uint32_t get32(const std::byte* p) {
    return std::uint32_t{ get16(p) } << 16 | get16(p + 2);
}

bool rejected(udp_parse_error e, udp_parse_error* why) {
    if (why != nullptr) {
        *why = e;
    }
    return false;
}

} // namespace

std::string_view to_string(udp_parse_error e) {
    switch (e) {
        case udp_parse_error::none:
            return "none";
        case udp_parse_error::truncated:
            return "truncated";
        case udp_parse_error::not_ipv4:
            return "not IPv4";
        case udp_parse_error::bad_ip_version:
            return "bad IP version";
        case udp_parse_error::bad_ihl:
            return "bad IPv4 header length";
        case udp_parse_error::bad_ip_checksum:
            return "bad IPv4 header checksum";
        case udp_parse_error::bad_ip_length:
            return "bad IPv4 total length";
        case udp_parse_error::fragmented:
            return "IPv4 fragment";
        case udp_parse_error::not_udp:
            return "not UDP";
        case udp_parse_error::bad_udp_length:
            return "bad UDP length";
    }
    return "unknown";
}

std::uint16_t internet_checksum(std::span<const std::byte> bytes) {
    // 32-bit accumulator folded at the end: a 64 KiB input adds at most 32 Ki words of 0xFFFF,
    // which stays below 2^31.
    std::uint32_t sum = 0;
    std::size_t i = 0;
    for (; i + 1 < bytes.size(); i += 2) {
        sum += get16(bytes.data() + i);
    }
    if (i < bytes.size()) {
        sum += std::to_integer<std::uint32_t>(bytes[i]) << 8;
    }
    while (sum > 0xFFFF) {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    return static_cast<std::uint16_t>(~sum);
}

void write_udp_headers(std::span<std::byte, udp_frame_header_bytes> out, const udp_endpoint& src,
                       const udp_endpoint& dst, std::size_t payload_bytes) {
    RINGTAIL_ASSERT(payload_bytes <= udp_payload_max_bytes,
                    "payload too large for one IPv4 datagram");
    std::byte* eth = out.data();
    std::memcpy(eth, dst.mac.data(), 6);
    std::memcpy(eth + 6, src.mac.data(), 6);
    put16(eth + 12, ethertype_ipv4);

    std::byte* ip = eth + ethernet_header_bytes;
    std::memset(ip, 0, ipv4_header_min_bytes);
    ip[ip_ver_ihl_at] = std::byte{ 0x45 }; // version 4, 5 words of header
    put16(ip + ip_total_len_at,
          static_cast<std::uint16_t>(ipv4_header_min_bytes + udp_header_bytes + payload_bytes));
    put16(ip + ip_flags_frag_at, ip_flag_df);
    ip[ip_ttl_at] = std::byte{ default_ttl };
    ip[ip_proto_at] = std::byte{ ip_protocol_udp };
    put32(ip + ip_src_at, src.ip);
    put32(ip + ip_dst_at, dst.ip);
    put16(ip + ip_checksum_at, internet_checksum(std::span(ip, ipv4_header_min_bytes)));

    std::byte* udp = ip + ipv4_header_min_bytes;
    put16(udp, src.port);
    put16(udp + 2, dst.port);
    put16(udp + 4, static_cast<std::uint16_t>(udp_header_bytes + payload_bytes));
    put16(udp + 6, 0);
}

udp_header_template::udp_header_template(const udp_endpoint& src, const udp_endpoint& dst) {
    write_udp_headers(_bytes, src, dst, 0);
    // The checksum field holds the complement of the sum of the other fields.
    const std::uint16_t checksum = get16(_bytes.data() + ip_checksum_at);
    _empty_sum = static_cast<std::uint16_t>(~checksum);
}

void build_udp_frame(std::span<std::byte> out, const udp_endpoint& src, const udp_endpoint& dst,
                     std::span<const std::byte> payload) {
    RINGTAIL_ASSERT(out.size() == udp_frame_bytes(payload.size()),
                    "build_udp_frame: output size is not udp_frame_bytes(payload size)");
    write_udp_headers(out.first<udp_frame_header_bytes>(), src, dst, payload.size());
    std::byte* at = out.data() + udp_frame_header_bytes;
    if (!payload.empty() && payload.data() != at) {
        // memmove: the payload may overlap the output when the caller built it nearby.
        std::memmove(at, payload.data(), payload.size());
    }
}

std::optional<parsed_udp> parse_udp_frame(std::span<const std::byte> frame, udp_parse_error* why) {
    parsed_udp out;
    if (!parse_udp_frame(frame, out, why)) {
        return std::nullopt;
    }
    return out;
}

bool parse_udp_frame(std::span<const std::byte> frame, parsed_udp& out, udp_parse_error* why) {
    if (frame.size() < ethernet_header_bytes + ipv4_header_min_bytes) {
        return rejected(udp_parse_error::truncated, why);
    }
    const std::byte* eth = frame.data();
    if (get16(eth + 12) != ethertype_ipv4) {
        return rejected(udp_parse_error::not_ipv4, why);
    }
    const std::byte* ip = eth + ethernet_header_bytes;
    const std::size_t ip_room = frame.size() - ethernet_header_bytes;
    const unsigned ver_ihl = std::to_integer<unsigned>(ip[ip_ver_ihl_at]);
    if (ver_ihl >> 4 != 4) {
        return rejected(udp_parse_error::bad_ip_version, why);
    }
    const std::size_t ihl_bytes = std::size_t{ ver_ihl & 0x0Fu } * 4;
    if (ihl_bytes < ipv4_header_min_bytes || ihl_bytes > ip_room) {
        return rejected(udp_parse_error::bad_ihl, why);
    }
    // A correct header (checksum field included) sums to 0xFFFF, whose complement is 0.
    if (internet_checksum(std::span(ip, ihl_bytes)) != 0) {
        return rejected(udp_parse_error::bad_ip_checksum, why);
    }
    const std::size_t total_len = get16(ip + ip_total_len_at);
    if (total_len < ihl_bytes + udp_header_bytes || total_len > ip_room) {
        return rejected(udp_parse_error::bad_ip_length, why);
    }
    const std::uint16_t flags_frag = get16(ip + ip_flags_frag_at);
    if ((flags_frag & (ip_flag_mf | ip_frag_offset_mask)) != 0) {
        return rejected(udp_parse_error::fragmented, why);
    }
    if (std::to_integer<std::uint8_t>(ip[ip_proto_at]) != ip_protocol_udp) {
        return rejected(udp_parse_error::not_udp, why);
    }
    const std::byte* udp = ip + ihl_bytes;
    const std::size_t udp_len = get16(udp + 4);
    // Bytes past total_len are Ethernet padding; the UDP length must describe exactly the rest of
    // the IPv4 datagram.
    if (udp_len != total_len - ihl_bytes) {
        return rejected(udp_parse_error::bad_udp_length, why);
    }
    std::memcpy(out.dst.mac.data(), eth, 6);
    std::memcpy(out.src.mac.data(), eth + 6, 6);
    out.src.ip = get32(ip + ip_src_at);
    out.dst.ip = get32(ip + ip_dst_at);
    out.src.port = get16(udp);
    out.dst.port = get16(udp + 2);
    out.payload = std::span(udp + udp_header_bytes, udp_len - udp_header_bytes);
    if (why != nullptr) {
        *why = udp_parse_error::none;
    }
    return true;
}

} // namespace ringtail::net
