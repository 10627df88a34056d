// The failure path of RINGTAIL_ASSERT (engine/assert.h).
#include "engine/assert.h"

#include <cstdio>
#include <cstdlib>

namespace ringtail::detail {

void assert_failed(const char* file, int line, const char* condition,
                   const std::string& message) noexcept {
    std::fprintf(stderr, "%s:%d: assertion `%s` failed: %s\n", file, line, condition,
                 message.c_str());
    std::fflush(stderr);
    std::abort();
}

} // namespace ringtail::detail
