// Big-endian reads and appends for the fixed-layout wire formats of WIRE.md (all integers and
// floats on the wire are big-endian). Boost.Endian does the byte order; this adds floats (sent as
// the integer of their bits, which Boost.Endian's loads and stores do not take) and appending to a
// std::string.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include <boost/endian/conversion.hpp>

namespace ringtail::be {

namespace detail {
// The unsigned integer of T's size: what goes on the wire for T.
template<typename T>
using uint_of = std::conditional_t<
  sizeof(T) == 1, std::uint8_t,
  std::conditional_t<sizeof(T) == 2, std::uint16_t,
                     std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>>>;
} // namespace detail

template<typename T>
T read(const std::byte* p) {
    static_assert(std::is_arithmetic_v<T>);
    using U = detail::uint_of<T>;
    const auto u = boost::endian::endian_load<U, sizeof(U), boost::endian::order::big>(
      reinterpret_cast<const unsigned char*>(p));
    return std::bit_cast<T>(u);
}

// Overwrites sizeof(T) bytes at `p` (a length field filled in once the rest is known).
template<typename T>
void write(std::byte* p, T value) {
    static_assert(std::is_arithmetic_v<T>);
    using U = detail::uint_of<T>;
    boost::endian::endian_store<U, sizeof(U), boost::endian::order::big>(
      reinterpret_cast<unsigned char*>(p), std::bit_cast<U>(value));
}

template<typename T>
void append(std::string& out, T value) {
    static_assert(std::is_arithmetic_v<T>);
    std::byte buf[sizeof(T)];
    write(buf, value);
    out.append(reinterpret_cast<const char*>(buf), sizeof buf);
}

} // namespace ringtail::be
