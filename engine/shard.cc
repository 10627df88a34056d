// The shard poll loop: drain inbound rings in batches, poll connections, push outbound batches,
// sleep when idle (adaptive polling) until a ring, socket or command wakes it.
#include "engine/shard.h"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "engine/clock.h"
#include "engine/detail/pin_thread.h"
#include "engine/exchange.h"
#include "engine/log.h"
#include "engine/runtime.h"

namespace ringtail {
namespace {

constexpr std::size_t ring_burst = 64;

} // namespace

shard::shard(runtime& rt, std::uint32_t index)
  : _rt(rt)
  , _index(index)
  , _nodes(rt._app.nodes()) {
    _tables.resize(_nodes.size());
    for (const auto& n : _nodes) {
        if (n->kind == node_kind::stateful) {
            _tables[n->id].resize(n->partitions);
        }
    }
    _scratch.reserve(4096);
    _now_ns = clock::now_ns();
    for (std::uint32_t src : _rt._app.source_nodes()) {
        _source_pipeline.push_back(static_cast<std::uint16_t>(_nodes[src]->pipeline));
        _source_node_ptrs.push_back(_nodes[src].get());
    }
}

void shard::enable_metrics(const metric_catalog& catalog, std::uint64_t period_ns) {
    _catalog = &catalog;
    _period_ns = period_ns;
    // Three sets: one being filled, one with the metrics thread, one spare; when the metrics
    // thread lags so that none is free, the shard keeps filling its own set into the next period
    // and counts a late period.
    for (int i = 0; i < 3; ++i) {
        _metric_store.push_back(std::make_unique<metric_set>(catalog.size()));
    }
    _metrics_empty.push_sp(_metric_store[1].get());
    _metrics_empty.push_sp(_metric_store[2].get());
    use_metric_set(_metric_store[0].get());
    const std::uint64_t wall = clock::realtime_ns();
    _next_period_wall_ns = (wall / _period_ns + 1) * _period_ns;
    _next_period_mono_ns = clock::now_ns() + (_next_period_wall_ns - wall);
}

void shard::use_metric_set(metric_set* set) {
    _metrics = set;
    _stage_hist.assign(_nodes.size(), nullptr);
    for (const auto& n : _nodes) {
        auto i = _catalog->of_node(n->id);
        if (i != metric_catalog::npos) {
            _stage_hist[n->id] = &set->latency[i];
        }
    }
    _stage_latency = _stage_hist.data();
    _pipeline_hist.clear();
    for (std::size_t p = 0; p < _rt._app.pipeline_names().size(); ++p) {
        _pipeline_hist.push_back(
          &set->latency[_catalog->of_pipeline_latency(static_cast<std::uint32_t>(p))]);
    }
    _pipeline_latency = _pipeline_hist.data();
    _ingest_counts.clear();
    for (auto p : _source_pipeline) {
        _ingest_counts.push_back(&set->counts[_catalog->of_pipeline_ingestion(p)]);
    }
}

void shard::close_metric_period() {
    _metrics->period_end_ns = _next_period_wall_ns;
    metric_set* fresh = nullptr;
    if (_metrics_empty.pop_sc(fresh)) {
        // Cannot fail: the ring holds 8 and only 3 sets exist.
        [[maybe_unused]] bool pushed = _metrics_full.push_sp(std::move(_metrics));
        use_metric_set(fresh);
    } else {
        // The metrics thread still holds the other sets: this period's numbers stay in this set
        // and go with the next period's, late rather than lost (a metrics thread starved for a
        // few periods, under TSan beside busy tests, used to lose a shard's whole traffic).
        _dropped_periods.fetch_add(1, std::memory_order_relaxed);
    }
    _next_period_mono_ns += _period_ns;
    _next_period_wall_ns += _period_ns;
}

metric_set* shard::take_filled_metrics() {
    metric_set* set = nullptr;
    return _metrics_full.pop_sc(set) ? set : nullptr;
}

void shard::return_metrics(metric_set* set) {
    _metrics_empty.push_sp(std::move(set));
}

shard::~shard() {
    join();
    _handlers.clear();
    _sinks.clear();
}

void shard::set_rings(std::vector<spsc_ring<envelope>*> inbound,
                      std::vector<spsc_ring<envelope>*> outbound) {
    _inbound = std::move(inbound);
    _outbound = std::move(outbound);
    _outboxes.resize(_outbound.size());
    for (std::size_t i = 0; i < _outboxes.size(); ++i) {
        if (_outbound[i] != nullptr) {
            _outboxes[i].items.reserve(ring_burst * 4);
        }
    }
}

void shard::add_sink(std::unique_ptr<sink_output> sink) {
    _sink_buffers.push_back(sink->append_buffer());
    _sinks.push_back(std::move(sink));
}

void shard::start(int cpu) {
    _thread = std::thread([this, cpu] { run(cpu); });
}

void shard::join() {
    if (_thread.joinable()) {
        _thread.join();
    }
}

void shard::post_handler(std::unique_ptr<io_handler> h) {
    _commands.enqueue(command{ std::move(h), {}, 0 });
    wake();
}

void shard::post_barrier(std::uint64_t id) {
    _commands.enqueue(command{ nullptr, {}, id });
    wake();
}

void shard::post_task(std::function<void(shard&)> task) {
    _commands.enqueue(command{ nullptr, std::move(task), 0 });
    wake();
}

std::vector<std::string> shard::keys_of(std::uint32_t node) const {
    std::vector<std::string> keys;
    if (node >= _tables.size()) {
        return keys;
    }
    for (const auto& t : _tables[node]) {
        if (t) {
            auto k = t->keys();
            keys.insert(keys.end(), std::make_move_iterator(k.begin()),
                        std::make_move_iterator(k.end()));
        }
    }
    return keys;
}

void shard::notify() {
    _wakeup.notify();
}

void shard::wake() {
    _wakeup.wake();
}

bool shard::stopping() const {
    return _rt._stopping.load(std::memory_order_relaxed);
}

// ---- exec_context -----------------------------------------------------------------------------

void shard::deliver(std::uint32_t node, value_box&& v) {
    _nodes[node]->process(*this, std::move(v), 0);
}

void shard::route(std::uint32_t node, std::uint32_t partition, value_box&& v) {
    const partition_map& map = _rt._map;
    const std::uint32_t local = map.owner(node, partition) - map.first_local();
    if (local == _index) {
        _nodes[node]->process(*this, std::move(v), partition);
        return;
    }
    // Another worker's partition: to the exchange, the outbox after the local shards'.
    auto& box = _outboxes[local < map.local_count() ? local : map.local_count()];
    box.items.push_back(envelope{ node, partition, _current_ingest_ns, envelope_kind::data,
                                  _current_pipeline, std::move(v) });
    ++_in_flight_delta;
}

state_table& shard::table(std::uint32_t node, std::uint32_t partition) {
    auto& t = _tables[node][partition];
    if (!t) {
        t = _nodes[node]->make_table();
    }
    return *t;
}

const state_table* shard::table_if_any(std::uint32_t node, std::uint32_t partition) const {
    if (node >= _tables.size() || partition >= _tables[node].size()) {
        return nullptr;
    }
    return _tables[node][partition].get();
}

std::string& shard::sink_begin(std::uint32_t sink_index) {
    if (std::string* direct = _sink_buffers[sink_index]) {
        return *direct;
    }
    _scratch.clear();
    return _scratch;
}

void shard::sink_end(std::uint32_t sink_index, std::size_t size_before) {
    std::size_t bytes;
    if (_sink_buffers[sink_index] != nullptr) {
        bytes = _sink_buffers[sink_index]->size() - size_before;
    } else {
        bytes = _scratch.size() - size_before;
        _sinks[sink_index]->write(std::as_bytes(std::span(_scratch.data(), _scratch.size())));
    }
    bump(_stats.sink_writes);
    bump(_stats.sink_bytes, bytes);
}

// ---- shard_context ----------------------------------------------------------------------------

void shard::ingest(std::uint32_t source_index, std::span<const std::byte> payload) {
    _current_ingest_ns = _now_ns;
    _current_pipeline = _source_pipeline[source_index];
    if (_metrics != nullptr) {
        ++*_ingest_counts[source_index];
    }
    bump(_stats.ingested);
    _source_node_ptrs[source_index]->ingest(*this, payload);
}

// ---- the loop ---------------------------------------------------------------------------------

void shard::run(int cpu) {
    if (cpu >= 0) {
        detail::pin_thread(cpu, "shard " + std::to_string(_index));
    }
    std::string name = "rt-shard-" + std::to_string(_index);
    ::pthread_setname_np(::pthread_self(), name.c_str());
    const bool busy = _rt._config.busy_poll;
    const std::uint64_t spin_ns = _rt._config.idle_spin_ns;
    std::uint64_t idle_since = clock::now_ns();
    // True from a sleep until a turn finds work: an empty turn then sleeps again at once (as the
    // exchange does). A sleep that ended without work (its 1 or 5 ms bound) needs no spin after
    // it: a producer's notify() or a ready fd ends the next sleep as soon as work comes.
    bool slept = false;
    while (!_rt._quit.load(std::memory_order_acquire)) {
        _now_ns = clock::now_ns();
        _sink_clock_left = 0; // outputs of this iteration read the clock afresh (record_sink)
        if (_now_ns >= _next_period_mono_ns) {
            close_metric_period();
        }
        update_admission();
        std::size_t work = run_commands();
        work += drain_inbound();
        work += poll_handlers();
        work += flush_outboxes();
        if (_in_flight_delta != 0) {
            // Appended before taken-out is subtracted, in one update, so the budget never reads
            // zero while a message is between a ring and an outbox.
            _rt._in_flight.fetch_add(_in_flight_delta, std::memory_order_acq_rel);
            _in_flight_delta = 0;
        }
        if (_rt._stopping.load(std::memory_order_relaxed)) {
            update_quiet();
        }
        if (work != 0) {
            idle_since = _now_ns;
            slept = false;
            continue;
        }
        if (busy || (!slept && _now_ns - idle_since < spin_ns)) {
            continue;
        }
        bool short_wait = !_admit;
        for (const auto& box : _outboxes) {
            short_wait = short_wait || !box.empty();
        }
        for (const auto& h : _handlers) {
            short_wait = short_wait || h->needs_poll();
        }
        for (const auto& s : _sinks) {
            short_wait = short_wait || s->needs_poll();
        }
        sleep_until_woken(short_wait);
        slept = true;
    }
}

void shard::update_admission() {
    const auto& cfg = _rt._config;
    std::uint64_t pending = 0;
    for (const auto& s : _sinks) {
        pending += s->pending_bytes();
    }
    _sink_pending.store(pending, std::memory_order_relaxed);
    std::uint64_t total = 0;
    for (const auto& s : _rt._shards) {
        total += s->sink_pending();
    }
    _admit = !_rt._stopping.load(std::memory_order_relaxed) &&
             _rt._in_flight.load(std::memory_order_relaxed) < cfg.in_flight_budget &&
             total < cfg.sink_backlog_limit_bytes;
}

std::size_t shard::run_commands() {
    command cmds[16];
    std::size_t n = _commands.try_dequeue_bulk(cmds, 16);
    for (std::size_t i = 0; i < n; ++i) {
        if (cmds[i].handler) {
            _handlers.push_back(std::move(cmds[i].handler));
        } else if (cmds[i].task) {
            cmds[i].task(*this);
        } else {
            on_token(cmds[i].barrier);
            // Forward the token behind everything already queued for each peer shard (tokens do
            // not cross workers yet).
            for (std::size_t dst = 0; dst < _rt._shards.size(); ++dst) {
                if (_outbound[dst] != nullptr) {
                    _outboxes[dst].items.push_back(
                      envelope{ _index, 0, cmds[i].barrier, envelope_kind::barrier, 0, {} });
                    ++_in_flight_delta;
                }
            }
        }
    }
    return n;
}

void shard::on_token(std::uint64_t id) {
    auto& arrivals = _token_arrivals[id];
    if (++arrivals == _rt._config.shards) {
        _token_arrivals.erase(id);
        bump(_stats.tokens_aligned);
        if (_rt._on_token) {
            _rt._on_token(_index, id);
        }
    }
}

std::size_t shard::drain_inbound() {
    std::size_t total = 0;
    for (auto* ring : _inbound) {
        if (ring == nullptr) {
            continue;
        }
        std::size_t n = ring->consume_burst_sc(ring_burst, [this](envelope&& e) {
            if (e.kind == envelope_kind::data) {
                _current_ingest_ns = e.ingest_ns;
                _current_pipeline = e.pipeline;
                _nodes[e.node]->process(*this, std::move(e.value), e.partition);
            } else {
                on_token(e.ingest_ns);
            }
        });
        _in_flight_delta -= static_cast<std::int64_t>(n);
        total += n;
    }
    if (total != 0) {
        bump(_stats.ring_messages, total);
    }
    return total;
}

std::size_t shard::poll_handlers() {
    std::size_t work = 0;
    bool any_finished = false;
    for (auto& h : _handlers) {
        work += h->poll(*this);
        any_finished = any_finished || h->finished();
    }
    if (any_finished) {
        std::erase_if(_handlers, [](const auto& h) { return h->finished(); });
    }
    if (_rt._closing_sinks.load(std::memory_order_acquire) && !_sinks_closing) {
        _sinks_closing = true;
        for (auto& s : _sinks) {
            s->request_close();
        }
    }
    bool sinks_done = true;
    for (auto& s : _sinks) {
        if (!s->finished()) {
            work += s->poll(*this);
            sinks_done = sinks_done && s->finished();
        }
    }
    if (_sinks_closing && sinks_done) {
        _sinks_done.store(true, std::memory_order_release);
    }
    return work;
}

std::size_t shard::flush_outboxes() {
    std::size_t moved = 0;
    for (std::size_t dst = 0; dst < _outboxes.size(); ++dst) {
        auto& box = _outboxes[dst];
        if (box.empty()) {
            continue;
        }
        std::size_t n = _outbound[dst]->push_burst_sp(box.items.data() + box.head, box.waiting());
        box.pop(n);
        if (n != 0) {
            moved += n;
            if (dst < _rt._shards.size()) {
                _rt._shards[dst]->notify();
            } else {
                _rt.lane_of(_index).notify();
            }
        }
    }
    return moved;
}

bool shard::inbound_pending() const {
    for (auto* ring : _inbound) {
        if (ring != nullptr && !ring->empty_sc()) {
            return true;
        }
    }
    return _commands.size_approx() != 0;
}

void shard::sleep_until_woken(bool short_wait) {
    _wakeup.sleep(short_wait, [this] {
        return inbound_pending() || _rt._quit.load(std::memory_order_acquire);
    });
}

void shard::update_quiet() {
    bool quiet = _handlers.empty();
    for (const auto& box : _outboxes) {
        quiet = quiet && box.empty();
    }
    quiet = quiet && !inbound_pending();
    _quiet.store(quiet, std::memory_order_release);
}

} // namespace ringtail
