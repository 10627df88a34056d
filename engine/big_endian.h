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

namespace detail {
// The unsigned integer of T's size, byte-swapped to or from big-endian on little-endian hosts.
template<typename T>
using uint_of = std::conditional_t<
  sizeof(T) == 1, std::uint8_t,
  std::conditional_t<sizeof(T) == 2, std::uint16_t,
                     std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>>>;

template<typename U>
U swap_to_big(U u) {
    if constexpr (std::endian::native == std::endian::little && sizeof(U) > 1) {
        if constexpr (sizeof(U) == 2) {
            return __builtin_bswap16(u);
        } else if constexpr (sizeof(U) == 4) {
            return __builtin_bswap32(u);
        } else {
            return __builtin_bswap64(u);
        }
    }
    return u;
}
} // namespace detail

template<typename T>
T read(const std::byte* p) {
    static_assert(std::is_arithmetic_v<T>);
    detail::uint_of<T> u;
    std::memcpy(&u, p, sizeof u);
    return std::bit_cast<T>(detail::swap_to_big(u));
}

template<typename T>
void append(std::string& out, T value) {
    static_assert(std::is_arithmetic_v<T>);
    auto u = detail::swap_to_big(std::bit_cast<detail::uint_of<T>>(value));
    char buf[sizeof u];
    std::memcpy(buf, &u, sizeof u);
    out.append(buf, sizeof u);
}

// Overwrites sizeof(T) bytes at `p` (a length field filled in once the rest is known).
template<typename T>
void write(std::byte* p, T value) {
    static_assert(std::is_arithmetic_v<T>);
    auto u = detail::swap_to_big(std::bit_cast<detail::uint_of<T>>(value));
    std::memcpy(p, &u, sizeof u);
}

// Appends a `[u32 N][payload]` frame.
inline void append_frame(std::string& out, std::span<const std::byte> payload) {
    append<std::uint32_t>(out, static_cast<std::uint32_t>(payload.size()));
    out.append(reinterpret_cast<const char*>(payload.data()), payload.size());
}

} // namespace ringtail::be
