// The rounds that data_channel_bench and dpdk_channel_bench drive between two data-channel
// transports in one thread: 32 one-message frames from worker 0 to worker 1 within credit, then
// one poll of each side and the receiver's grant, as the exchange does; the receiver checks each
// frame's first byte, so that every frame counted arrived, in order.
#pragma once

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/transport.h"
#include "net/channel/datagram_transport.h"

namespace ringtail::perf {

struct channel_receiver final : transport_events {
    std::uint64_t messages = 0;
    std::uint64_t to_grant = 0;
    std::uint64_t wrong = 0;
    void on_messages(peer_id, std::span<const std::byte> body, std::uint32_t count) override {
        wrong += body.empty() || body[0] != static_cast<std::byte>(messages & 0xFF) ? 1 : 0;
        messages += count;
        to_grant += count;
    }
    void on_peer_lost(peer_id, const std::string& reason) override {
        throw std::runtime_error("peer lost: " + reason);
    }
};

struct channel_sender final : transport_events {
    void on_messages(peer_id, std::span<const std::byte>, std::uint32_t) override {}
    void on_peer_lost(peer_id, const std::string& reason) override {
        throw std::runtime_error("peer lost: " + reason);
    }
};

// Runs the benchmark's rounds from `a` (worker 0) to `b` (worker 1) with bodies of `body_bytes`,
// then polls both up to `drain_polls` times for what is still in flight. Sets the items (frames
// delivered) and the sender's retransmissions (above 0 only when the thread was held up for over
// an RTO, 2 ms: a busy machine); false, with the benchmark stopped by an error, when a frame was
// lost or came out of order.
inline bool run_channel_rounds(benchmark::State& state, net::datagram_transport& a,
                               net::datagram_transport& b, std::size_t body_bytes,
                               int drain_polls) {
    constexpr std::size_t frames_per_round = 32;
    channel_sender ea;
    channel_receiver eb;
    std::vector<std::byte> body(body_bytes);
    std::uint64_t sent = 0;
    for (auto _ : state) {
        for (std::size_t i = 0; i < frames_per_round && a.credit(1) > 0; ++i) {
            body[0] = static_cast<std::byte>(sent & 0xFF);
            a.send(1, body, 1);
            ++sent;
        }
        a.poll(ea);
        b.poll(eb);
        b.grant(0, static_cast<std::uint32_t>(eb.to_grant));
        eb.to_grant = 0;
    }
    for (int i = 0; i < drain_polls && eb.messages < sent; ++i) {
        a.poll(ea);
        b.poll(eb);
    }
    if (eb.messages != sent || eb.wrong != 0) {
        state.SkipWithError("frames lost or out of order");
        return false;
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(eb.messages));
    state.counters["retransmissions"] = static_cast<double>(a.counters().retransmissions);
    return true;
}

} // namespace ringtail::perf
