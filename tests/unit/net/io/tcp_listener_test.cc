// Tests of listen_tcp: socket flags, port 0, and the errors an operator sees.
#include "net/io/tcp_listener.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "engine/fd.h"

namespace ringtail::net {
namespace {

TEST(tcp_listener, port_zero_picks_a_free_port_nonblocking_and_cloexec) {
    auto fd = listen_tcp({ "127.0.0.1", 0 });
    ASSERT_TRUE(fd.ok()) << fd.err().message;
    const unique_fd listening(*fd);
    EXPECT_NE(bound_port(listening.get()), 0);
    EXPECT_NE(::fcntl(listening.get(), F_GETFL) & O_NONBLOCK, 0);
    EXPECT_NE(::fcntl(listening.get(), F_GETFD) & FD_CLOEXEC, 0);
}

TEST(tcp_listener, port_in_use_is_unavailable_with_one_clear_line) {
    auto first = listen_tcp({ "127.0.0.1", 0 });
    ASSERT_TRUE(first.ok()) << first.err().message;
    const unique_fd listening(*first);
    std::uint16_t port = bound_port(listening.get());
    auto second = listen_tcp({ "127.0.0.1", port });
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.err().code, errc::unavailable);
    const auto& m = second.err().message;
    EXPECT_EQ(m, "cannot listen on 127.0.0.1:" + std::to_string(port) +
                   ": address already in use; stop the process using it or choose another "
                   "port");
    EXPECT_EQ(m.find('\n'), std::string::npos);
}

TEST(tcp_listener, address_of_another_machine_is_a_usage_error) {
    // 192.0.2.0/24 is TEST-NET-1: never assigned to this machine.
    auto fd = listen_tcp({ "192.0.2.1", 0 });
    ASSERT_FALSE(fd.ok());
    EXPECT_EQ(fd.err().code, errc::usage);
    EXPECT_NE(fd.err().message.find("cannot listen on 192.0.2.1:0"), std::string::npos);
}

TEST(tcp_listener, bound_port_of_a_bad_fd_is_zero) {
    EXPECT_EQ(bound_port(-1), 0);
}

} // namespace
} // namespace ringtail::net
