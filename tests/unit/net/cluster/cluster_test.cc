// Tests of cluster_member on loopback: a stop signal before the cluster formed ends formation with
// an error whose reason says so (tested by value: the worker exits 0 on it, not 69).
#include "net/cluster/cluster.h"

#include <gtest/gtest.h>

namespace ringtail::net {
namespace {

cluster_config interrupted_config(bool initializer) {
    cluster_config cc;
    cc.initializer = initializer;
    cc.name = initializer ? "initializer" : "w1";
    cc.worker_count = initializer ? 2 : 0;
    cc.control = host_port{ "127.0.0.1", 0 };
    cc.data = host_port{ "127.0.0.1", 0 };
    cc.app_name = "test";
    cc.interrupted = [] { return true; };
    return cc;
}

TEST(cluster_member, an_initializer_stopped_before_the_cluster_formed_says_why_by_value) {
    auto formed = cluster_member::form(interrupted_config(true));
    ASSERT_FALSE(formed.ok());
    EXPECT_EQ(formed.err().why, reason::formation_interrupted);
    EXPECT_EQ(formed.err().code, errc::unavailable);
    EXPECT_EQ(formed.err().message, formation_interrupted);
}

TEST(cluster_member, a_worker_stopped_while_waiting_for_the_initializer_says_why_by_value) {
    // Port 1 on loopback: nobody listens, so the worker waits for the initializer and is stopped.
    cluster_config cc = interrupted_config(false);
    cc.control = host_port{ "127.0.0.1", 1 };
    auto formed = cluster_member::form(cc);
    ASSERT_FALSE(formed.ok());
    EXPECT_EQ(formed.err().why, reason::formation_interrupted);
}

TEST(cluster_member, other_formation_errors_have_no_reason) {
    cluster_config cc = interrupted_config(true);
    cc.control = host_port{ "192.0.2.1", 0 }; // TEST-NET-1: not an address of this host
    auto formed = cluster_member::form(cc);
    ASSERT_FALSE(formed.ok());
    EXPECT_EQ(formed.err().why, reason::none);
}

} // namespace
} // namespace ringtail::net
