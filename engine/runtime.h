// One worker's engine: the pinned compute shards, the rings between every ordered pair of them,
// the partition map, admission control and the clean stop that drains what is in flight.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/application.h"
#include "engine/counters.h"
#include "engine/envelope.h"
#include "engine/metrics.h"
#include "engine/partition.h"
#include "engine/result.h"
#include "engine/shard_io.h"
#include "engine/spsc_ring.h"
#include "engine/transport.h"

namespace ringtail {

class shard;
class exchange;
class metrics_collector;

struct runtime_config {
    std::uint32_t shards = 1;
    // Cores the shards are pinned to, round-robin (OS indices); empty = not pinned.
    std::vector<unsigned> cpus;
    // Spin only (dedicated cores) instead of spinning briefly and then sleeping until woken.
    bool busy_poll = false;
    std::size_t ring_capacity = 4096;
    // Messages admitted into the rings and not yet taken out of them, over all shards. Sources
    // stop reading while it is spent; inner stages never block (DESIGN.md §3).
    std::int64_t in_flight_budget = 1 << 16;
    // Bytes waiting in sink connections, over all shards, above which sources stop reading.
    std::size_t sink_backlog_limit_bytes = 32u << 20;
    // How long an idle shard keeps spinning before it sleeps (adaptive polling).
    std::uint64_t idle_spin_ns = 50'000;
    // Metrics period; 0 turns latency recording and the metrics thread off.
    std::uint64_t metrics_period_ns = 2'000'000'000;
    int metrics_cpu = -1; // core of the metrics thread; -1 = not pinned
    std::string worker_name = "initializer";
    // In a cluster: how many shards each worker runs (index = worker index; empty = this worker
    // alone), which one this is, and the data channel to the others (net/ makes it; it must
    // outlive the runtime). The data channel has one or more lanes, each a transport run by an
    // exchange thread of its own; lane l of one worker carries to lane l of another, and shard i
    // sends through lane i % lanes. Every lane receives for every shard. Lane l's exchange
    // thread is pinned to exchange_cpus[l] (the network I/O cores); not pinned when l is past
    // the end or the entry is -1.
    std::vector<std::uint32_t> cluster_shards;
    std::uint32_t worker_index = 0;
    std::vector<transport*> data_transports;
    std::vector<int> exchange_cpus;
};

// Makes the connection of one shard to one sink (net/ implements it; tests use fakes).
using sink_factory =
  std::function<std::unique_ptr<sink_output>(std::uint32_t sink_index, std::uint32_t shard)>;
// Called on a shard when a barrier token has arrived from every shard, i.e. after every message
// sent to this shard before the barrier was injected.
using token_callback = std::function<void(std::uint32_t shard, std::uint64_t token)>;
// Called on the exchange thread when the data connection to another worker is gone.
using peer_lost_callback = std::function<void(peer_id worker, const std::string& reason)>;

class runtime {
public:
    runtime(const application& app, runtime_config config, sink_factory sinks);
    ~runtime();
    runtime(const runtime&) = delete;
    runtime& operator=(const runtime&) = delete;

    // Builds the shards, makes the sink connections and starts the shard threads.
    status start();

    // Whether every keyed stage's input can be routed to another worker (has a ringtail::codec);
    // the error names the first stage that cannot.
    static status check_routable(const application& app);

    // Thread-safe. Hands an I/O handler (an accepted source connection) to a shard, round-robin.
    void adopt(std::unique_ptr<io_handler> handler);
    void adopt_on(std::uint32_t shard, std::unique_ptr<io_handler> handler);

    // Thread-safe. Injects barrier token `id` at every shard; each shard forwards it on all its
    // outbound rings behind the data already there, and calls the token callback once the token
    // has come in from every shard.
    void inject_barrier(std::uint64_t id);
    void set_token_callback(token_callback cb);
    // Before start.
    void set_peer_lost_callback(peer_lost_callback cb) { _on_peer_lost = std::move(cb); }

    // Thread-safe. Sources stop reading and close; everything already admitted keeps flowing
    // (the first step of a stop, and of a cluster-wide clean shutdown).
    void stop_admitting();
    // Where this worker stands in a drain: quiet when nothing admitted here is left in its rings,
    // overflow or exchange; the remote counts let a coordinator see that nothing is on the wire
    // (the sum of sent equals the sum of received over the cluster).
    struct drain_state {
        bool quiet = false;
        std::uint64_t remote_sent = 0;
        std::uint64_t remote_received = 0;
    };
    drain_state drain() const;

    // Before start: a destination for every period's merged metrics.
    void add_exporter(std::unique_ptr<metrics_exporter> exporter);
    // The metrics this worker keeps (valid after start, when metrics are on).
    const metric_catalog* catalog() const { return _catalog.get(); }

    struct stop_report {
        bool drained = false;                // nothing admitted was left in the rings
        std::uint64_t undelivered_bytes = 0; // sink bytes the receivers never took
    };
    // Stops admitting, drains every ring and overflow (in a cluster: drops what other workers
    // still send, counted: this worker is leaving), flushes sinks (waiting at most
    // `flush_timeout` for receivers), then stops the shard threads. Idempotent.
    stop_report stop(std::chrono::milliseconds flush_timeout = std::chrono::seconds(30));

    worker_counters counters() const;

    // The keys each stateful stage holds on this worker, gathered while the shards run: each shard
    // lists its own partitions' keys on its own thread. nullopt when a shard has not answered
    // within `timeout`. Before start and after stop the tables are read directly.
    struct stage_keys {
        std::uint32_t node = 0;
        std::string stage;
        std::vector<std::string> keys;
    };
    std::optional<std::vector<stage_keys>> live_state_keys(std::chrono::milliseconds timeout);
    // True from start until a stop begins (external channel: processing_messages).
    bool processing() const { return _started && !_stopping.load(std::memory_order_acquire); }
    std::uint32_t shard_count() const { return _config.shards; }
    const partition_map& partitions() const { return _map; }
    const application& app() const { return _app; }

    // State of one stateful stage on one shard and partition; nullptr when that partition holds no
    // state yet. Call only while the shards are stopped (before start or after stop).
    const state_table* table(std::uint32_t shard, std::uint32_t node,
                             std::uint32_t partition) const;
    // Every key held by a stateful stage on this worker (stopped shards only).
    std::vector<std::string> state_keys(std::uint32_t node) const;

private:
    friend class shard;
    friend class exchange;
    bool all_quiet() const;
    // The exchange that carries shard `shard_index`'s messages to other workers.
    exchange& lane_of(std::uint32_t shard_index) const {
        return *_exchanges[shard_index % _exchanges.size()];
    }

    const application& _app;
    runtime_config _config;
    sink_factory _sink_factory;
    partition_map _map;
    token_callback _on_token;
    peer_lost_callback _on_peer_lost;
    // The rings between every ordered pair of shards, [from * shards + to]; declared before the
    // shards, which use them, so they outlive the shards.
    std::vector<std::unique_ptr<spsc_ring<envelope>>> _rings;
    // In a cluster: the ring from each shard to its lane's exchange, [shard], and from each
    // exchange to each shard, [lane * shards + shard].
    std::vector<std::unique_ptr<spsc_ring<envelope>>> _to_exchange;
    std::vector<std::unique_ptr<spsc_ring<envelope>>> _from_exchange;
    std::vector<std::unique_ptr<shard>> _shards;
    // One per lane; after the shards: destroyed (joined) first.
    std::vector<std::unique_ptr<exchange>> _exchanges;
    // [peer]: a lane found the peer lost; the other lanes stop sending to it too, and the
    // callback hears of it once.
    std::unique_ptr<std::atomic<bool>[]> _peer_lost;
    std::atomic<std::uint32_t> _peers_lost{ 0 }; // how many of those are set
    std::unique_ptr<metric_catalog> _catalog;
    std::vector<std::unique_ptr<metrics_exporter>> _pending_exporters;
    std::unique_ptr<metrics_collector> _collector;
    std::atomic<std::int64_t> _in_flight{ 0 };
    std::atomic<bool> _stopping{ false };      // sources stop admitting and close
    std::atomic<bool> _closing_sinks{ false }; // everything drained: sinks flush and close
    std::atomic<bool> _quit{ false };          // shard threads leave their loops
    std::atomic<std::uint32_t> _next_shard{ 0 };
    bool _started = false;
    bool _stopped = false;
    stop_report _stop_report;
};

} // namespace ringtail
