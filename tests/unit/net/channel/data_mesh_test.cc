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

#include "engine/fd.h"
#include "net/channel/data_codec.h"
#include "net/io/tcp_listener.h"

namespace ringtail::net {
namespace {

using namespace std::chrono_literals;
using mesh_result = std::optional<result<std::vector<int>>>;

unique_fd listen_loopback(std::uint16_t port = 0) {
    auto l = listen_tcp({ "127.0.0.1", port });
    EXPECT_TRUE(l.ok()) << l.err().message;
    return unique_fd(l.ok() ? *l : -1);
}

// A blocking client socket with a receive timeout, so that a test never hangs on it.
unique_fd connect_loopback(std::uint16_t port) {
    unique_fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    timeval tv{ 5, 0 };
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
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

// Takes ownership of the connections build_data_mesh hands over (-1 at the worker itself).
std::vector<unique_fd> own_all(const std::vector<int>& fds) {
    std::vector<unique_fd> owned;
    for (int fd : fds) {
        owned.emplace_back(fd);
    }
    return owned;
}

// Runs build_data_mesh for every worker whose listener is given, one thread each.
std::vector<mesh_result> run_mesh(const std::vector<unique_fd>& listeners,
                                  const std::vector<host_port>& addresses,
                                  const std::vector<std::uint64_t>& tokens,
                                  std::chrono::milliseconds timeout) {
    std::vector<mesh_result> results(listeners.size());
    std::vector<std::thread> threads;
    for (std::uint32_t i = 0; i < listeners.size(); ++i) {
        threads.emplace_back([&, i] {
            data_mesh_config config{ tokens[i], i, addresses, timeout };
            results[i] = build_data_mesh(listeners[i].get(), config);
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
    std::vector<unique_fd> listeners;
    std::vector<host_port> addresses;
    for (int i = 0; i < 3; ++i) {
        listeners.push_back(listen_loopback());
        addresses.push_back({ "127.0.0.1", bound_port(listeners.back().get()) });
    }
    auto results = run_mesh(listeners, addresses, { 7, 7, 7 }, 5s);
    listeners.clear();
    std::vector<std::vector<unique_fd>> fds;
    for (auto& r : results) {
        ASSERT_TRUE(r->ok()) << r->err().message;
        fds.push_back(own_all(r->value()));
    }
    for (std::uint32_t i = 0; i < 3; ++i) {
        ASSERT_EQ(fds[i].size(), 3u);
        EXPECT_EQ(fds[i][i].get(), -1);
        for (std::uint32_t j = 0; j < 3; ++j) {
            if (i == j) {
                continue;
            }
            // fds[i][j] and fds[j][i] are the two ends of one connection, with nothing left
            // unread after the HELLOs.
            std::string note = std::to_string(i) + "->" + std::to_string(j);
            send_all(fds[i][j].get(), note);
            EXPECT_EQ(read_nonblocking(fds[j][i].get(), note.size()), note);
        }
    }
}

TEST(data_mesh, a_worker_not_listening_yet_is_retried) {
    // Find a free port, free it again, and start worker 1 before worker 0 listens there.
    unique_fd probe = listen_loopback();
    std::uint16_t port0 = bound_port(probe.get());
    probe.reset();
    unique_fd listener1 = listen_loopback();
    std::vector<host_port> addresses{ { "127.0.0.1", port0 },
                                      { "127.0.0.1", bound_port(listener1.get()) } };
    mesh_result r1;
    std::thread worker1([&] { r1 = build_data_mesh(listener1.get(), { 9, 1, addresses, 5s }); });
    std::this_thread::sleep_for(300ms);
    unique_fd listener0 = listen_loopback(port0);
    auto r0 = build_data_mesh(listener0.get(), { 9, 0, addresses, 5s });
    worker1.join();
    listener0.reset();
    listener1.reset();
    ASSERT_TRUE(r0.ok()) << r0.err().message;
    ASSERT_TRUE(r1->ok()) << r1->err().message;
    const auto fds0 = own_all(*r0);
    const auto fds1 = own_all(r1->value());
    send_all(fds1[0].get(), "late");
    EXPECT_EQ(read_nonblocking(fds0[1].get(), 4), "late");
}

TEST(data_mesh, a_wrong_cluster_token_is_refused_and_the_mesh_times_out) {
    std::vector<unique_fd> listeners;
    listeners.push_back(listen_loopback());
    listeners.push_back(listen_loopback());
    std::vector<host_port> addresses{ { "127.0.0.1", bound_port(listeners[0].get()) },
                                      { "127.0.0.1", bound_port(listeners[1].get()) } };
    auto start = std::chrono::steady_clock::now();
    auto results = run_mesh(listeners, addresses, { 0xAAAA, 0xBBBB }, 600ms);
    auto took = std::chrono::steady_clock::now() - start;
    listeners.clear();
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
    unique_fd listener = listen_loopback();
    std::uint16_t port = bound_port(listener.get());
    std::vector<host_port> addresses{ { "127.0.0.1", port },
                                      { "127.0.0.1", 1 },
                                      { "127.0.0.1", 2 } };
    mesh_result r0;
    std::thread worker0([&] { r0 = build_data_mesh(listener.get(), { token, 0, addresses, 5s }); });

    // Another protocol: closed, no answer.
    unique_fd garbage = connect_loopback(port);
    send_all(garbage.get(), std::string(64, 'G'));
    EXPECT_EQ(read_to_eof(garbage.get()), "");
    garbage.reset();
    // A worker index that does not connect to worker 0: closed, no answer.
    unique_fd misnumbered = connect_loopback(port);
    send_all(misnumbered.get(), hello_frame(token, 7, 3));
    EXPECT_EQ(read_to_eof(misnumbered.get()), "");
    misnumbered.reset();
    // Another cluster, and another cluster size: answered with worker 0's HELLO, then closed.
    for (auto [t, n] : { std::pair<std::uint64_t, std::uint32_t>{ 0xBAD, 3 }, { token, 4 } }) {
        unique_fd foreign = connect_loopback(port);
        send_all(foreign.get(), hello_frame(t, 1, n));
        auto answer = decode_hello(read_to_eof(foreign.get()));
        ASSERT_TRUE(answer.has_value());
        EXPECT_EQ(*answer, (data_hello{ token, 0, 3 }));
    }
    // Worker 1, whose first bytes after the HELLO must stay in the socket for the transport.
    unique_fd worker1 = connect_loopback(port);
    send_all(worker1.get(), hello_frame(token, 1, 3) + "after the hello");
    EXPECT_EQ(decode_hello(read_exactly(worker1.get(), data_hello_frame_bytes)),
              (data_hello{ token, 0, 3 }));
    // A second worker 1 while the first is connected: closed, no answer.
    unique_fd twin = connect_loopback(port);
    send_all(twin.get(), hello_frame(token, 1, 3));
    EXPECT_EQ(read_to_eof(twin.get()), "");
    twin.reset();
    unique_fd worker2 = connect_loopback(port);
    send_all(worker2.get(), hello_frame(token, 2, 3));
    EXPECT_EQ(decode_hello(read_exactly(worker2.get(), data_hello_frame_bytes)),
              (data_hello{ token, 0, 3 }));

    worker0.join();
    listener.reset();
    ASSERT_TRUE(r0->ok()) << r0->err().message;
    auto fds = own_all(r0->value());
    EXPECT_EQ(read_nonblocking(fds[1].get(), 15), "after the hello");
    send_all(fds[2].get(), "to two");
    EXPECT_EQ(read_exactly(worker2.get(), 6), "to two");
    fds.clear();
    worker1.reset();
    worker2.reset();
}

TEST(data_mesh, a_connector_checks_the_answer) {
    constexpr std::uint64_t token = 0xFACE;
    // A fake worker 0 that answers every HELLO as if it were worker 3.
    unique_fd fake = listen_loopback();
    unique_fd listener1 = listen_loopback();
    std::vector<host_port> addresses{ { "127.0.0.1", bound_port(fake.get()) },
                                      { "127.0.0.1", bound_port(listener1.get()) } };
    std::atomic<bool> done{ false };
    mesh_result r1;
    std::thread worker1([&] {
        r1 = build_data_mesh(listener1.get(), { token, 1, addresses, 600ms });
        done = true;
    });
    int answered = 0;
    while (!done) {
        pollfd p{ fake.get(), POLLIN, 0 };
        if (::poll(&p, 1, 20) <= 0) {
            continue;
        }
        unique_fd c(::accept4(fake.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!c.valid()) {
            continue;
        }
        timeval tv{ 1, 0 };
        ::setsockopt(c.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        auto hello = decode_hello(read_exactly(c.get(), data_hello_frame_bytes));
        EXPECT_EQ(hello, (data_hello{ token, 1, 2 }));
        send_all(c.get(), hello_frame(token, 3, 2));
        ++answered;
    }
    worker1.join();
    fake.reset();
    listener1.reset();
    EXPECT_GE(answered, 2); // retried after the wrong answer
    ASSERT_FALSE(r1->ok());
    EXPECT_EQ(r1->err().code, errc::unavailable);
    EXPECT_NE(r1->err().message.find("answered the HELLO wrongly: it says it is worker 3"),
              std::string::npos)
      << r1->err().message;
}

} // namespace
} // namespace ringtail::net
