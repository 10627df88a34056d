// CRC-32C (Castagnoli), the checksum of every control and data-channel frame.
//
// Why not Boost.CRC alone: its table-driven loop runs at about 1 byte per cycle, which the data
// channel would feel at tens of millions of messages per second. The SSE4.2 crc32 instruction
// does 8 bytes at a time; Boost.CRC (crc_optimal with the Castagnoli polynomial) is the fallback
// on CPUs without it, and the reference the unit test compares against.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace ringtail::net {

// CRC-32C of `bytes`, continuing from `crc` (0 for a fresh checksum).
std::uint32_t crc32c(std::span<const std::byte> bytes, std::uint32_t crc = 0);
inline std::uint32_t crc32c(std::string_view s, std::uint32_t crc = 0) {
    return crc32c(std::as_bytes(std::span(s.data(), s.size())), crc);
}
// CRC-32C of `a` followed by `b` (crc32c(b, crc32c(a))), in one call: a frame's checksum covers
// the bytes on either side of its own field, and for a small frame the second call cost as much
// as the bytes.
std::uint32_t crc32c(std::span<const std::byte> a, std::span<const std::byte> b);
// The portable implementation (Boost.CRC), for tests.
std::uint32_t crc32c_portable(std::span<const std::byte> bytes, std::uint32_t crc = 0);

} // namespace ringtail::net
