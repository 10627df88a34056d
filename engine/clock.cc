// TSC calibration for the fast clock.
#include "engine/clock.h"

#include <fstream>
#include <mutex>
#include <string>
#include <thread>

namespace ringtail::clock {

detail::tsc_scale detail::g_scale;

namespace {

bool tsc_is_invariant() {
    std::ifstream cpuinfo("/proc/cpuinfo");
    std::string line;
    while (std::getline(cpuinfo, line)) {
        if (line.rfind("flags", 0) == 0) {
            auto has = [&](const char* f) {
                return line.find(std::string(" ") + f + " ") != std::string::npos ||
                       line.ends_with(std::string(" ") + f);
            };
            return has("constant_tsc") && has("nonstop_tsc");
        }
    }
    return false;
}

} // namespace

void calibrate() {
#if defined(__x86_64__)
    static std::once_flag once;
    std::call_once(once, [] {
        if (!tsc_is_invariant()) {
            return;
        }
        const std::uint64_t ns_a = monotonic_ns();
        const std::uint64_t tsc_a = __rdtsc();
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        const std::uint64_t ns_b = monotonic_ns();
        const std::uint64_t tsc_b = __rdtsc();
        if (tsc_b <= tsc_a || ns_b <= ns_a) {
            return;
        }
        detail::tsc_scale s;
        s.mult = static_cast<std::uint64_t>((static_cast<unsigned __int128>(ns_b - ns_a) << 32) /
                                            (tsc_b - tsc_a));
        s.tsc0 = tsc_b;
        s.ns0 = ns_b;
        s.use_tsc = s.mult != 0;
        detail::g_scale = s;
    });
#endif
}

bool using_tsc() {
    return detail::g_scale.use_tsc;
}

} // namespace ringtail::clock
