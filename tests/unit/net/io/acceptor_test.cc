// Tests of the acceptor: connections on several listeners reach the callback with their listener
// index and peer, and stop() is prompt and restartable.
#include "net/io/acceptor.h"

#include <arpa/inet.h>
#include <chrono>
#include <fcntl.h>
#include <map>
#include <mutex>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include <gtest/gtest.h>

#include "engine/fd.h"
#include "net/io/tcp_listener.h"

namespace ringtail::net {
namespace {

struct accepted_connection {
    std::size_t index;
    int fd;
    std::string peer;
};

int connect_blocking(std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    return fd;
}

std::uint16_t local_port(int fd) {
    sockaddr_in sa{};
    socklen_t len = sizeof sa;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    return ntohs(sa.sin_port);
}

TEST(acceptor, hands_connections_from_each_listener_to_the_callback) {
    auto a = listen_tcp({ "127.0.0.1", 0 });
    auto b = listen_tcp({ "127.0.0.1", 0 });
    ASSERT_TRUE(a.ok() && b.ok());
    std::uint16_t port_a = bound_port(*a);
    std::uint16_t port_b = bound_port(*b);

    std::mutex mutex;
    std::vector<accepted_connection> got;
    acceptor acc({ *a, *b }, [&](std::size_t index, int fd, std::string peer) {
        std::lock_guard lock(mutex);
        got.push_back({ index, fd, std::move(peer) });
    });
    acc.start();

    int c1 = connect_blocking(port_b);
    int c2 = connect_blocking(port_a);
    int c3 = connect_blocking(port_b);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    for (;;) {
        {
            std::lock_guard lock(mutex);
            if (got.size() == 3 || std::chrono::steady_clock::now() > deadline) {
                break;
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    acc.stop();
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(acc.accepted(), 3u);

    std::map<std::string, std::size_t> index_by_peer;
    for (const auto& c : got) {
        index_by_peer[c.peer] = c.index;
        EXPECT_NE(::fcntl(c.fd, F_GETFL) & O_NONBLOCK, 0);
        EXPECT_NE(::fcntl(c.fd, F_GETFD) & FD_CLOEXEC, 0);
        int nodelay = 0;
        socklen_t len = sizeof nodelay;
        ::getsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &len);
        EXPECT_NE(nodelay, 0);
        const unique_fd owned(c.fd);
    }
    auto peer = [](int fd) { return "127.0.0.1:" + std::to_string(local_port(fd)); };
    EXPECT_EQ(index_by_peer.at(peer(c1)), 1u);
    EXPECT_EQ(index_by_peer.at(peer(c2)), 0u);
    EXPECT_EQ(index_by_peer.at(peer(c3)), 1u);
    for (int fd : { c1, c2, c3 }) {
        const unique_fd owned(fd);
    }
}

TEST(acceptor, stop_is_prompt_idempotent_and_safe_without_start) {
    auto a = listen_tcp({ "127.0.0.1", 0 });
    ASSERT_TRUE(a.ok());
    {
        acceptor idle({}, [](std::size_t, int fd, std::string) { const unique_fd owned(fd); });
        idle.stop();
    }
    acceptor acc({ *a }, [](std::size_t, int fd, std::string) { const unique_fd owned(fd); });
    acc.start();
    auto before = std::chrono::steady_clock::now();
    acc.stop();
    acc.stop();
    EXPECT_LT(std::chrono::steady_clock::now() - before, std::chrono::seconds(1));
    // Restartable: the listening fd is still open until destruction.
    acc.start();
    int c = connect_blocking(bound_port(*a));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (acc.accepted() == 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    EXPECT_EQ(acc.accepted(), 1u);
    acc.stop();
    const unique_fd owned(c);
}

} // namespace
} // namespace ringtail::net
