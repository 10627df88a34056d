// A compute shard: one pinned thread running a run-to-completion poll loop over its inbound rings,
// its connections and its outbound overflow. Everything a shard owns (partitions' state,
// connections, overflow) is touched only by its thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <concurrentqueue/concurrentqueue.h>

#include "engine/detail/envelope_queue.h"
#include "engine/detail/wakeup.h"
#include "engine/envelope.h"
#include "engine/metrics.h"
#include "engine/node.h"
#include "engine/shard_io.h"
#include "engine/spsc_ring.h"

namespace ringtail {

class runtime;

class shard final
  : public exec_context
  , public shard_context {
public:
    shard(runtime& rt, std::uint32_t index);
    ~shard() override;

    // Wiring, before start: the ring this shard reads from shard `from`, and the ring it writes to
    // shard `to` (nullptr for itself); in a cluster one more of each, last, for the exchange.
    void set_rings(std::vector<spsc_ring<envelope>*> inbound,
                   std::vector<spsc_ring<envelope>*> outbound);
    void add_sink(std::unique_ptr<sink_output> sink);
    // Metrics, before start: the catalog and the period (0 = metrics off).
    void enable_metrics(const metric_catalog& catalog, std::uint64_t period_ns);

    // Metrics thread only: the next filled set (nullptr when none), and an emptied set back.
    metric_set* take_filled_metrics();
    void return_metrics(metric_set* set);
    std::uint64_t dropped_metric_periods() const {
        return _dropped_periods.load(std::memory_order_relaxed);
    }

    void start(int cpu); // cpu < 0: not pinned
    void join();

    // Thread-safe commands from other threads; each wakes the shard.
    void post_handler(std::unique_ptr<io_handler> h);
    void post_barrier(std::uint64_t id);
    // Runs `task` on this shard's thread between two batches (control-plane queries).
    void post_task(std::function<void(shard&)> task);
    // Keys held by stateful stage `node` in the partitions this shard owns (this shard only).
    std::vector<std::string> keys_of(std::uint32_t node) const;
    void wake();
    // After pushing into one of this shard's inbound rings: wakes it if it sleeps.
    void notify();

    // Read by the runtime while stopping.
    bool quiet() const { return _quiet.load(std::memory_order_acquire); }
    bool sinks_done() const { return _sinks_done.load(std::memory_order_acquire); }
    std::uint64_t sink_pending() const { return _sink_pending.load(std::memory_order_relaxed); }

    struct counters {
        std::atomic<std::uint64_t> ingested{ 0 }, decode_errors{ 0 }, protocol_errors{ 0 },
          filtered{ 0 }, ring_messages{ 0 }, sink_writes{ 0 }, sink_bytes{ 0 }, tokens_aligned{ 0 };
    };
    const counters& stats() const { return _stats; }
    const state_table* table_if_any(std::uint32_t node, std::uint32_t partition) const;

    // exec_context
    void deliver(std::uint32_t node, value_box&& v) override;
    void route(std::uint32_t node, std::uint32_t partition, value_box&& v) override;
    state_table& table(std::uint32_t node, std::uint32_t partition) override;
    std::string& sink_begin(std::uint32_t sink_index) override;
    void sink_end(std::uint32_t sink_index, std::size_t size_before) override;
    void count_filtered() override { bump(_stats.filtered); }
    void count_decode_error(std::uint32_t) override { bump(_stats.decode_errors); }

    // shard_context
    int epoll_fd() const override { return _wakeup.epoll_fd(); }
    std::uint32_t shard_index() const override { return _index; }
    bool can_admit() const override { return _admit; }
    bool stopping() const override;
    void ingest(std::uint32_t source_index, std::span<const std::byte> payload) override;
    void count_protocol_error(std::uint32_t) override { bump(_stats.protocol_errors); }
    std::uint64_t now_ns() const override { return _now_ns; }

private:
    struct command {
        std::unique_ptr<io_handler> handler; // adopt this connection,
        std::function<void(shard&)> task;    // or run this on the shard,
        std::uint64_t barrier = 0;           // or inject this barrier
    };
    // A per-destination queue of envelopes waiting to enter a ring: the batch being built and
    // whatever did not fit. What waits is bounded by the worker's in-flight budget, its storage
    // by twice that (detail::envelope_queue).
    using outbox = detail::envelope_queue;

    static void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) {
        // Single writer (this shard): a relaxed read-modify-write without a locked instruction.
        c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }

    void run(int cpu);
    std::size_t run_commands();
    std::size_t drain_inbound();
    std::size_t poll_handlers();
    std::size_t flush_outboxes();
    void on_token(std::uint64_t id);
    void update_admission();
    void update_quiet();
    void sleep_until_woken(bool short_wait);
    void close_metric_period();
    void use_metric_set(metric_set* set);
    bool inbound_pending() const;

    runtime& _rt;
    const std::uint32_t _index;
    const std::vector<std::unique_ptr<node>>& _nodes;
    std::vector<spsc_ring<envelope>*> _inbound;
    std::vector<spsc_ring<envelope>*> _outbound;
    std::vector<outbox> _outboxes;
    std::vector<std::unique_ptr<io_handler>> _handlers;
    std::vector<std::unique_ptr<sink_output>> _sinks;
    std::vector<std::string*> _sink_buffers; // [sink]: its append_buffer(), or nullptr
    std::vector<std::vector<std::unique_ptr<state_table>>> _tables; // [node][partition]
    std::unordered_map<std::uint64_t, std::uint32_t> _token_arrivals;
    moodycamel::ConcurrentQueue<command> _commands;
    std::string _scratch;
    std::int64_t _in_flight_delta = 0; // appended to outboxes minus taken from rings, unpublished
    std::uint64_t _now_ns = 0;
    // Metrics: the set being filled, its per-node histogram pointers, and the hand-off rings to
    // and from the metrics thread (this shard produces on _metrics_full, consumes _metrics_empty).
    const metric_catalog* _catalog = nullptr;
    std::vector<std::unique_ptr<metric_set>> _metric_store;
    metric_set* _metrics = nullptr;
    std::vector<histogram*> _stage_hist;
    std::vector<histogram*> _pipeline_hist;
    std::vector<std::uint64_t*> _ingest_counts;  // [source index]
    std::vector<std::uint16_t> _source_pipeline; // [source index]
    std::vector<const node*> _source_node_ptrs;  // [source index]
    std::uint64_t _period_ns = 0;
    std::uint64_t _next_period_mono_ns = ~std::uint64_t{ 0 };
    std::uint64_t _next_period_wall_ns = 0;
    spsc_ring<metric_set*> _metrics_full{ 8 };
    spsc_ring<metric_set*> _metrics_empty{ 8 };
    std::atomic<std::uint64_t> _dropped_periods{ 0 };
    bool _admit = true;
    bool _sinks_closing = false;
    detail::wakeup _wakeup;
    counters _stats;
    std::atomic<bool> _quiet{ false };
    std::atomic<bool> _sinks_done{ false };
    std::atomic<std::uint64_t> _sink_pending{ 0 };
    std::thread _thread;
};

} // namespace ringtail
