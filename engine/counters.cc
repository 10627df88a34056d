#include "engine/counters.h"

#include <fmt/format.h>

namespace ringtail {

std::string summary_text(const worker_counters& c, summary_line line) {
    std::string out;
    for (const counter_spec& s : worker_counter_specs) {
        if (s.line == line) {
            fmt::format_to(std::back_inserter(out), fmt::runtime(s.phrase), c.*s.field);
        }
    }
    return out;
}

} // namespace ringtail
