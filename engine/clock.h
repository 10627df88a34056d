// A cheap monotonic clock for per-message timing: the invariant TSC scaled to nanoseconds
// (a few ns a read), falling back to clock_gettime(CLOCK_MONOTONIC) where the TSC is not
// invariant. Both read the same time base (CLOCK_MONOTONIC), so their values are comparable.
#pragma once

#include <cstdint>
#include <ctime>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

namespace ringtail::clock {

namespace detail {
struct tsc_scale {
    bool use_tsc = false;
    std::uint64_t tsc0 = 0;
    std::uint64_t ns0 = 0;
    std::uint64_t mult = 0; // nanoseconds per tick, times 2^32
};
extern tsc_scale g_scale;
} // namespace detail

inline std::uint64_t monotonic_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull +
           static_cast<std::uint64_t>(ts.tv_nsec);
}

inline std::uint64_t realtime_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull +
           static_cast<std::uint64_t>(ts.tv_nsec);
}

// CLOCK_MONOTONIC nanoseconds. Before calibrate() it is clock_gettime.
inline std::uint64_t now_ns() {
#if defined(__x86_64__)
    const auto& s = detail::g_scale;
    if (s.use_tsc) {
        const std::uint64_t ticks = __rdtsc() - s.tsc0;
        return s.ns0 +
               static_cast<std::uint64_t>((static_cast<unsigned __int128>(ticks) * s.mult) >> 32);
    }
#endif
    return monotonic_ns();
}

// Measures the TSC against CLOCK_MONOTONIC (about 10 ms) when /proc/cpuinfo says it is invariant.
// Call once at start-up, before any thread uses now_ns().
void calibrate();
bool using_tsc();

} // namespace ringtail::clock
