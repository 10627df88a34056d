// Logging to stderr: one line per event, text or JSON, written with a single write(2) so lines
// from different threads never interleave. Control plane and rare data-plane events only.
//
// Written here on fmt rather than taken from spdlog: what we need is a level check, one fmt call
// and one write(2) (about 60 lines); spdlog would bring a logger registry, sinks with a mutex each,
// and no JSON lines without a custom formatter of about the same size, for a log that no hot path
// calls. fmt, which spdlog itself formats with, does the work.
#pragma once

#include <atomic>
#include <string_view>

#include <fmt/format.h>

namespace ringtail::log {

enum class level : int { error = 0, warn = 1, info = 2, debug = 3 };

void set_level(level l);
void set_json(bool json);
bool enabled(level l);
// Writes one line; `message` must not contain a newline.
void write_line(level l, std::string_view message);

template<typename... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
    write_line(level::error, fmt::format(f, std::forward<Args>(args)...));
}
template<typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
    if (enabled(level::warn)) {
        write_line(level::warn, fmt::format(f, std::forward<Args>(args)...));
    }
}
template<typename... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
    if (enabled(level::info)) {
        write_line(level::info, fmt::format(f, std::forward<Args>(args)...));
    }
}
template<typename... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
    if (enabled(level::debug)) {
        write_line(level::debug, fmt::format(f, std::forward<Args>(args)...));
    }
}

} // namespace ringtail::log
