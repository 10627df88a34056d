// Tests of a source connection driven by a fake shard over a real loopback connection.
#include "net/edge/tcp_source_connection.h"

#include <arpa/inet.h>
#include <chrono>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <thread>

#include <sys/ioctl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "engine/fd.h"
#include "net/io/tcp_listener.h"

namespace ringtail::net {
namespace {

// A shard stand-in: its own epoll, a record of what was ingested, switchable admission.
class fake_shard final : public shard_context {
public:
    fake_shard()
      : _epoll(::epoll_create1(EPOLL_CLOEXEC)) {}
    int epoll_fd() const override { return _epoll.get(); }
    std::uint32_t shard_index() const override { return 0; }
    bool can_admit() const override { return admit; }
    bool stopping() const override { return stop; }
    void ingest(std::uint32_t source_index, std::span<const std::byte> payload) override {
        sources.push_back(source_index);
        payloads.emplace_back(reinterpret_cast<const char*>(payload.data()), payload.size());
    }
    void count_protocol_error(std::uint32_t source_index) override {
        protocol_errors.push_back(source_index);
    }
    std::uint64_t now_ns() const override {
        return static_cast<std::uint64_t>(
          std::chrono::steady_clock::now().time_since_epoch().count());
    }

    // Waits up to `ms` for an epoll event, as a shard's idle wait would; returns the event count.
    int wait(int ms) {
        epoll_event ev[8];
        int n = ::epoll_wait(_epoll.get(), ev, 8, ms);
        for (int i = 0; i < n; ++i) {
            void* const ptr = ev[i].data.ptr; // epoll_event is packed: no reference to it
            EXPECT_EQ(ptr, nullptr);
        }
        return n;
    }

    bool admit = true;
    bool stop = false;
    std::vector<std::uint32_t> sources;
    std::vector<std::string> payloads;
    std::vector<std::uint32_t> protocol_errors;

private:
    unique_fd _epoll;
};

// A connected loopback pair: `client` is blocking (the test writes with it), `server` is
// non-blocking as the acceptor hands it over.
struct loopback_pair {
    unique_fd client;
    int server = -1; // handed to the connection under test, which closes it
    loopback_pair() {
        auto l = listen_tcp({ "127.0.0.1", 0 });
        EXPECT_TRUE(l.ok());
        client.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        const unique_fd listening(*l);
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(bound_port(listening.get()));
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(::connect(client.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
        for (int i = 0; i < 5000 && server < 0; ++i) {
            server = ::accept4(listening.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (server < 0) {
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
        }
        EXPECT_GE(server, 0);
    }
    void close_client() { client.reset(); }
    void send_all(const std::string& bytes) const {
        std::size_t off = 0;
        while (off < bytes.size()) {
            ssize_t n = ::send(client.get(), bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
            ASSERT_GT(n, 0);
            off += static_cast<std::size_t>(n);
        }
    }
};

std::string frame(const std::string& payload) {
    auto n = static_cast<std::uint32_t>(payload.size());
    std::string out{ char(n >> 24), char(n >> 16), char(n >> 8), char(n) };
    return out + payload;
}

// Polls the connection as a shard loop would until `done` holds or a few seconds pass.
template<typename Done>
bool poll_until(tcp_source_connection& conn, fake_shard& shard, Done done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) {
            return false;
        }
        conn.poll(shard);
        if (!done() && !conn.finished()) {
            shard.wait(conn.needs_poll() ? 0 : 10);
        }
    }
    return true;
}

TEST(tcp_source_connection, frames_arrive_in_order) {
    loopback_pair pair;
    fake_shard shard;
    tcp_source_connection conn(pair.server, 3, 1000, "127.0.0.1:1");
    std::vector<std::string> expected;
    std::string stream;
    for (int i = 0; i < 200; ++i) {
        expected.push_back(i % 7 == 0 ? "" : "payload " + std::to_string(i));
        stream += frame(expected.back());
    }
    // Sent in pieces that cut headers and payloads.
    for (std::size_t off = 0; off < stream.size(); off += 37) {
        pair.send_all(stream.substr(off, 37));
    }
    ASSERT_TRUE(poll_until(conn, shard, [&] { return shard.payloads.size() == expected.size(); }));
    EXPECT_EQ(shard.payloads, expected);
    EXPECT_EQ(shard.sources, std::vector<std::uint32_t>(expected.size(), 3));
    EXPECT_FALSE(conn.finished());
    // A clean close between frames is no protocol error.
    pair.close_client();
    ASSERT_TRUE(poll_until(conn, shard, [&] { return conn.finished(); }));
    EXPECT_TRUE(shard.protocol_errors.empty());
}

TEST(tcp_source_connection, registers_edge_triggered_so_new_bytes_wake_the_shard) {
    loopback_pair pair;
    fake_shard shard;
    tcp_source_connection conn(pair.server, 0, 100, "peer");
    EXPECT_EQ(conn.poll(shard), 0u);
    EXPECT_EQ(shard.wait(0), 0);
    pair.send_all(frame("x"));
    EXPECT_EQ(shard.wait(5000), 1);
    EXPECT_EQ(conn.poll(shard), 2u); // one frame plus one for the bytes read
    EXPECT_EQ(shard.payloads, std::vector<std::string>{ "x" });
    EXPECT_FALSE(conn.needs_poll());
}

TEST(tcp_source_connection, more_than_a_few_reads_of_data_needs_another_poll) {
    loopback_pair pair;
    fake_shard shard;
    constexpr std::uint32_t max_size = 60000;
    tcp_source_connection conn(pair.server, 0, max_size, "peer");
    // Room in the kernel for more than one poll's worth of reads (FORCE works as root).
    int rcvbuf = 8 << 20;
    if (::setsockopt(pair.server, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0) {
        ::setsockopt(pair.server, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    }
    std::string big(max_size, 'b');
    constexpr int count = 40; // about 2.4 MB: more than reads_per_poll reads of 64 KiB
    std::thread writer([&] {
        for (int i = 0; i < count; ++i) {
            pair.send_all(frame(big));
        }
    });
    // Wait until the kernel holds more than reads_per_poll full reads, so the first poll cannot
    // reach EAGAIN however fast it runs (without this the test depends on thread timing). The
    // receive buffer was raised first so the kernel can hold that much (FORCE works as root).
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    const int more_than_a_poll = 4 * 64 * 1024 + 1;
    for (int queued = 0; queued < more_than_a_poll;) {
        ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the writer stalled";
        ASSERT_EQ(::ioctl(pair.server, FIONREAD, &queued), 0);
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    conn.poll(shard);
    bool saw_needs_poll = conn.needs_poll();
    while (shard.payloads.size() < count && std::chrono::steady_clock::now() < deadline) {
        conn.poll(shard);
        shard.wait(conn.needs_poll() ? 0 : 10);
    }
    writer.join();
    ASSERT_EQ(shard.payloads.size(), std::size_t{ count });
    for (const auto& p : shard.payloads) {
        ASSERT_EQ(p, big);
    }
    EXPECT_TRUE(saw_needs_poll);
}

TEST(tcp_source_connection, oversized_frame_closes_and_counts) {
    loopback_pair pair;
    fake_shard shard;
    tcp_source_connection conn(pair.server, 2, 10, "127.0.0.1:4242");
    pair.send_all(frame("fine") + frame("this one is too long") + frame("after"));
    ASSERT_TRUE(poll_until(conn, shard, [&] { return conn.finished(); }));
    EXPECT_EQ(shard.payloads, std::vector<std::string>{ "fine" });
    EXPECT_EQ(shard.protocol_errors, std::vector<std::uint32_t>{ 2 });
    // The server side is closed: the client sees the end of the stream (or a reset).
    char c;
    EXPECT_LE(::recv(pair.client.get(), &c, 1, 0), 0);
}

TEST(tcp_source_connection, close_mid_frame_counts) {
    loopback_pair pair;
    fake_shard shard;
    tcp_source_connection conn(pair.server, 1, 100, "127.0.0.1:4243");
    pair.send_all(frame("whole") + frame("partial").substr(0, 6));
    ASSERT_TRUE(poll_until(conn, shard, [&] { return shard.payloads.size() == 1; }));
    pair.close_client();
    ASSERT_TRUE(poll_until(conn, shard, [&] { return conn.finished(); }));
    EXPECT_EQ(shard.payloads, std::vector<std::string>{ "whole" });
    EXPECT_EQ(shard.protocol_errors, std::vector<std::uint32_t>{ 1 });
}

TEST(tcp_source_connection, close_mid_header_counts) {
    loopback_pair pair;
    fake_shard shard;
    tcp_source_connection conn(pair.server, 0, 100, "peer");
    pair.send_all(std::string(2, '\0'));
    pair.close_client();
    ASSERT_TRUE(poll_until(conn, shard, [&] { return conn.finished(); }));
    EXPECT_EQ(shard.protocol_errors.size(), 1u);
}

TEST(tcp_source_connection, no_reads_while_the_shard_cannot_admit) {
    loopback_pair pair;
    fake_shard shard;
    tcp_source_connection conn(pair.server, 0, 100, "peer");
    shard.admit = false;
    pair.send_all(frame("a") + frame("b"));
    for (int i = 0; i < 20; ++i) {
        EXPECT_EQ(conn.poll(shard), 0u);
        EXPECT_TRUE(conn.needs_poll());
        shard.wait(1);
    }
    EXPECT_TRUE(shard.payloads.empty());
    // The bytes are still in the kernel: no new edge will come, needs_poll carries the retry.
    shard.admit = true;
    ASSERT_TRUE(poll_until(conn, shard, [&] { return shard.payloads.size() == 2; }));
    EXPECT_EQ(shard.payloads, (std::vector<std::string>{ "a", "b" }));
}

TEST(tcp_source_connection, stopping_reads_what_was_sent_then_closes) {
    // A stop must not lose what the client sent before it: the bytes already in the kernel are
    // read and ingested (even though the shard no longer admits), then the connection closes.
    loopback_pair pair;
    fake_shard shard;
    tcp_source_connection conn(pair.server, 0, 100, "peer");
    conn.poll(shard);
    pair.send_all(frame("late") + frame("later"));
    shard.stop = true;
    shard.admit = false;
    EXPECT_GT(conn.poll(shard), 0u);
    EXPECT_EQ(shard.payloads, (std::vector<std::string>{ "late", "later" }));
    // Bytes that arrive shortly after the stop (a client's last writes) are still taken.
    pair.send_all(frame("last"));
    ASSERT_TRUE(poll_until(conn, shard, [&] { return conn.finished(); }));
    EXPECT_FALSE(conn.needs_poll());
    EXPECT_EQ(shard.payloads, (std::vector<std::string>{ "late", "later", "last" }));
    EXPECT_EQ(conn.poll(shard), 0u);
}

} // namespace
} // namespace ringtail::net
