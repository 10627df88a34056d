// What an app's decoders and encoders work with, so they need neither casts nor magic lengths: a
// payload's bytes read as text, and the `[u32 N][N bytes]` frame (N big-endian) that the example
// apps' sinks write (WIRE.md §1-2).
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <span>
#include <string>
#include <string_view>

#include "engine/big_endian.h"

namespace ringtail {

// The bytes of `payload` as text: a view of the same bytes (no copy, no check of the encoding),
// valid as long as the payload is. A decoder that keeps the text copies it:
// std::string(as_text(p)).
inline std::string_view as_text(std::span<const std::byte> payload) {
    // The one cast: std::byte and char may alias each other.
    return { reinterpret_cast<const char*>(payload.data()), payload.size() };
}

namespace detail {
// A payload of 4 GiB or more does not fit a frame: a programmer error, so the worker stops.
inline void check_frame_size(std::size_t n) {
    if (n > std::numeric_limits<std::uint32_t>::max()) {
        std::fprintf(stderr, "ringtail::append_frame: a %zu-byte payload does not fit a frame\n",
                     n);
        std::abort();
    }
}
} // namespace detail

// Appends one frame holding `payload` to `out`.
inline void append_frame(std::string& out, std::string_view payload) {
    detail::check_frame_size(payload.size());
    be::append<std::uint32_t>(out, static_cast<std::uint32_t>(payload.size()));
    out.append(payload);
}

// Appends one frame whose payload is what `write_payload(out)` appends to `out`; the length is
// counted, not given. For example `[u8 letter][u64 total]`:
//
//     ringtail::append_frame(out, [&](std::string& payload) {
//         payload.push_back(t.letter);
//         be::append<std::uint64_t>(payload, t.total);
//     });
template<typename F>
requires std::invocable<F&, std::string&>
void append_frame(std::string& out, F&& write_payload) {
    constexpr std::size_t header = sizeof(std::uint32_t);
    const std::size_t at = out.size();
    out.append(header, '\0'); // the length, filled in below
    write_payload(out);
    const std::size_t n = out.size() - at - header;
    detail::check_frame_size(n);
    be::write<std::uint32_t>(std::as_writable_bytes(std::span(out)).data() + at,
                             static_cast<std::uint32_t>(n));
}

} // namespace ringtail
