// Tests of the lane core plan: lane 0 on the network I/O (control) core, more lanes on cores no
// shard or subsystem uses, and one warning line when lanes must share.
#include "cli/core_plan.h"

#include <gtest/gtest.h>

namespace ringtail::cli {
namespace {

TEST(plan_lane_cores, one_lane_runs_on_the_control_core) {
    auto plan = plan_lane_cores(1, 0, { 0, 1, 2, 3 }, { 1, 2 });
    EXPECT_EQ(plan.cpus, (std::vector<int>{ 0 }));
    EXPECT_TRUE(plan.warning.empty());
}

TEST(plan_lane_cores, more_lanes_take_the_cores_nobody_uses_in_order) {
    // --cpus 0-11, control core 0, 8 shards on 1-8, metrics on 11: lanes on 0, 9, 10.
    auto plan = plan_lane_cores(3, 0, { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 },
                                { 1, 2, 3, 4, 5, 6, 7, 8, 11 });
    EXPECT_EQ(plan.cpus, (std::vector<int>{ 0, 9, 10 }));
    EXPECT_TRUE(plan.warning.empty());
}

TEST(plan_lane_cores, lanes_beyond_the_free_cores_share_the_control_core_with_one_warning) {
    auto plan = plan_lane_cores(4, 2, { 0, 1, 2, 3, 4 }, { 0, 1, 3 });
    EXPECT_EQ(plan.cpus, (std::vector<int>{ 2, 4, 2, 2 }));
    EXPECT_EQ(plan.warning, "3 of the data channel's 4 lanes share the network I/O core 2: 2 more "
                            "core(s) in --cpus, used by no shard or subsystem, would give each "
                            "lane its own");
    // No free core at all: every lane on the control core.
    plan = plan_lane_cores(2, 0, { 0, 1 }, { 1 });
    EXPECT_EQ(plan.cpus, (std::vector<int>{ 0, 0 }));
    EXPECT_NE(plan.warning.find("2 of the data channel's 2 lanes share"), std::string::npos);
}

TEST(plan_lane_cores, a_core_listed_twice_is_used_once) {
    auto plan = plan_lane_cores(3, 0, { 5, 5, 6 }, {});
    EXPECT_EQ(plan.cpus, (std::vector<int>{ 0, 5, 6 }));
    EXPECT_TRUE(plan.warning.empty());
    EXPECT_TRUE(plan_lane_cores(0, 0, { 1, 2 }, {}).cpus.empty());
}

} // namespace
} // namespace ringtail::cli
