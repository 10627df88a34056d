// The worker's engine: builds shards and rings, starts and stops them.
#include "engine/runtime.h"

#include <algorithm>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "engine/clock.h"
#include "engine/exchange.h"
#include "engine/log.h"
#include "engine/metrics_collector.h"
#include "engine/shard.h"

namespace ringtail {

runtime::runtime(const application& app, runtime_config config, sink_factory sinks)
  : _app(app)
  , _config(std::move(config))
  , _sink_factory(std::move(sinks)) {
    if (_config.shards == 0) {
        _config.shards = 1;
    }
    if (_config.cluster_shards.empty()) {
        _config.cluster_shards = { _config.shards };
        _config.worker_index = 0;
    }
    _config.cluster_shards.at(_config.worker_index) = _config.shards;
    _map.set_layout(_config.cluster_shards, _config.worker_index);
    for (const auto& n : _app.nodes()) {
        if (n->kind == node_kind::stateful) {
            _map.assign_round_robin(n->id, n->partitions);
        }
    }
}

runtime::~runtime() {
    if (_started && !_stopped) {
        stop(std::chrono::seconds(5));
    }
    _collector.reset(); // before the shards whose rings it reads
    _exchanges.clear();
}

void runtime::add_exporter(std::unique_ptr<metrics_exporter> exporter) {
    _pending_exporters.push_back(std::move(exporter));
}

status runtime::start() {
    if (_started) {
        return error{ errc::internal, "runtime started twice" };
    }
    auto validated = _app.validate();
    if (!validated) {
        return validated;
    }
    clock::calibrate();
    const std::uint32_t n = _config.shards;
    for (std::uint32_t i = 0; i < n; ++i) {
        _shards.push_back(std::make_unique<shard>(*this, i));
    }
    if (_config.metrics_period_ns != 0) {
        _catalog = std::make_unique<metric_catalog>(_app, _config.worker_name);
        std::vector<shard*> shards;
        for (auto& s : _shards) {
            s->enable_metrics(*_catalog, _config.metrics_period_ns);
            shards.push_back(s.get());
        }
        _collector = std::make_unique<metrics_collector>(
          *_catalog, std::move(shards), _config.metrics_period_ns, [this] { return counters(); });
        for (auto& e : _pending_exporters) {
            _collector->add_exporter(std::move(e));
        }
        _pending_exporters.clear();
    }
    const bool clustered = _map.workers() > 1;
    if (clustered) {
        const auto& lanes = _config.data_transports;
        if (lanes.empty() || std::find(lanes.begin(), lanes.end(), nullptr) != lanes.end()) {
            return error{ errc::internal, "a cluster worker started without a data channel" };
        }
        for (const transport* t : lanes) {
            if (t->peer_count() != lanes.front()->peer_count()) {
                return error{ errc::internal, "the data channel's lanes disagree on the workers" };
            }
        }
        if (auto r = check_routable(_app); !r) {
            return r;
        }
        const std::uint32_t peers = lanes.front()->peer_count();
        _peer_lost = std::make_unique<std::atomic<bool>[]>(peers);
        for (std::uint32_t p = 0; p < peers; ++p) {
            _peer_lost[p].store(false, std::memory_order_relaxed);
        }
        for (transport* t : lanes) {
            _exchanges.push_back(std::make_unique<exchange>(*this, *t));
        }
        for (std::uint32_t i = 0; i < n; ++i) {
            _to_exchange.push_back(std::make_unique<spsc_ring<envelope>>(_config.ring_capacity));
        }
        for (std::size_t l = 0; l < lanes.size(); ++l) {
            for (std::uint32_t i = 0; i < n; ++i) {
                _from_exchange.push_back(
                  std::make_unique<spsc_ring<envelope>>(_config.ring_capacity));
            }
        }
    }
    // One ring per ordered pair (from, to), from != to: each has one producer and one consumer.
    _rings.resize(static_cast<std::size_t>(n) * n);
    for (std::uint32_t from = 0; from < n; ++from) {
        for (std::uint32_t to = 0; to < n; ++to) {
            if (from != to) {
                _rings[from * n + to] =
                  std::make_unique<spsc_ring<envelope>>(_config.ring_capacity);
            }
        }
    }
    for (std::uint32_t i = 0; i < n; ++i) {
        std::vector<spsc_ring<envelope>*> inbound(n, nullptr), outbound(n, nullptr);
        for (std::uint32_t j = 0; j < n; ++j) {
            inbound[j] = _rings[j * n + i].get();
            outbound[j] = _rings[i * n + j].get();
        }
        if (clustered) { // outbound index n: this shard's lane; inbound n..: every lane
            for (std::size_t l = 0; l < _exchanges.size(); ++l) {
                inbound.push_back(_from_exchange[l * n + i].get());
            }
            outbound.push_back(_to_exchange[i].get());
        }
        _shards[i]->set_rings(std::move(inbound), std::move(outbound));
        for (std::uint32_t s = 0; s < _app.sink_names().size(); ++s) {
            auto sink = _sink_factory(s, i);
            if (!sink) {
                return error{ errc::internal, "no connection for sink '" + _app.sink_names()[s] +
                                                "' on shard " + std::to_string(i) };
            }
            _shards[i]->add_sink(std::move(sink));
        }
    }
    for (std::uint32_t i = 0; i < n; ++i) {
        int cpu =
          _config.cpus.empty() ? -1 : static_cast<int>(_config.cpus[i % _config.cpus.size()]);
        _shards[i]->start(cpu);
    }
    for (std::size_t l = 0; l < _exchanges.size(); ++l) {
        std::vector<spsc_ring<envelope>*> from, to;
        for (std::uint32_t i = 0; i < n; ++i) {
            if (i % _exchanges.size() == l) {
                from.push_back(_to_exchange[i].get());
            }
            to.push_back(_from_exchange[l * n + i].get());
        }
        _exchanges[l]->set_rings(std::move(from), std::move(to));
        _exchanges[l]->start(l < _config.exchange_cpus.size() ? _config.exchange_cpus[l] : -1);
    }
    if (_collector) {
        _collector->start(_config.metrics_cpu);
    }
    _started = true;
    return ok_status();
}

status runtime::check_routable(const application& app) {
    for (const auto& node : app.nodes()) {
        if (node->kind == node_kind::stateful && !node->input_crosses_workers()) {
            return error{ errc::internal,
                          "stage '" + node->name +
                            "': its input type has no ringtail::codec, so a key_by cannot route "
                            "it to another worker; specialise ringtail::codec<T> "
                            "(engine/codec.h) or run a single worker" };
        }
    }
    return ok_status();
}

void runtime::adopt(std::unique_ptr<io_handler> handler) {
    auto i = _next_shard.fetch_add(1, std::memory_order_relaxed) % _config.shards;
    adopt_on(i, std::move(handler));
}

void runtime::adopt_on(std::uint32_t shard_index, std::unique_ptr<io_handler> handler) {
    _shards.at(shard_index)->post_handler(std::move(handler));
}

void runtime::inject_barrier(std::uint64_t id) {
    for (auto& s : _shards) {
        s->post_barrier(id);
    }
}

void runtime::set_token_callback(token_callback cb) {
    _on_token = std::move(cb);
}

runtime::stop_report runtime::stop(std::chrono::milliseconds flush_timeout) {
    if (!_started || _stopped) {
        return _stop_report;
    }
    using clock = std::chrono::steady_clock;
    for (auto& x : _exchanges) {
        x->close_intake();
    }
    stop_admitting();
    // Drain: every shard quiet (no sources, empty outboxes and inbound rings), the exchange quiet
    // and nothing counted in flight, seen twice in a row so a message moving between shards
    // cannot slip through.
    auto drain_deadline = clock::now() + std::chrono::seconds(60);
    int quiet_rounds = 0;
    while (quiet_rounds < 2 && clock::now() < drain_deadline) {
        quiet_rounds = all_quiet() ? quiet_rounds + 1 : 0;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    _stop_report.drained = quiet_rounds >= 2;
    if (!_stop_report.drained) {
        log::error("stop: messages still in flight after 60 s; stopping anyway");
    }
    // Flush the sinks.
    _closing_sinks.store(true, std::memory_order_release);
    auto flush_deadline = clock::now() + flush_timeout;
    for (auto& s : _shards) {
        s->wake();
    }
    for (;;) {
        bool done = true;
        for (auto& s : _shards) {
            done = done && s->sinks_done();
        }
        if (done || clock::now() >= flush_deadline) {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    _quit.store(true, std::memory_order_release);
    for (auto& s : _shards) {
        s->wake();
    }
    for (auto& s : _shards) {
        s->join();
    }
    for (auto& x : _exchanges) {
        x->notify();
        x->join();
    }
    if (_collector) {
        _collector->stop(); // publishes the last, partial period
    }
    for (auto& s : _shards) {
        _stop_report.undelivered_bytes += s->sink_pending();
    }
    _stopped = true;
    return _stop_report;
}

void runtime::stop_admitting() {
    _stopping.store(true, std::memory_order_release);
    for (auto& s : _shards) {
        s->wake();
    }
}

bool runtime::all_quiet() const {
    bool quiet = _in_flight.load(std::memory_order_acquire) == 0;
    for (const auto& s : _shards) {
        quiet = quiet && s->quiet();
    }
    for (const auto& x : _exchanges) {
        quiet = quiet && x->quiet();
    }
    return quiet;
}

runtime::drain_state runtime::drain() const {
    drain_state d;
    d.quiet = _started && _stopping.load(std::memory_order_acquire) && all_quiet();
    for (const auto& x : _exchanges) {
        d.remote_sent += x->stats().sent.load(std::memory_order_relaxed);
        d.remote_received += x->stats().received.load(std::memory_order_relaxed);
    }
    return d;
}

worker_counters runtime::counters() const {
    worker_counters c;
    for (const auto& lane : _exchanges) {
        const auto& x = lane->stats();
        c.remote_sent += x.sent.load(std::memory_order_relaxed);
        c.remote_received += x.received.load(std::memory_order_relaxed);
        c.remote_dropped += x.rejected.load(std::memory_order_relaxed) +
                            x.dropped_lost.load(std::memory_order_relaxed) +
                            x.dropped_leaving.load(std::memory_order_relaxed);
        c.remote_oversize += x.dropped_oversize.load(std::memory_order_relaxed);
    }
    for (const auto& s : _shards) {
        const auto& st = s->stats();
        c.ingested += st.ingested.load(std::memory_order_relaxed);
        c.decode_errors += st.decode_errors.load(std::memory_order_relaxed);
        c.protocol_errors += st.protocol_errors.load(std::memory_order_relaxed);
        c.filtered += st.filtered.load(std::memory_order_relaxed);
        c.ring_messages += st.ring_messages.load(std::memory_order_relaxed);
        c.sink_writes += st.sink_writes.load(std::memory_order_relaxed);
        c.sink_bytes += st.sink_bytes.load(std::memory_order_relaxed);
        c.tokens_aligned += st.tokens_aligned.load(std::memory_order_relaxed);
    }
    return c;
}

const state_table* runtime::table(std::uint32_t shard_index, std::uint32_t node,
                                  std::uint32_t partition) const {
    if (shard_index >= _shards.size()) {
        return nullptr;
    }
    return _shards[shard_index]->table_if_any(node, partition);
}

std::optional<std::vector<runtime::stage_keys>> runtime::live_state_keys(
  std::chrono::milliseconds timeout) {
    std::vector<stage_keys> out;
    for (const auto& n : _app.nodes()) {
        if (n->kind == node_kind::stateful) {
            out.push_back(stage_keys{ n->id, n->name, {} });
        }
    }
    if (!_started || _stopped) {
        for (auto& s : out) {
            s.keys = state_keys(s.node);
        }
        return out;
    }
    // Shared with the shard tasks, which may outlive this call when it times out.
    struct gather {
        std::mutex mu;
        std::condition_variable cv;
        std::size_t remaining;
        std::vector<stage_keys> result;
    };
    auto g = std::make_shared<gather>();
    g->remaining = _shards.size();
    g->result = out;
    for (auto& s : _shards) {
        s->post_task([g](shard& sh) {
            std::vector<std::vector<std::string>> mine;
            for (const auto& st : g->result) {
                mine.push_back(sh.keys_of(st.node));
            }
            std::lock_guard lock(g->mu);
            for (std::size_t i = 0; i < mine.size(); ++i) {
                auto& keys = g->result[i].keys;
                keys.insert(keys.end(), std::make_move_iterator(mine[i].begin()),
                            std::make_move_iterator(mine[i].end()));
            }
            --g->remaining;
            g->cv.notify_all();
        });
    }
    std::unique_lock lock(g->mu);
    if (!g->cv.wait_for(lock, timeout, [&] { return g->remaining == 0; })) {
        return std::nullopt;
    }
    return std::move(g->result);
}

std::vector<std::string> runtime::state_keys(std::uint32_t node) const {
    std::vector<std::string> keys;
    const std::uint32_t partitions = _map.partitions(node);
    for (std::uint32_t p = 0; p < partitions; ++p) {
        const std::uint32_t local = _map.owner(node, p) - _map.first_local();
        if (local >= _map.local_count()) {
            continue; // another worker's partition
        }
        if (const auto* t = table(local, node, p)) {
            auto k = t->keys();
            keys.insert(keys.end(), k.begin(), k.end());
        }
    }
    return keys;
}

} // namespace ringtail
