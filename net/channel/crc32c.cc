#include "net/channel/crc32c.h"

#include <climits>
#include <cstring>

#include <boost/crc.hpp>

#if RINGTAIL_HAVE_ISAL
// ISA-L's CRC-32C with PCLMULQDQ, by its variant's name (see crc32c_isal below); isa-l/crc.h
// declares only the dispatcher.
extern "C" unsigned int crc32_iscsi_01(unsigned char* buffer, int len, unsigned int init_crc);
#endif

namespace ringtail::net {
namespace {

using boost_crc32c = boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true>;

#if defined(__x86_64__)
// Three streams at once. One crc32 instruction takes 3 cycles before the next may use its result
// but a new one can start every cycle, so a long run is checksummed as three blocks side by side
// (a, b, c of interleave_block bytes each) and the three registers are then joined. With R(r, X)
// the register after X from r, R(r, X) = shift(r, |X|) ^ R(0, X), where shift(r, n) is r carried
// over n zero bytes; so R(r, a b c) = shift(ra, 2L) ^ shift(rb, L) ^ rc for ra = R(r, a),
// rb = R(0, b), rc = R(0, c). shift is linear over GF(2), hence a table lookup per byte of the
// register, the tables built at first use with the instruction itself (8 zero bytes per step).
// perf/data_channel_bench: the channel's whole cost for a 1400-byte frame, both checksums
// included, falls by a quarter; a 256-byte frame's by a twentieth. Intel's white paper "Fast CRC
// Computation for iSCSI Polynomial Using CRC32 Instruction" (2011) describes the method; the tables
// are Mark Adler's (crc32c.c).
constexpr std::size_t interleave_block = 48; // L: six 8-byte words per stream and round

struct shift_table {
    std::uint32_t byte[4][256]; // shift of v << (8 k) over the table's length, for each byte v
    __attribute__((target("sse4.2"))) std::uint32_t operator()(std::uint32_t r) const {
        return byte[0][r & 0xFF] ^ byte[1][(r >> 8) & 0xFF] ^ byte[2][(r >> 16) & 0xFF] ^
               byte[3][r >> 24];
    }
};

struct shift_tables {
    shift_table one, two; // over L and 2 L zero bytes
};

__attribute__((target("sse4.2"))) std::uint32_t shift_by_zeros(std::uint32_t r, std::size_t n) {
    std::uint64_t c = r;
    for (std::size_t i = 0; i < n / 8; ++i) {
        c = __builtin_ia32_crc32di(c, 0);
    }
    return static_cast<std::uint32_t>(c);
}

__attribute__((target("sse4.2"))) void build(shift_table& t, std::size_t n) {
    for (int k = 0; k < 4; ++k) {
        for (std::uint32_t v = 0; v < 256; ++v) {
            t.byte[k][v] = shift_by_zeros(v << (8 * k), n);
        }
    }
}

__attribute__((target("sse4.2"))) const shift_tables& tables() {
    static const shift_tables t = [] {
        shift_tables built{};
        build(built.one, interleave_block);
        build(built.two, 2 * interleave_block);
        return built;
    }();
    return t;
}

// `rounds` rounds of three blocks from p, continuing `c`. Out of line, with its arguments by
// value: inlined, or moving p and n through memory, it made the short parts of a small frame a
// tenth slower.
__attribute__((target("sse4.2"), noinline)) std::uint64_t crc32c_sse42_rounds(
  std::uint64_t c, const unsigned char* p, std::size_t rounds) {
    const shift_tables& t = tables();
    for (std::size_t r = 0; r < rounds; ++r, p += 3 * interleave_block) {
        std::uint64_t a = c, b = 0, d = 0;
        for (std::size_t i = 0; i < interleave_block; i += 8) {
            std::uint64_t va, vb, vd;
            std::memcpy(&va, p + i, 8);
            std::memcpy(&vb, p + interleave_block + i, 8);
            std::memcpy(&vd, p + 2 * interleave_block + i, 8);
            a = __builtin_ia32_crc32di(a, va);
            b = __builtin_ia32_crc32di(b, vb);
            d = __builtin_ia32_crc32di(d, vd);
        }
        c = t.two(static_cast<std::uint32_t>(a)) ^ t.one(static_cast<std::uint32_t>(b)) ^
            static_cast<std::uint32_t>(d);
    }
    return c;
}

#if RINGTAIL_HAVE_ISAL
// From this many bytes on, a run goes to Intel's ISA-L: its crc32 instruction on several streams
// at once, joined by carry-less multiplication (PCLMULQDQ), where ours join by table lookups.
// The threshold is where it pays between the data channel's other steps, which is not where it
// pays in a loop of its own (there, from 64 bytes): perf/data_channel_bench with ISA-L from 64
// bytes against without, alternated, the medians of 12 to 16 pairs' ratios by frame body:
// 174 bytes 0.80, 220 bytes 1.07, 260 bytes 1.09, 400 bytes 1.23, 1 000 bytes 1.32, and 1 400
// bytes (a frame that fills an MTU, as the engine's are when they pack many messages) 1.29 and
// 1.55 in two runs.
//
// Called by its variant's name, crc32_iscsi_01, which the library exports (CMake checks that it
// links), not through crc32_iscsi: on a CPU with AVX-512 that dispatches to crc32_iscsi_by16_10,
// the fastest in a loop of its own but not in a worker: between the data channel's other steps
// it halved the channel's rate at 1 400-byte bodies (0.55 times the rate without ISA-L, slower
// in 12 of 12 alternated pairs).
constexpr std::size_t isal_min_bytes = 256;

// crc32_iscsi_01 needs PCLMULQDQ besides SSE4.2 (ISA-L's own dispatcher asks for both).
bool have_pclmul() {
    static const bool yes = __builtin_cpu_supports("pclmul");
    return yes;
}

// The same CRC, its register taken and returned as ours (not inverted).
__attribute__((noinline)) std::uint32_t crc32c_isal(std::uint32_t c, const unsigned char* p,
                                                    std::size_t n) {
    // Its length is an int: a longer run goes in pieces. It takes the buffer as non-const and
    // only reads it.
    constexpr std::size_t piece = std::size_t{ 1 } << 30;
    static_assert(piece <= INT_MAX);
    for (; n > piece; p += piece, n -= piece) {
        c = crc32_iscsi_01(const_cast<unsigned char*>(p), static_cast<int>(piece), c);
    }
    return crc32_iscsi_01(const_cast<unsigned char*>(p), static_cast<int>(n), c);
}
#endif

// Continues the CRC register `c` (not inverted) over p[0..n).
__attribute__((target("sse4.2"), always_inline)) inline std::uint32_t crc32c_sse42_update(
  std::uint32_t c, const unsigned char* p, std::size_t n) {
#if RINGTAIL_HAVE_ISAL
    if (n >= isal_min_bytes && have_pclmul()) {
        return crc32c_isal(c, p, n);
    }
#endif
    std::uint64_t c64 = c;
    if (n >= 3 * interleave_block) [[unlikely]] {
        const std::size_t rounds = n / (3 * interleave_block);
        c64 = crc32c_sse42_rounds(c64, p, rounds);
        p += rounds * 3 * interleave_block;
        n -= rounds * 3 * interleave_block;
    }
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
