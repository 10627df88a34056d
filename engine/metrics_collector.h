// The metrics thread: every period it takes each shard's filled metric set, merges them into one
// snapshot, hands the emptied sets back and calls the exporters. Pinned to --metrics-core.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/metrics.h"

namespace ringtail {

class shard;

class metrics_collector {
public:
    // `totals` reads the worker's counters (any thread).
    metrics_collector(const metric_catalog& catalog, std::vector<shard*> shards,
                      std::uint64_t period_ns, std::function<worker_counters()> totals);
    ~metrics_collector();
    metrics_collector(const metrics_collector&) = delete;
    metrics_collector& operator=(const metrics_collector&) = delete;

    void add_exporter(std::unique_ptr<metrics_exporter> e);
    void start(int cpu); // cpu < 0: not pinned
    // Publishes what the shards handed over since the last period (a final, partial period),
    // then stops the thread.
    void stop();

    std::uint64_t periods_published() const { return _published.load(std::memory_order_relaxed); }

private:
    void run(int cpu);
    void collect_and_publish(std::uint64_t period_end_ns);

    const metric_catalog& _catalog;
    std::vector<shard*> _shards;
    std::uint64_t _period_ns;
    std::function<worker_counters()> _totals;
    std::vector<std::unique_ptr<metrics_exporter>> _exporters;
    metrics_snapshot _snapshot;
    std::mutex _mu;
    std::condition_variable _cv;
    bool _quit = false;
    std::atomic<std::uint64_t> _published{ 0 };
    std::thread _thread;
};

} // namespace ringtail
