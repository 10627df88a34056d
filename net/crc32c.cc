#include "net/crc32c.h"

#include <cstring>

#include <boost/crc.hpp>

namespace ringtail::net {
namespace {

using boost_crc32c = boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true>;

#if defined(__x86_64__)
// Continues the CRC register `c` (not inverted) over p[0..n).
__attribute__((target("sse4.2"), always_inline)) inline std::uint32_t crc32c_sse42_update(
  std::uint32_t c, const unsigned char* p, std::size_t n) {
    std::uint64_t c64 = c;
    while (n >= 8) {
        std::uint64_t v;
        std::memcpy(&v, p, 8);
        c64 = __builtin_ia32_crc32di(c64, v);
        p += 8;
        n -= 8;
    }
    // The last 0..7 bytes in at most three steps (4, 2, 1), not one a byte: every step waits
    // for the one before, and frames rarely end on a multiple of 8.
    auto c32 = static_cast<std::uint32_t>(c64);
    if ((n & 4) != 0) {
        std::uint32_t v;
        std::memcpy(&v, p, 4);
        c32 = __builtin_ia32_crc32si(c32, v);
        p += 4;
    }
    if ((n & 2) != 0) {
        std::uint16_t v;
        std::memcpy(&v, p, 2);
        c32 = __builtin_ia32_crc32hi(c32, v);
        p += 2;
    }
    if ((n & 1) != 0) {
        c32 = __builtin_ia32_crc32qi(c32, *p);
    }
    return c32;
}

__attribute__((target("sse4.2"))) std::uint32_t crc32c_sse42(const unsigned char* p, std::size_t n,
                                                             std::uint32_t crc) {
    return ~crc32c_sse42_update(~crc, p, n);
}

__attribute__((target("sse4.2"))) std::uint32_t crc32c_sse42(
  std::span<const std::span<const std::byte>> parts) {
    std::uint32_t c = ~0u;
    for (const auto& part : parts) {
        c =
          crc32c_sse42_update(c, reinterpret_cast<const unsigned char*>(part.data()), part.size());
    }
    return ~c;
}

bool have_sse42() {
    static const bool yes = __builtin_cpu_supports("sse4.2");
    return yes;
}
#endif

} // namespace

std::uint32_t crc32c_portable(std::span<const std::byte> bytes, std::uint32_t crc) {
    // Resuming: Boost takes the register in the unreflected form of the initial value, before
    // the final XOR.
    std::uint32_t reg = crc ^ 0xFFFFFFFFu;
    std::uint32_t unreflected = 0;
    for (int i = 0; i < 32; ++i) {
        unreflected |= ((reg >> i) & 1u) << (31 - i);
    }
    boost_crc32c c(unreflected);
    c.process_bytes(bytes.data(), bytes.size());
    return c.checksum();
}

std::uint32_t crc32c(std::span<const std::byte> bytes, std::uint32_t crc) {
#if defined(__x86_64__)
    if (have_sse42()) {
        return crc32c_sse42(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
                            crc);
    }
#endif
    return crc32c_portable(bytes, crc);
}

std::uint32_t crc32c_parts(std::span<const std::span<const std::byte>> parts) {
#if defined(__x86_64__)
    if (have_sse42()) {
        return crc32c_sse42(parts);
    }
#endif
    std::uint32_t crc = 0;
    for (const auto& part : parts) {
        crc = crc32c_portable(part, crc);
    }
    return crc;
}

} // namespace ringtail::net
