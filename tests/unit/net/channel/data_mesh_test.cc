// Tests of the data mesh on loopback: full meshes in any start order, and HELLOs that are
// foreign, misnumbered or duplicated are refused while the real workers still get in.
#include "net/channel/data_mesh.h"

#include <arpa/inet.h>
#include <atomic>
#include <netinet/in.h>
#include <optional>
#include <poll.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include <gtest/gtest.h>

#include "net/channel/data_codec.h"
#include "net/io/tcp_listener.h"

namespace ringtail::net {
namespace {

using namespace std::chrono_literals;
using mesh_result = std::optional<result<std::vector<int>>>;

int listen_loopback(std::uint16_t port = 0) {
    auto l = listen_tcp({ "127.0.0.1", port });
    EXPECT_TRUE(l.ok()) << l.err().message;
    return l.ok() ? *l : -1;
}

// A blocking client socket with a receive timeout, so that a test never hangs on it.
int connect_loopback(std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    timeval tv{ 5, 0 };
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

void send_all(int fd, const std::string& s) {
    ASSERT_EQ(::send(fd, s.data(), s.size(), MSG_NOSIGNAL), static_cast<ssize_t>(s.size()));
}

// Reads until EOF (or the receive timeout): what the other side sent before closing.
std::string read_to_eof(int fd) {
    std::string got;
    char buf[256];
    for (;;) {
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
            return got;
        }
        got.append(buf, static_cast<std::size_t>(n));
    }
}

std::string read_exactly(int fd, std::size_t size) {
    std::string got;
    char buf[256];
    while (got.size() < size) {
        ssize_t n = ::recv(fd, buf, std::min(sizeof buf, size - got.size()), 0);
        if (n <= 0) {
            break;
        }
        got.append(buf, static_cast<std::size_t>(n));
    }
    return got;
}

// Waits for a byte on a non-blocking fd.
std::string read_nonblocking(int fd, std::size_t size) {
    std::string got;
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (got.size() < size && std::chrono::steady_clock::now() < deadline) {
        pollfd p{ fd, POLLIN, 0 };
        ::poll(&p, 1, 100);
        char buf[256];
        ssize_t n = ::recv(fd, buf, std::min(sizeof buf, size - got.size()), 0);
        if (n > 0) {
            got.append(buf, static_cast<std::size_t>(n));
        } else if (n == 0) {
            break;
        }
    }
    return got;
}

std::string hello_frame(std::uint64_t token, std::uint32_t index, std::uint32_t count) {
    std::string out;
    append_hello_frame(out, 0, { token, index, count });
    return out;
}

std::optional<data_hello> decode_hello(const std::string& bytes) {
    std::optional<data_hello> hello;
    data_frame_decoder decoder;
    decoder.feed(std::as_bytes(std::span(bytes.data(), bytes.size())),
                 [&](const data_frame& f) { hello = parse_hello(f); });
    return hello;
}

void close_all(const std::vector<int>& fds) {
    for (int fd : fds) {
        if (fd >= 0) {
            ::close(fd);
        }
    }
}

// Runs build_data_mesh for every worker whose listener is given, one thread each.
std::vector<mesh_result> run_mesh(const std::vector<int>& listeners,
                                  const std::vector<host_port>& addresses,
                                  const std::vector<std::uint64_t>& tokens,
                                  std::chrono::milliseconds timeout) {
    std::vector<mesh_result> results(listeners.size());
    std::vector<std::thread> threads;
    for (std::uint32_t i = 0; i < listeners.size(); ++i) {
        threads.emplace_back([&, i] {
            data_mesh_config config{ tokens[i], i, addresses, timeout };
            results[i] = build_data_mesh(listeners[i], config);
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    return results;
}

TEST(data_mesh, a_single_worker_needs_no_connections) {
    auto r = build_data_mesh(-1, { 1, 0, { { "127.0.0.1", 1 } }, 1s });
    ASSERT_TRUE(r.ok()) << r.err().message;
    EXPECT_EQ(*r, std::vector<int>{ -1 });
}

TEST(data_mesh, an_index_outside_the_cluster_is_a_usage_error) {
    auto r = build_data_mesh(-1, { 1, 2, { { "127.0.0.1", 1 }, { "127.0.0.1", 2 } }, 1s });
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.err().code, errc::usage);
}

TEST(data_mesh, three_workers_connect_every_pair) {
    std::vector<int> listeners;
    std::vector<host_port> addresses;
    for (int i = 0; i < 3; ++i) {
        listeners.push_back(listen_loopback());
        addresses.push_back({ "127.0.0.1", bound_port(listeners.back()) });
    }
    auto results = run_mesh(listeners, addresses, { 7, 7, 7 }, 5s);
    close_all(listeners);
    std::vector<std::vector<int>> fds;
    for (auto& r : results) {
        ASSERT_TRUE(r->ok()) << r->err().message;
        fds.push_back(r->value());
    }
    for (std::uint32_t i = 0; i < 3; ++i) {
        ASSERT_EQ(fds[i].size(), 3u);
        EXPECT_EQ(fds[i][i], -1);
        for (std::uint32_t j = 0; j < 3; ++j) {
            if (i == j) {
                continue;
            }
            // fds[i][j] and fds[j][i] are the two ends of one connection, with nothing left
            // unread after the HELLOs.
            std::string note = std::to_string(i) + "->" + std::to_string(j);
            send_all(fds[i][j], note);
            EXPECT_EQ(read_nonblocking(fds[j][i], note.size()), note);
        }
    }
    for (auto& f : fds) {
        close_all(f);
    }
}

TEST(data_mesh, a_worker_not_listening_yet_is_retried) {
    // Find a free port, free it again, and start worker 1 before worker 0 listens there.
    int probe = listen_loopback();
    std::uint16_t port0 = bound_port(probe);
    ::close(probe);
    int listener1 = listen_loopback();
    std::vector<host_port> addresses{ { "127.0.0.1", port0 },
                                      { "127.0.0.1", bound_port(listener1) } };
    mesh_result r1;
    std::thread worker1([&] { r1 = build_data_mesh(listener1, { 9, 1, addresses, 5s }); });
    std::this_thread::sleep_for(300ms);
    int listener0 = listen_loopback(port0);
    auto r0 = build_data_mesh(listener0, { 9, 0, addresses, 5s });
    worker1.join();
    ::close(listener0);
    ::close(listener1);
    ASSERT_TRUE(r0.ok()) << r0.err().message;
    ASSERT_TRUE(r1->ok()) << r1->err().message;
    send_all(r1->value()[0], "late");
    EXPECT_EQ(read_nonblocking(r0.value()[1], 4), "late");
    close_all(*r0);
    close_all(r1->value());
}

TEST(data_mesh, a_wrong_cluster_token_is_refused_and_the_mesh_times_out) {
    std::vector<int> listeners{ listen_loopback(), listen_loopback() };
    std::vector<host_port> addresses{ { "127.0.0.1", bound_port(listeners[0]) },
                                      { "127.0.0.1", bound_port(listeners[1]) } };
    auto start = std::chrono::steady_clock::now();
    auto results = run_mesh(listeners, addresses, { 0xAAAA, 0xBBBB }, 600ms);
    auto took = std::chrono::steady_clock::now() - start;
    close_all(listeners);
    EXPECT_LT(took, 3s);
    ASSERT_FALSE(results[0]->ok());
    ASSERT_FALSE(results[1]->ok());
    const auto& e0 = results[0]->err();
    const auto& e1 = results[1]->err();
    EXPECT_EQ(e0.code, errc::unavailable);
    EXPECT_EQ(e1.code, errc::unavailable);
    // The accepting side names who never came and why it refused what came.
    EXPECT_NE(e0.message.find("worker 1 never connected"), std::string::npos) << e0.message;
    EXPECT_NE(e0.message.find("cluster token 0xbbbb is not this cluster's 0xaaaa"),
              std::string::npos)
      << e0.message;
    // The connecting side learns the reason from the refusing worker's HELLO.
    EXPECT_NE(e1.message.find("worker 0 at " + addresses[0].to_string()), std::string::npos)
      << e1.message;
    EXPECT_NE(e1.message.find("cluster token 0xaaaa is not this cluster's 0xbbbb"),
              std::string::npos)
      << e1.message;
}

TEST(data_mesh, strangers_are_refused_and_the_real_workers_still_get_in) {
    constexpr std::uint64_t token = 0xC0FFEE;
    int listener = listen_loopback();
    std::uint16_t port = bound_port(listener);
    std::vector<host_port> addresses{ { "127.0.0.1", port },
                                      { "127.0.0.1", 1 },
                                      { "127.0.0.1", 2 } };
    mesh_result r0;
    std::thread worker0([&] { r0 = build_data_mesh(listener, { token, 0, addresses, 5s }); });

    // Another protocol: closed, no answer.
    int garbage = connect_loopback(port);
    send_all(garbage, std::string(64, 'G'));
    EXPECT_EQ(read_to_eof(garbage), "");
    ::close(garbage);
    // A worker index that does not connect to worker 0: closed, no answer.
    int misnumbered = connect_loopback(port);
    send_all(misnumbered, hello_frame(token, 7, 3));
    EXPECT_EQ(read_to_eof(misnumbered), "");
    ::close(misnumbered);
    // Another cluster, and another cluster size: answered with worker 0's HELLO, then closed.
    for (auto [t, n] : { std::pair<std::uint64_t, std::uint32_t>{ 0xBAD, 3 }, { token, 4 } }) {
        int foreign = connect_loopback(port);
        send_all(foreign, hello_frame(t, 1, n));
        auto answer = decode_hello(read_to_eof(foreign));
        ASSERT_TRUE(answer.has_value());
        EXPECT_EQ(*answer, (data_hello{ token, 0, 3 }));
        ::close(foreign);
    }
    // Worker 1, whose first bytes after the HELLO must stay in the socket for the transport.
    int worker1 = connect_loopback(port);
    send_all(worker1, hello_frame(token, 1, 3) + "after the hello");
    EXPECT_EQ(decode_hello(read_exactly(worker1, data_hello_frame_bytes)),
              (data_hello{ token, 0, 3 }));
    // A second worker 1 while the first is connected: closed, no answer.
    int twin = connect_loopback(port);
    send_all(twin, hello_frame(token, 1, 3));
    EXPECT_EQ(read_to_eof(twin), "");
    ::close(twin);
    int worker2 = connect_loopback(port);
    send_all(worker2, hello_frame(token, 2, 3));
    EXPECT_EQ(decode_hello(read_exactly(worker2, data_hello_frame_bytes)),
              (data_hello{ token, 0, 3 }));

    worker0.join();
    ::close(listener);
    ASSERT_TRUE(r0->ok()) << r0->err().message;
    const auto& fds = r0->value();
    EXPECT_EQ(read_nonblocking(fds[1], 15), "after the hello");
    send_all(fds[2], "to two");
    EXPECT_EQ(read_exactly(worker2, 6), "to two");
    close_all(fds);
    ::close(worker1);
    ::close(worker2);
}

TEST(data_mesh, a_connector_checks_the_answer) {
    constexpr std::uint64_t token = 0xFACE;
    // A fake worker 0 that answers every HELLO as if it were worker 3.
    int fake = listen_loopback();
    int listener1 = listen_loopback();
    std::vector<host_port> addresses{ { "127.0.0.1", bound_port(fake) },
                                      { "127.0.0.1", bound_port(listener1) } };
    std::atomic<bool> done{ false };
    mesh_result r1;
    std::thread worker1([&] {
        r1 = build_data_mesh(listener1, { token, 1, addresses, 600ms });
        done = true;
    });
    int answered = 0;
    while (!done) {
        pollfd p{ fake, POLLIN, 0 };
        if (::poll(&p, 1, 20) <= 0) {
            continue;
        }
        int c = ::accept4(fake, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) {
            continue;
        }
        timeval tv{ 1, 0 };
        ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        auto hello = decode_hello(read_exactly(c, data_hello_frame_bytes));
        EXPECT_EQ(hello, (data_hello{ token, 1, 2 }));
        send_all(c, hello_frame(token, 3, 2));
        ++answered;
        ::close(c);
    }
    worker1.join();
    ::close(fake);
    ::close(listener1);
    EXPECT_GE(answered, 2); // retried after the wrong answer
    ASSERT_FALSE(r1->ok());
    EXPECT_EQ(r1->err().code, errc::unavailable);
    EXPECT_NE(r1->err().message.find("answered the HELLO wrongly: it says it is worker 3"),
              std::string::npos)
      << r1->err().message;
}

} // namespace
} // namespace ringtail::net
