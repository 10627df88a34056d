// Tests of RINGTAIL_ASSERT: silent while its condition holds, and on failure one line with the
// file, the line, the condition and the formatted message, then an abort (a death test).
#include "engine/assert.h"

#include <gtest/gtest.h>

namespace ringtail {
namespace {

int evaluations = 0;
int counted(int v) {
    ++evaluations;
    return v;
}

TEST(ringtail_assert, a_condition_that_holds_is_silent_and_formats_nothing) {
    evaluations = 0;
    RINGTAIL_ASSERT(1 + 1 == 2, "never printed {}", counted(1));
    EXPECT_EQ(evaluations, 0); // the message's arguments are evaluated only on failure
}

TEST(ringtail_assert, a_condition_that_holds_is_evaluated_once) {
    evaluations = 0;
    RINGTAIL_ASSERT(counted(3) == 3, "three");
    EXPECT_EQ(evaluations, 1);
}

TEST(ringtail_assert_death, a_failed_assertion_prints_file_line_condition_and_message_and_aborts) {
    ::testing::FLAGS_gtest_death_test_style = "threadsafe";
    const int window = 0;
    EXPECT_DEATH(RINGTAIL_ASSERT(window > 0, "window_frames must be > 0, not {}", window),
                 "assert_test\\.cc:[0-9]+: assertion `window > 0` failed: window_frames must be "
                 "> 0, not 0");
}

TEST(ringtail_assert_death, the_message_needs_no_arguments) {
    ::testing::FLAGS_gtest_death_test_style = "threadsafe";
    EXPECT_DEATH(RINGTAIL_ASSERT(false, "a plain message"), "failed: a plain message");
}

} // namespace
} // namespace ringtail
