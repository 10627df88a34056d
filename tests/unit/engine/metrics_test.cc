// Metrics end to end in one process: shards record per stage, per pipeline and per worker, hand
// their sets to the metrics thread every period, and the merged snapshots add up to the traffic.
#include "engine/metrics.h"

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

class feed final : public io_handler {
public:
    feed(std::vector<std::string> payloads, std::uint32_t source)
      : _payloads(std::move(payloads))
      , _source(source) {}
    std::size_t poll(shard_context& shard) override {
        std::size_t n = 0;
        while (_next < _payloads.size() && shard.can_admit() && n < 16) {
            const auto& p = _payloads[_next++];
            shard.ingest(_source, std::as_bytes(std::span(p.data(), p.size())));
            ++n;
        }
        return n;
    }
    bool finished() const override { return _next == _payloads.size(); }
    bool needs_poll() const override { return !finished(); }

private:
    std::vector<std::string> _payloads;
    std::uint32_t _source;
    std::size_t _next = 0;
};

class null_sink final : public sink_output {
public:
    void write(std::span<const std::byte>) override {}
    std::size_t pending_bytes() const override { return 0; }
    void request_close() override { _closed = true; }
    std::size_t poll(shard_context&) override { return 0; }
    bool finished() const override { return _closed; }

private:
    bool _closed = false;
};

// Sums what every published snapshot said, per metric name and category.
struct capture final : public metrics_exporter {
    struct totals {
        std::uint64_t latency_count = 0;
        std::uint64_t count = 0;
        std::uint64_t max_ns = 0;
    };
    std::mutex mu;
    std::map<std::string, totals> by_metric; // "category/name"
    std::vector<std::uint64_t> period_ends;
    worker_counters last_totals;
    void publish(const metrics_snapshot& s) override {
        std::lock_guard lock(mu);
        for (const auto& k : s.catalog->keys()) {
            auto& t = by_metric[std::string(to_string(k.category)) + "/" + k.name];
            t.latency_count += s.latency[k.id].total_count();
            t.count += s.counts[k.id];
            t.max_ns = std::max(t.max_ns, s.latency[k.id].max());
        }
        period_ends.push_back(s.period_end_ns);
        last_totals = s.totals;
    }
};

struct tally {
    std::uint64_t n = 0;
};

TEST(Metrics, SnapshotsAddUpToTheTraffic) {
    application app{ "m" };
    auto words = app.source("Words", [](std::span<const std::byte> p) {
        return std::string(reinterpret_cast<const char*>(p.data()), p.size());
    });
    auto more = app.source("More Words", [](std::span<const std::byte> p) {
        return std::string(reinterpret_cast<const char*>(p.data()), p.size());
    });
    words.merge(more)
      .to<std::string>("upper",
                       [](std::string&& s) {
                           for (auto& c : s) {
                               c = static_cast<char>(std::toupper(c));
                           }
                           return std::move(s);
                       })
      .key_by([](const std::string& s) -> const std::string& { return s; })
      .to_state<tally>("count",
                       [](const std::string& s, tally& t) -> std::optional<std::string> {
                           if (++t.n % 2 == 0) {
                               return std::nullopt; // every second one filtered
                           }
                           return s;
                       })
      .to_sink("out", [](const std::string& s) { return s; });

    runtime_config cfg;
    cfg.shards = 2;
    // 250 ms, and two periods after the last message: a shard whose metrics thread lags hands a
    // period over with the next one (engine/shard.cc), so the traffic adds up once it has.
    cfg.metrics_period_ns = 250'000'000;
    runtime rt(app, cfg,
               [](std::uint32_t, std::uint32_t) { return std::make_unique<null_sink>(); });
    auto cap = std::make_unique<capture>();
    capture* seen = cap.get();
    rt.add_exporter(std::move(cap));
    ASSERT_TRUE(rt.start().ok());
    std::vector<std::string> a, b;
    for (int i = 0; i < 3000; ++i) {
        a.push_back("k" + std::to_string(i % 50));
    }
    for (int i = 0; i < 1000; ++i) {
        b.push_back("k" + std::to_string(i % 50));
    }
    rt.adopt(std::make_unique<feed>(a, 0));
    rt.adopt(std::make_unique<feed>(b, 1));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (rt.counters().ingested < 4000 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(600)); // at least two full periods
    rt.stop();

    std::lock_guard lock(seen->mu);
    ASSERT_GE(seen->period_ends.size(), 2u);
    for (std::size_t i = 1; i < seen->period_ends.size(); ++i) {
        EXPECT_GT(seen->period_ends[i], seen->period_ends[i - 1]);
        EXPECT_EQ(seen->period_ends[i] % 250'000'000, 0u) << "periods end on wall-clock multiples";
    }
    EXPECT_EQ(seen->by_metric["pipeline-ingestion/Words"].count, 3000u);
    EXPECT_EQ(seen->by_metric["pipeline-ingestion/More Words"].count, 1000u);
    EXPECT_EQ(seen->by_metric["computation/upper"].latency_count, 4000u);
    EXPECT_EQ(seen->by_metric["computation/count"].latency_count, 4000u);
    // Half the messages reach the sink; each is attributed to the pipeline it came from.
    EXPECT_EQ(seen->by_metric["start-to-end/Words"].latency_count +
                seen->by_metric["start-to-end/More Words"].latency_count,
              2000u);
    EXPECT_GT(seen->by_metric["start-to-end/Words"].latency_count, 0u);
    EXPECT_GT(seen->by_metric["start-to-end/More Words"].latency_count, 0u);
    EXPECT_EQ(seen->by_metric["node-ingress-egress/initializer"].latency_count, 2000u);
    EXPECT_LT(seen->by_metric["computation/upper"].max_ns, 1'000'000'000u);
    EXPECT_EQ(seen->last_totals.ingested, 4000u);
    EXPECT_EQ(seen->last_totals.filtered, 2000u);
}

TEST(Metrics, OffMeansNoRecordingAndNoThread) {
    application app{ "off" };
    app
      .source("in",
              [](std::span<const std::byte> p) {
                  return std::string(reinterpret_cast<const char*>(p.data()), p.size());
              })
      .to_sink("out", [](const std::string& s) { return s; });
    runtime_config cfg;
    cfg.metrics_period_ns = 0;
    runtime rt(app, cfg,
               [](std::uint32_t, std::uint32_t) { return std::make_unique<null_sink>(); });
    ASSERT_TRUE(rt.start().ok());
    EXPECT_EQ(rt.catalog(), nullptr);
    rt.adopt(std::make_unique<feed>(std::vector<std::string>(100, "x"), 0));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (rt.counters().ingested < 100 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    rt.stop();
    EXPECT_EQ(rt.counters().sink_writes, 100u);
}

} // namespace
} // namespace ringtail
