// Tests of the control plane's result type: a value or an error that carries a sysexits code, a
// message and, where a caller acts on it, a reason tested by value.
#include "engine/result.h"

#include <sysexits.h>

#include <gtest/gtest.h>

namespace ringtail {
namespace {

result<int> half(int v) {
    if (v % 2 != 0) {
        return error{ errc::usage, std::to_string(v) + " is odd" };
    }
    return v / 2;
}

status interrupted() {
    return error{ errc::unavailable, "stopped", reason::formation_interrupted };
}

TEST(result, holds_a_value_or_an_error) {
    auto r = half(8);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(*r, 4);
    auto e = half(3);
    ASSERT_FALSE(e);
    EXPECT_EQ(e.err().code, errc::usage);
    EXPECT_EQ(e.err().message, "3 is odd");
}

TEST(result, an_error_without_a_reason_has_none) {
    auto e = half(1);
    ASSERT_FALSE(e.ok());
    EXPECT_EQ(e.err().why, reason::none);
}

TEST(result, the_reason_is_tested_by_value_whatever_the_message_says) {
    auto s = interrupted();
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.err().why, reason::formation_interrupted);
    EXPECT_EQ(s.err().code, errc::unavailable);
    // A caller that rewords the message keeps the reason.
    error reworded{ s.err().code, "cluster: " + s.err().message, s.err().why };
    EXPECT_EQ(reworded.why, reason::formation_interrupted);
    EXPECT_EQ(to_string(reworded.why), "formation_interrupted");
    EXPECT_EQ(to_string(reason::none), "none");
}

TEST(result, exit_codes_are_those_of_sysexits) {
    EXPECT_EQ(exit_code(errc::usage), EX_USAGE);
    EXPECT_EQ(exit_code(errc::usage), 64);
    EXPECT_EQ(exit_code(errc::data_error), 65);
    EXPECT_EQ(exit_code(errc::no_input), 66);
    EXPECT_EQ(exit_code(errc::unavailable), 69);
    EXPECT_EQ(exit_code(errc::internal), 70);
    EXPECT_EQ(exit_code(errc::cant_create), 73);
    EXPECT_EQ(exit_code(errc::io_error), 74);
    EXPECT_EQ(exit_code(errc::config), 78);
}

TEST(result, ok_status_is_ok) {
    EXPECT_TRUE(ok_status().ok());
}

} // namespace
} // namespace ringtail
