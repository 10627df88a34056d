// The one assertion for programmer errors (STYLE.md §3): always on, in every build type; on
// failure it prints the file, the line, the condition and a message, then aborts.
#pragma once

#include <string>

#include <fmt/format.h>

namespace ringtail::detail {

// Prints "<file>:<line>: assertion `<condition>` failed: <message>" on stderr and aborts. Cold and
// out of line, so that an assertion costs a compare and a branch where it holds.
[[noreturn]] [[gnu::cold]] void assert_failed(const char* file, int line, const char* condition,
                                              const std::string& message) noexcept;

} // namespace ringtail::detail

// RINGTAIL_ASSERT(cond, "format {}", args...): aborts with file, line and the formatted message
// when `cond` is false. The message and its arguments are evaluated only then. For invariants
// and misuse by code, never for an operating error (those are a ringtail::result).
#define RINGTAIL_ASSERT(condition, ...)                                                            \
    do {                                                                                           \
        if (!(condition)) [[unlikely]] {                                                           \
            ::ringtail::detail::assert_failed(__FILE__, __LINE__, #condition,                      \
                                              ::fmt::format(__VA_ARGS__));                         \
        }                                                                                          \
    } while (false)
