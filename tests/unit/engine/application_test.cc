// The application API: what it builds, what it refuses at start-up, and what it refuses to
// compile; plus routing features (collect, integer keys, merge, to_sinks) run through a runtime.
#include "engine/application.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "engine/runtime.h"

namespace ringtail {
namespace {

std::string text(std::span<const std::byte> p) {
    return std::string(as_text(p));
}

// A stage after a sink does not compile: pipeline_end has no stage methods.
template<typename P>
concept has_to = requires(P p) {
    p.to("x", [](int v) { return v; });
};
static_assert(!has_to<pipeline_end>, "a stage after a sink must not compile");
static_assert(has_to<pipeline<int>>);
// A keyed stream offers to_state only.
template<typename P>
concept has_to_sink = requires(P p) {
    p.to_sink("x", [](const int&) { return std::string(); });
};
static_assert(!has_to_sink<keyed_pipeline<int, int (*)(const int&)>>);

// What each verb accepts as its callable; a callable that fails one of these fails to compile
// with the verb's static_assert (a requires-expression cannot test that: the assertion is a hard
// error, not a substitution failure).
struct tally {
    int n = 0;
};
struct no_default {
    explicit no_default(int) {}
};
// to_state: (const T&, S&) or (T&, S&), returning a value or an optional of one.
static_assert(detail::state_stage<int (*)(const std::string&, tally&), std::string, tally>);
static_assert(
  detail::state_stage<std::optional<int> (*)(std::string&, tally&), std::string, tally>);
// Also accepted, as anything callable with (T&, S&) is: the state by const reference or by value
// (a stage that only reads it, or whose changes are lost).
static_assert(detail::state_stage<int (*)(const std::string&, const tally&), std::string, tally>);
static_assert(detail::state_stage<int (*)(const std::string&, tally), std::string, tally>);
static_assert(!detail::state_stage<int (*)(tally&, const std::string&), std::string, tally>,
              "the message comes first, the state second");
static_assert(!detail::state_stage<int (*)(const std::string&), std::string, tally>);
static_assert(!detail::state_stage<int (*)(const int&, tally&), std::string, tally>,
              "the message is of the keyed pipeline's type");
static_assert(!detail::state_stage<void (*)(const std::string&, tally&), std::string, tally>,
              "a stage returns its output");
static_assert(
  !detail::state_stage<int (*)(const std::string&, no_default&), std::string, no_default>,
  "a state is made on a key's first message, from nothing");
// to, source and sinks.
static_assert(detail::stateless_stage<int (*)(std::string&&), std::string>);
static_assert(detail::stateless_stage<int (*)(const std::string&), std::string>);
static_assert(!detail::stateless_stage<int (*)(std::string&), std::string>,
              "to() hands the message over: it is an rvalue");
static_assert(!detail::stateless_stage<void (*)(std::string&&), std::string>);
static_assert(detail::decoder<std::optional<int> (*)(std::span<const std::byte>)>);
static_assert(!detail::decoder<int (*)(std::string_view)>);
static_assert(detail::sink_encoder<void (*)(const int&, std::string&), int>);
static_assert(detail::sink_encoder<std::string (*)(const int&), int>);
static_assert(!detail::sink_encoder<void (*)(int&, std::string&), int>);
// to_many: pushing names its output type; otherwise a range comes back.
static_assert(detail::pushing_stage<void (*)(std::string&, output<int>&), std::string, int>);
static_assert(!detail::pushing_stage<void (*)(std::string&, output<int>&), std::string, void>);
static_assert(detail::range_stage<std::vector<int> (*)(std::string&), std::string>);
static_assert(!detail::range_stage<int (*)(std::string&), std::string>);

TEST(Application, APipelineWithoutASinkIsRefusedAtStartUp) {
    application app{ "nosink" };
    app.source("in", text).to("upper", [](std::string&& s) { return s; });
    auto v = app.validate();
    ASSERT_FALSE(v.ok());
    EXPECT_EQ(v.err().code, errc::internal);
    EXPECT_NE(v.err().message.find("pipeline 'in' ends at stateless stage 'upper' without a sink"),
              std::string::npos)
      << v.err().message;
    runtime rt(app, runtime_config{}, [](std::uint32_t, std::uint32_t) { return nullptr; });
    EXPECT_FALSE(rt.start().ok());
}

TEST(Application, AnAppWithoutSourcesIsRefused) {
    application app{ "empty" };
    EXPECT_FALSE(app.validate().ok());
}

TEST(Application, DuplicateNamesAndBranchesThrowWhileBuilding) {
    application app{ "dup" };
    auto p = app.source("in", text);
    EXPECT_THROW(app.source("in", text), app_error);
    p.to_sink("out", [](const std::string& s) { return s; });
    EXPECT_THROW(app.source("in2", text).to_sink("out", [](const std::string& s) { return s; }),
                 app_error);
    application branch{ "branch" };
    auto b = branch.source("in", text);
    b.to("one", [](std::string&& s) { return s; });
    EXPECT_THROW(b.to("two", [](std::string&& s) { return s; }), app_error);
    EXPECT_THROW(b.key_by([](const std::string& s) -> const std::string& { return s; }, 1000),
                 app_error)
      << "partition counts are powers of two";
}

TEST(Application, GraphRecordsKindsPipelinesAndSinks) {
    application app{ "graph" };
    auto a = app.source("A", text);
    auto b = app.source("B", text);
    a.merge(b)
      .key_by([](const std::string& s) -> const std::string& { return s; })
      .to_state<int>("st", [](const std::string& s, int&) { return s; })
      .to_sinks(sink<std::string>("s1", [](const std::string& s) { return s; }),
                sink<std::string>("s2", [](const std::string& s) { return s; }));
    ASSERT_TRUE(app.validate().ok());
    EXPECT_EQ(app.source_names(), (std::vector<std::string>{ "A", "B" }));
    EXPECT_EQ(app.sink_names(), (std::vector<std::string>{ "s1", "s2" }));
    std::vector<node_kind> kinds;
    for (const auto& n : app.nodes()) {
        kinds.push_back(n->kind);
    }
    EXPECT_EQ(kinds,
              (std::vector<node_kind>{ node_kind::source, node_kind::source, node_kind::key_by,
                                       node_kind::stateful, node_kind::sink, node_kind::sink }));
    EXPECT_EQ(app.nodes()[2]->previous, (std::vector<std::uint32_t>{ 0, 1 }));
    EXPECT_EQ(app.nodes()[3]->next, (std::vector<std::uint32_t>{ 4, 5 }));
}

// Runs payloads through an app with `shards` shards; returns what each sink got.
std::map<std::uint32_t, std::vector<std::string>> run(const application& app,
                                                      const std::vector<std::string>& payloads,
                                                      std::uint32_t shards) {
    struct feed final : public io_handler {
        const std::vector<std::string>& payloads;
        std::size_t next = 0;
        explicit feed(const std::vector<std::string>& p)
          : payloads(p) {}
        std::size_t poll(shard_context& s) override {
            std::size_t n = 0;
            while (next < payloads.size() && s.can_admit() && n < 32) {
                const auto& p = payloads[next++];
                s.ingest(0, std::as_bytes(std::span(p.data(), p.size())));
                ++n;
            }
            return n;
        }
        bool finished() const override { return next == payloads.size(); }
        bool needs_poll() const override { return !finished(); }
    };
    struct out final : public sink_output {
        std::mutex& mu;
        std::vector<std::string>& got;
        bool closed = false;
        out(std::mutex& m, std::vector<std::string>& g)
          : mu(m)
          , got(g) {}
        void write(std::span<const std::byte> b) override {
            std::lock_guard lock(mu);
            got.emplace_back(as_text(b));
        }
        std::size_t pending_bytes() const override { return 0; }
        void request_close() override { closed = true; }
        std::size_t poll(shard_context&) override { return 0; }
        bool finished() const override { return closed; }
    };
    std::mutex mu;
    std::map<std::uint32_t, std::vector<std::string>> got;
    for (std::uint32_t s = 0; s < app.sink_names().size(); ++s) {
        got[s];
    }
    runtime_config cfg;
    cfg.shards = shards;
    runtime rt(app, cfg, [&](std::uint32_t sink, std::uint32_t) {
        return std::make_unique<out>(mu, got[sink]);
    });
    EXPECT_TRUE(rt.start().ok());
    rt.adopt(std::make_unique<feed>(payloads));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (rt.counters().ingested < payloads.size() &&
           std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    rt.stop();
    return got;
}

TEST(Application, CollectKeepsOneStateForTheWholeStream) {
    application app{ "collect" };
    app.source("in", text)
      .collect()
      .to_state<std::uint64_t>("total",
                               [](const std::string& s, std::uint64_t& total) {
                                   total += s.size();
                                   return std::to_string(total);
                               })
      .to_sink("out", [](const std::string& s) { return s; });
    std::vector<std::string> payloads(1000, "abc");
    auto got = run(app, payloads, 3);
    ASSERT_EQ(got[0].size(), 1000u);
    // One state: the totals are 3, 6, ..., 3000 in order.
    for (std::size_t i = 0; i < got[0].size(); ++i) {
        EXPECT_EQ(got[0][i], std::to_string(3 * (i + 1)));
    }
}

TEST(Application, IntegerKeysRouteLikeTheirBigEndianBytes) {
    std::string scratch;
    EXPECT_EQ(key_bytes(std::uint32_t{ 0x01020304 }, scratch),
              std::string_view("\0\0\0\0\x01\x02\x03\x04", 8));
    std::string scratch2;
    EXPECT_EQ(partition_of(key_bytes(std::int64_t{ 7 }, scratch), 1024),
              partition_of(key_bytes(std::uint16_t{ 7 }, scratch2), 1024));
    application app{ "ints" };
    app.source("in", text)
      .key_by([](const std::string& s) { return std::stoi(s) % 10; })
      .to_state<int>("count",
                     [](const std::string& s, int& n) {
                         return std::to_string(std::stoi(s) % 10) + ":" + std::to_string(++n);
                     })
      .to_sink("out", [](const std::string& s) { return s; });
    std::vector<std::string> payloads;
    for (int i = 0; i < 500; ++i) {
        payloads.push_back(std::to_string(i));
    }
    auto got = run(app, payloads, 2);
    std::map<std::string, int> last;
    for (const auto& g : got[0]) {
        auto colon = g.find(':');
        auto key = g.substr(0, colon);
        int n = std::stoi(g.substr(colon + 1));
        EXPECT_EQ(n, last[key] + 1) << "per-key counts arrive in order";
        last[key] = n;
    }
    EXPECT_EQ(last.size(), 10u);
    for (const auto& [k, n] : last) {
        EXPECT_EQ(n, 50) << k;
    }
}

TEST(Application, ToSinksSendsEveryMessageToEachSinkAndFiltersCount) {
    application app{ "fan" };
    app.source("in", text)
      .to("drop odd",
          [](std::string&& s) -> std::optional<std::string> {
              if (std::stoi(s) % 2 == 1) {
                  return std::nullopt;
              }
              return s;
          })
      .to_many("twice",
               [](std::string& s) {
                   return std::vector<std::string>{ s, s + "'" };
               })
      .to_sinks(
        sink<std::string>("a", [](const std::string& s) { return "a" + s; }),
        sink<std::string>("b", [](const std::string& s, std::string& out) { out += "b" + s; }));
    std::vector<std::string> payloads;
    for (int i = 0; i < 100; ++i) {
        payloads.push_back(std::to_string(i));
    }
    auto got = run(app, payloads, 1);
    ASSERT_EQ(got[0].size(), 100u); // 50 even numbers, twice each
    ASSERT_EQ(got[1].size(), 100u);
    EXPECT_EQ(got[0][0], "a0");
    EXPECT_EQ(got[0][1], "a0'");
    EXPECT_EQ(got[1][2], "b2");
}

} // namespace
} // namespace ringtail
