// Big-endian reads and appends for the fixed-layout wire formats of WIRE.md (all integers and
// floats on the wire are big-endian).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>

namespace ringtail::be {

template<typename T>
T read(const std::byte* p) {
    static_assert(std::is_arithmetic_v<T>);
    using U = std::conditional_t<
      sizeof(T) == 1, std::uint8_t,
      std::conditional_t<sizeof(T) == 2, std::uint16_t,
                         std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>>>;
    U u;
    std::memcpy(&u, p, sizeof u);
    if constexpr (std::endian::native == std::endian::little && sizeof(U) > 1) {
        if constexpr (sizeof(U) == 2) {
            u = __builtin_bswap16(u);
        } else if constexpr (sizeof(U) == 4) {
            u = __builtin_bswap32(u);
        } else {
            u = __builtin_bswap64(u);
        }
    }
    return std::bit_cast<T>(u);
}

template<typename T>
void append(std::string& out, T value) {
    static_assert(std::is_arithmetic_v<T>);
    using U = std::conditional_t<
      sizeof(T) == 1, std::uint8_t,
      std::conditional_t<sizeof(T) == 2, std::uint16_t,
                         std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>>>;
    U u = std::bit_cast<U>(value);
    if constexpr (std::endian::native == std::endian::little && sizeof(U) > 1) {
        if constexpr (sizeof(U) == 2) {
            u = __builtin_bswap16(u);
        } else if constexpr (sizeof(U) == 4) {
            u = __builtin_bswap32(u);
        } else {
            u = __builtin_bswap64(u);
        }
    }
    char buf[sizeof u];
    std::memcpy(buf, &u, sizeof u);
    out.append(buf, sizeof u);
}

// Appends a `[u32 N][payload]` frame.
inline void append_frame(std::string& out, std::span<const std::byte> payload) {
    append<std::uint32_t>(out, static_cast<std::uint32_t>(payload.size()));
    out.append(reinterpret_cast<const char*>(payload.data()), payload.size());
}

} // namespace ringtail::be
