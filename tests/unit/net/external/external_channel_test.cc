// The external channel over loopback with a fake dispatch: several requests per connection, many
// connections at once, replies in order on the right connection, and bad clients (garbage,
// oversized or unknown frames, half frames) closed alone while the others are served.
#include "net/external/external_channel.h"

#include <arpa/inet.h>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <netinet/in.h>
#include <optional>
#include <string>
#include <sys/socket.h>
#include <sys/time.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include "engine/fd.h"
#include "net/io/event_loop.h"

namespace ringtail::net {
namespace {

using namespace std::chrono_literals;

// A blocking client socket with a 5 s receive timeout.
class client {
public:
    explicit client(std::uint16_t port) {
        _owned.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        _fd = _owned.get();
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(::connect(_fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
        timeval tv{ 5, 0 };
        ::setsockopt(_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    ~client() = default;
    client(const client&) = delete;
    client& operator=(const client&) = delete;

    void send(const std::string& bytes) {
        ASSERT_EQ(::send(_fd, bytes.data(), bytes.size(), MSG_NOSIGNAL),
                  static_cast<ssize_t>(bytes.size()));
    }
    void request(std::uint16_t id, std::string_view body) { send(encode_external_frame(id, body)); }
    void shutdown_write() { ::shutdown(_fd, SHUT_WR); }

    // The next frame; nullopt on EOF or timeout.
    std::optional<external_frame> next() {
        while (_frames.empty()) {
            char buf[4096];
            const ssize_t n = ::recv(_fd, buf, sizeof buf, 0);
            if (n <= 0) {
                return std::nullopt;
            }
            if (_decoder.feed(std::string_view(buf, static_cast<std::size_t>(n)), _frames) !=
                external_decode_status::ok) {
                return std::nullopt;
            }
        }
        external_frame f = std::move(_frames.front());
        _frames.erase(_frames.begin());
        return f;
    }
    // True when the server closed the connection (EOF or reset) with nothing more to read.
    bool closed_by_server() {
        char c;
        const ssize_t n = ::recv(_fd, &c, 1, 0);
        return n == 0 || (n < 0 && errno == ECONNRESET);
    }

private:
    unique_fd _owned;
    int _fd = -1;
    external_decoder _decoder{ 64u << 20 };
    std::vector<external_frame> _frames;
};

// Echoes id -> id + 1 with the body reversed; 1 has no reply; 99 closes the connection.
struct fake {
    std::atomic<int> calls{ 0 };
    std::atomic<int> silent{ 0 };
    external_dispatch dispatch() {
        return [this](std::uint16_t id, std::string_view body, const std::string& peer) {
            ++calls;
            EXPECT_EQ(peer.rfind("127.0.0.1:", 0), 0u) << peer;
            if (id == 1) {
                ++silent;
                return external_outcome::none();
            }
            if (id == 99) {
                return external_outcome::close("unknown id 99");
            }
            if (id == 50) {
                std::this_thread::sleep_for(500ms); // as a state query waits for the shards
            }
            return external_outcome::reply(static_cast<std::uint16_t>(id + 1),
                                           std::string(body.rbegin(), body.rend()));
        };
    }
};

std::unique_ptr<external_channel> open_channel(fake& f) {
    auto ch = external_channel::open(host_port{ "127.0.0.1", 0 }, f.dispatch());
    EXPECT_TRUE(ch.ok());
    return std::move(ch.value());
}

TEST(external_channel, several_requests_per_connection_in_order) {
    fake f;
    auto ch = open_channel(f);
    ASSERT_NE(ch->bound_port(), 0);
    client c(ch->bound_port());
    // One at a time...
    c.request(9, "abc");
    EXPECT_EQ(c.next(), (external_frame{ 10, "cba" }));
    // ...and pipelined in one write, with a silent one in between.
    std::string batch = encode_external_frame(7, "12") + encode_external_frame(1, "print") +
                        encode_external_frame(12, "") + encode_external_frame(17, "xy");
    c.send(batch);
    EXPECT_EQ(c.next(), (external_frame{ 8, "21" }));
    EXPECT_EQ(c.next(), (external_frame{ 13, "" }));
    EXPECT_EQ(c.next(), (external_frame{ 18, "yx" }));
    EXPECT_EQ(f.silent.load(), 1);
    EXPECT_EQ(ch->requests_served(), 5u);
    EXPECT_EQ(ch->connections_closed_for_errors(), 0u);
}

TEST(external_channel, two_connections_interleaved) {
    fake f;
    auto ch = open_channel(f);
    client a(ch->bound_port());
    client b(ch->bound_port());
    for (int i = 0; i < 20; ++i) {
        a.request(7, "a" + std::to_string(i));
        b.request(21, "b" + std::to_string(i));
    }
    for (int i = 0; i < 20; ++i) {
        const std::string ra = "a" + std::to_string(i), rb = "b" + std::to_string(i);
        EXPECT_EQ(a.next(), (external_frame{ 8, std::string(ra.rbegin(), ra.rend()) }));
        EXPECT_EQ(b.next(), (external_frame{ 22, std::string(rb.rbegin(), rb.rend()) }));
    }
}

TEST(external_channel, garbage_closes_only_its_connection) {
    fake f;
    auto ch = open_channel(f);
    client good(ch->bound_port());
    good.request(9, "before");
    EXPECT_EQ(good.next()->id, 10);
    {
        // A request, then L = 1 (no room for an id): the request is answered, then the close.
        client bad(ch->bound_port());
        bad.send(encode_external_frame(9, "ok") + std::string("\x00\x00\x00\x01\x00", 5));
        EXPECT_EQ(bad.next(), (external_frame{ 10, "ko" }));
        EXPECT_TRUE(bad.closed_by_server());
    }
    {
        // A header announcing more than the limit.
        client big(ch->bound_port());
        big.send(std::string("\x10\x00\x00\x00\x00\x09", 6));
        EXPECT_TRUE(big.closed_by_server());
    }
    {
        // An id the dispatch refuses.
        client unknown(ch->bound_port());
        unknown.request(99, "");
        EXPECT_TRUE(unknown.closed_by_server());
    }
    EXPECT_EQ(ch->connections_closed_for_errors(), 3u);
    good.request(9, "after");
    EXPECT_EQ(good.next(), (external_frame{ 10, "retfa" }));
    client fresh(ch->bound_port());
    fresh.request(14, "");
    EXPECT_EQ(fresh.next(), (external_frame{ 15, "" }));
}

TEST(external_channel, half_frame_does_not_block_others) {
    fake f;
    auto ch = open_channel(f);
    client slow(ch->bound_port());
    const std::string frame = encode_external_frame(9, "slow");
    slow.send(frame.substr(0, 7)); // header and one byte, then nothing for a while
    client other(ch->bound_port());
    const auto start = std::chrono::steady_clock::now();
    other.request(9, "quick");
    EXPECT_EQ(other.next(), (external_frame{ 10, "kciuq" }));
    EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
    // The slow one finishes its frame and is answered.
    slow.send(frame.substr(7));
    EXPECT_EQ(slow.next(), (external_frame{ 10, "wols" }));
}

TEST(external_channel, a_flooding_client_does_not_starve_others) {
    fake f;
    auto ch = open_channel(f);
    client hog(ch->bound_port());
    std::string flood;
    for (int i = 0; i < 50'000; ++i) {
        append_external_frame(flood, 7, "flood");
    }
    hog.send(flood); // and never read the replies
    client other(ch->bound_port());
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 10; ++i) {
        other.request(9, "me");
        EXPECT_EQ(other.next(), (external_frame{ 10, "em" }));
    }
    EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

TEST(external_channel, answers_what_arrived_before_the_client_half_closes) {
    fake f;
    auto ch = open_channel(f);
    client c(ch->bound_port());
    c.send(encode_external_frame(7, "x") + encode_external_frame(9, "y"));
    c.shutdown_write();
    EXPECT_EQ(c.next(), (external_frame{ 8, "x" }));
    EXPECT_EQ(c.next(), (external_frame{ 10, "y" }));
    EXPECT_TRUE(c.closed_by_server());
    EXPECT_EQ(ch->connections_closed_for_errors(), 0u);
}

TEST(external_channel, port_in_use_is_unavailable) {
    fake f;
    auto first = open_channel(f);
    auto second =
      external_channel::open(host_port{ "127.0.0.1", first->bound_port() }, f.dispatch());
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.err().code, errc::unavailable);
}

// Hostile clients (net/README.md): more idle connections than the 64 slots there were (the 65th
// client then waited in the backlog for ever) leave a request's reply as prompt as ever.
TEST(external_channel,
     a_request_is_answered_while_more_idle_connections_than_the_old_limit_are_held) {
    fake f;
    auto ch = open_channel(f);
    std::vector<std::unique_ptr<client>> idle;
    for (int i = 0; i < 150; ++i) {
        idle.push_back(std::make_unique<client>(ch->bound_port()));
        if (i % 3 == 0) {
            idle.back()->send(std::string("\0\0", 2)); // half a length: waiting for its frame
        }
    }
    client c(ch->bound_port());
    const auto start = std::chrono::steady_clock::now();
    c.request(9, "abc");
    EXPECT_EQ(c.next(), (external_frame{ 10, "cba" }));
    EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
    EXPECT_EQ(ch->connections_refused(), 0u);
}

// A connection with nothing in flight is closed after the idle timeout (short here; 60 s by
// default), quietly: it is no error. One that has not sent its first frame is too.
TEST(external_channel, an_idle_connection_is_closed_after_the_idle_timeout) {
    fake f;
    external_channel::limits lim;
    lim.idle_timeout_ns = 200'000'000;
    auto opened = external_channel::open(host_port{ "127.0.0.1", 0 }, f.dispatch(), lim);
    ASSERT_TRUE(opened.ok());
    auto& ch = *opened;
    client silent(ch->bound_port());
    client served(ch->bound_port());
    served.request(9, "abc");
    EXPECT_EQ(served.next(), (external_frame{ 10, "cba" }));
    const auto start = std::chrono::steady_clock::now();
    EXPECT_TRUE(silent.closed_by_server());
    EXPECT_TRUE(served.closed_by_server());
    EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
    EXPECT_EQ(ch->connections_closed_idle(), 2u);
    EXPECT_EQ(ch->connections_closed_for_errors(), 0u);
}

// The cap refuses the newest connection, closing it at once.
TEST(external_channel, the_cap_refuses_the_newest_connection) {
    fake f;
    external_channel::limits lim;
    lim.max_connections = 3;
    auto opened = external_channel::open(host_port{ "127.0.0.1", 0 }, f.dispatch(), lim);
    ASSERT_TRUE(opened.ok());
    auto& ch = *opened;
    std::vector<std::unique_ptr<client>> held;
    for (int i = 0; i < 3; ++i) {
        held.push_back(std::make_unique<client>(ch->bound_port()));
    }
    testing::internal::CaptureStderr();
    client refused(ch->bound_port());
    EXPECT_TRUE(refused.closed_by_server());
    const std::string log = testing::internal::GetCapturedStderr();
    EXPECT_NE(log.find("external channel: 3 connections open, the limit"), std::string::npos)
      << log;
    EXPECT_EQ(ch->connections_refused(), 1u);
    // Those held are served.
    held[0]->request(9, "x");
    EXPECT_EQ(held[0]->next(), (external_frame{ 10, "x" }));
}

// A request that blocks (a state query waiting for the shards) runs off the loop: the loop it
// shares with the rest of the control plane goes on turning meanwhile.
TEST(external_channel, a_blocking_request_does_not_hold_the_shared_loop) {
    fake f;
    event_loop_thread control;
    auto opened =
      external_channel::open(control.loop(), host_port{ "127.0.0.1", 0 }, f.dispatch(), {});
    ASSERT_TRUE(opened.ok());
    auto& ch = *opened;
    client slow(ch->bound_port());
    slow.request(50, "zz");
    std::this_thread::sleep_for(50ms); // the request is with the request thread now
    const auto start = std::chrono::steady_clock::now();
    control.loop().call([] {});
    EXPECT_LT(std::chrono::steady_clock::now() - start, 200ms);
    EXPECT_EQ(slow.next(), (external_frame{ 51, "zz" }));
}

} // namespace
} // namespace ringtail::net
