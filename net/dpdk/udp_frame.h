// Ethernet + IPv4 + UDP headers around a data-channel frame, so that the DPDK back end's frames can
// be captured and routed (DESIGN.md §4); no DPDK dependency, so it is always built and fuzzed.
//
// Layout (all multi-byte fields big-endian, as on the wire):
//   Ethernet II: [dst mac 6][src mac 6][ethertype 0x0800]                               14 bytes
//   IPv4:        [ver 4 | ihl 5][tos 0][total len][id 0][flags DF, frag 0][ttl 64][proto 17]
//                [header checksum][src ip][dst ip]                                       20 bytes
//   UDP:         [src port][dst port][len = 8 + payload][checksum 0]                      8 bytes
// The UDP checksum is left 0 ("not computed", allowed for IPv4 by RFC 768): the payload carries its
// own CRC-32C (net/channel/data_codec.h), and skipping it keeps the TX path free of a pass over the
// bytes. The IPv4 header checksum is computed and checked, since a router drops a frame without
// one.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>

#include "engine/assert.h"

namespace ringtail::net {

inline constexpr std::size_t ethernet_header_bytes = 14;
inline constexpr std::size_t ipv4_header_min_bytes = 20;
inline constexpr std::size_t ipv4_header_max_bytes = 60;
inline constexpr std::size_t udp_header_bytes = 8;
// The headers build_udp_frame writes (IPv4 without options).
inline constexpr std::size_t udp_frame_header_bytes =
  ethernet_header_bytes + ipv4_header_min_bytes + udp_header_bytes;
// The largest payload whose IPv4 total length still fits its 16-bit field.
inline constexpr std::size_t udp_payload_max_bytes =
  0xFFFF - ipv4_header_min_bytes - udp_header_bytes;
inline constexpr std::uint16_t ethertype_ipv4 = 0x0800;
inline constexpr std::uint8_t ip_protocol_udp = 17;

// One end of a UDP flow. `ip` is the address as a number (192.168.0.1 is 0xC0A80001), `port` in
// host order; the codec writes both big-endian.
struct udp_endpoint {
    std::array<std::uint8_t, 6> mac{};
    std::uint32_t ip = 0;
    std::uint16_t port = 0;
    friend bool operator==(const udp_endpoint&, const udp_endpoint&) = default;
};

// The bytes build_udp_frame writes for a payload of `payload_bytes`.
constexpr std::size_t udp_frame_bytes(std::size_t payload_bytes) {
    return udp_frame_header_bytes + payload_bytes;
}

// Writes the headers and copies the payload into `out`, which must hold exactly
// udp_frame_bytes(payload.size()) bytes; payload.size() must not exceed udp_payload_max_bytes
// (both asserted: the caller sized the buffer). Callers that already placed the payload at
// out[udp_frame_header_bytes...] may pass it as that same span; the copy is then skipped.
void build_udp_frame(std::span<std::byte> out, const udp_endpoint& src, const udp_endpoint& dst,
                     std::span<const std::byte> payload);

// Writes only the headers into out[0, udp_frame_header_bytes) for a payload of `payload_bytes`
// that the caller puts (or already put) right after them.
void write_udp_headers(std::span<std::byte, udp_frame_header_bytes> out, const udp_endpoint& src,
                       const udp_endpoint& dst, std::size_t payload_bytes);

// The headers from one endpoint to another, built once. A frame's headers are then a copy of
// them and three 16-bit fields: the IPv4 total length, the UDP length, and the IPv4 checksum,
// updated from the one of an empty payload (only the total length differs, so its one's
// complement sum differs by the payload size; RFC 1624). The same bytes as write_udp_headers, in
// a few wide stores instead of some twenty narrow ones per frame.
class udp_header_template {
public:
    udp_header_template(const udp_endpoint& src, const udp_endpoint& dst);
    // payload_bytes must not exceed udp_payload_max_bytes (asserted).
    void write(std::span<std::byte, udp_frame_header_bytes> out, std::size_t payload_bytes) const {
        RINGTAIL_ASSERT(payload_bytes <= udp_payload_max_bytes,
                        "a payload of {} bytes is too large for one IPv4 datagram", payload_bytes);
        std::memcpy(out.data(), _bytes.data(), udp_frame_header_bytes);
        std::uint32_t sum = _empty_sum + static_cast<std::uint32_t>(payload_bytes);
        sum = (sum & 0xFFFF) + (sum >> 16);
        put16(out.data() + ip_total_len_at, _empty_ip_len + payload_bytes);
        put16(out.data() + udp_len_at, _empty_udp_len + payload_bytes);
        put16(out.data() + ip_checksum_at, ~sum);
    }

private:
    static constexpr std::size_t ip_at = ethernet_header_bytes;
    static constexpr std::size_t ip_total_len_at = ip_at + 2;
    static constexpr std::size_t ip_checksum_at = ip_at + 10;
    static constexpr std::size_t udp_len_at = ip_at + ipv4_header_min_bytes + 4;
    static constexpr std::size_t _empty_ip_len = ipv4_header_min_bytes + udp_header_bytes;
    static constexpr std::size_t _empty_udp_len = udp_header_bytes;
    static void put16(std::byte* p, std::size_t v) {
        p[0] = static_cast<std::byte>(v >> 8);
        p[1] = static_cast<std::byte>(v);
    }

    std::array<std::byte, udp_frame_header_bytes> _bytes{};
    std::uint32_t _empty_sum = 0; // the one's complement sum of the IPv4 header, empty payload
};

// Why parse_udp_frame rejected a frame; the DPDK port counts these as rx_bad.
enum class udp_parse_error : std::uint8_t {
    none = 0,
    truncated,       // shorter than the headers it announces
    not_ipv4,        // ethertype is not 0x0800 (VLAN tags included: we send none)
    bad_ip_version,  // version nibble is not 4
    bad_ihl,         // header length below 20 bytes or beyond the frame
    bad_ip_checksum, // IPv4 header checksum does not verify
    bad_ip_length,   // total length below the headers or beyond the frame
    fragmented,      // more-fragments set or a fragment offset: we never fragment
    not_udp,         // protocol is not 17
    bad_udp_length,  // UDP length disagrees with the IPv4 total length
};

std::string_view to_string(udp_parse_error e);

// A parsed frame. `payload` points into the parser's input; trailing Ethernet padding (frames
// below 60 bytes are padded by the NIC) is excluded, using the UDP length.
struct parsed_udp {
    udp_endpoint src;
    udp_endpoint dst;
    std::span<const std::byte> payload;
};

// Accepts Ethernet II / IPv4 (options skipped by IHL) / UDP with consistent lengths and a valid
// IPv4 header checksum; the UDP checksum is not checked (see the top of this file). On rejection
// returns nullopt and, when `why` is given, stores the reason there (none on success).
std::optional<parsed_udp> parse_udp_frame(std::span<const std::byte> frame,
                                          udp_parse_error* why = nullptr);
// The same into `out` (left partly written on false): the receive path's form, which spares a
// copy per frame (GCC builds the optional's value apart and copies it with rep movs).
bool parse_udp_frame(std::span<const std::byte> frame, parsed_udp& out,
                     udp_parse_error* why = nullptr);

// The Internet checksum (RFC 1071) of `bytes`: the one's complement of the one's complement sum
// of the 16-bit big-endian words, an odd last byte padded with zero.
std::uint16_t internet_checksum(std::span<const std::byte> bytes);

} // namespace ringtail::net
