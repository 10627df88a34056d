// Per-stage, per-pipeline and per-worker latency histograms and counters (DESIGN.md §6): shards
// record into their own metric_set and hand it whole to the metrics thread every period, without
// a lock on the shard's side; the metrics thread merges the sets and calls the exporters.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/counters.h"
#include "engine/histogram.h"

namespace ringtail {

class application;

// The categories of Wallaroo's monitoring hub (WIRE.md §5).
enum class metric_category : std::uint8_t {
    computation,         // time spent in one stage's function
    start_to_end,        // per pipeline: source ingest -> sink write
    node_ingress_egress, // per worker: in at a source (or from another worker) -> out
    pipeline_ingestion,  // per pipeline: messages admitted (a count; latency unused)
};
const char* to_string(metric_category c); // "computation", "start-to-end", ...

struct metric_key {
    std::string name; // stage, pipeline or worker name
    metric_category category;
    std::string pipeline; // the pipeline it belongs to (the worker name for node-ingress-egress)
    std::uint16_t id;     // index in the catalog, stable for the worker's life
};

// Which metrics a worker keeps, fixed at start from the application graph.
class metric_catalog {
public:
    metric_catalog(const application& app, const std::string& worker_name);

    const std::vector<metric_key>& keys() const { return _keys; }
    std::size_t size() const { return _keys.size(); }
    // Index of the computation metric of a node, or npos for nodes without one (sources,
    // key_by routers, sinks).
    std::size_t of_node(std::uint32_t node) const { return _of_node[node]; }
    std::size_t of_pipeline_latency(std::uint32_t pipeline) const {
        return _pipeline_latency[pipeline];
    }
    std::size_t of_pipeline_ingestion(std::uint32_t pipeline) const {
        return _pipeline_ingestion[pipeline];
    }
    std::size_t of_worker() const { return _worker; }
    std::uint32_t pipeline_count() const {
        return static_cast<std::uint32_t>(_pipeline_latency.size());
    }
    const std::string& app_name() const { return _app_name; }
    const std::string& worker_name() const { return _worker_name; }

    static constexpr std::size_t npos = ~std::size_t{ 0 };

private:
    std::string _app_name;
    std::string _worker_name;
    std::vector<metric_key> _keys;
    std::vector<std::size_t> _of_node;
    std::vector<std::size_t> _pipeline_latency;
    std::vector<std::size_t> _pipeline_ingestion;
    std::size_t _worker = npos;
};

// One shard's measurements over one period. Owned by the shard while it records; by the metrics
// thread while it merges; then reset and handed back.
struct metric_set {
    explicit metric_set(std::size_t metrics)
      : latency(metrics)
      , counts(metrics, 0) {}
    void reset();
    std::vector<histogram> latency;    // [metric]: nanoseconds
    std::vector<std::uint64_t> counts; // [metric]: messages (equals latency count, except
                                       // pipeline-ingestion, which has no latency)
    std::uint64_t period_end_ns = 0;   // wall clock (ns since the epoch) when the period closed
};

// What exporters see every period: every shard's set merged.
struct metrics_snapshot {
    const metric_catalog* catalog = nullptr;
    std::vector<histogram> latency;    // [metric], merged over shards
    std::vector<std::uint64_t> counts; // [metric]
    std::uint64_t period_ns = 0;       // the period's length
    std::uint64_t period_end_ns = 0;   // wall clock, aligned to the period
    std::uint32_t shards_reporting = 0;
    std::uint64_t dropped_periods = 0; // shard periods reported late: the metrics thread lagged
    worker_counters totals;
};

// A destination for snapshots (monitoring hub, HTTP endpoint). publish() runs on the metrics
// thread and must not block for long: exporters keep their own bounded buffers and drop (and
// count) what they cannot send.
class metrics_exporter {
public:
    virtual ~metrics_exporter() = default;
    virtual void publish(const metrics_snapshot& snapshot) = 0;
};

} // namespace ringtail
