#include "engine/counters.h"

#include <algorithm>
#include <set>
#include <string>

#include <gtest/gtest.h>

namespace ringtail {
namespace {

TEST(counters, every_field_is_in_the_table_once_with_a_unique_name_and_metric) {
    EXPECT_EQ(worker_counter_specs.size() * sizeof(std::uint64_t), sizeof(worker_counters));
    std::set<std::string_view> names;
    std::set<std::string_view> metrics;
    for (const counter_spec& s : worker_counter_specs) {
        EXPECT_EQ(std::count_if(worker_counter_specs.begin(), worker_counter_specs.end(),
                                [&](const counter_spec& o) { return o.field == s.field; }),
                  1)
          << s.name;
        EXPECT_TRUE(names.insert(s.name).second) << s.name;
        EXPECT_FALSE(s.help.empty()) << s.name;
        if (!s.metric.empty()) {
            EXPECT_TRUE(metrics.insert(s.metric).second) << s.metric;
        }
        EXPECT_EQ(s.line == summary_line::none, s.phrase.empty()) << s.name;
    }
}

TEST(counters, the_stop_summary_lines_read_as_the_log_has_always_printed_them) {
    worker_counters c;
    c.ingested = 1000;
    c.sink_writes = 900;
    c.sink_bytes = 9000;
    c.decode_errors = 1;
    c.protocol_errors = 2;
    c.filtered = 3;
    c.ring_messages = 77;
    c.remote_sent = 40;
    c.remote_received = 50;
    c.remote_dropped = 6;
    c.remote_oversize = 7;
    // tests/integration/harness.py and scripts/perf/e2e.sh read the first line with a pattern,
    // test_cluster.py the second.
    EXPECT_EQ(summary_text(c, summary_line::stopped),
              "1000 messages in, 900 out (9000 bytes), 1 rejected by decoders, 2 connections "
              "closed for bad framing, 3 filtered");
    EXPECT_EQ(summary_text(c, summary_line::data_channel),
              "40 messages sent to other workers, 50 received, 6 dropped (lost workers, "
              "undecodable, or arrived while leaving), 7 too large for one frame and dropped");
}

} // namespace
} // namespace ringtail
