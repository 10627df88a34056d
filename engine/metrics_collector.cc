// The metrics thread.
#include "engine/metrics_collector.h"

#include <chrono>
#include <cstring>
#include <pthread.h>

#include "engine/clock.h"
#include "engine/detail/pin_thread.h"
#include "engine/log.h"
#include "engine/shard.h"

namespace ringtail {

metrics_collector::metrics_collector(const metric_catalog& catalog, std::vector<shard*> shards,
                                     std::uint64_t period_ns,
                                     std::function<worker_counters()> totals)
  : _catalog(catalog)
  , _shards(std::move(shards))
  , _period_ns(period_ns)
  , _totals(std::move(totals)) {
    _snapshot.catalog = &_catalog;
    _snapshot.latency = std::vector<histogram>(_catalog.size());
    _snapshot.counts.assign(_catalog.size(), 0);
    _snapshot.period_ns = _period_ns;
}

metrics_collector::~metrics_collector() {
    stop();
}

void metrics_collector::add_exporter(std::unique_ptr<metrics_exporter> e) {
    _exporters.push_back(std::move(e));
}

void metrics_collector::start(int cpu) {
    _thread = std::thread([this, cpu] { run(cpu); });
}

void metrics_collector::stop() {
    {
        std::lock_guard lock(_mu);
        if (_quit) {
            return;
        }
        _quit = true;
    }
    _cv.notify_all();
    if (_thread.joinable()) {
        _thread.join();
    }
}

void metrics_collector::run(int cpu) {
    if (cpu >= 0) {
        detail::pin_thread(cpu, "metrics thread");
    }
    ::pthread_setname_np(::pthread_self(), "rt-metrics");
    // Periods end on wall-clock multiples of the period (as Wallaroo's did); shards close theirs
    // at the same instants, and we collect a little after, once they have handed over.
    const auto grace = std::chrono::milliseconds(20);
    std::unique_lock lock(_mu);
    while (!_quit) {
        const std::uint64_t now = clock::realtime_ns();
        const std::uint64_t end = (now / _period_ns + 1) * _period_ns;
        auto wait = std::chrono::nanoseconds(end - now) + grace;
        if (_cv.wait_for(lock, wait, [this] { return _quit; })) {
            break;
        }
        lock.unlock();
        collect_and_publish(end);
        lock.lock();
    }
    lock.unlock();
    collect_and_publish((clock::realtime_ns() / _period_ns + 1) * _period_ns);
}

void metrics_collector::collect_and_publish(std::uint64_t period_end_ns) {
    for (auto& h : _snapshot.latency) {
        h.reset();
    }
    std::fill(_snapshot.counts.begin(), _snapshot.counts.end(), 0);
    _snapshot.shards_reporting = 0;
    _snapshot.period_end_ns = period_end_ns;
    std::uint64_t dropped = 0;
    for (shard* s : _shards) {
        bool reported = false;
        while (metric_set* set = s->take_filled_metrics()) {
            for (std::size_t i = 0; i < set->latency.size(); ++i) {
                _snapshot.latency[i].merge(set->latency[i]);
                _snapshot.counts[i] += set->counts[i];
            }
            set->reset();
            s->return_metrics(set);
            reported = true;
        }
        _snapshot.shards_reporting += reported ? 1 : 0;
        dropped += s->dropped_metric_periods();
    }
    // On a single worker every message that leaves it went from a source to a sink, so the
    // worker's ingress-to-egress latency is the start-to-end latency of all its pipelines: merged
    // here once per period instead of recorded twice per message on the shards.
    auto& worker = _snapshot.latency[_catalog.of_worker()];
    for (std::uint32_t p = 0; p < _catalog.pipeline_count(); ++p) {
        worker.merge(_snapshot.latency[_catalog.of_pipeline_latency(p)]);
    }
    _snapshot.dropped_periods = dropped;
    _snapshot.totals = _totals();
    for (auto& e : _exporters) {
        e->publish(_snapshot);
    }
    _published.fetch_add(1, std::memory_order_relaxed);
}

} // namespace ringtail
