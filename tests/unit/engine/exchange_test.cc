// Workers of one cluster in one process: runtimes joined by an in-memory transport, so that
// routing across workers, the exchange's credit flow control, per-key order and the loss of a
// peer are tested without sockets.
#include "engine/exchange.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "engine/big_endian.h"
#include "engine/clock.h"
#include "engine/detail/wakeup.h"
#include "engine/fd.h"
#include "engine/partition.h"
#include "engine/remote_codec.h"
#include "engine/runtime.h"
#include "tests/unit/engine/engine_fakes.h"
#include "tests/unit/engine/sequence_app.h"

namespace ringtail {
namespace {

using testing::collected;
using testing::fake_sink;
using testing::fake_source;

// The wire between in-memory transports: one queue per receiving worker.
struct memory_wire {
    struct frame {
        peer_id from;
        bool credit;
        std::uint32_t count;
        std::string body;
    };
    struct inbox {
        std::mutex mu;
        std::deque<frame> frames;
        unique_fd event_fd{ ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC) };
        bool closed = false;
    };
    // One inbox per worker and lane: lane l of one worker sends to lane l of another.
    explicit memory_wire(std::uint32_t workers, std::uint32_t lanes = 1)
      : workers(workers)
      , lanes(lanes) {
        for (std::uint32_t i = 0; i < workers * lanes; ++i) {
            inboxes.push_back(std::make_unique<inbox>());
        }
    }
    inbox& of(peer_id worker, std::uint32_t lane) { return *inboxes[worker * lanes + lane]; }
    void post(peer_id to, frame f, std::uint32_t lane = 0) {
        auto& in = of(to, lane);
        std::lock_guard lock(in.mu);
        in.frames.push_back(std::move(f));
        std::uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(in.event_fd.get(), &one, sizeof one);
    }
    std::uint32_t workers;
    std::uint32_t lanes;
    std::vector<std::unique_ptr<inbox>> inboxes; // [worker * lanes + lane]
};

class memory_transport final : public transport {
public:
    // poll_mode: no fd says that frames arrived, as with a poll-mode driver (DPDK), so the
    // exchange must poll.
    memory_transport(memory_wire& wire, peer_id self, std::uint32_t initial_credit,
                     std::size_t max_body, std::uint32_t lane = 0, bool poll_mode = false)
      : _wire(wire)
      , _self(self)
      , _lane(lane)
      , _poll_mode(poll_mode)
      , _max_body(max_body)
      , _credit(wire.workers, initial_credit)
      , _alive(wire.workers, true) {}
    std::uint32_t peer_count() const override { return _wire.workers; }
    int wait_fd() const override { return _poll_mode ? -1 : _wire.of(_self, _lane).event_fd.get(); }
    std::uint64_t next_deadline_ns() const override { return _next_deadline_ns; }
    std::size_t poll(transport_events& events) override {
        polls.fetch_add(1, std::memory_order_relaxed);
        if (deadline_period_ns != 0) {
            _next_deadline_ns = clock::now_ns() + deadline_period_ns;
        }
        auto& in = _wire.of(_self, _lane);
        std::deque<memory_wire::frame> frames;
        {
            std::lock_guard lock(in.mu);
            frames.swap(in.frames);
            std::uint64_t v;
            [[maybe_unused]] auto n = ::read(in.event_fd.get(), &v, sizeof v);
        }
        for (auto& f : frames) {
            if (f.credit) {
                _credit[f.from] += f.count;
            } else if (f.count == ~std::uint32_t{ 0 }) {
                if (_alive[f.from]) {
                    _alive[f.from] = false;
                    events.on_peer_lost(f.from, "connection closed");
                }
            } else if (_alive[f.from]) {
                events.on_messages(f.from, std::as_bytes(std::span(f.body.data(), f.body.size())),
                                   f.count);
            }
        }
        return frames.size();
    }
    std::uint32_t credit(peer_id peer) const override { return _alive[peer] ? _credit[peer] : 0; }
    void send(peer_id peer, std::span<const std::byte> body, std::uint32_t count) override {
        EXPECT_LE(count, _credit[peer]);
        EXPECT_LE(body.size(), max_body_bytes()) << "a frame body over the transport's limit";
        _credit[peer] -= count;
        max_frame_count = std::max(max_frame_count, count);
        max_body_sent = std::max(max_body_sent, body.size());
        messages_sent += count;
        _wire.post(peer,
                   { _self, false, count,
                     std::string(reinterpret_cast<const char*>(body.data()), body.size()) },
                   _lane);
    }
    std::size_t max_body_bytes() const override { return _max_body; }
    void grant(peer_id peer, std::uint32_t count) override {
        _wire.post(peer, { _self, true, count, {} }, _lane);
    }
    std::size_t pending_bytes() const override { return 0; }
    bool peer_alive(peer_id peer) const override { return _alive[peer]; }

    // Written on the owning worker's exchange thread; read after the runtimes stopped.
    std::uint32_t max_frame_count = 0;
    std::size_t max_body_sent = 0;
    std::uint64_t messages_sent = 0;
    std::atomic<std::uint64_t> polls{ 0 }; // calls of poll(), read from any thread
    // Set before start: every poll() asks for the next this long after it (as a retransmission
    // timer or an ack owed does on a datagram link); 0 for no deadline.
    std::uint64_t deadline_period_ns = 0;

private:
    std::uint64_t _next_deadline_ns = no_deadline;
    memory_wire& _wire;
    peer_id _self;
    std::uint32_t _lane;
    bool _poll_mode;
    std::size_t _max_body;
    std::vector<std::uint32_t> _credit;
    std::vector<bool> _alive;
};

using testing::encode_record;
using testing::last_value;
using testing::record;

application make_sequence() {
    return testing::make_sequence_app();
}

// A cluster of runtimes in this process; worker w's shard s writes to sinks[w]. Worker w's lane l
// is transports[w * lanes + l].
struct cluster {
    cluster(const application& app, std::vector<std::uint32_t> shards, std::uint32_t credit,
            std::size_t max_body = 4096, std::uint32_t lanes = 1, bool poll_mode = false)
      : wire(static_cast<std::uint32_t>(shards.size()), lanes) {
        for (std::uint32_t w = 0; w < shards.size(); ++w) {
            sinks.push_back(std::make_unique<collected>());
            runtime_config cfg;
            for (std::uint32_t l = 0; l < lanes; ++l) {
                transports.push_back(
                  std::make_unique<memory_transport>(wire, w, credit, max_body, l, poll_mode));
                cfg.data_transports.push_back(transports.back().get());
            }
            cfg.shards = shards[w];
            cfg.cluster_shards = shards;
            cfg.worker_index = w;
            cfg.metrics_period_ns = 0;
            cfg.in_flight_budget = 1024;
            auto* out = sinks.back().get();
            runtimes.push_back(
              std::make_unique<runtime>(app, cfg, [out](std::uint32_t, std::uint32_t) {
                  return std::make_unique<fake_sink>(*out);
              }));
            runtimes.back()->set_peer_lost_callback([this, w](peer_id p, const std::string& why) {
                std::lock_guard lock(mu);
                lost.push_back({ w, p, why });
            });
        }
    }
    void start() {
        for (auto& rt : runtimes) {
            ASSERT_TRUE(rt->start());
        }
    }
    // The cluster-wide clean stop: everyone stops admitting; once every worker is quiet and the
    // messages sent equal those received (nothing on the wire), everyone stops.
    void drain_and_stop(std::chrono::seconds timeout = std::chrono::seconds(30)) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        bool sources_done = false;
        while (!sources_done && std::chrono::steady_clock::now() < deadline) {
            sources_done = true;
            for (auto& rt : runtimes) {
                sources_done =
                  sources_done && rt->counters().ingested == ingest_expected[&rt - &runtimes[0]];
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        for (auto& rt : runtimes) {
            rt->stop_admitting();
        }
        int rounds = 0;
        while (rounds < 2 && std::chrono::steady_clock::now() < deadline) {
            bool quiet = true;
            std::uint64_t sent = 0, received = 0;
            for (auto& rt : runtimes) {
                auto d = rt->drain();
                quiet = quiet && d.quiet;
                sent += d.remote_sent;
                received += d.remote_received;
            }
            rounds = quiet && sent == received ? rounds + 1 : 0;
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        EXPECT_EQ(rounds, 2) << "the cluster did not drain";
        for (auto& rt : runtimes) {
            auto report = rt->stop(std::chrono::seconds(5));
            EXPECT_TRUE(report.drained);
        }
    }
    memory_wire wire;
    std::vector<std::unique_ptr<collected>> sinks;
    std::vector<std::unique_ptr<memory_transport>> transports;
    std::vector<std::unique_ptr<runtime>> runtimes;
    std::vector<std::uint64_t> ingest_expected = std::vector<std::uint64_t>(8, 0);
    std::mutex mu;
    struct loss {
        std::uint32_t at;
        peer_id peer;
        std::string reason;
    };
    std::vector<loss> lost;
};

// Every key's values must arrive in the order one source sent them, each exactly once, and every
// key's state must live on exactly one worker.
void check_sequence(cluster& c, std::uint32_t keys, std::uint64_t per_key) {
    std::map<std::string, std::vector<std::uint64_t>> seen;
    std::map<std::string, std::uint32_t> worker_of_key;
    for (std::uint32_t w = 0; w < c.sinks.size(); ++w) {
        for (const auto& write : c.sinks[w]->writes) {
            auto a = write.find(' ');
            auto b = write.find(' ', a + 1);
            std::string key = write.substr(0, a);
            std::uint64_t value = std::stoull(write.substr(a + 1, b - a - 1));
            std::uint64_t last = std::stoull(write.substr(b + 1));
            auto& values = seen[key];
            EXPECT_EQ(last, values.empty() ? 0 : values.back()) << key;
            values.push_back(value);
            auto [it, fresh] = worker_of_key.emplace(key, w);
            EXPECT_EQ(it->second, w) << "key " << key << " processed on two workers";
        }
    }
    ASSERT_EQ(seen.size(), keys);
    for (auto& [key, values] : seen) {
        ASSERT_EQ(values.size(), per_key) << key;
        for (std::uint64_t i = 0; i < per_key; ++i) {
            ASSERT_EQ(values[i], i + 1) << key;
        }
    }
}

TEST(RuntimeCluster, KeysRouteAcrossWorkersInOrder) {
    for (auto shards : std::vector<std::vector<std::uint32_t>>{ { 1, 1 }, { 2, 1 }, { 1, 1, 2 } }) {
        auto app = make_sequence();
        cluster c(app, shards, 16384);
        c.start();
        // Each key is fed by exactly one worker's source, so its values must stay in order; the
        // keys land on every worker.
        constexpr std::uint32_t keys = 60;
        constexpr std::uint64_t per_key = 300;
        std::vector<std::vector<std::string>> payloads(shards.size());
        for (std::uint64_t v = 1; v <= per_key; ++v) {
            for (std::uint32_t k = 0; k < keys; ++k) {
                payloads[k % shards.size()].push_back(encode_record(v, "k" + std::to_string(k)));
            }
        }
        for (std::uint32_t w = 0; w < shards.size(); ++w) {
            c.ingest_expected[w] = payloads[w].size();
            c.runtimes[w]->adopt_on(0, std::make_unique<fake_source>(payloads[w]));
        }
        c.drain_and_stop();
        check_sequence(c, keys, per_key);
        std::uint64_t remote = 0;
        for (auto& rt : c.runtimes) {
            remote += rt->counters().remote_received;
            EXPECT_EQ(rt->counters().remote_dropped, 0u);
            EXPECT_GT(rt->counters().sink_writes, 0u) << "every worker owns some keys";
        }
        EXPECT_GT(remote, 0u);
    }
}

// Over a poll-mode transport the exchange naps between polls when idle; a shard's message and a
// frame from the peer are both found by the poll after the nap: nothing is slept through.
TEST(RuntimeCluster, KeysRouteAcrossWorkersOverAPollModeTransport) {
    auto app = make_sequence();
    cluster c(app, { 1, 1 }, 16384, 4096, 1, /*poll_mode=*/true);
    c.start();
    constexpr std::uint32_t keys = 40;
    constexpr std::uint64_t per_key = 200;
    std::vector<std::vector<std::string>> payloads(2);
    for (std::uint64_t v = 1; v <= per_key; ++v) {
        for (std::uint32_t k = 0; k < keys; ++k) {
            payloads[k % 2].push_back(encode_record(v, "k" + std::to_string(k)));
        }
    }
    for (std::uint32_t w = 0; w < 2; ++w) {
        c.ingest_expected[w] = payloads[w].size();
        c.runtimes[w]->adopt_on(0, std::make_unique<fake_source>(payloads[w]));
    }
    c.drain_and_stop();
    check_sequence(c, keys, per_key);
    EXPECT_GT(c.runtimes[0]->counters().remote_received + c.runtimes[1]->counters().remote_received,
              0u);
}

// An idle exchange on a poll-mode transport (adaptive mode) spins for a moment only, then naps
// between polls, however long it stays idle: at most one poll per nap (20 µs or more), not the
// thousands a spinning loop makes. Before, it spun again after every empty nap, which held an idle
// DPDK worker at about half a core.
TEST(RuntimeCluster, AnIdleExchangeOnAPollModeTransportNapsInsteadOfSpinning) {
    auto app = make_sequence();
    cluster c(app, { 1, 1 }, 16384, 4096, 1, /*poll_mode=*/true);
    c.start();
    std::this_thread::sleep_for(std::chrono::milliseconds(100)); // past the first spin
    std::vector<std::uint64_t> before;
    for (auto& t : c.transports) {
        before.push_back(t->polls.load());
    }
    constexpr auto idle = std::chrono::milliseconds(200);
    const auto start = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(idle);
    const auto elapsed = std::chrono::steady_clock::now() - start;
    // One poll per nap of 20 µs or more, and a margin. A loop that spins makes several polls a
    // microsecond.
    const auto most = static_cast<std::uint64_t>(elapsed / std::chrono::microseconds(20)) + 2000;
    for (std::size_t i = 0; i < c.transports.size(); ++i) {
        const std::uint64_t polls = c.transports[i]->polls.load() - before[i];
        EXPECT_GT(polls, 0u) << "worker " << i << "'s exchange stopped polling";
        EXPECT_LE(polls, most) << "worker " << i << "'s exchange spins while idle";
    }
    c.drain_and_stop();
}

// A poll loop sleeps 1 ms (work waiting elsewhere) or 5 ms at most, and never past a deadline of
// its own; not at all once that has passed.
TEST(Wakeup, TheSleepEndsByTheDeadlineWhenItComesFirst) {
    using detail::wakeup;
    constexpr std::uint64_t now = 7'000'000'000;
    EXPECT_EQ(wakeup::sleep_bound_ns(false, now, transport::no_deadline), 5'000'000u);
    EXPECT_EQ(wakeup::sleep_bound_ns(true, now, transport::no_deadline), 1'000'000u);
    EXPECT_EQ(wakeup::sleep_bound_ns(false, now, now + 50'000), 50'000u);
    EXPECT_EQ(wakeup::sleep_bound_ns(true, now, now + 999'999), 999'999u);
    EXPECT_EQ(wakeup::sleep_bound_ns(true, now, now + 3'000'000), 1'000'000u);
    EXPECT_EQ(wakeup::sleep_bound_ns(false, now, now + 5'000'001), 5'000'000u);
    EXPECT_EQ(wakeup::sleep_bound_ns(false, now, now), 0u);
    EXPECT_EQ(wakeup::sleep_bound_ns(false, now, now - 1), 0u);
}

// An idle exchange sleeps on its transport's fd no longer than the transport's next deadline: on a
// datagram link over UDP nothing on the fd announces a retransmission or an ack owed in 50 µs.
// With a deadline 100 µs after every poll, it polls hundreds of times in 200 ms (about 2 000 when
// nothing else runs), where its 5 ms sleep alone allows about 40.
TEST(RuntimeCluster, AnIdleExchangeWakesForItsTransportsDeadline) {
    auto app = make_sequence();
    cluster c(app, { 1, 1 }, 16384);
    for (auto& t : c.transports) {
        t->deadline_period_ns = 100'000;
    }
    c.start();
    std::this_thread::sleep_for(std::chrono::milliseconds(100)); // past the first spin
    std::vector<std::uint64_t> before;
    for (auto& t : c.transports) {
        before.push_back(t->polls.load());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    for (std::size_t i = 0; i < c.transports.size(); ++i) {
        EXPECT_GE(c.transports[i]->polls.load() - before[i], 200u)
          << "worker " << i << "'s exchange slept past its transport's deadlines";
    }
    c.drain_and_stop();
}

TEST(RuntimeCluster, SmallCreditWindowStillDeliversEverything) {
    auto app = make_sequence();
    cluster c(app, { 1, 1 }, 4);
    c.start();
    std::vector<std::string> payloads;
    for (std::uint64_t v = 1; v <= 2000; ++v) {
        for (std::uint32_t k = 0; k < 10; ++k) {
            payloads.push_back(encode_record(v, "key" + std::to_string(k)));
        }
    }
    c.ingest_expected[0] = payloads.size();
    c.runtimes[0]->adopt_on(0, std::make_unique<fake_source>(payloads));
    c.drain_and_stop();
    check_sequence(c, 10, 2000);
    EXPECT_LE(c.transports[0]->max_frame_count, 4u);
}

// Worker 1 vanishes, as worker 0's lane 0 sees it; once worker 0 has heard of the loss, its
// shard s ingests payloads[s]. Worker 0 must still stop cleanly and hear of the loss once.
void lose_worker_1_then_ingest(cluster& c, const std::vector<std::vector<std::string>>& payloads) {
    c.wire.post(0, { 1, false, ~std::uint32_t{ 0 }, {} }, 0);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (bool seen = false; !seen && std::chrono::steady_clock::now() < deadline;) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        std::lock_guard lock(c.mu);
        seen = !c.lost.empty();
    }
    std::size_t total = 0;
    for (std::uint32_t s = 0; s < payloads.size(); ++s) {
        total += payloads[s].size();
        c.runtimes[0]->adopt_on(s, std::make_unique<fake_source>(payloads[s]));
    }
    while (c.runtimes[0]->counters().ingested < total &&
           std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    auto report = c.runtimes[0]->stop(std::chrono::seconds(5));
    EXPECT_TRUE(report.drained);
    c.runtimes[1]->stop(std::chrono::seconds(5));
    std::lock_guard lock(c.mu);
    ASSERT_EQ(c.lost.size(), 1u);
    EXPECT_EQ(c.lost[0].at, 0u);
    EXPECT_EQ(c.lost[0].peer, 1u);
    EXPECT_EQ(c.lost[0].reason, "connection closed");
}

TEST(RuntimeCluster, LostPeerIsReportedAndItsMessagesDropped) {
    auto app = make_sequence();
    cluster c(app, { 1, 1 }, 64);
    c.start();
    // Worker 0's transport reports worker 1 lost; what worker 0 routes there is dropped and
    // counted.
    std::vector<std::vector<std::string>> payloads(1);
    for (std::uint32_t k = 0; k < 200; ++k) {
        payloads[0].push_back(encode_record(1, "k" + std::to_string(k)));
    }
    lose_worker_1_then_ingest(c, payloads);
    auto counters = c.runtimes[0]->counters();
    EXPECT_EQ(counters.sink_writes + counters.remote_dropped, 200u);
    EXPECT_GT(counters.remote_dropped, 0u);
}

// Several lanes: shard i of a worker sends through lane i % lanes, and every lane delivers to
// every shard. Each shard of each worker feeds keys of its own, so every key's values must still
// arrive in order, exactly once, and every lane must have carried messages.
TEST(RuntimeCluster, LanesCarryEveryShardsMessagesInOrder) {
    struct shape {
        std::vector<std::uint32_t> shards;
        std::uint32_t lanes;
    };
    for (const auto& [shards, lanes] :
         std::vector<shape>{ { { 2, 2 }, 2 }, { { 3, 2 }, 2 }, { { 3, 3, 4 }, 3 } }) {
        SCOPED_TRACE(::testing::Message() << shards.size() << " workers, " << lanes << " lanes");
        auto app = make_sequence();
        cluster c(app, shards, 64, 4096, lanes);
        c.start();
        constexpr std::uint32_t keys = 90;
        constexpr std::uint64_t per_key = 200;
        // Key k is fed by worker k % workers, on its shard (k / workers) % shards.
        const auto workers = static_cast<std::uint32_t>(shards.size());
        std::vector<std::vector<std::vector<std::string>>> payloads(workers);
        for (std::uint32_t w = 0; w < workers; ++w) {
            payloads[w].resize(shards[w]);
        }
        for (std::uint64_t v = 1; v <= per_key; ++v) {
            for (std::uint32_t k = 0; k < keys; ++k) {
                const std::uint32_t w = k % workers;
                payloads[w][(k / workers) % shards[w]].push_back(
                  encode_record(v, "k" + std::to_string(k)));
            }
        }
        for (std::uint32_t w = 0; w < workers; ++w) {
            for (std::uint32_t s = 0; s < shards[w]; ++s) {
                c.ingest_expected[w] += payloads[w][s].size();
                c.runtimes[w]->adopt_on(s, std::make_unique<fake_source>(payloads[w][s]));
            }
        }
        c.drain_and_stop();
        check_sequence(c, keys, per_key);
        for (std::uint32_t w = 0; w < workers; ++w) {
            EXPECT_EQ(c.runtimes[w]->counters().remote_dropped, 0u);
            for (std::uint32_t l = 0; l < lanes; ++l) {
                EXPECT_GT(c.transports[w * lanes + l]->messages_sent, 0u)
                  << "worker " << w << " lane " << l << " carried nothing";
            }
        }
    }
}

// A peer lost on one lane is lost on every lane: the callback hears of it once, and the other
// lanes send it nothing more (what is routed to it is dropped and counted).
TEST(RuntimeCluster, APeerLostOnOneLaneIsLostOnEveryLane) {
    auto app = make_sequence();
    constexpr std::uint32_t lanes = 2;
    cluster c(app, { 2, 2 }, 64, 4096, lanes);
    c.start();
    std::vector<std::vector<std::string>> payloads(2);
    for (std::uint32_t k = 0; k < 200; ++k) {
        payloads[k % 2].push_back(encode_record(1, "k" + std::to_string(k)));
    }
    lose_worker_1_then_ingest(c, payloads); // seen on lane 0 only
    for (std::uint32_t l = 0; l < lanes; ++l) {
        EXPECT_EQ(c.transports[l]->messages_sent, 0u) << "lane " << l << " sent to a lost peer";
    }
    auto counters = c.runtimes[0]->counters();
    EXPECT_EQ(counters.sink_writes + counters.remote_dropped, 200u);
    EXPECT_GT(counters.remote_dropped, 0u);
}

// Values that are strings of any size: input "key seq padding", keyed by key, state = the last seq
// per key, output "key seq previous\n". A message's encoding between workers is
// remote::message_header_size + the input's size, so a test chooses exactly how large it is.
application make_sized_app() {
    application app{ "sized" };
    app
      .source("in",
              [](std::span<const std::byte> p) {
                  return std::string(reinterpret_cast<const char*>(p.data()), p.size());
              })
      .key_by([](const std::string& v) { return std::string_view(v).substr(0, v.find(' ')); })
      .to_state<last_value>("last",
                            [](const std::string& v, last_value& s) {
                                const auto a = v.find(' ');
                                const auto b = v.find(' ', a + 1);
                                const std::uint64_t seq = std::stoull(v.substr(a + 1, b - a - 1));
                                std::string out = v.substr(0, a) + " " + std::to_string(seq) + " " +
                                                  std::to_string(s.value) + "\n";
                                s.value = seq;
                                return out;
                            })
      .to_sink("out", [](const std::string& s) { return s; });
    return app;
}

// What a sized-app run is fed and what it must give: key k is fed by worker k % workers with seqs
// 1..per_key whose encodings are `encoded_size(k, seq)` bytes long; a message that crosses
// workers and encodes larger than `max_body` is dropped and counted by the sending worker.
struct sized_plan {
    std::vector<std::vector<std::string>> payloads;             // [worker]
    std::map<std::string, std::uint32_t> owner;                 // key -> the worker owning it
    std::map<std::string, std::vector<std::uint64_t>> expected; // key -> seqs delivered, in order
    std::vector<std::uint64_t> oversize;                        // [worker]: remote_oversize
    std::uint64_t crossing = 0;                                 // messages that fit and cross
};

sized_plan plan_sized(
  const application& app, const std::vector<std::uint32_t>& shards, std::uint32_t keys,
  std::uint64_t per_key, std::size_t max_body,
  const std::function<std::size_t(std::uint32_t, std::uint64_t)>& encoded_size) {
    const auto workers = static_cast<std::uint32_t>(shards.size());
    const node* stage = nullptr;
    for (const auto& n : app.nodes()) {
        if (n->kind == node_kind::stateful) {
            stage = n.get();
        }
    }
    partition_map map; // as every runtime computes it
    map.set_layout(shards, 0);
    map.assign_round_robin(stage->id, stage->partitions);
    sized_plan plan;
    plan.payloads.resize(workers);
    plan.oversize.assign(workers, 0);
    for (std::uint32_t k = 0; k < keys; ++k) {
        const std::string key = "k" + std::to_string(k);
        const std::uint32_t from = k % workers;
        const std::uint32_t to =
          map.worker_of(map.owner(stage->id, partition_of(key, stage->partitions)));
        plan.owner[key] = to;
        auto& expected = plan.expected[key];
        for (std::uint64_t seq = 1; seq <= per_key; ++seq) {
            std::string value = key + " " + std::to_string(seq) + " ";
            const std::size_t size =
              std::max(encoded_size(k, seq), remote::message_header_size + value.size());
            value.append(size - remote::message_header_size - value.size(), 'x');
            const bool fits = size <= max_body;
            if (from != to && !fits) {
                ++plan.oversize[from];
            } else {
                expected.push_back(seq);
                plan.crossing += from != to ? 1 : 0;
            }
            plan.payloads[from].push_back(std::move(value));
        }
    }
    return plan;
}

// Every key's delivered seqs are exactly the plan's, in order, once each, on the owning worker.
void check_sized(cluster& c, const sized_plan& plan) {
    std::map<std::string, std::vector<std::uint64_t>> seen;
    for (std::uint32_t w = 0; w < c.sinks.size(); ++w) {
        for (const auto& write : c.sinks[w]->writes) {
            const auto a = write.find(' ');
            const auto b = write.find(' ', a + 1);
            const std::string key = write.substr(0, a);
            const std::uint64_t seq = std::stoull(write.substr(a + 1, b - a - 1));
            const std::uint64_t previous = std::stoull(write.substr(b + 1));
            auto& seqs = seen[key];
            EXPECT_EQ(previous, seqs.empty() ? 0 : seqs.back()) << key;
            seqs.push_back(seq);
            EXPECT_EQ(plan.owner.at(key), w) << "key " << key << " processed off its owner";
        }
    }
    for (const auto& [key, expected] : plan.expected) {
        EXPECT_EQ(seen[key], expected) << key;
    }
}

// The failure the exchange once had: it guessed a message's size, so a value larger than the
// guess overflowed the frame (and the transports abort on that). Here a message alone is larger
// than a frame: the worker drops it, counts it, and everything else arrives in order.
TEST(RuntimeCluster, MessagesLargerThanAFrameAreDroppedAndCountedTheRestArrive) {
    constexpr std::size_t max_body = 256;
    const auto seed = std::random_device{}();
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    std::mt19937_64 rng(seed);
    // Sizes around every edge: tiny, over the old guess, exactly the limit, one over it, a few
    // times it, and far over it (a value larger than the frame's preallocated buffer).
    auto encoded_size = [&](std::uint32_t, std::uint64_t) -> std::size_t {
        const auto r = rng() % 100;
        if (r < 30) {
            return remote::message_header_size + rng() % 40;
        }
        if (r < 60) {
            return 87 + rng() % (max_body - 87 + 1);
        }
        if (r < 70) {
            return max_body;
        }
        if (r < 78) {
            return max_body + 1;
        }
        if (r < 95) {
            return max_body + 2 + rng() % (3 * max_body);
        }
        return 16'000 + rng() % 50'000;
    };
    struct run_case {
        std::vector<std::uint32_t> shards;
        std::uint32_t credit;
    };
    for (const auto& rc : std::vector<run_case>{
           { { 1, 1 }, 64 }, { { 1, 1 }, 3 }, { { 2, 1 }, 16 }, { { 1, 1, 2 }, 5 } }) {
        SCOPED_TRACE(::testing::Message() << rc.shards.size() << " workers, credit " << rc.credit);
        auto app = make_sized_app();
        const sized_plan plan = plan_sized(app, rc.shards, 24, 150, max_body, encoded_size);
        std::uint64_t oversize_expected = 0;
        for (auto n : plan.oversize) {
            oversize_expected += n;
        }
        ASSERT_GT(oversize_expected, 0u) << "the workload must cross workers with large values";
        ASSERT_GT(plan.crossing, 0u);

        cluster c(app, rc.shards, rc.credit, max_body);
        c.start();
        for (std::uint32_t w = 0; w < rc.shards.size(); ++w) {
            c.ingest_expected[w] = plan.payloads[w].size();
            c.runtimes[w]->adopt_on(0, std::make_unique<fake_source>(plan.payloads[w]));
        }
        c.drain_and_stop();
        check_sized(c, plan);
        std::uint64_t received = 0;
        for (std::uint32_t w = 0; w < rc.shards.size(); ++w) {
            const auto counters = c.runtimes[w]->counters();
            EXPECT_EQ(counters.remote_oversize, plan.oversize[w]) << "worker " << w;
            EXPECT_EQ(counters.remote_dropped, 0u) << "worker " << w;
            EXPECT_LE(c.transports[w]->max_body_sent, max_body) << "worker " << w;
            EXPECT_LE(c.transports[w]->max_frame_count, rc.credit) << "worker " << w;
            received += counters.remote_received;
        }
        EXPECT_EQ(received, plan.crossing);
    }
}

// Every message fits a frame, but most are larger than the old guess's 64-byte allowance, so a
// frame with room for the guess and not for the message would have overflowed. Frames still pack
// several messages.
TEST(RuntimeCluster, MessagesOverTheOldSizeGuessFillFramesWithoutOverflowing) {
    constexpr std::size_t max_body = 256;
    const auto seed = std::random_device{}();
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    std::mt19937_64 rng(seed);
    auto encoded_size = [&](std::uint32_t, std::uint64_t) -> std::size_t {
        return remote::message_header_size + 65 +
               rng() % (max_body - remote::message_header_size - 65 + 1);
    };
    auto app = make_sized_app();
    const std::vector<std::uint32_t> shards{ 1, 1 };
    const sized_plan plan = plan_sized(app, shards, 16, 300, max_body, encoded_size);
    ASSERT_GT(plan.crossing, 0u);
    cluster c(app, shards, 64, max_body);
    c.start();
    for (std::uint32_t w = 0; w < shards.size(); ++w) {
        c.ingest_expected[w] = plan.payloads[w].size();
        c.runtimes[w]->adopt_on(0, std::make_unique<fake_source>(plan.payloads[w]));
    }
    c.drain_and_stop();
    check_sized(c, plan);
    std::uint64_t received = 0;
    std::uint32_t packed = 0;
    for (std::uint32_t w = 0; w < shards.size(); ++w) {
        const auto counters = c.runtimes[w]->counters();
        EXPECT_EQ(counters.remote_oversize, 0u) << "worker " << w;
        EXPECT_LE(c.transports[w]->max_body_sent, max_body) << "worker " << w;
        packed = std::max(packed, c.transports[w]->max_frame_count);
        received += counters.remote_received;
    }
    EXPECT_EQ(received, plan.crossing);
    EXPECT_GE(packed, 2u) << "no frame carried more than one message";
}

TEST(RuntimeCluster, AStageWithoutCodecCannotRunInACluster) {
    struct opaque {
        std::string s;
        std::vector<int> v;
    };
    application app{ "nocodec" };
    app
      .source(
        "in",
        [](std::span<const std::byte> p) {
            return opaque{ std::string(reinterpret_cast<const char*>(p.data()), p.size()), {} };
        })
      .key_by([](const opaque& o) -> const std::string& { return o.s; })
      .to_state<last_value>("st", [](const opaque& o, last_value&) { return o.s; })
      .to_sink("out", [](const std::string& s) { return s; });
    cluster c(app, { 1, 1 }, 16);
    auto s = c.runtimes[0]->start();
    ASSERT_FALSE(s);
    EXPECT_NE(s.err().message.find("has no ringtail::codec"), std::string::npos);
}

} // namespace
} // namespace ringtail
