// The data channel's reliability layer alone: what datagram_transport spends per frame (the frame
// codec, CRC-32C both ways, go-back-N on both sides, acks and credit) between two transports in
// one thread, over an in-memory link whose buffers come from a free list as mbufs come from a
// mempool. No PMD, no shared memory, no second core: the part of the DPDK channel's cost that is
// Ringtail's own, measured without the run-to-run swings of two processes on a shared host
// (scripts/perf/dpdk_frames.py measures the whole channel).
//
// data_channel/<body bytes>: one message per frame, 32 frames sent and then one poll of each
// side per iteration, as the exchange does. A body of 1 byte makes the smallest frame (83 bytes
// on the wire with DPDK's Ethernet, IPv4 and UDP headers: 82 besides the body), 174 bytes a
// 256-byte frame, the sizes scripts/perf/dpdk_frames.py sends; 1400 bytes nearly a full
// 1500-byte MTU, as the engine's frames are when they pack many messages. Items are frames
// delivered in order; the receiver checks each one's first byte.
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/clock.h"
#include "net/channel/datagram_transport.h"
#include "perf/channel_rounds.h"

namespace {

using ringtail::peer_id;
using ringtail::net::datagram_link;
using ringtail::net::datagram_transport;

constexpr std::size_t datagram_bytes = 1472; // a 1500-byte MTU less the IPv4 and UDP headers

// Two ends of an in-memory wire. A datagram is a buffer from a free list: send_buffer() queues
// the buffer itself (the sender still holds it until acknowledged, as with an mbuf); send()
// copies into a fresh one that the wire frees once received.
class memory_wire {
public:
    struct datagram {
        std::byte* data;
        std::size_t size;
        bool owned; // a copy the wire frees after delivery
    };
    std::byte* take() {
        if (_free.empty()) {
            _storage.emplace_back(new std::byte[datagram_bytes]);
            return _storage.back().get();
        }
        std::byte* b = _free.back();
        _free.pop_back();
        return b;
    }
    void give_back(std::byte* b) { _free.push_back(b); }
    std::vector<datagram>& queue_to(peer_id peer) { return _queues[peer]; }

private:
    std::vector<std::unique_ptr<std::byte[]>> _storage;
    std::vector<std::byte*> _free;
    std::vector<datagram> _queues[2];
};

class memory_link final : public datagram_link {
public:
    memory_link(memory_wire& wire, peer_id self)
      : _wire(wire)
      , _self(self) {}
    std::uint32_t peer_count() const override { return 2; }
    int wait_fd() const override { return -1; }
    std::size_t max_datagram_bytes() const override { return datagram_bytes; }
    void send(peer_id peer, std::span<const std::byte> d) override {
        std::byte* b = _wire.take();
        std::memcpy(b, d.data(), d.size());
        _wire.queue_to(peer).push_back({ b, d.size(), true });
    }
    buffer allocate(peer_id, std::size_t bytes) override {
        return buffer{ this, _wire.take(), bytes };
    }
    void send_buffer(peer_id peer, const buffer& b) override {
        _wire.queue_to(peer).push_back({ b.data, b.size, false });
    }
    void release(buffer& b) override {
        _wire.give_back(b.data);
        b = buffer{};
    }
    std::size_t receive(
      const std::function<void(peer_id, std::span<const std::byte>)>& on) override {
        auto& q = _wire.queue_to(_self);
        const std::size_t n = q.size();
        for (const auto& d : q) {
            on(1 - _self, std::span<const std::byte>(d.data, d.size));
            if (d.owned) {
                _wire.give_back(d.data);
            }
        }
        q.clear();
        return n;
    }

private:
    memory_wire& _wire;
    peer_id _self;
};

void data_channel(benchmark::State& state) {
    const auto body_bytes = static_cast<std::size_t>(state.range(0));
    memory_wire wire;
    memory_link la(wire, 0), lb(wire, 1);
    datagram_transport a(la, 0), b(lb, 1);
    if (ringtail::perf::run_channel_rounds(state, a, b, body_bytes, 4)) {
        state.counters["bytes_per_frame"] =
          static_cast<double>(ringtail::net::data_frame_header_bytes + body_bytes +
                              ringtail::net::data_ack_trailer_bytes);
    }
}

BENCHMARK(data_channel)->Arg(1)->Arg(174)->Arg(1400);

// The TSC, as a worker reads it (clock_gettime before this), before main() runs anything.
[[maybe_unused]] const bool clock_calibrated = (ringtail::clock::calibrate(), true);

} // namespace

BENCHMARK_MAIN();
