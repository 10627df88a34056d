// CRC-32C (Castagnoli), the checksum of every control and data-channel frame.
//
// Why not Boost.CRC alone: its table-driven loop runs at about 1 byte per cycle, which the data
// channel would feel at tens of millions of messages per second. The SSE4.2 crc32 instruction
// does 8 bytes at a time; Boost.CRC (crc_optimal with the Castagnoli polynomial) is the fallback
// on CPUs without it, and the reference the unit test compares against. Why not DPDK's
// rte_hash_crc, which also uses the instruction: it is one serial chain (3 cycles per 8 bytes),
// and a worker built without DPDK needs the checksum too. Runs of 144 bytes or more go as three
// chains side by side (crc32c.cc); Google's crc32c library (not among our dependencies) does
// the same only from about 1 KB, larger than most of our frames. Runs of 256 bytes or more go to
// Intel's ISA-L where the build found it (libisal-dev, a dependency of libdpdk-dev), which joins
// its streams by carry-less multiplication: over frames that fill an MTU, the data channel's own
// work (perf/data_channel_bench) moves a third more of them.
//
// Three paths, each kept because it pays where it runs: ISA-L loses to our own chains below 256
// bytes (crc32c.cc gives the figures), and our three chains still pay between 144 and 255 bytes:
// without them, perf/data_channel_bench at 174-byte bodies ran at 0.88 of its rate with them
// (8 alternated pairs, scripts/perf/bench_ab.py, 0 of 8 won; 2026-12-08, 2-vCPU VM); Boost.CRC
// is the reference the tests compare against and the path for CPUs without SSE4.2.
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
// CRC-32C of the parts one after the other, in one call. The value is the same however the bytes
// are cut into parts; the cut is for speed. The checksum reads 8 bytes at a time from the start
// of each part, so parts that begin where a frame's fields do make each read lie within one
// field, which a frame just written needs: a read that spans several stores still in flight
// waits for them to reach the cache. And for a small frame, one call instead of several.
std::uint32_t crc32c_parts(std::span<const std::span<const std::byte>> parts);
// The portable implementation (Boost.CRC), for tests.
std::uint32_t crc32c_portable(std::span<const std::byte> bytes, std::uint32_t crc = 0);

} // namespace ringtail::net
