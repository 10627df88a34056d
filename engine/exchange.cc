// The exchange loop: shards' rings -> frames per peer within credit; frames -> shards' rings.
#include "engine/exchange.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <pthread.h>
#include <stdexcept>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "engine/clock.h"
#include "engine/detail/pin_thread.h"
#include "engine/log.h"
#include "engine/remote_codec.h"
#include "engine/runtime.h"
#include "engine/shard.h"

namespace ringtail {
namespace {
constexpr std::size_t ring_burst = 256;
} // namespace

exchange::exchange(runtime& rt, transport& t)
  : _rt(rt)
  , _transport(t) {
    if (int fd = _transport.wait_fd(); fd >= 0) {
        _wakeup.watch(fd);
    }
    const auto peers = _transport.peer_count();
    _frame.resize(peers);
    _frame_count.assign(peers, 0);
    _grants.assign(peers, 0);
    _lost.assign(peers, false);
    _oversize_logged.assign(_rt._app.nodes().size(), false);
    for (auto& f : _frame) {
        f.reserve(_transport.max_body_bytes());
    }
    _spill.reserve(_transport.max_body_bytes());
}

exchange::~exchange() {
    join();
}

void exchange::set_rings(std::vector<spsc_ring<envelope>*> from_shards,
                         std::vector<spsc_ring<envelope>*> to_shards) {
    _from_shards = std::move(from_shards);
    _to_shards = std::move(to_shards);
    _outbound.resize(_from_shards.size());
    _inbound.resize(_to_shards.size());
}

void exchange::start(int cpu) {
    _thread = std::thread([this, cpu] { run(cpu); });
}

void exchange::join() {
    if (_thread.joinable()) {
        _thread.join();
    }
}

void exchange::notify() {
    _wakeup.notify();
}

void exchange::run(int cpu) {
    if (cpu >= 0) {
        detail::pin_thread(cpu, "exchange");
    }
    ::pthread_setname_np(::pthread_self(), "rt-exchange");
    const bool busy = _rt._config.busy_poll;
    const std::uint64_t spin_ns = _rt._config.idle_spin_ns;
    std::uint64_t idle_since = clock::now_ns();
    // True from a sleep (a nap, on a poll-mode transport) until a turn finds work: an empty turn
    // then sleeps again at once instead of spinning for spin_ns first. Spinning again after every
    // empty nap held an idle DPDK worker's exchange at about 46 % of a core; napping on costs a
    // wake-up per nap, 18 % on a 2-vCPU VM, and latency stayed the same or improved
    // (scripts/perf/cluster.py --dpdk at 2 000 and 20 000 msgs/s).
    bool napping = false;
    while (!_rt._quit.load(std::memory_order_acquire)) {
        _now_ns = clock::now_ns();
        if (_rt._peers_lost.load(std::memory_order_acquire) != _lost_seen) {
            adopt_lost_peers();
        }
        std::size_t work = _transport.poll(*this);
        work += deliver_inbound();
        work += send_outbound();
        if (_in_flight_delta != 0) {
            _rt._in_flight.fetch_add(_in_flight_delta, std::memory_order_acq_rel);
            _in_flight_delta = 0;
        }
        update_quiet();
        if (work != 0) {
            idle_since = _now_ns;
            napping = false;
            continue;
        }
        if (busy || (!napping && _now_ns - idle_since < spin_ns)) {
            continue;
        }
        bool short_wait = false;
        for (const auto& q : _inbound) {
            short_wait = short_wait || !q.empty();
        }
        for (const auto& q : _outbound) {
            short_wait = short_wait || !q.empty();
        }
        if (_transport.wait_fd() < 0) {
            // A poll-mode transport (DPDK) has no fd to wake us: nap briefly instead, so that a
            // frame waits tens of microseconds, not a whole epoll timeout (milliseconds).
            std::this_thread::sleep_for(std::chrono::microseconds(20));
        } else {
            sleep_until_woken(short_wait);
        }
        napping = true;
    }
    update_quiet();
}

std::size_t exchange::send_outbound() {
    const partition_map& map = _rt._map;
    const auto& nodes = _rt._app.nodes();
    const std::size_t max_body = _transport.max_body_bytes();
    std::size_t work = 0;
    for (std::size_t s = 0; s < _from_shards.size(); ++s) {
        queue& q = _outbound[s];
        if (q.empty()) {
            q.clear();
            std::size_t n = _from_shards[s]->consume_burst_sc(
              ring_burst, [&](envelope&& e) { q.items.push_back(std::move(e)); });
            if (n == 0) {
                continue;
            }
            work += n;
        }
        // In order; a message for a peer without credit holds back the rest of this shard's queue
        // (per-peer order needs only that nothing overtakes it; credit comes back as that peer
        // drains, which it always does).
        while (!q.empty()) {
            envelope& e = q.items[q.head];
            if (e.kind != envelope_kind::data) {
                // Tokens stay within a worker until barriers cross workers (checkpoints).
                ++q.head;
                --_in_flight_delta;
                continue;
            }
            const peer_id peer = map.worker_of(map.owner(e.node, e.partition));
            if (_lost[peer] || !_transport.peer_alive(peer)) {
                ++q.head;
                --_in_flight_delta;
                bump(_stats.dropped_lost);
                continue;
            }
            if (_transport.credit(peer) <= _frame_count[peer]) {
                break;
            }
            // Encode in place, then measure: a value's encoded size is known only once encoded.
            std::string& body = _frame[peer];
            const std::size_t start = body.size();
            remote::append_message(body, *nodes[e.node], e, _now_ns);
            if (body.size() > max_body) {
                const std::size_t encoded = body.size() - start;
                if (encoded > max_body) {
                    // No frame can carry it; a worker must not fail on user data.
                    body.resize(start);
                    drop_oversize(peer, e, encoded, max_body);
                    e.value.reset();
                    ++q.head;
                    --_in_flight_delta;
                    continue;
                }
                // The frame is full: send what it held and start the next one with this message,
                // moved over rather than encoded again. The frame's messages were within credit,
                // so credit is left for this one.
                _spill.assign(body, start, encoded);
                body.resize(start);
                flush_frame(peer);
                if (_transport.credit(peer) == 0) {
                    break; // (not reached while transports honour the credit contract)
                }
                body.append(_spill);
            }
            ++_frame_count[peer];
            e.value.reset();
            ++q.head;
            --_in_flight_delta;
            ++work;
        }
    }
    for (peer_id p = 0; p < _frame.size(); ++p) {
        if (_frame_count[p] != 0) {
            flush_frame(p);
        }
    }
    return work;
}

void exchange::drop_oversize(peer_id peer, const envelope& e, std::size_t encoded_bytes,
                             std::size_t max_body) {
    bump(_stats.dropped_oversize);
    std::string& body = _frame[peer];
    if (body.capacity() > 2 * max_body) {
        // One huge value must not leave its peer's frame holding its size for good.
        std::string smaller;
        smaller.reserve(max_body);
        smaller.assign(body);
        body.swap(smaller);
    }
    if (!_oversize_logged[e.node]) {
        _oversize_logged[e.node] = true;
        log::error("exchange: a message for stage '{}' encodes to {} bytes, more than the {} "
                   "bytes one data-channel frame carries: dropped and counted in "
                   "remote_oversize (logged once per stage)",
                   _rt._app.nodes()[e.node]->name, encoded_bytes, max_body);
    }
}

void exchange::flush_frame(peer_id peer) {
    std::string& body = _frame[peer];
    _transport.send(peer, std::as_bytes(std::span(body.data(), body.size())), _frame_count[peer]);
    bump(_stats.sent, _frame_count[peer]);
    body.clear();
    _frame_count[peer] = 0;
}

void exchange::on_messages(peer_id peer, std::span<const std::byte> body, std::uint32_t count) {
    bump(_stats.received, count);
    if (_intake_closed.load(std::memory_order_relaxed)) {
        bump(_stats.dropped_leaving, count);
        _transport.grant(peer, count);
        return;
    }
    const partition_map& map = _rt._map;
    const std::uint32_t first = map.first_local();
    const std::uint32_t local = map.local_count();
    std::uint32_t misrouted = 0;
    auto c = remote::decode_messages(body, count, _rt._app.nodes(), _now_ns, [&](envelope&& e) {
        const std::uint32_t s = map.owner(e.node, e.partition) - first;
        if (s >= local) {
            ++misrouted; // not ours: the peer's partition map differs (a bug, never delivered)
            return;
        }
        _inbound[s].items.push_back(std::move(e));
        _inbound[s].from.push_back(peer);
        ++_in_flight_delta;
    });
    const std::uint32_t dropped = c.rejected + misrouted;
    if (dropped != 0) {
        bump(_stats.rejected, dropped);
        _transport.grant(peer, dropped);
        log::warn("exchange: {} message(s) from worker {} could not be delivered (bad stage, "
                  "partition or value)",
                  dropped, peer);
    }
}

std::size_t exchange::deliver_inbound() {
    std::size_t work = 0;
    for (std::size_t s = 0; s < _inbound.size(); ++s) {
        queue& q = _inbound[s];
        if (q.empty()) {
            continue;
        }
        const std::size_t n = _to_shards[s]->push_burst_sp(q.items.data() + q.head, q.waiting());
        if (n == 0) {
            continue;
        }
        for (std::size_t i = q.head; i < q.head + n; ++i) {
            ++_grants[q.from[i]];
        }
        q.pop(n);
        work += n;
        _rt._shards[s]->notify();
    }
    if (work != 0) {
        for (peer_id p = 0; p < _grants.size(); ++p) {
            if (_grants[p] != 0) {
                _transport.grant(p, _grants[p]);
                _grants[p] = 0;
            }
        }
    }
    return work;
}

void exchange::on_peer_lost(peer_id peer, const std::string& reason) {
    if (peer >= _lost.size() || _lost[peer]) {
        return;
    }
    forget_peer(peer);
    // The first lane to find the peer lost tells the others and the runtime's callback.
    if (!_rt._peer_lost[peer].exchange(true, std::memory_order_acq_rel)) {
        _rt._peers_lost.fetch_add(1, std::memory_order_acq_rel);
        if (_rt._on_peer_lost) {
            _rt._on_peer_lost(peer, reason);
        }
    }
}

void exchange::forget_peer(peer_id peer) {
    _lost[peer] = true;
    _frame[peer].clear();
    bump(_stats.dropped_lost, _frame_count[peer]);
    _frame_count[peer] = 0;
}

void exchange::adopt_lost_peers() {
    _lost_seen = _rt._peers_lost.load(std::memory_order_acquire);
    for (peer_id p = 0; p < _lost.size(); ++p) {
        if (!_lost[p] && _rt._peer_lost[p].load(std::memory_order_acquire)) {
            forget_peer(p);
        }
    }
}

bool exchange::rings_pending() const {
    for (auto* r : _from_shards) {
        if (!r->empty_sc()) {
            return true;
        }
    }
    return false;
}

void exchange::update_quiet() {
    bool quiet = _transport.pending_bytes() == 0 && !rings_pending();
    for (const auto& q : _outbound) {
        quiet = quiet && q.empty();
    }
    for (const auto& q : _inbound) {
        quiet = quiet && q.empty();
    }
    _quiet.store(quiet, std::memory_order_release);
}

void exchange::sleep_until_woken(bool short_wait) {
    // Not past the transport's next deadline: on a datagram link with an fd (UDP), nothing on
    // the fd announces a retransmission, an ack owed or a frame the fault layer held back.
    const std::uint64_t bound =
      detail::wakeup::sleep_bound_ns(short_wait, clock::now_ns(), _transport.next_deadline_ns());
    _wakeup.sleep(bound,
                  [this] { return rings_pending() || _rt._quit.load(std::memory_order_acquire); });
}

} // namespace ringtail
