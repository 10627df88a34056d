// The reliable data channel over a faulty datagram link: exactly once and in order per peer under
// loss, duplication, reordering and corruption, credit that bounds what is outstanding, a peer
// that stops answering reported unreachable, BYE, and two runtimes of one cluster exchanging keyed
// messages through it.
#include "net/datagram_transport.h"

#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "engine/big_endian.h"
#include "engine/runtime.h"
#include "net/data_codec.h"
#include "net/fault_injector.h"
#include "tests/unit/engine/engine_fakes.h"
#include "tests/unit/engine/sequence_app.h"

namespace ringtail::net {
namespace {

std::uint64_t test_seed() {
    if (const char* s = std::getenv("RINGTAIL_TEST_SEED")) {
        return std::strtoull(s, nullptr, 10);
    }
    return std::random_device{}();
}

// Datagrams between workers through one fault injector per direction. Thread-safe (each
// direction has its own lock), with a clock the test chooses.
class faulty_wire {
public:
    faulty_wire(std::uint32_t workers, const fault_config& faults,
                std::function<std::uint64_t()> clock)
      : _workers(workers)
      , _clock(std::move(clock)) {
        for (std::uint32_t i = 0; i < workers * workers; ++i) {
            fault_config c = faults;
            c.seed = faults.seed * 1000 + i;
            _dirs.push_back(std::make_unique<direction>(c));
        }
    }
    void send(peer_id from, peer_id to, std::span<const std::byte> d) {
        auto& dir = *_dirs[from * _workers + to];
        std::lock_guard lock(dir.mu);
        if (dir.cut) {
            return;
        }
        dir.faults.submit(std::string(reinterpret_cast<const char*>(d.data()), d.size()), _clock());
    }
    std::size_t receive(peer_id to,
                        const std::function<void(peer_id, std::span<const std::byte>)>& on) {
        std::size_t n = 0;
        for (peer_id from = 0; from < _workers; ++from) {
            auto& dir = *_dirs[from * _workers + to];
            std::vector<std::string> due;
            {
                std::lock_guard lock(dir.mu);
                dir.faults.deliver_due(_clock(), [&](std::string&& f) { due.push_back(f); });
            }
            for (auto& f : due) {
                on(from, std::as_bytes(std::span(f.data(), f.size())));
                ++n;
            }
        }
        return n;
    }
    // From now on nothing from `from` reaches `to`.
    void cut(peer_id from, peer_id to) {
        auto& dir = *_dirs[from * _workers + to];
        std::lock_guard lock(dir.mu);
        dir.cut = true;
    }
    std::uint64_t corrupted() {
        std::uint64_t n = 0;
        for (auto& d : _dirs) {
            std::lock_guard lock(d->mu);
            n += d->faults.corrupted();
        }
        return n;
    }

private:
    struct direction {
        explicit direction(const fault_config& c)
          : faults(c) {}
        std::mutex mu;
        fault_injector faults;
        bool cut = false;
    };
    std::uint32_t _workers;
    std::function<std::uint64_t()> _clock;
    std::vector<std::unique_ptr<direction>> _dirs;
};

class wire_link final : public datagram_link {
public:
    wire_link(faulty_wire& wire, peer_id self, std::uint32_t workers)
      : _wire(wire)
      , _self(self)
      , _workers(workers) {}
    std::uint32_t peer_count() const override { return _workers; }
    int wait_fd() const override { return -1; }
    std::size_t max_datagram_bytes() const override { return 1500; }
    void send(peer_id peer, std::span<const std::byte> d) override {
        EXPECT_LE(d.size(), max_datagram_bytes());
        _wire.send(_self, peer, d);
    }
    std::size_t receive(
      const std::function<void(peer_id, std::span<const std::byte>)>& on) override {
        return _wire.receive(_self, on);
    }

private:
    faulty_wire& _wire;
    peer_id _self;
    std::uint32_t _workers;
};

// What a transport reported: messages (u64 numbers here) in order, and losses.
struct recorder final : transport_events {
    std::vector<std::uint64_t> values;
    std::vector<std::pair<peer_id, std::string>> lost;
    std::uint64_t pending_grant = 0;
    void on_messages(peer_id, std::span<const std::byte> body, std::uint32_t count) override {
        ASSERT_EQ(body.size(), 8u * count);
        for (std::uint32_t i = 0; i < count; ++i) {
            values.push_back(be::read<std::uint64_t>(body.data() + 8 * i));
        }
        pending_grant += count;
    }
    void on_peer_lost(peer_id peer, const std::string& reason) override {
        lost.emplace_back(peer, reason);
    }
};

struct simulated_clock {
    std::uint64_t now = 1'000'000'000;
    std::function<std::uint64_t()> fn() {
        return [this] { return now; };
    }
};

TEST(datagram_transport, exactly_once_in_order_over_a_faulty_link) {
    const std::uint64_t seed = test_seed();
    SCOPED_TRACE("seed=" + std::to_string(seed) + " (replay with RINGTAIL_TEST_SEED)");
    simulated_clock clk;
    fault_config faults;
    faults.loss = 0.05;
    faults.duplicate = 0.01;
    faults.reorder = 0.10;
    faults.corrupt = 0.001;
    faults.delay_ns = 20'000;
    faults.jitter_ns = 20'000;
    faults.seed = seed;
    faulty_wire wire(2, faults, clk.fn());
    wire_link la(wire, 0, 2), lb(wire, 1, 2);
    datagram_transport_config cfg;
    cfg.initial_credit = 512;
    datagram_transport a(la, 0, cfg, clk.fn()), b(lb, 1, cfg, clk.fn());
    recorder ra, rb;
    std::mt19937_64 rng(seed);
    constexpr std::uint64_t total = 200'000;
    std::uint64_t next = 0;
    std::string body;
    std::size_t max_pending = 0;
    for (int step = 0; step < 5'000'000 && rb.values.size() < total; ++step) {
        // A sends what its credit allows, in frames of 1..100 messages.
        while (next < total && a.credit(1) > 0) {
            const std::uint32_t n = static_cast<std::uint32_t>(std::min<std::uint64_t>(
              { 1 + rng() % 100, a.credit(1), total - next, a.max_body_bytes() / 8 }));
            body.clear();
            for (std::uint32_t i = 0; i < n; ++i) {
                be::append<std::uint64_t>(body, next++);
            }
            a.send(1, std::as_bytes(std::span(body.data(), body.size())), n);
        }
        max_pending = std::max(max_pending, a.pending_bytes());
        a.poll(ra);
        b.poll(rb);
        // B's engine takes what arrived and grants it back.
        b.grant(0, static_cast<std::uint32_t>(rb.pending_grant));
        rb.pending_grant = 0;
        clk.now += 10'000;
    }
    ASSERT_EQ(rb.values.size(), total);
    for (std::uint64_t i = 0; i < total; ++i) {
        ASSERT_EQ(rb.values[i], i) << "at " << i;
    }
    EXPECT_TRUE(ra.lost.empty());
    EXPECT_TRUE(rb.lost.empty());
    EXPECT_GT(a.counters().retransmissions, 0u);
    EXPECT_GT(b.counters().duplicates + b.counters().out_of_order, 0u);
    EXPECT_GT(wire.corrupted(), 0u);
    EXPECT_GT(a.counters().corrupt_frames + b.counters().corrupt_frames, 0u);
    // Bounded: never more than the go-back-N window of frames unacknowledged.
    EXPECT_LE(max_pending, static_cast<std::size_t>(cfg.gbn.window_frames) * 1500);
}

TEST(datagram_transport, credit_bounds_what_a_slow_receiver_is_sent) {
    simulated_clock clk;
    faulty_wire wire(2, fault_config{}, clk.fn());
    wire_link la(wire, 0, 2), lb(wire, 1, 2);
    datagram_transport_config cfg;
    cfg.initial_credit = 100;
    datagram_transport a(la, 0, cfg, clk.fn()), b(lb, 1, cfg, clk.fn());
    recorder ra, rb;
    std::string body(8, '\0');
    std::uint64_t sent = 0;
    for (int step = 0; step < 1000; ++step) {
        while (a.credit(1) > 0) {
            be::write<std::uint64_t>(reinterpret_cast<std::byte*>(body.data()), sent++);
            a.send(1, std::as_bytes(std::span(body.data(), body.size())), 1);
        }
        a.poll(ra);
        b.poll(rb);
        clk.now += 100'000;
    }
    // Nothing granted: exactly the initial credit arrived, and A waits.
    EXPECT_EQ(sent, 100u);
    EXPECT_EQ(rb.values.size(), 100u);
    b.grant(0, 50);
    for (int step = 0; step < 100; ++step) {
        while (a.credit(1) > 0) {
            be::write<std::uint64_t>(reinterpret_cast<std::byte*>(body.data()), sent++);
            a.send(1, std::as_bytes(std::span(body.data(), body.size())), 1);
        }
        a.poll(ra);
        b.poll(rb);
        clk.now += 1'000'000;
    }
    EXPECT_EQ(sent, 150u);
    EXPECT_EQ(rb.values.size(), 150u);
}

TEST(datagram_transport, a_silent_peer_is_unreachable_and_memory_stays_bounded) {
    simulated_clock clk;
    faulty_wire wire(2, fault_config{}, clk.fn());
    wire.cut(1, 0); // B's ACKs never arrive
    wire_link la(wire, 0, 2), lb(wire, 1, 2);
    datagram_transport_config cfg;
    cfg.gbn.window_frames = 16;
    datagram_transport a(la, 0, cfg, clk.fn()), b(lb, 1, cfg, clk.fn());
    recorder ra, rb;
    std::string body(8, '\0');
    std::size_t max_pending = 0;
    for (int step = 0; step < 200'000 && ra.lost.empty(); ++step) {
        while (a.credit(1) > 0) {
            a.send(1, std::as_bytes(std::span(body.data(), body.size())), 1);
        }
        max_pending = std::max(max_pending, a.pending_bytes());
        a.poll(ra);
        b.poll(rb);
        clk.now += 100'000;
    }
    ASSERT_EQ(ra.lost.size(), 1u);
    EXPECT_EQ(ra.lost[0].first, 1u);
    EXPECT_EQ(ra.lost[0].second.rfind("unreachable", 0), 0u) << ra.lost[0].second;
    EXPECT_LE(max_pending, 16u * (data_frame_header_bytes + 8));
    EXPECT_EQ(a.pending_bytes(), 0u);
    EXPECT_EQ(a.credit(1), 0u);
    EXPECT_FALSE(a.peer_alive(1));
}

TEST(datagram_transport, bye_means_left_the_cluster) {
    simulated_clock clk;
    faulty_wire wire(2, fault_config{}, clk.fn());
    wire_link la(wire, 0, 2), lb(wire, 1, 2);
    datagram_transport a(la, 0, {}, clk.fn()), b(lb, 1, {}, clk.fn());
    recorder ra;
    b.say_goodbye();
    a.poll(ra);
    ASSERT_EQ(ra.lost.size(), 1u);
    EXPECT_EQ(ra.lost[0].second, "left the cluster");
}

// ---- two runtimes of one cluster over the faulty link -----------------------------------------

TEST(datagram_transport, runtimes_route_keys_exactly_once_over_a_faulty_link) {
    const std::uint64_t seed = test_seed();
    SCOPED_TRACE("seed=" + std::to_string(seed) + " (replay with RINGTAIL_TEST_SEED)");
    application app = testing::make_sequence_app();

    fault_config faults;
    faults.loss = 0.05;
    faults.duplicate = 0.01;
    faults.reorder = 0.10;
    faults.corrupt = 0.001;
    faults.seed = seed;
    faulty_wire wire(2, faults, [] { return clock::now_ns(); });
    std::vector<std::unique_ptr<wire_link>> links;
    std::vector<std::unique_ptr<datagram_transport>> transports;
    std::vector<std::unique_ptr<testing::collected>> sinks;
    std::vector<std::unique_ptr<runtime>> runtimes;
    datagram_transport_config tcfg;
    tcfg.initial_credit = 256;
    tcfg.gbn.rto_initial_ns = 1'000'000;
    for (peer_id w = 0; w < 2; ++w) {
        links.push_back(std::make_unique<wire_link>(wire, w, 2));
        transports.push_back(std::make_unique<datagram_transport>(*links.back(), w, tcfg));
        sinks.push_back(std::make_unique<testing::collected>());
        runtime_config cfg;
        cfg.shards = 1;
        cfg.cluster_shards = { 1, 1 };
        cfg.worker_index = w;
        cfg.data_transport = transports.back().get();
        cfg.metrics_period_ns = 0;
        auto* out = sinks.back().get();
        runtimes.push_back(std::make_unique<runtime>(app, cfg, [out](std::uint32_t, std::uint32_t) {
            return std::make_unique<testing::fake_sink>(*out);
        }));
        ASSERT_TRUE(runtimes.back()->start());
    }
    constexpr std::uint32_t keys = 50;
    constexpr std::uint64_t per_key = 400;
    std::vector<std::string> payloads;
    for (std::uint64_t v = 1; v <= per_key; ++v) {
        for (std::uint32_t k = 0; k < keys; ++k) {
            payloads.push_back(testing::encode_record(v, "k" + std::to_string(k)));
        }
    }
    runtimes[0]->adopt_on(0, std::make_unique<testing::fake_source>(payloads));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    std::size_t written = 0;
    while (written < payloads.size() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        written = 0;
        for (auto& rt : runtimes) {
            written += rt->counters().sink_writes;
        }
    }
    for (auto& rt : runtimes) {
        rt->stop_admitting();
    }
    for (auto& rt : runtimes) {
        rt->stop(std::chrono::seconds(5));
    }
    ASSERT_EQ(written, payloads.size());
    std::map<std::string, std::vector<std::uint64_t>> seen;
    std::map<std::string, std::uint32_t> owner;
    for (std::uint32_t w = 0; w < 2; ++w) {
        for (const auto& line : sinks[w]->writes) {
            auto a = line.find(' ');
            auto b = line.find(' ', a + 1);
            auto key = line.substr(0, a);
            seen[key].push_back(std::stoull(line.substr(a + 1, b - a - 1)));
            EXPECT_EQ(owner.emplace(key, w).first->second, w) << key;
        }
    }
    ASSERT_EQ(seen.size(), keys);
    for (auto& [key, values] : seen) {
        ASSERT_EQ(values.size(), per_key) << key;
        for (std::uint64_t i = 0; i < per_key; ++i) {
            ASSERT_EQ(values[i], i + 1) << key;
        }
    }
    EXPECT_GT(runtimes[0]->counters().remote_sent, 0u);
    EXPECT_EQ(runtimes[0]->counters().remote_dropped, 0u);
    EXPECT_GT(transports[0]->counters().retransmissions, 0u);
}

} // namespace
} // namespace ringtail::net
