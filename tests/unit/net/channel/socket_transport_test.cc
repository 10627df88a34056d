// Tests of the socket transport over socketpairs and loopback meshes: order and flow control
// under load, and that a closed, leaving, corrupt or foreign peer is reported once and counted.
#include "net/channel/socket_transport.h"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <optional>
#include <poll.h>
#include <random>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include <gtest/gtest.h>

#include "engine/big_endian.h"
#include "engine/fd.h"
#include "net/channel/data_mesh.h"
#include "net/io/tcp_listener.h"

namespace ringtail::net {
namespace {

using namespace std::chrono_literals;
using bytes = std::vector<std::byte>;

std::uint64_t test_seed() {
    if (const char* s = std::getenv("RINGTAIL_TEST_SEED")) {
        return std::strtoull(s, nullptr, 10);
    }
    return std::random_device{}();
}

std::span<const std::byte> as_span(const std::string& s) {
    return std::as_bytes(std::span(s.data(), s.size()));
}

// Records what a transport reports; `on_batch`, when set, takes the messages instead.
struct recorder final : transport_events {
    struct batch {
        peer_id peer;
        std::string body;
        std::uint32_t count;
    };
    std::vector<batch> batches;
    std::vector<std::pair<peer_id, std::string>> lost;
    std::function<void(peer_id, std::span<const std::byte>, std::uint32_t)> on_batch;

    void on_messages(peer_id peer, std::span<const std::byte> body, std::uint32_t count) override {
        if (on_batch) {
            on_batch(peer, body, count);
            return;
        }
        batches.push_back(
          { peer, std::string(reinterpret_cast<const char*>(body.data()), body.size()), count });
    }
    void on_peer_lost(peer_id peer, const std::string& reason) override {
        lost.emplace_back(peer, reason);
    }
};

bool readable(int fd) {
    pollfd p{ fd, POLLIN, 0 };
    return ::poll(&p, 1, 0) > 0;
}

// Polls every transport until `done` holds or `timeout` passes, sleeping on the wait fds when
// nothing moves.
template<typename Done>
bool pump(std::vector<socket_transport*> ts, std::vector<recorder*> rs, Done&& done,
          std::chrono::milliseconds timeout = 5s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) {
            return false;
        }
        std::size_t work = 0;
        for (std::size_t i = 0; i < ts.size(); ++i) {
            work += ts[i]->poll(*rs[i]);
        }
        if (work == 0) {
            std::vector<pollfd> fds;
            for (auto* t : ts) {
                fds.push_back({ t->wait_fd(), POLLIN, 0 });
            }
            ::poll(fds.data(), fds.size(), 5);
        }
    }
    return true;
}

socket_transport_config bare_config() {
    socket_transport_config c;
    c.first_seq = 0; // socketpairs: no HELLO was exchanged
    return c;
}

std::array<int, 2> make_socketpair() {
    int sv[2] = { -1, -1 };
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    return { sv[0], sv[1] };
}

// Two transports, workers 0 and 1, over a socketpair.
struct transport_pair {
    std::unique_ptr<socket_transport> t0;
    std::unique_ptr<socket_transport> t1;
    recorder r0;
    recorder r1;
    explicit transport_pair(socket_transport_config config = bare_config()) {
        auto [a, b] = make_socketpair();
        t0 = std::make_unique<socket_transport>(std::vector<int>{ -1, a }, 0, config);
        t1 = std::make_unique<socket_transport>(std::vector<int>{ b, -1 }, 1, config);
    }
    template<typename Done>
    bool pump(Done&& done, std::chrono::milliseconds timeout = 5s) {
        std::vector<socket_transport*> ts{ t0.get() };
        std::vector<recorder*> rs{ &r0 };
        if (t1) {
            ts.push_back(t1.get());
            rs.push_back(&r1);
        }
        return net::pump(ts, rs, done, timeout);
    }
};

// A transport for worker 0 whose peer, worker 1, is a raw socket the test writes to.
struct raw_peer {
    unique_fd raw;
    std::unique_ptr<socket_transport> t;
    recorder r;
    explicit raw_peer(socket_transport_config config = bare_config()) {
        auto [a, b] = make_socketpair();
        raw.reset(b);
        t = std::make_unique<socket_transport>(std::vector<int>{ -1, a }, 0, config);
    }
    void write(const std::string& s) {
        ASSERT_EQ(::send(raw.get(), s.data(), s.size(), MSG_NOSIGNAL),
                  static_cast<ssize_t>(s.size()));
    }
    bool pump_until_lost(std::chrono::milliseconds timeout = 5s) {
        return net::pump(
          { t.get() }, { &r }, [&] { return !r.lost.empty(); }, timeout);
    }
};

// The messages of the traffic tests: [u64 sequence][u16 n][n bytes of the sequence's low byte].
void append_message(std::string& body, std::uint64_t seq, std::uint16_t pad) {
    be::append<std::uint64_t>(body, seq);
    be::append<std::uint16_t>(body, pad);
    body.append(pad, static_cast<char>(seq & 0xFF));
}

// Sends `messages_per_pair` messages from every transport to every other in frames of random
// sizes, within credit, grants what arrives, and checks that each receiver sees each sender's
// sequence in order with intact contents. Another thread reads the counters meanwhile.
void run_traffic(std::vector<std::unique_ptr<socket_transport>>& ts,
                 std::uint64_t messages_per_pair, std::uint64_t seed) {
    SCOPED_TRACE("RINGTAIL_TEST_SEED=" + std::to_string(seed));
    std::mt19937_64 rng(seed);
    const std::size_t n = ts.size();
    std::vector<recorder> rs(n);
    std::vector<std::vector<std::uint64_t>> next_out(n, std::vector<std::uint64_t>(n, 0));
    std::vector<std::vector<std::uint64_t>> next_in(n, std::vector<std::uint64_t>(n, 0));
    std::vector<std::vector<std::uint32_t>> to_grant(n, std::vector<std::uint32_t>(n, 0));
    bool order_ok = true;
    for (std::size_t i = 0; i < n; ++i) {
        rs[i].on_batch = [&, i](peer_id from, std::span<const std::byte> body,
                                std::uint32_t count) {
            const std::byte* p = body.data();
            const std::byte* end = p + body.size();
            for (std::uint32_t m = 0; m < count && order_ok; ++m) {
                if (end - p < 10) {
                    order_ok = false;
                    ADD_FAILURE() << "worker " << i << ": short body from " << from;
                    break;
                }
                auto seq = be::read<std::uint64_t>(p);
                auto pad = be::read<std::uint16_t>(p + 8);
                p += 10;
                if (seq != next_in[i][from] || end - p < pad) {
                    order_ok = false;
                    ADD_FAILURE() << "worker " << i << " from " << from << ": sequence " << seq
                                  << ", expected " << next_in[i][from];
                    break;
                }
                for (std::uint16_t k = 0; k < pad; ++k) {
                    if (p[k] != static_cast<std::byte>(seq & 0xFF)) {
                        order_ok = false;
                        ADD_FAILURE() << "worker " << i << ": damaged message " << seq;
                        break;
                    }
                }
                p += pad;
                ++next_in[i][from];
            }
            if (order_ok && p != end) {
                order_ok = false;
                ADD_FAILURE() << "worker " << i << ": trailing bytes from " << from;
            }
            to_grant[i][from] += count;
        };
    }
    std::atomic<bool> stop{ false };
    std::thread watcher([&] {
        // Reads the counters from another thread, as the metrics thread does (TSan checks it).
        std::vector<std::uint64_t> last(ts.size(), 0);
        while (!stop.load(std::memory_order_relaxed)) {
            for (std::size_t i = 0; i < ts.size(); ++i) {
                auto c = ts[i]->counters();
                EXPECT_GE(c.messages_in, last[i]); // counters only grow
                last[i] = c.messages_in;
            }
            std::this_thread::sleep_for(1ms);
        }
    });
    auto all_done = [&] {
        for (std::size_t i = 0; i < n; ++i) {
            for (std::size_t j = 0; j < n; ++j) {
                if (i != j && (next_in[i][j] < messages_per_pair || ts[i]->pending_bytes() > 0)) {
                    return false;
                }
            }
        }
        return true;
    };
    auto deadline = std::chrono::steady_clock::now() + 60s;
    while (order_ok && !all_done() && std::chrono::steady_clock::now() < deadline) {
        std::size_t work = 0;
        for (std::size_t i = 0; i < n; ++i) {
            work += ts[i]->poll(rs[i]);
            for (std::size_t j = 0; j < n; ++j) {
                if (to_grant[i][j] != 0) {
                    ts[i]->grant(static_cast<peer_id>(j), to_grant[i][j]);
                    to_grant[i][j] = 0;
                }
            }
            for (std::size_t j = 0; j < n; ++j) {
                if (i == j) {
                    continue;
                }
                // A few frames per round, so that the peers' polls interleave with the sends.
                for (int f = 0; f < 4 && next_out[i][j] < messages_per_pair; ++f) {
                    std::uint32_t credit = ts[i]->credit(static_cast<peer_id>(j));
                    if (credit == 0) {
                        break;
                    }
                    std::string body;
                    std::uint32_t count = 0;
                    std::uint32_t want = 1 + static_cast<std::uint32_t>(rng() % 200);
                    while (count < want && count < credit && next_out[i][j] < messages_per_pair) {
                        auto pad =
                          static_cast<std::uint16_t>(rng() % 50 == 0 ? rng() % 4000 : rng() % 40);
                        if (body.size() + 10 + pad > ts[i]->max_body_bytes()) {
                            break;
                        }
                        append_message(body, next_out[i][j]++, pad);
                        ++count;
                    }
                    ts[i]->send(static_cast<peer_id>(j), as_span(body), count);
                    ++work;
                }
            }
        }
        if (work == 0) {
            std::vector<pollfd> fds;
            for (auto& t : ts) {
                fds.push_back({ t->wait_fd(), POLLIN, 0 });
            }
            ::poll(fds.data(), fds.size(), 1);
        }
    }
    stop = true;
    watcher.join();
    EXPECT_TRUE(order_ok);
    EXPECT_TRUE(all_done()) << "timed out";
    for (std::size_t i = 0; i < n; ++i) {
        EXPECT_TRUE(rs[i].lost.empty()) << "worker " << i << " lost " << rs[i].lost.front().first
                                        << ": " << rs[i].lost.front().second;
        auto c = ts[i]->counters();
        EXPECT_EQ(c.messages_out, messages_per_pair * (n - 1));
        EXPECT_EQ(c.messages_in, messages_per_pair * (n - 1));
        EXPECT_EQ(c.corrupt_frames, 0u);
        EXPECT_EQ(c.peers_lost, 0u);
        EXPECT_GT(c.frames_in, 0u);
        for (std::size_t j = 0; j < n; ++j) {
            if (i != j) {
                EXPECT_TRUE(ts[i]->peer_alive(static_cast<peer_id>(j)));
            }
        }
    }
}

// Listens on n loopback ports and builds the mesh with one thread per worker.
std::vector<std::vector<int>> loopback_mesh(std::uint32_t n, std::uint64_t token = 0x5EED) {
    std::vector<unique_fd> listeners;
    std::vector<host_port> addresses;
    for (std::uint32_t i = 0; i < n; ++i) {
        auto l = listen_tcp({ "127.0.0.1", 0 });
        EXPECT_TRUE(l.ok()) << l.err().message;
        listeners.emplace_back(*l);
        addresses.push_back({ "127.0.0.1", bound_port(*l) });
    }
    std::vector<std::optional<result<std::vector<int>>>> results(n);
    std::vector<std::thread> threads;
    for (std::uint32_t i = 0; i < n; ++i) {
        threads.emplace_back([&, i] {
            data_mesh_config config{ token, i, addresses, 5s };
            results[i] = build_data_mesh(listeners[i].get(), config);
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    std::vector<std::vector<int>> fds;
    for (std::uint32_t i = 0; i < n; ++i) {
        listeners[i].reset();
        EXPECT_TRUE(results[i]->ok()) << results[i]->err().message;
        fds.push_back(results[i]->ok() ? results[i]->value() : std::vector<int>(n, -1));
    }
    return fds;
}

TEST(socket_transport, many_frames_in_order_both_ways_over_a_socketpair) {
    std::vector<std::unique_ptr<socket_transport>> ts;
    auto [a, b] = make_socketpair();
    auto config = bare_config();
    config.initial_credit = 500; // small, so that credit runs out and comes back many times
    ts.push_back(std::make_unique<socket_transport>(std::vector<int>{ -1, a }, 0, config));
    ts.push_back(std::make_unique<socket_transport>(std::vector<int>{ b, -1 }, 1, config));
    run_traffic(ts, 100'000, test_seed());
}

TEST(socket_transport, two_and_three_worker_loopback_meshes_in_order) {
    for (std::uint32_t n : { 2u, 3u }) {
        SCOPED_TRACE(std::to_string(n) + " workers");
        auto fds = loopback_mesh(n);
        std::vector<std::unique_ptr<socket_transport>> ts;
        for (std::uint32_t i = 0; i < n; ++i) {
            // The default first_seq: the mesh's HELLO was frame 0 each way.
            ts.push_back(std::make_unique<socket_transport>(fds[i], i));
            EXPECT_EQ(ts.back()->peer_count(), n);
            EXPECT_EQ(ts.back()->credit(i), 0u);
            EXPECT_FALSE(ts.back()->peer_alive(i));
        }
        run_traffic(ts, 50'000, test_seed());
    }
}

TEST(socket_transport, credit_runs_out_and_comes_back_with_grants) {
    auto config = bare_config();
    config.initial_credit = 8;
    transport_pair p(config);
    EXPECT_EQ(p.t0->credit(1), 8u);
    p.t0->send(1, as_span(std::string("aaaaa")), 5);
    p.t0->send(1, as_span(std::string("bbb")), 3);
    EXPECT_EQ(p.t0->credit(1), 0u);
    EXPECT_GT(p.t0->pending_bytes(), 0u);
    ASSERT_TRUE(p.pump([&] { return p.r1.batches.size() == 2; }));
    EXPECT_EQ(p.r1.batches[0].body, "aaaaa");
    EXPECT_EQ(p.r1.batches[0].count, 5u);
    EXPECT_EQ(p.r1.batches[1].body, "bbb");
    EXPECT_EQ(p.t0->pending_bytes(), 0u);
    // Nothing granted yet: no credit comes back however long both poll.
    p.pump([] { return false; }, 50ms);
    EXPECT_EQ(p.t0->credit(1), 0u);
    p.t1->grant(0, 5);
    ASSERT_TRUE(p.pump([&] { return p.t0->credit(1) == 5; }));
    p.t1->grant(0, 3);
    ASSERT_TRUE(p.pump([&] { return p.t0->credit(1) == 8; }));
    p.t0->send(1, as_span(std::string("cccccccc")), 8);
    ASSERT_TRUE(p.pump([&] { return p.r1.batches.size() == 3; }));
    EXPECT_TRUE(p.r0.lost.empty());
    EXPECT_TRUE(p.r1.lost.empty());
    auto c0 = p.t0->counters();
    auto c1 = p.t1->counters();
    EXPECT_EQ(c0.messages_out, 16u);
    EXPECT_EQ(c1.messages_in, 16u);
    EXPECT_EQ(c0.frames_out, 3u);
    EXPECT_EQ(c1.frames_out, 2u); // two CREDIT frames
    EXPECT_EQ(c0.frames_in, 2u);
    EXPECT_EQ(c0.bytes_out, c1.bytes_in);
    EXPECT_EQ(c1.bytes_out, c0.bytes_in);
}

TEST(socket_transport, a_closed_connection_is_reported_once_with_a_reason) {
    transport_pair p;
    p.t0->send(1, as_span(std::string("m")), 1);
    ASSERT_TRUE(p.pump([&] { return p.r1.batches.size() == 1; }));
    p.t1.reset();
    ASSERT_TRUE(p.pump([&] { return !p.r0.lost.empty(); }));
    p.pump([] { return false; }, 50ms);
    ASSERT_EQ(p.r0.lost.size(), 1u);
    EXPECT_EQ(p.r0.lost[0].first, 1u);
    EXPECT_EQ(p.r0.lost[0].second, "connection closed");
    EXPECT_FALSE(p.t0->peer_alive(1));
    EXPECT_EQ(p.t0->credit(1), 0u);
    // Sends to a lost peer are dropped and counted, grants ignored.
    p.t0->send(1, as_span(std::string("xy")), 2);
    p.t0->grant(1, 1);
    EXPECT_EQ(p.t0->pending_bytes(), 0u);
    auto c = p.t0->counters();
    EXPECT_EQ(c.peers_lost, 1u);
    EXPECT_EQ(c.peers_left, 0u);
    EXPECT_EQ(c.corrupt_frames, 0u);
    EXPECT_EQ(c.messages_dropped, 2u);
    // Nothing left to wake the exchange thread.
    EXPECT_EQ(p.t0->poll(p.r0), 0u);
    EXPECT_FALSE(readable(p.t0->wait_fd()));
}

TEST(socket_transport, closing_in_the_middle_of_a_frame_says_so) {
    raw_peer p;
    std::string frame;
    append_data_frame(frame, data_frame_type::data, 0, 1, as_span(std::string("payload")));
    p.write(frame.substr(0, 10));
    p.raw.reset();
    ASSERT_TRUE(p.pump_until_lost());
    EXPECT_EQ(p.r.lost[0].second, "connection closed in the middle of a frame");
}

TEST(socket_transport, garbage_is_a_corrupt_foreign_peer) {
    raw_peer p;
    std::string frame;
    append_data_frame(frame, data_frame_type::data, 0, 1, as_span(std::string("before")));
    // A good frame, then bytes of another protocol: the frame is delivered, then the peer lost.
    p.write(frame + "GET /metrics HTTP/1.1\r\nHost: worker\r\n\r\n");
    ASSERT_TRUE(p.pump_until_lost());
    pump(
      { p.t.get() }, { &p.r }, [] { return false; }, 30ms);
    ASSERT_EQ(p.r.batches.size(), 1u);
    EXPECT_EQ(p.r.batches[0].body, "before");
    ASSERT_EQ(p.r.lost.size(), 1u);
    EXPECT_EQ(p.r.lost[0].first, 1u);
    EXPECT_NE(p.r.lost[0].second.find("corrupt frame: not a Ringtail data-channel frame"),
              std::string::npos)
      << p.r.lost[0].second;
    auto c = p.t->counters();
    EXPECT_EQ(c.corrupt_frames, 1u);
    EXPECT_EQ(c.peers_lost, 1u);
    EXPECT_EQ(c.messages_in, 1u);
}

TEST(socket_transport, a_flipped_byte_is_a_bad_checksum) {
    raw_peer p;
    std::string frame;
    append_data_frame(frame, data_frame_type::data, 0, 2, as_span(std::string("two msgs")));
    frame[frame.size() - 3] ^= 0x10;
    p.write(frame);
    ASSERT_TRUE(p.pump_until_lost());
    EXPECT_EQ(p.r.lost[0].second.rfind("corrupt frame: bad checksum", 0), 0u) << p.r.lost[0].second;
    EXPECT_TRUE(p.r.batches.empty());
    EXPECT_EQ(p.t->counters().corrupt_frames, 1u);
}

TEST(socket_transport, a_sequence_gap_is_corrupt) {
    raw_peer p;
    std::string frames;
    append_data_frame(frames, data_frame_type::data, 0, 1, as_span(std::string("zero")));
    append_data_frame(frames, data_frame_type::data, 2, 1, as_span(std::string("two")));
    p.write(frames);
    ASSERT_TRUE(p.pump_until_lost());
    EXPECT_EQ(p.r.batches.size(), 1u);
    EXPECT_EQ(p.r.lost[0].second, "corrupt frame: sequence number 2, expected 1");
    EXPECT_EQ(p.t->counters().corrupt_frames, 1u);
}

TEST(socket_transport, a_peer_that_ignores_credit_is_cut_off) {
    auto config = bare_config();
    config.initial_credit = 4;
    {
        raw_peer p(config);
        std::string frames;
        append_data_frame(frames, data_frame_type::data, 0, 3, as_span(std::string("abc")));
        append_data_frame(frames, data_frame_type::data, 1, 2, as_span(std::string("de")));
        p.write(frames);
        ASSERT_TRUE(p.pump_until_lost());
        EXPECT_EQ(p.r.batches.size(), 1u);
        EXPECT_EQ(p.r.lost[0].second, "corrupt frame: 2 messages with only 1 of credit left");
    }
    {
        // Granting more than was sent.
        raw_peer p(config);
        std::string frames;
        append_data_frame(frames, data_frame_type::credit, 0, 1);
        p.write(frames);
        ASSERT_TRUE(p.pump_until_lost());
        EXPECT_NE(p.r.lost[0].second.find("a grant of 1 messages with 4 of 4 credit"),
                  std::string::npos)
          << p.r.lost[0].second;
        EXPECT_EQ(p.t->counters().corrupt_frames, 1u);
    }
}

TEST(socket_transport, another_version_is_refused_by_number) {
    raw_peer p;
    std::string frame;
    append_data_frame(frame, data_frame_type::data, 0, 1, as_span(std::string("v1")));
    frame[5] = 1; // the version before the checksum covered the header
    p.write(frame);
    ASSERT_TRUE(p.pump_until_lost());
    EXPECT_EQ(p.r.lost[0].second, "corrupt frame: data-channel version 1, this build speaks 2");
    EXPECT_TRUE(p.r.batches.empty());
}

// The ACK and MORE flags are for datagram links: a well-formed, correctly checksummed DATA frame
// that carries one over TCP means a peer that is not speaking this protocol, and is cut off.
TEST(socket_transport, a_data_frame_with_flags_is_corrupt_on_a_stream) {
    struct flagged {
        std::uint8_t flags;
        std::uint32_t count;
        const char* reason;
    };
    for (const flagged& f :
         { flagged{ data_flag_ack, 1, "flags 0x01" }, flagged{ data_flag_more, 0, "flags 0x02" },
           flagged{ data_flag_ack | data_flag_more, 0, "flags 0x03" } }) {
        SCOPED_TRACE(f.reason);
        raw_peer p;
        std::string frames;
        append_data_frame(frames, data_frame_type::data, 0, 1, as_span(std::string("plain")));
        std::size_t start = begin_data_frame(frames);
        frames += "flagged";
        if ((f.flags & data_flag_ack) != 0) {
            frames.append(data_ack_trailer_bytes, '\0');
            write_ack_trailer(std::span<std::byte, data_ack_trailer_bytes>(
                                reinterpret_cast<std::byte*>(frames.data() + frames.size() -
                                                             data_ack_trailer_bytes),
                                data_ack_trailer_bytes),
                              0, 100);
        }
        finish_data_frame(frames, start, data_frame_type::data, 1, f.count, f.flags);
        // And a good frame after it, which must not be read either.
        append_data_frame(frames, data_frame_type::data, 2, 1, as_span(std::string("after")));
        p.write(frames);
        ASSERT_TRUE(p.pump_until_lost());
        pump(
          { p.t.get() }, { &p.r }, [] { return false; }, 20ms);
        ASSERT_EQ(p.r.batches.size(), 1u);
        EXPECT_EQ(p.r.batches[0].body, "plain");
        ASSERT_EQ(p.r.lost.size(), 1u);
        EXPECT_EQ(p.r.lost[0].first, 1u);
        EXPECT_EQ(p.r.lost[0].second,
                  std::string("corrupt frame: ") + f.reason + " on a stream connection");
        EXPECT_FALSE(p.t->peer_alive(1));
        auto c = p.t->counters();
        EXPECT_EQ(c.corrupt_frames, 1u);
        EXPECT_EQ(c.peers_lost, 1u);
        EXPECT_EQ(c.messages_in, 1u);
    }
}

TEST(socket_transport, bye_is_reported_as_left_the_cluster) {
    transport_pair p;
    p.t1->send(0, as_span(std::string("last words")), 1);
    p.t1->poll(p.r1);
    p.t1->say_goodbye();
    EXPECT_FALSE(p.t1->peer_alive(0));
    EXPECT_EQ(p.t1->credit(0), 0u);
    EXPECT_EQ(p.t1->poll(p.r1), 0u);
    ASSERT_TRUE(p.pump([&] { return !p.r0.lost.empty(); }));
    p.pump([] { return false; }, 50ms);
    ASSERT_EQ(p.r0.batches.size(), 1u);
    EXPECT_EQ(p.r0.batches[0].body, "last words");
    ASSERT_EQ(p.r0.lost.size(), 1u);
    EXPECT_EQ(p.r0.lost[0], (std::pair<peer_id, std::string>{ 1, "left the cluster" }));
    EXPECT_TRUE(p.r1.lost.empty()); // the one leaving reports nothing
    auto c = p.t0->counters();
    EXPECT_EQ(c.peers_left, 1u);
    EXPECT_EQ(c.peers_lost, 0u);
    EXPECT_EQ(c.corrupt_frames, 0u);
}

TEST(socket_transport, bye_over_a_loopback_mesh) {
    auto fds = loopback_mesh(3);
    std::vector<std::unique_ptr<socket_transport>> ts;
    std::vector<recorder> rs(3);
    for (std::uint32_t i = 0; i < 3; ++i) {
        ts.push_back(std::make_unique<socket_transport>(fds[i], i));
    }
    ts[2]->say_goodbye();
    ts.pop_back();
    ASSERT_TRUE(pump({ ts[0].get(), ts[1].get() }, { &rs[0], &rs[1] },
                     [&] { return !rs[0].lost.empty() && !rs[1].lost.empty(); }));
    for (int i = 0; i < 2; ++i) {
        ASSERT_EQ(rs[i].lost.size(), 1u);
        EXPECT_EQ(rs[i].lost[0], (std::pair<peer_id, std::string>{ 2, "left the cluster" }));
        EXPECT_TRUE(ts[i]->peer_alive(1 - i));
    }
    // The two that stay still talk.
    ts[0]->send(1, as_span(std::string("still here")), 1);
    ASSERT_TRUE(pump({ ts[0].get(), ts[1].get() }, { &rs[0], &rs[1] },
                     [&] { return rs[1].batches.size() == 1; }));
    EXPECT_EQ(rs[1].batches[0].body, "still here");
}

TEST(socket_transport, output_the_kernel_refuses_waits_for_room_without_spinning) {
    auto config = bare_config();
    config.initial_credit = 1'000'000;
    transport_pair p(config);
    const std::string body(p.t0->max_body_bytes(), 'z');
    for (int i = 0; i < 64; ++i) { // 16 MiB: far more than the socket buffers hold
        p.t0->send(1, as_span(body), 1);
    }
    p.t0->poll(p.r0);
    ASSERT_GT(p.t0->pending_bytes(), 0u);
    // Blocked on output and nothing to read: the wait fd must not be ready, or the exchange
    // thread would spin.
    EXPECT_FALSE(readable(p.t0->wait_fd()));
    EXPECT_EQ(p.t0->poll(p.r0), 0u);
    std::uint64_t got = 0;
    p.r1.on_batch = [&](peer_id, std::span<const std::byte> b, std::uint32_t count) {
        EXPECT_EQ(b.size(), body.size());
        got += count;
        p.t1->grant(0, count);
    };
    ASSERT_TRUE(p.pump([&] { return got == 64 && p.t0->credit(1) == 1'000'000; }, 20s));
    EXPECT_EQ(p.t0->pending_bytes(), 0u);
    // Drained both ways: no stale readiness left on either side.
    p.t0->poll(p.r0);
    p.t1->poll(p.r1);
    EXPECT_FALSE(readable(p.t0->wait_fd()));
    EXPECT_FALSE(readable(p.t1->wait_fd()));
}

} // namespace
} // namespace ringtail::net
