// Control connections over socketpairs and loopback: order both ways, messages larger than the
// socket buffers, the peer going away, corrupt input, the output bound, flush and the blocking
// connect.
#include "net/cluster/control_connection.h"

#include <chrono>
#include <functional>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include "engine/fd.h"
#include "net/io/tcp_listener.h"

namespace ringtail::net {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

struct socket_pair {
    unique_fd a;
    unique_fd b;
    explicit socket_pair(int buffer_bytes = 0) {
        int fds[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        a.reset(fds[0]);
        b.reset(fds[1]);
        if (buffer_bytes > 0) {
            for (int fd : fds) {
                ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer_bytes, sizeof buffer_bytes);
                ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer_bytes, sizeof buffer_bytes);
            }
        }
    }
};

// Polls every connection (collecting what each receives) until `done` or 10 s pass; waits on the
// fds between rounds that moved nothing.
bool drive(std::vector<control_connection*> conns, std::vector<std::vector<control_msg>*> inboxes,
           const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) {
            return false;
        }
        std::size_t moved = 0;
        std::vector<pollfd> fds;
        for (std::size_t i = 0; i < conns.size(); ++i) {
            auto* inbox = inboxes[i];
            moved += conns[i]->poll([inbox](control_msg&& m) { inbox->push_back(std::move(m)); });
            if (!conns[i]->closed()) {
                short events = POLLIN;
                if (conns[i]->wants_write()) {
                    events |= POLLOUT;
                }
                fds.push_back({ conns[i]->fd(), events, 0 });
            }
        }
        if (moved == 0 && !fds.empty()) {
            ::poll(fds.data(), fds.size(), 10);
        }
    }
    return true;
}

TEST(ControlConnection, ManyMessagesBothWaysInOrder) {
    socket_pair sp(16 * 1024);
    control_connection a(sp.a.release(), "peer b");
    control_connection b(sp.b.release(), "peer a");
    EXPECT_EQ(a.peer(), "peer b");
    constexpr std::uint64_t count = 20000;
    std::vector<control_msg> at_a, at_b;
    std::uint64_t sent = 0;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    // Sends interleaved with polls, so that both directions are busy at once.
    while (at_a.size() < count || at_b.size() < count) {
        ASSERT_LT(std::chrono::steady_clock::now(), deadline);
        for (int i = 0; i < 100 && sent < count; ++i, ++sent) {
            a.send(control_type::heartbeat, json{ { "seq", sent }, { "from", "a" } });
            b.send(control_type::query_reply, json{ { "seq", sent }, { "from", "b" } });
        }
        std::size_t moved = a.poll([&](control_msg&& m) { at_a.push_back(std::move(m)); });
        moved += b.poll([&](control_msg&& m) { at_b.push_back(std::move(m)); });
        if (moved == 0) {
            pollfd fds[2] = { { a.fd(), POLLIN, 0 }, { b.fd(), POLLIN, 0 } };
            ::poll(fds, 2, 10);
        }
        ASSERT_FALSE(a.closed()) << a.close_reason();
        ASSERT_FALSE(b.closed()) << b.close_reason();
    }
    ASSERT_EQ(at_a.size(), count);
    ASSERT_EQ(at_b.size(), count);
    for (std::uint64_t i = 0; i < count; ++i) {
        ASSERT_EQ(at_b[i].type, control_type::heartbeat);
        ASSERT_EQ(get_u64(at_b[i].body, "seq"), i);
        ASSERT_EQ(get_string(at_b[i].body, "from"), "a");
        ASSERT_EQ(at_a[i].type, control_type::query_reply);
        ASSERT_EQ(get_u64(at_a[i].body, "seq"), i);
    }
    EXPECT_EQ(a.messages_sent(), count);
    EXPECT_EQ(b.messages_received(), count);
    EXPECT_FALSE(a.wants_write());
    EXPECT_EQ(a.queued_bytes(), 0u);
}

TEST(ControlConnection, LargeMessageTakesSeveralReadsAndWrites) {
    socket_pair sp(32 * 1024);
    control_connection a(sp.a.release(), "b");
    control_connection b(sp.b.release(), "a");
    std::string big(500 * 1000, 'x');
    for (std::size_t i = 0; i < big.size(); i += 7) {
        big[i] = static_cast<char>('a' + i % 26);
    }
    a.send(control_type::topology, json{ { "blob", big } });
    a.send(control_type::start, json::object());
    EXPECT_TRUE(a.wants_write());
    std::vector<control_msg> at_a, at_b;
    const std::size_t first = a.poll([&](control_msg&& m) { at_a.push_back(std::move(m)); });
    EXPECT_GT(first, 0u);
    EXPECT_TRUE(a.wants_write()) << "the socket buffer should not hold 500 KB";
    int b_polls = 0;
    ASSERT_TRUE(drive({ &a, &b }, { &at_a, &at_b },
                      [&] {
                          ++b_polls;
                          return at_b.size() == 2;
                      }))
      << b.close_reason();
    EXPECT_GT(b_polls, 2);
    EXPECT_EQ(get_string(at_b[0].body, "blob"), big);
    EXPECT_EQ(at_b[0].type, control_type::topology);
    EXPECT_EQ(at_b[1].type, control_type::start);
    EXPECT_FALSE(a.wants_write());
}

TEST(ControlConnection, PeerCloseIsReported) {
    socket_pair sp;
    control_connection a(sp.a.release(), "b");
    {
        control_connection b(sp.b.release(), "a");
        b.send(control_type::leaving, json{ { "why", "done" } });
        EXPECT_TRUE(b.flush(1s));
        b.close();
        EXPECT_TRUE(b.closed());
        EXPECT_EQ(b.close_reason(), "closed locally");
        EXPECT_EQ(b.fd(), -1);
    }
    std::vector<control_msg> got;
    ASSERT_TRUE(drive({ &a }, { &got }, [&] { return a.closed(); }));
    EXPECT_EQ(a.close_reason(), "connection closed");
    EXPECT_EQ(a.protocol_errors(), 0u);
    ASSERT_EQ(got.size(), 1u); // what came before the close is delivered
    EXPECT_EQ(got[0].type, control_type::leaving);
    EXPECT_EQ(a.fd(), -1);
    EXPECT_FALSE(a.wants_write());
    // Sends and polls after the close do nothing.
    a.send(control_type::heartbeat, json::object());
    EXPECT_FALSE(a.wants_write());
    EXPECT_EQ(a.poll([](control_msg&&) { FAIL(); }), 0u);
    EXPECT_FALSE(a.flush(10ms));
}

TEST(ControlConnection, PeerCloseMidFrameIsReported) {
    socket_pair sp;
    control_connection a(sp.a.release(), "b");
    const std::string frame = encode_control(control_type::hello, json{ { "w", "x" } });
    ASSERT_EQ(::write(sp.b.get(), frame.data(), frame.size() - 3),
              static_cast<ssize_t>(frame.size() - 3));
    sp.b.reset();
    std::vector<control_msg> got;
    ASSERT_TRUE(drive({ &a }, { &got }, [&] { return a.closed(); }));
    EXPECT_EQ(a.close_reason(), "connection closed mid-frame");
    EXPECT_TRUE(got.empty());
}

TEST(ControlConnection, GarbageClosesWithTheDecodersReason) {
    socket_pair sp;
    control_connection a(sp.a.release(), "worker9 at 10.0.0.9:7000");
    std::string bytes = encode_control(control_type::hello, json{ { "n", 1 } });
    bytes += std::string("\x00\x00\x00\x10garbage garbage!", 20);
    bytes += encode_control(control_type::welcome, json{ { "n", 2 } });
    ASSERT_EQ(::write(sp.b.get(), bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    std::vector<control_msg> got;
    ASSERT_TRUE(drive({ &a }, { &got }, [&] { return a.closed(); }));
    EXPECT_NE(a.close_reason().find("not a Ringtail control-channel frame"), std::string::npos)
      << a.close_reason();
    EXPECT_EQ(a.decode_error(), control_error::bad_magic);
    EXPECT_EQ(a.protocol_errors(), 1u);
    ASSERT_EQ(got.size(), 1u); // the frame before the garbage, nothing after it
    EXPECT_EQ(got[0].type, control_type::hello);
    EXPECT_EQ(a.messages_received(), 1u);
    sp.b.reset();
}

TEST(ControlConnection, CorruptChecksumCloses) {
    socket_pair sp;
    control_connection a(sp.a.release(), "b");
    std::string bytes = encode_control(control_type::ready, json{ { "n", 1 } });
    bytes[bytes.size() - 2] ^= 0x20;
    ASSERT_EQ(::write(sp.b.get(), bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    std::vector<control_msg> got;
    ASSERT_TRUE(drive({ &a }, { &got }, [&] { return a.closed(); }));
    EXPECT_EQ(a.decode_error(), control_error::bad_checksum);
    EXPECT_NE(a.close_reason().find("checksum"), std::string::npos) << a.close_reason();
    EXPECT_TRUE(got.empty());
    sp.b.reset();
}

TEST(ControlConnection, CallbackMayReplyAndClose) {
    socket_pair sp;
    control_connection a(sp.a.release(), "b");
    control_connection b(sp.b.release(), "a");
    for (std::uint64_t i = 0; i < 10; ++i) {
        a.send(control_type::query, json{ { "i", i } });
    }
    std::vector<control_msg> at_a;
    std::uint64_t b_seen = 0;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (at_a.size() < 5) {
        ASSERT_LT(std::chrono::steady_clock::now(), deadline);
        a.poll([&](control_msg&& m) { at_a.push_back(std::move(m)); });
        b.poll([&](control_msg&& m) {
            ++b_seen;
            b.send(control_type::query_reply, m.body);
            if (b_seen == 5) {
                b.flush(1s);
                b.close(); // nothing more is delivered to this callback
            }
        });
        ::poll(nullptr, 0, 1);
    }
    EXPECT_EQ(b_seen, 5u);
    EXPECT_TRUE(b.closed());
    for (std::uint64_t i = 0; i < 5; ++i) {
        EXPECT_EQ(get_u64(at_a[i].body, "i"), i);
    }
    std::vector<control_msg> more;
    ASSERT_TRUE(drive({ &a }, { &more }, [&] { return a.closed(); }));
    EXPECT_EQ(a.close_reason(), "connection closed");
}

TEST(ControlConnection, FlushGivesUpWhenThePeerDoesNotRead) {
    socket_pair sp(16 * 1024);
    control_connection a(sp.a.release(), "b");
    a.send(control_type::topology, json{ { "blob", std::string(900'000, 'x') } });
    const auto start = std::chrono::steady_clock::now();
    EXPECT_FALSE(a.flush(50ms));
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_GE(took, 45ms);
    EXPECT_LT(took, 2s);
    EXPECT_TRUE(a.wants_write());
    EXPECT_FALSE(a.closed());
    sp.b.reset();
}

TEST(ControlConnection, UnreadOutputBeyondTheBoundCloses) {
    socket_pair sp(16 * 1024);
    control_connection a(sp.a.release(), "b", control_default_max_frame, 100'000);
    const json body{ { "blob", std::string(10'000, 'x') } };
    for (int i = 0; i < 200 && !a.closed(); ++i) {
        a.send(control_type::heartbeat, body);
        a.poll([](control_msg&&) {});
    }
    ASSERT_TRUE(a.closed());
    EXPECT_NE(a.close_reason().find("not reading"), std::string::npos) << a.close_reason();
    sp.b.reset();

    // One message larger than the bound is taken when nothing waits before it; the bound applies
    // to the backlog a send finds.
    socket_pair sp2(16 * 1024);
    control_connection c(sp2.a.release(), "d", control_default_max_frame, 1000);
    c.send(control_type::topology, json{ { "blob", std::string(100'000, 'x') } });
    EXPECT_FALSE(c.closed());
    EXPECT_GT(c.queued_bytes(), 100'000u);
    c.send(control_type::heartbeat, json::object());
    EXPECT_TRUE(c.closed());
    sp2.b.reset();
}

TEST(ControlConnection, PeerGoneBeforeAWriteIsReported) {
    socket_pair sp;
    control_connection a(sp.a.release(), "b");
    a.send(control_type::heartbeat, json::object());
    sp.b.reset();
    std::vector<control_msg> got;
    ASSERT_TRUE(drive({ &a }, { &got }, [&] { return a.closed(); }));
    // A Unix socket reports the peer's close as EOF or EPIPE, depending on which comes first.
    EXPECT_EQ(a.close_reason(), "connection closed");
}

TEST(ControlConnection, ConnectsOverLoopback) {
    auto listener = listen_tcp({ "127.0.0.1", 0 });
    ASSERT_TRUE(listener.ok()) << listener.err().message;
    unique_fd listening(*listener);
    const std::uint16_t port = bound_port(listening.get());
    auto fd = connect_tcp_blocking({ "127.0.0.1", port }, 2s);
    ASSERT_TRUE(fd.ok()) << fd.err().message;
    pollfd p{ listening.get(), POLLIN, 0 };
    ASSERT_EQ(::poll(&p, 1, 2000), 1);
    const int accepted = ::accept4(listening.get(), nullptr, nullptr, SOCK_CLOEXEC);
    ASSERT_GE(accepted, 0);
    control_connection client(*fd, "initializer");
    control_connection server(accepted, "worker2");
    client.send(control_type::hello, json{ { "worker", "worker2" } });
    std::vector<control_msg> at_client, at_server;
    ASSERT_TRUE(drive({ &client, &server }, { &at_client, &at_server },
                      [&] { return at_server.size() == 1; }));
    EXPECT_EQ(get_string(at_server[0].body, "worker"), "worker2");
    listening.reset();

    // Nobody listens there any more: refused, one line naming the address.
    auto refused = connect_tcp_blocking({ "127.0.0.1", port }, 2s);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.err().code, errc::unavailable);
    EXPECT_NE(refused.err().message.find("cannot connect to 127.0.0.1:" + std::to_string(port)),
              std::string::npos)
      << refused.err().message;
}

} // namespace
} // namespace ringtail::net
