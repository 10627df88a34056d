// Tests of the core plan: shards on cores of their own with one left for the control subsystem,
// the options that name cores, and the warnings when threads must share; then the lanes: lane 0
// on the network I/O (control) core, more lanes on cores no shard or subsystem uses, and one
// warning line when lanes must share.
#include "cli/core_plan.h"

#include <gtest/gtest.h>

namespace ringtail::cli {
namespace {

const std::vector<unsigned> four_cores{ 0, 1, 2, 3 };

std::vector<unsigned> used(const core_plan& p) {
    return { p.used_shard_cpus().begin(), p.used_shard_cpus().end() };
}

TEST(plan_cores, by_default_one_core_is_left_for_the_control_subsystem) {
    auto plan = plan_cores(worker_options{}, four_cores);
    ASSERT_TRUE(plan.ok()) << plan.err().message;
    EXPECT_EQ(plan->shards, 3u);
    EXPECT_EQ(used(*plan), (std::vector<unsigned>{ 1, 2, 3 }));
    EXPECT_EQ(plan->subsystem_cpus, (std::vector<unsigned>{ 0 }));
    EXPECT_EQ(plan->cpus, four_cores);
    EXPECT_TRUE(plan->warnings.empty());
}

TEST(plan_cores, one_core_is_shared_by_one_shard_and_the_control_subsystem) {
    auto plan = plan_cores(worker_options{}, { 5 });
    ASSERT_TRUE(plan.ok());
    EXPECT_EQ(plan->shards, 1u);
    EXPECT_EQ(used(*plan), (std::vector<unsigned>{ 5 }));
    EXPECT_EQ(plan->subsystem_cpus, (std::vector<unsigned>{ 5 }));
    EXPECT_TRUE(plan->warnings.empty());
}

TEST(plan_cores, cpus_and_control_core_place_the_shards_and_the_control_subsystem) {
    worker_options o;
    o.cpus = { 1, 2, 3 };
    o.control_core = 2;
    auto plan = plan_cores(o, four_cores);
    ASSERT_TRUE(plan.ok());
    EXPECT_EQ(plan->shards, 2u);
    EXPECT_EQ(used(*plan), (std::vector<unsigned>{ 1, 3 }));
    EXPECT_EQ(plan->subsystem_cpus, (std::vector<unsigned>{ 2 }));
    EXPECT_EQ(plan->cpus, (std::vector<unsigned>{ 1, 2, 3 }));
}

TEST(plan_cores, the_control_subsystem_avoids_a_core_given_to_metrics_while_another_is_free) {
    worker_options o;
    o.threads = 1;
    o.metrics_core = 1;
    auto plan = plan_cores(o, four_cores);
    ASSERT_TRUE(plan.ok());
    EXPECT_EQ(used(*plan), (std::vector<unsigned>{ 0 }));
    EXPECT_EQ(plan->subsystem_cpus, (std::vector<unsigned>{ 2, 3 }));
    o.threads = 3;
    plan = plan_cores(o, four_cores);
    ASSERT_TRUE(plan.ok());
    EXPECT_EQ(plan->subsystem_cpus, (std::vector<unsigned>{ 3 }));
}

TEST(plan_cores, more_threads_than_cores_is_one_warning) {
    worker_options o;
    o.threads = 6;
    auto plan = plan_cores(o, four_cores);
    ASSERT_TRUE(plan.ok());
    EXPECT_EQ(plan->shards, 6u);
    EXPECT_EQ(plan->warnings, (std::vector<std::string>{
                                "6 compute threads on 4 cores: threads share cores, expect "
                                "higher latency" }));
    // Every core a shard's: the control subsystem may run anywhere.
    EXPECT_EQ(plan->subsystem_cpus, four_cores);
}

TEST(plan_cores, as_many_threads_as_cores_leaves_the_control_subsystem_no_core_of_its_own) {
    worker_options o;
    o.threads = 4;
    auto plan = plan_cores(o, four_cores);
    ASSERT_TRUE(plan.ok());
    EXPECT_EQ(plan->warnings,
              (std::vector<std::string>{
                "no core left for the control subsystem: it shares a core with a shard" }));
}

TEST(plan_cores, a_core_not_available_to_the_process_is_a_usage_error) {
    worker_options o;
    o.cpus = { 0, 9 };
    auto plan = plan_cores(o, four_cores);
    ASSERT_FALSE(plan.ok());
    EXPECT_EQ(plan.err().code, errc::usage);
    EXPECT_EQ(plan.err().message, "--cpus: core 9 is not available to this process (cores: "
                                  "0,1,2,3)");
    for (auto set : { &worker_options::control_core, &worker_options::metrics_core,
                      &worker_options::eventlog_core }) {
        worker_options bad;
        bad.*set = 7;
        auto r = plan_cores(bad, four_cores);
        ASSERT_FALSE(r.ok());
        EXPECT_NE(r.err().message.find("core 7 is not available"), std::string::npos);
    }
}

TEST(affinity_cpus, lists_at_least_one_core) {
    EXPECT_FALSE(affinity_cpus().empty());
}

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
