// The engine end to end in one process: fused stages, key_by routing across shards, per-key state,
// backpressure, barrier tokens in order with data, and a stop that drains everything.
#include "engine/runtime.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/unit/engine/engine_fakes.h"

namespace ringtail {
namespace {

using testing::as_bytes;
using testing::collected;
using testing::fake_sink;
using testing::fake_source;

struct count_state {
    std::uint64_t n = 0;
};

application make_word_count() {
    application app{ "wc" };
    app
      .source("lines",
              [](std::span<const std::byte> p) {
                  return std::string(reinterpret_cast<const char*>(p.data()), p.size());
              })
      .to_many<std::string>("split",
                            [](std::string& line, output<std::string>& out) {
                                std::size_t i = 0;
                                while (i < line.size()) {
                                    auto j = line.find(' ', i);
                                    if (j == std::string::npos) {
                                        j = line.size();
                                    }
                                    if (j > i) {
                                        out.push(line.substr(i, j - i));
                                    }
                                    i = j + 1;
                                }
                            })
      .key_by([](const std::string& w) -> const std::string& { return w; })
      .to_state<count_state>(
        "count",
        [](const std::string& w, count_state& s) { return w + "=" + std::to_string(++s.n); })
      .to_sink("out", [](const std::string& s) { return s + "\n"; });
    return app;
}

TEST(Runtime, WordCountAcrossShardsMatchesReference) {
    for (std::uint32_t shards : { 1u, 2u, 3u }) {
        auto app = make_word_count();
        std::mt19937 rng(42);
        std::vector<std::string> lines;
        std::map<std::string, std::uint64_t> expected;
        for (int i = 0; i < 5000; ++i) {
            std::string line;
            int words = 1 + static_cast<int>(rng() % 8);
            for (int w = 0; w < words; ++w) {
                std::string word = "w" + std::to_string(rng() % 300);
                expected[word]++;
                line += word + " ";
            }
            lines.push_back(line);
        }
        collected out;
        runtime_config cfg;
        cfg.shards = shards;
        cfg.ring_capacity = 64; // small rings exercise the overflow path
        cfg.in_flight_budget = 512;
        runtime rt(app, cfg,
                   [&](std::uint32_t, std::uint32_t) { return std::make_unique<fake_sink>(out); });
        ASSERT_TRUE(rt.start().ok());
        // Two connections on different shards.
        std::vector<std::string> half1(lines.begin(), lines.begin() + 2500);
        std::vector<std::string> half2(lines.begin() + 2500, lines.end());
        rt.adopt(std::make_unique<fake_source>(half1));
        rt.adopt(std::make_unique<fake_source>(half2));
        // Wait for ingestion, then stop (drains).
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (rt.counters().ingested < lines.size() &&
               std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        auto report = rt.stop();
        EXPECT_TRUE(report.drained);
        std::map<std::string, std::uint64_t> got;
        std::uint64_t total = 0;
        for (const auto& w : out.writes) {
            auto eq = w.find('=');
            auto word = w.substr(0, eq);
            std::uint64_t n = std::stoull(w.substr(eq + 1));
            got[word] = std::max(got[word], n);
            ++total;
        }
        EXPECT_EQ(got, expected) << "shards=" << shards;
        std::uint64_t expected_total = 0;
        for (auto& [w, n] : expected) {
            expected_total += n;
        }
        EXPECT_EQ(total, expected_total);
        auto c = rt.counters();
        EXPECT_EQ(c.ingested, lines.size());
        if (shards > 1) {
            EXPECT_GT(c.ring_messages, 0u);
        }
        // Each key's state lives on exactly one shard: the partition's owner.
        auto keys = rt.state_keys(app.nodes().back()->previous[0]);
        std::sort(keys.begin(), keys.end());
        EXPECT_EQ(keys.size(), expected.size());
        EXPECT_TRUE(std::adjacent_find(keys.begin(), keys.end()) == keys.end());
    }
}

TEST(Runtime, PerKeyOrderIsKept) {
    // Each key's values must reach its state in the order they were sent.
    application app{ "order" };
    struct last {
        std::int64_t value = -1;
        bool ok = true;
    };
    app
      .source("in",
              [](std::span<const std::byte> p) {
                  std::string s(reinterpret_cast<const char*>(p.data()), p.size());
                  auto colon = s.find(':');
                  return std::make_pair(s.substr(0, colon), std::stoll(s.substr(colon + 1)));
              })
      .key_by(
        [](const std::pair<std::string, long long>& m) -> const std::string& { return m.first; })
      .to_state<last>("check",
                      [](const std::pair<std::string, long long>& m, last& s) {
                          s.ok = s.ok && m.second == s.value + 1;
                          s.value = m.second;
                          return std::optional<int>{};
                      })
      .to_sink("none", [](const int&) { return std::string(); });
    std::vector<std::string> payloads;
    for (int i = 0; i < 20000; ++i) {
        payloads.push_back("k" + std::to_string(i % 17) + ":" + std::to_string(i / 17));
    }
    collected out;
    runtime_config cfg;
    cfg.shards = 3;
    cfg.ring_capacity = 16;
    runtime rt(app, cfg,
               [&](std::uint32_t, std::uint32_t) { return std::make_unique<fake_sink>(out); });
    ASSERT_TRUE(rt.start().ok());
    rt.adopt(std::make_unique<fake_source>(payloads));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (rt.counters().ingested < payloads.size() &&
           std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    rt.stop();
    EXPECT_EQ(rt.counters().filtered, payloads.size());
    const auto& stateful = app.nodes()[2];
    ASSERT_EQ(stateful->kind, node_kind::stateful);
    int keys = 0;
    for (std::uint32_t p = 0; p < stateful->partitions; ++p) {
        auto* t = rt.table(rt.partitions().owner(stateful->id, p), stateful->id, p);
        if (t == nullptr) {
            continue;
        }
        auto& typed = static_cast<const detail::typed_state_table<last>&>(*t);
        for (const auto& k : t->keys()) {
            const last* s = typed.find(k);
            ASSERT_NE(s, nullptr);
            EXPECT_TRUE(s->ok) << "key " << k << " saw values out of order";
            EXPECT_EQ(s->value, 20000 / 17 - (std::stoi(k.substr(1)) < 20000 % 17 ? 0 : 1));
            ++keys;
        }
    }
    EXPECT_EQ(keys, 17);
}

TEST(Runtime, BarrierTokenAlignsBehindEarlierData) {
    // Data sent before the barrier is injected must be processed on every shard before that
    // shard sees the token from every peer.
    application app{ "tokens" };
    std::atomic<std::uint64_t> processed{ 0 };
    app
      .source("in",
              [](std::span<const std::byte> p) {
                  return std::string(reinterpret_cast<const char*>(p.data()), p.size());
              })
      .key_by([](const std::string& s) -> const std::string& { return s; })
      .to_state<count_state>("count",
                             [&processed](const std::string&, count_state& s) {
                                 ++s.n;
                                 processed.fetch_add(1, std::memory_order_relaxed);
                                 return std::optional<int>{};
                             })
      .to_sink("none", [](const int&) { return std::string(); });
    std::vector<std::string> payloads;
    for (int i = 0; i < 3000; ++i) {
        payloads.push_back("key" + std::to_string(i));
    }
    collected out;
    runtime_config cfg;
    cfg.shards = 3;
    runtime rt(app, cfg,
               [&](std::uint32_t, std::uint32_t) { return std::make_unique<fake_sink>(out); });
    std::mutex mu;
    std::vector<std::uint64_t> processed_at_alignment;
    rt.set_token_callback([&](std::uint32_t, std::uint64_t token) {
        std::lock_guard lock(mu);
        EXPECT_EQ(token, 7u);
        processed_at_alignment.push_back(processed.load());
    });
    ASSERT_TRUE(rt.start().ok());
    rt.adopt_on(0, std::make_unique<fake_source>(payloads));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (rt.counters().ingested < payloads.size() &&
           std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    rt.inject_barrier(7);
    while (rt.counters().tokens_aligned < 3 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    rt.stop();
    EXPECT_EQ(rt.counters().tokens_aligned, 3u);
    ASSERT_EQ(processed_at_alignment.size(), 3u);
    // Everything ingested before the barrier went through some shard; each shard's own share was
    // done before its alignment, and the last alignment saw all of it.
    EXPECT_EQ(*std::max_element(processed_at_alignment.begin(), processed_at_alignment.end()),
              payloads.size());
}

TEST(Runtime, DecoderRejectsAreCountedNotFatal) {
    application app{ "reject" };
    app
      .source("in",
              [](std::span<const std::byte> p) -> std::optional<int> {
                  if (p.size() != 4) {
                      return std::nullopt;
                  }
                  if (p[0] == std::byte{ 'x' }) {
                      throw std::runtime_error("bad");
                  }
                  return 1;
              })
      .to_sink("out", [](const int&) { return std::string("ok\n"); });
    collected out;
    runtime rt(app, runtime_config{},
               [&](std::uint32_t, std::uint32_t) { return std::make_unique<fake_sink>(out); });
    ASSERT_TRUE(rt.start().ok());
    rt.adopt(
      std::make_unique<fake_source>(std::vector<std::string>{ "abcd", "ab", "xbcd", "abcd", "" }));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (rt.counters().ingested < 5 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    rt.stop();
    EXPECT_EQ(rt.counters().decode_errors, 3u);
    EXPECT_EQ(out.writes.size(), 2u);
}

TEST(Runtime, BackpressureBoundsInFlightAndLosesNothing) {
    // A sink that holds back bytes (as a slow receiver does) stops the sources; nothing is lost.
    struct slow_sink final : public sink_output {
        collected& out;
        std::size_t pending = 0;
        bool closed = false;
        std::size_t max_pending = 0;
        explicit slow_sink(collected& o)
          : out(o) {}
        void write(std::span<const std::byte> b) override {
            pending += b.size();
            max_pending = std::max(max_pending, pending);
            std::lock_guard lock(out.mu);
            out.writes.emplace_back(reinterpret_cast<const char*>(b.data()), b.size());
        }
        std::size_t pending_bytes() const override { return pending; }
        void request_close() override { closed = true; }
        std::size_t poll(shard_context&) override {
            // Drains 100 bytes per poll.
            std::size_t n = std::min<std::size_t>(pending, 100);
            pending -= n;
            return n;
        }
        bool finished() const override { return closed && pending == 0; }
        bool needs_poll() const override { return pending != 0; }
    };
    application app{ "bp" };
    app
      .source("in",
              [](std::span<const std::byte> p) {
                  return std::string(reinterpret_cast<const char*>(p.data()), p.size());
              })
      .to_sink("out", [](const std::string& s) { return s; });
    collected out;
    slow_sink* sink = nullptr;
    runtime_config cfg;
    cfg.sink_backlog_limit_bytes = 1000;
    runtime rt(app, cfg, [&](std::uint32_t, std::uint32_t) {
        auto s = std::make_unique<slow_sink>(out);
        sink = s.get();
        return s;
    });
    ASSERT_TRUE(rt.start().ok());
    std::vector<std::string> payloads(2000, std::string(10, 'a'));
    rt.adopt(std::make_unique<fake_source>(payloads));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (rt.counters().ingested < payloads.size() &&
           std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    auto report = rt.stop();
    EXPECT_EQ(report.undelivered_bytes, 0u);
    EXPECT_EQ(out.writes.size(), payloads.size());
    // The source batch (32 messages of 10 bytes) can overshoot the limit once, no more.
    EXPECT_LE(sink->max_pending, 1000u + 32 * 10);
}

} // namespace
} // namespace ringtail

namespace ringtail {
namespace {

TEST(Runtime, LiveStateKeysAreGatheredFromRunningShards) {
    auto app = make_word_count();
    collected out;
    runtime_config cfg;
    cfg.shards = 3;
    runtime rt(app, cfg,
               [&](std::uint32_t, std::uint32_t) { return std::make_unique<fake_sink>(out); });
    EXPECT_FALSE(rt.processing());
    ASSERT_TRUE(rt.start().ok());
    EXPECT_TRUE(rt.processing());
    std::vector<std::string> lines;
    for (int i = 0; i < 200; ++i) {
        lines.push_back("a" + std::to_string(i) + " b" + std::to_string(i % 7));
    }
    rt.adopt(std::make_unique<fake_source>(lines));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    std::optional<std::vector<runtime::stage_keys>> keys;
    while (std::chrono::steady_clock::now() < deadline) {
        keys = rt.live_state_keys(std::chrono::seconds(5));
        ASSERT_TRUE(keys.has_value());
        if (keys->size() == 1 && (*keys)[0].keys.size() == 207) {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_EQ(keys->size(), 1u);
    EXPECT_EQ((*keys)[0].stage, "count");
    auto k = (*keys)[0].keys;
    std::sort(k.begin(), k.end());
    EXPECT_EQ(k.size(), 207u); // a0..a199 and b0..b6, each once
    EXPECT_TRUE(std::adjacent_find(k.begin(), k.end()) == k.end());
    rt.stop();
    EXPECT_FALSE(rt.processing());
    auto after = rt.live_state_keys(std::chrono::seconds(1));
    ASSERT_TRUE(after.has_value());
    EXPECT_EQ((*after)[0].keys.size(), 207u);
}

// Counts its polls; never has work, and no fd of its own. Finished once `done` is set.
class counting_handler final : public io_handler {
public:
    counting_handler(std::atomic<std::uint64_t>& polls, std::atomic<bool>& done)
      : _polls(polls)
      , _done(done) {}
    std::size_t poll(shard_context&) override {
        _polls.fetch_add(1, std::memory_order_relaxed);
        return 0;
    }
    bool finished() const override { return _done.load(std::memory_order_relaxed); }

private:
    std::atomic<std::uint64_t>& _polls;
    std::atomic<bool>& _done;
};

// An idle shard (adaptive mode) sleeps until woken or for its bound (5 ms here), and a sleep that
// ends without work is followed by another, not by a spin: a handful of polls, not the thousands a
// spin after every sleep made. Work that comes later is still taken at once.
TEST(Runtime, AnIdleShardSleepsWithoutSpinningBetweenSleeps) {
    auto app = make_word_count();
    collected out;
    runtime_config cfg;
    cfg.shards = 1;
    cfg.metrics_period_ns = 0;
    runtime rt(app, cfg,
               [&](std::uint32_t, std::uint32_t) { return std::make_unique<fake_sink>(out); });
    ASSERT_TRUE(rt.start().ok());
    std::atomic<std::uint64_t> polls{ 0 };
    std::atomic<bool> done{ false };
    rt.adopt_on(0, std::make_unique<counting_handler>(polls, done));
    std::this_thread::sleep_for(std::chrono::milliseconds(100)); // past the spin after the adopt
    const std::uint64_t before = polls.load();
    const auto start = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const auto elapsed = std::chrono::steady_clock::now() - start;
    // A poll per sleep, and sleeps of 1 ms or more, and a margin.
    const auto most = static_cast<std::uint64_t>(elapsed / std::chrono::milliseconds(1)) + 100;
    EXPECT_GT(polls.load(), 0u);
    EXPECT_LE(polls.load() - before, most) << "the idle shard spins between its sleeps";
    const std::vector<std::string> lines{ "a b", "b c" };
    rt.adopt_on(0, std::make_unique<fake_source>(lines));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (rt.counters().ingested < lines.size() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    EXPECT_EQ(rt.counters().ingested, lines.size());
    done.store(true, std::memory_order_relaxed);
    EXPECT_TRUE(rt.stop().drained);
}

} // namespace
} // namespace ringtail
