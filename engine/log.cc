// Logging to stderr, one write(2) per line.
#include "engine/log.h"

#include <chrono>
#include <ctime>
#include <string>
#include <unistd.h>

namespace ringtail::log {
namespace {

std::atomic<int> g_level{ static_cast<int>(level::info) };
std::atomic<bool> g_json{ false };

const char* level_name(level l) {
    switch (l) {
        case level::error:
            return "error";
        case level::warn:
            return "warn";
        case level::info:
            return "info";
        case level::debug:
            return "debug";
    }
    return "info";
}

std::string json_escape(std::string_view s) {
    std::string out;
    out.reserve(s.size() + 8);
    for (char c : s) {
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
                } else {
                    out += c;
                }
        }
    }
    return out;
}

} // namespace

void set_level(level l) {
    g_level.store(static_cast<int>(l), std::memory_order_relaxed);
}
void set_json(bool json) {
    g_json.store(json, std::memory_order_relaxed);
}
bool enabled(level l) {
    return static_cast<int>(l) <= g_level.load(std::memory_order_relaxed);
}

void write_line(level l, std::string_view message) {
    auto now = std::chrono::system_clock::now();
    auto secs = std::chrono::system_clock::to_time_t(now);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
    std::tm tm{};
    ::gmtime_r(&secs, &tm);
    std::string line;
    if (g_json.load(std::memory_order_relaxed)) {
        line = fmt::format(
          R"({{"ts":"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z","level":"{}","msg":"{}"}})",
          tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
          ms.count(), level_name(l), json_escape(message));
    } else {
        line = fmt::format("{:02}:{:02}:{:02}.{:03} {:5} {}", tm.tm_hour, tm.tm_min, tm.tm_sec,
                           ms.count(), level_name(l), message);
    }
    line += '\n';
    const char* p = line.data();
    std::size_t left = line.size();
    while (left > 0) {
        ssize_t n = ::write(STDERR_FILENO, p, left);
        if (n <= 0) {
            return;
        }
        p += n;
        left -= static_cast<std::size_t>(n);
    }
}

} // namespace ringtail::log
