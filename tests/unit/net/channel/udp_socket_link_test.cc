// The UDP datagram link of the socket back end's fault tests: datagrams both ways between two
// links on loopback, the socket readable while they wait, foreign, self-sent and oversized
// datagrams dropped and counted, bind errors as one line; and the reliable data channel
// (datagram_transport) over two such links with faults injected: every message once, in order.
#include "net/channel/udp_socket_link.h"

#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <netinet/in.h>
#include <poll.h>
#include <random>
#include <string>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "tests/unit/net/channel/u64_recorder.h"

#include "engine/big_endian.h"
#include "engine/clock.h"
#include "engine/fd.h"
#include "net/fault/faulty_link.h"
#include "net/io/tcp_listener.h"

namespace ringtail::net {
namespace {

using steady = std::chrono::steady_clock;

std::uint64_t test_seed() {
    if (const char* s = std::getenv("RINGTAIL_TEST_SEED")) {
        return std::strtoull(s, nullptr, 10);
    }
    return std::random_device{}();
}

std::span<const std::byte> bytes_of(const std::string& s) {
    return std::as_bytes(std::span(s.data(), s.size()));
}

// Two (or more) links on 127.0.0.1, each on a free port, that know each other.
std::vector<std::unique_ptr<udp_socket_link>> make_links(
  std::size_t n, std::vector<udp_socket_link_config> configs = {}) {
    configs.resize(n);
    std::vector<int> fds;
    std::vector<host_port> addresses;
    for (std::size_t i = 0; i < n; ++i) {
        auto fd = bind_udp(host_port{ "127.0.0.1", 0 });
        EXPECT_TRUE(fd) << fd.err().message;
        fds.push_back(fd.value());
        addresses.push_back(host_port{ "127.0.0.1", bound_port(fd.value()) });
        EXPECT_NE(addresses.back().port, 0);
    }
    std::vector<std::unique_ptr<udp_socket_link>> links;
    for (std::size_t i = 0; i < n; ++i) {
        auto link =
          udp_socket_link::adopt(fds[i], static_cast<std::uint32_t>(i), addresses, configs[i]);
        EXPECT_TRUE(link) << link.err().message;
        links.push_back(std::move(link.value()));
    }
    return links;
}

bool readable(int fd, int ms) {
    pollfd p{ fd, POLLIN, 0 };
    return ::poll(&p, 1, ms) == 1 && (p.revents & POLLIN) != 0;
}

// Receives on `link` until `want` datagrams came or 5 s passed.
std::vector<std::pair<peer_id, std::string>> receive_some(udp_socket_link& link, std::size_t want) {
    std::vector<std::pair<peer_id, std::string>> got;
    const auto deadline = steady::now() + std::chrono::seconds(5);
    while (got.size() < want && steady::now() < deadline) {
        readable(link.wait_fd(), 10);
        link.receive([&](peer_id p, std::span<const std::byte> d) {
            got.emplace_back(p, std::string(reinterpret_cast<const char*>(d.data()), d.size()));
        });
    }
    return got;
}

// A plain UDP socket on 127.0.0.1, not one of the workers.
unique_fd plain_socket() {
    unique_fd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa), 0);
    return fd;
}

void send_plain(int fd, std::uint16_t port, const std::string& payload) {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::sendto(fd, payload.data(), payload.size(), 0,
                       reinterpret_cast<const sockaddr*>(&to), sizeof to),
              static_cast<ssize_t>(payload.size()));
}

TEST(udp_socket_link, datagrams_both_ways_and_the_socket_wakes_the_reader) {
    auto links = make_links(2);
    auto& a = *links[0];
    auto& b = *links[1];
    EXPECT_EQ(a.peer_count(), 2u);
    EXPECT_EQ(a.max_datagram_bytes(), udp_link_datagram_bytes);
    EXPECT_GE(a.wait_fd(), 0);
    EXPECT_FALSE(readable(b.wait_fd(), 0));

    // A burst beyond one recvmmsg batch, the largest datagram included.
    std::vector<std::string> sent;
    for (std::size_t i = 0; i < 3 * udp_socket_link::rx_batch + 5; ++i) {
        std::string d(1 + (i * 37) % a.max_datagram_bytes(), static_cast<char>('a' + i % 26));
        d.replace(0, std::min<std::size_t>(d.size(), 4), std::to_string(i % 10000));
        sent.push_back(d);
    }
    sent.push_back(std::string(a.max_datagram_bytes(), 'z'));
    for (const auto& d : sent) {
        a.send(1, bytes_of(d));
    }
    a.flush();
    EXPECT_TRUE(readable(b.wait_fd(), 1000)) << "the fd must be readable while datagrams wait";
    auto got = receive_some(b, sent.size());
    ASSERT_EQ(got.size(), sent.size());
    for (std::size_t i = 0; i < sent.size(); ++i) {
        EXPECT_EQ(got[i].first, 0u);
        EXPECT_EQ(got[i].second, sent[i]) << "datagram " << i;
    }
    EXPECT_FALSE(readable(b.wait_fd(), 0)) << "drained";
    EXPECT_EQ(b.receive([](peer_id, std::span<const std::byte>) { FAIL(); }), 0u);

    b.send(0, bytes_of("pong"));
    auto back = receive_some(a, 1);
    ASSERT_EQ(back.size(), 1u);
    EXPECT_EQ(back[0], std::make_pair(peer_id{ 1 }, std::string("pong")));

    EXPECT_EQ(a.counters().datagrams_out, sent.size());
    EXPECT_EQ(b.counters().datagrams_in, sent.size());
    EXPECT_EQ(a.counters().datagrams_in, 1u);
    EXPECT_EQ(a.counters().tx_dropped + b.counters().tx_dropped, 0u);
    EXPECT_EQ(a.counters().rx_foreign + b.counters().rx_foreign, 0u);
}

TEST(udp_socket_link, foreign_self_sent_and_oversized_datagrams_are_dropped_and_counted) {
    udp_socket_link_config big;
    big.max_datagram_bytes = 4000;
    auto links = make_links(3, { big, {}, {} });
    auto& a = *links[0];
    auto& b = *links[1];
    const std::uint16_t b_port = bound_port(b.wait_fd());

    unique_fd stranger = plain_socket();
    send_plain(stranger.get(), b_port, "not a worker");
    b.send(1, bytes_of("to myself"));                     // from ourselves
    a.send(1, bytes_of(std::string(4000, 'x')));          // beyond B's 1472 bytes
    links[2]->send(1, bytes_of("from the third worker")); // a known peer: delivered
    stranger.reset();

    std::vector<std::pair<peer_id, std::string>> got;
    const auto deadline = steady::now() + std::chrono::seconds(5);
    while (steady::now() < deadline &&
           b.counters().rx_foreign + b.counters().rx_truncated + got.size() < 4) {
        readable(b.wait_fd(), 10);
        b.receive([&](peer_id p, std::span<const std::byte> d) {
            got.emplace_back(p, std::string(reinterpret_cast<const char*>(d.data()), d.size()));
        });
    }
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0], std::make_pair(peer_id{ 2 }, std::string("from the third worker")));
    EXPECT_EQ(b.counters().rx_foreign, 2u);
    EXPECT_EQ(b.counters().rx_truncated, 1u);
    EXPECT_EQ(b.counters().datagrams_in, 1u);
}

TEST(udp_socket_link, bind_errors_are_one_line_results) {
    auto first = bind_udp(host_port{ "127.0.0.1", 0 });
    ASSERT_TRUE(first) << first.err().message;
    unique_fd first_fd(first.value());
    const std::uint16_t port = bound_port(first_fd.get());
    auto again =
      udp_socket_link::open(host_port{ "127.0.0.1", port }, 0, { host_port{ "127.0.0.1", port } });
    ASSERT_FALSE(again);
    EXPECT_EQ(again.err().code, errc::unavailable);
    EXPECT_NE(again.err().message.find("already in use"), std::string::npos) << again.err().message;
    EXPECT_EQ(again.err().message.find('\n'), std::string::npos);
    first_fd.reset();

    auto bad_host = bind_udp(host_port{ "no-such-host.invalid", 1 });
    ASSERT_FALSE(bad_host);
    EXPECT_EQ(bad_host.err().code, errc::usage);

    auto not_here = bind_udp(host_port{ "192.0.2.1", 0 }); // TEST-NET-1: no interface has it
    ASSERT_FALSE(not_here);
    EXPECT_EQ(not_here.err().code, errc::usage) << not_here.err().message;

    auto bad_peer = udp_socket_link::open(
      host_port{ "127.0.0.1", 0 }, 0,
      { host_port{ "127.0.0.1", 1 }, host_port{ "no-such-host.invalid", 2 } });
    ASSERT_FALSE(bad_peer);
    EXPECT_EQ(bad_peer.err().code, errc::unavailable);
    EXPECT_NE(bad_peer.err().message.find("worker 1"), std::string::npos) << bad_peer.err().message;
}

// ---- the reliable data channel over UDP, with faults ------------------------------------------

using recorder = test_support::u64_recorder;

// The fault layer holds a delayed datagram back: no fd says when it is due, so the link and the
// transport over it name that time as their next deadline (the exchange sleeps no longer), and
// the datagram goes on to the socket once receive() runs at that time.
TEST(udp_socket_link, a_delayed_datagram_is_the_transports_next_deadline) {
    auto links = make_links(2);
    std::uint64_t t = 1'000'000'000;
    auto now = [&t] { return t; };
    fault_config faults;
    faults.delay_ns = 100'000;
    faulty_link fa(*links[0], faults, now);
    datagram_transport_config cfg;
    datagram_transport a(fa, 0, cfg, now);
    EXPECT_EQ(fa.next_deadline_ns(), gbn_no_deadline);
    EXPECT_GT(a.next_deadline_ns(), t + faults.delay_ns) << "its own: the ACK interval";

    fa.send(1, bytes_of("late"));
    EXPECT_EQ(fa.next_deadline_ns(), t + faults.delay_ns);
    EXPECT_EQ(a.next_deadline_ns(), t + faults.delay_ns);
    t += faults.delay_ns - 1;
    EXPECT_EQ(fa.receive([](peer_id, std::span<const std::byte>) {}), 0u);
    fa.flush();
    EXPECT_FALSE(readable(links[1]->wait_fd(), 50)) << "sent before it was due";

    t += 1;
    fa.receive([](peer_id, std::span<const std::byte>) {});
    fa.flush();
    EXPECT_EQ(fa.next_deadline_ns(), gbn_no_deadline);
    auto got = receive_some(*links[1], 1);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0], std::make_pair(peer_id{ 0 }, std::string("late")));
}

TEST(udp_socket_link, datagram_transport_delivers_exactly_once_in_order_under_faults) {
    const std::uint64_t seed = test_seed();
    SCOPED_TRACE("seed=" + std::to_string(seed) + " (replay with RINGTAIL_TEST_SEED)");
    fault_config faults;
    faults.loss = 0.05;
    faults.duplicate = 0.01;
    faults.reorder = 0.10;
    faults.corrupt = 0.001;
    faults.seed = seed;
    auto links = make_links(2);
    auto now = [] { return clock::now_ns(); };
    faulty_link fa(*links[0], faults, now), fb(*links[1], faults, now);
    datagram_transport_config cfg;
    cfg.initial_credit = 4096;
    cfg.gbn.rto_initial_ns = 1'000'000;
    datagram_transport a(fa, 0, cfg), b(fb, 1, cfg);

    // A sends on this thread, B receives on its own, as two exchange threads would.
    constexpr std::uint64_t total = 200'000;
    std::atomic<bool> done{ false };
    recorder rb;
    const auto deadline = steady::now() + std::chrono::seconds(90);
    std::thread receiver([&] {
        while (rb.values.size() < total && rb.lost.empty() && steady::now() < deadline) {
            if (b.poll(rb) == 0) {
                readable(b.wait_fd(), 1);
            }
            b.grant(0, static_cast<std::uint32_t>(rb.pending_grant));
            rb.pending_grant = 0;
        }
        // The last ACKs must reach A: keep answering a little longer.
        const auto linger = steady::now() + std::chrono::milliseconds(300);
        while (steady::now() < linger) {
            if (b.poll(rb) == 0) {
                readable(b.wait_fd(), 1);
            }
        }
        done.store(true, std::memory_order_release);
    });
    recorder ra;
    std::mt19937_64 rng(seed);
    std::uint64_t next = 0;
    std::string body;
    while (!done.load(std::memory_order_acquire)) {
        while (next < total && a.credit(1) > 0) {
            const std::uint32_t n = static_cast<std::uint32_t>(std::min<std::uint64_t>(
              { 1 + rng() % 100, a.credit(1), total - next, a.max_body_bytes() / 8 }));
            body.clear();
            for (std::uint32_t i = 0; i < n; ++i) {
                be::append<std::uint64_t>(body, next++);
            }
            a.send(1, bytes_of(body), n);
        }
        if (a.poll(ra) == 0) {
            readable(a.wait_fd(), 1);
        }
    }
    receiver.join();

    std::fprintf(
      stderr,
      "udp: %llu DATA frames out, %llu retransmitted, faults: %llu lost, %llu "
      "corrupted; %llu corrupt dropped, %llu duplicates, %llu out of order\n",
      static_cast<unsigned long long>(a.counters().frames_out),
      static_cast<unsigned long long>(a.counters().retransmissions),
      static_cast<unsigned long long>(fa.dropped() + fb.dropped()),
      static_cast<unsigned long long>(fa.corrupted() + fb.corrupted()),
      static_cast<unsigned long long>(a.counters().corrupt_frames + b.counters().corrupt_frames),
      static_cast<unsigned long long>(b.counters().duplicates),
      static_cast<unsigned long long>(b.counters().out_of_order));
    ASSERT_EQ(rb.values.size(), total) << "A sent " << next;
    for (std::uint64_t i = 0; i < total; ++i) {
        ASSERT_EQ(rb.values[i], i) << "at " << i;
    }
    EXPECT_TRUE(ra.lost.empty());
    EXPECT_TRUE(rb.lost.empty());
    EXPECT_EQ(a.pending_bytes(), 0u) << "every DATA frame acknowledged";
    EXPECT_GT(fa.dropped(), 0u);
    EXPECT_GT(a.counters().retransmissions, 0u);
    EXPECT_GT(b.counters().duplicates + b.counters().out_of_order, 0u);
    EXPECT_GT(fa.corrupted() + fb.corrupted(), 0u);
    // Every corrupted datagram that arrived failed its checksum (a few may still have been on
    // the way when the test stopped).
    EXPECT_GT(a.counters().corrupt_frames + b.counters().corrupt_frames, 0u);
    EXPECT_LE(a.counters().corrupt_frames + b.counters().corrupt_frames,
              fa.corrupted() + fb.corrupted());
    EXPECT_EQ(links[0]->counters().rx_foreign + links[1]->counters().rx_foreign, 0u);
}

TEST(udp_socket_link, bye_over_udp_means_left_the_cluster) {
    auto links = make_links(2);
    datagram_transport a(*links[0], 0), b(*links[1], 1);
    b.say_goodbye();
    recorder ra;
    const auto deadline = steady::now() + std::chrono::seconds(5);
    while (ra.lost.empty() && steady::now() < deadline) {
        readable(a.wait_fd(), 10);
        a.poll(ra);
    }
    ASSERT_EQ(ra.lost.size(), 1u);
    EXPECT_EQ(ra.lost[0], std::make_pair(peer_id{ 1 }, std::string("left the cluster")));
    EXPECT_FALSE(a.peer_alive(1));
}

} // namespace
} // namespace ringtail::net
