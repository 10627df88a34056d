// The exchange: a worker's network I/O thread in a cluster (DESIGN.md §2, §4). It takes the
// messages shards route to partitions owned by other workers, packs them into frames per peer
// worker within that peer's credit, and hands received messages to the shards that own their
// partitions. Shards see it as one more ring peer: one SPSC ring from each shard to the exchange
// and one back. The transport (net/) does the bytes; the exchange owns the message encoding and
// the flow control that ties the transport's credit to the receiving rings.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "engine/detail/envelope_queue.h"
#include "engine/detail/wakeup.h"
#include "engine/envelope.h"
#include "engine/spsc_ring.h"
#include "engine/transport.h"

namespace ringtail {

class runtime;

class exchange final : private transport_events {
public:
    exchange(runtime& rt, transport& t);
    ~exchange() override;
    exchange(const exchange&) = delete;
    exchange& operator=(const exchange&) = delete;

    // Before start: the ring from each local shard, and the ring to each.
    void set_rings(std::vector<spsc_ring<envelope>*> from_shards,
                   std::vector<spsc_ring<envelope>*> to_shards);
    void start(int cpu); // cpu < 0: not pinned
    void join();         // after the runtime's quit flag is set

    // Called by a shard after it pushed into its ring to the exchange: wakes the exchange when it
    // sleeps.
    void notify();
    // From now on received messages are dropped and counted: this worker is leaving the cluster
    // and will not process them. Thread-safe.
    void close_intake() { _intake_closed.store(true, std::memory_order_release); }
    // Nothing held: every message taken from the shards was written out (or dropped for a lost
    // peer or for being too large), every received one entered a ring, and the transport has no
    // bytes queued.
    bool quiet() const { return _quiet.load(std::memory_order_acquire); }

    // Readable from any thread.
    struct counters {
        std::atomic<std::uint64_t> sent{ 0 };            // messages handed to the transport
        std::atomic<std::uint64_t> received{ 0 };        // messages that arrived in frames
        std::atomic<std::uint64_t> rejected{ 0 };        // arrived but could not be decoded
        std::atomic<std::uint64_t> dropped_lost{ 0 };    // for a peer that was lost
        std::atomic<std::uint64_t> dropped_leaving{ 0 }; // arrived after close_intake
        // Encoded larger than one frame body (transport::max_body_bytes): never sent.
        std::atomic<std::uint64_t> dropped_oversize{ 0 };
    };
    const counters& stats() const { return _stats; }

private:
    // Envelopes waiting: taken from a ring and not yet sent, or received and not yet in a ring
    // (`from`: the peer each came from, for its credit).
    using queue = detail::envelope_queue;

    void run(int cpu);
    std::size_t send_outbound();
    std::size_t deliver_inbound();
    void flush_frame(peer_id peer);
    // Counts (and the first time per stage logs) a message whose encoding alone exceeds a frame
    // body; `peer`'s frame has already been cut back to the messages before it.
    void drop_oversize(peer_id peer, const envelope& e, std::size_t encoded_bytes,
                       std::size_t max_body);
    void sleep_until_woken(bool short_wait);
    // Stops sending to `peer`: its frame is dropped and counted.
    void forget_peer(peer_id peer);
    // Forgets the peers another lane found lost.
    void adopt_lost_peers();
    bool rings_pending() const;
    void update_quiet();

    // transport_events
    void on_messages(peer_id peer, std::span<const std::byte> body, std::uint32_t count) override;
    void on_peer_lost(peer_id peer, const std::string& reason) override;

    static void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) {
        c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }

    runtime& _rt;
    transport& _transport;
    std::vector<spsc_ring<envelope>*> _from_shards;
    std::vector<spsc_ring<envelope>*> _to_shards;
    std::vector<queue> _outbound;    // [local shard]: taken from its ring, waiting for credit
    std::vector<queue> _inbound;     // [local shard]: received, waiting for room in its ring
    std::vector<std::string> _frame; // [peer]: the frame body being built
    std::string _spill;              // the message that overflowed a frame, while it is flushed
    std::vector<std::uint32_t> _frame_count; // [peer]: messages in it
    std::vector<std::uint32_t> _grants;      // [peer]: scratch for deliver_inbound
    std::vector<bool> _lost;                 // [peer]
    std::uint32_t _lost_seen = 0;            // runtime::_peers_lost when last adopted
    std::vector<bool> _oversize_logged;      // [node]: an oversize message was logged
    std::int64_t _in_flight_delta = 0;
    std::uint64_t _now_ns = 0;
    detail::wakeup _wakeup;
    counters _stats;
    std::atomic<bool> _intake_closed{ false };
    std::atomic<bool> _quiet{ true };
    std::thread _thread;
};

} // namespace ringtail
