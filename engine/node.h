// What the shard sees of a stage: the type-erased node the application builder produces (its
// implementations, one per verb, are in engine/detail/nodes.h) and the exec_context it runs in.
// App writers never see these; they see engine/application.h.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "engine/clock.h"
#include "engine/histogram.h"
#include "engine/value_box.h"

namespace ringtail {

inline constexpr std::uint32_t no_node = ~std::uint32_t{ 0 };
// Partitions per keyed stage: a power of two, far more than shards, so that growing, shrinking
// and recovery can move whole partitions (DESIGN.md §3).
inline constexpr std::uint32_t default_partition_count = 1024;

enum class node_kind : std::uint8_t { source, stateless, key_by, stateful, sink };
const char* to_string(node_kind k);

// Per-key state of one keyed stage within one partition. Implemented per state type in
// engine/detail/nodes.h; owned by the shard that owns the partition.
class state_table {
public:
    virtual ~state_table() = default;
    virtual std::size_t size() const = 0;
    virtual std::vector<std::string> keys() const = 0;
};

// What a stage may ask of the shard it runs on. Implemented by the shard; every call happens on
// that shard's thread.
class exec_context {
public:
    virtual ~exec_context() = default;
    // Runs `node` on this shard now (fusion: a direct call, no ring).
    virtual void deliver(std::uint32_t node, value_box&& v) = 0;
    // Sends `v` to the shard owning `partition` of keyed stage `node` (locally when owned here).
    virtual void route(std::uint32_t node, std::uint32_t partition, value_box&& v) = 0;
    // The state table of `node` for `partition`, which this shard owns.
    virtual state_table& table(std::uint32_t node, std::uint32_t partition) = 0;
    // Encoding for sink `sink_index`: sink_begin returns the buffer to append the encoded bytes
    // to (the sink connection's own buffer where it has one, else a scratch buffer); sink_end,
    // given the buffer's size before, hands them over and counts them.
    virtual std::string& sink_begin(std::uint32_t sink_index) = 0;
    virtual void sink_end(std::uint32_t sink_index, std::size_t size_before) = 0;
    virtual void count_filtered() = 0;
    virtual void count_decode_error(std::uint32_t source_index) = 0;

    // Metrics. The histogram that times `node`'s function this period, or nullptr when the node
    // is not timed or metrics are off.
    histogram* stage_histogram(std::uint32_t node) const {
        return _stage_latency == nullptr ? nullptr : _stage_latency[node];
    }
    // Records the current message's start-to-end latency at a sink (inline: once per output).
    // Reading the clock costs more than the rest of a passthrough message on some hosts (rdtsc
    // under a hypervisor), so a reading serves up to sink_clock_reuse outputs in a row; the
    // shard forces a fresh one at the start of every loop iteration. A latency is then short by
    // at most the time those few outputs took (well under a microsecond).
    void record_sink() {
        if (_pipeline_latency == nullptr) {
            return;
        }
        if (_sink_clock_left == 0) {
            _sink_clock_ns = clock::now_ns();
            _sink_clock_left = sink_clock_reuse;
        }
        --_sink_clock_left;
        _pipeline_latency[_current_pipeline]->record(
          _sink_clock_ns > _current_ingest_ns ? _sink_clock_ns - _current_ingest_ns : 0);
    }
    static constexpr std::uint32_t sink_clock_reuse = 16;
    // Time spent downstream of a 1→N stage's pushes, subtracted from that stage's own time.
    std::uint64_t nested_ns = 0;

protected:
    histogram* const* _stage_latency = nullptr;    // [node], swapped by the shard every period
    histogram* const* _pipeline_latency = nullptr; // [pipeline], likewise
    std::uint64_t _current_ingest_ns = 0;          // when the current message's source admitted it
    std::uint16_t _current_pipeline = 0;           // the pipeline whose source admitted it
    std::uint64_t _sink_clock_ns = 0;   // the clock reading outputs share (see record_sink)
    std::uint32_t _sink_clock_left = 0; // outputs that may still use it
};

// Runs a stage's function f and records its duration (less time spent downstream of its pushes)
// in the stage's computation histogram; two clock reads when metrics are on, none when off.
template<typename F>
decltype(auto) timed_call(exec_context& ctx, std::uint32_t node, F&& f) {
    histogram* h = ctx.stage_histogram(node);
    if (h == nullptr) {
        return f();
    }
    const std::uint64_t saved = ctx.nested_ns;
    ctx.nested_ns = 0;
    const std::uint64_t t0 = clock::now_ns();
    auto finish = [&] {
        const std::uint64_t total = clock::now_ns() - t0;
        h->record(total > ctx.nested_ns ? total - ctx.nested_ns : 0);
        ctx.nested_ns = saved;
    };
    if constexpr (std::is_void_v<decltype(f())>) {
        f();
        finish();
    } else {
        auto r = f();
        finish();
        return r;
    }
}

class node {
public:
    virtual ~node() = default;
    // Runs the stage on one message. `partition` is meaningful for stateful stages only.
    virtual void process(exec_context& ctx, value_box&& v, std::uint32_t partition) const = 0;
    // Sources only: decodes a payload and runs the pipeline on it.
    virtual void ingest(exec_context&, std::span<const std::byte>) const {}
    // Stateful stages only: a fresh, empty table for one partition.
    virtual std::unique_ptr<state_table> make_table() const { return nullptr; }
    // Stateful stages only: whether the stage's input type has a codec (engine/codec.h), so that
    // a key_by may route it to another worker; and the input to and from bytes.
    virtual bool input_crosses_workers() const { return false; }
    virtual void encode_input(const value_box&, std::string&) const {}
    virtual bool decode_input(std::span<const std::byte>, value_box&) const { return false; }
    // The name of the stage's input type for error messages ("" when unknown).
    virtual std::string input_type_name() const { return {}; }

    std::uint32_t id = no_node;
    node_kind kind = node_kind::stateless;
    std::string name;
    std::uint32_t pipeline = 0;          // index into application::pipelines()
    std::vector<std::uint32_t> next;     // successors; more than one only for to_sinks
    std::uint32_t partitions = 0;        // stateful stages: partition count
    std::uint32_t index = 0;             // sources: source index; sinks: sink index
    bool copyable_output = true;         // whether the output may be fanned out
    std::vector<std::uint32_t> previous; // predecessors (merge has two)

    // Hands a stage's output to its successors (one: moved; several: copied then moved).
    void emit(exec_context& ctx, value_box&& v) const {
        const std::size_t n = next.size();
        for (std::size_t i = 0; i + 1 < n; ++i) {
            ctx.deliver(next[i], v.clone());
        }
        ctx.deliver(next[n - 1], std::move(v));
    }
};

} // namespace ringtail
