// Opening listening sockets, with one clear line for each way it can fail.
#include "net/io/tcp_listener.h"

#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/fd.h"

namespace ringtail::net {

result<int> listen_tcp(const host_port& at, int backlog) {
    auto addr = resolve_ipv4(at.host);
    if (!addr) {
        return error{ errc::usage,
                      "cannot listen on " + at.to_string() + ": " + addr.err().message };
    }
    unique_fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) {
        return bind_error("cannot listen on", at, errno);
    }
    // SO_REUSEADDR lets a restarted worker bind while old connections sit in TIME_WAIT; it does
    // not let two listeners share a port on Linux, so "in use" is still reported.
    int one = 1;
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
        return bind_error("cannot listen on", at, errno);
    }
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(at.port);
    sa.sin_addr.s_addr = *addr;
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0 ||
        ::listen(fd.get(), backlog) != 0) {
        return bind_error("cannot listen on", at, errno);
    }
    return fd.release();
}

std::uint16_t bound_port(int fd) {
    sockaddr_in sa{};
    socklen_t len = sizeof sa;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0 ||
        sa.sin_family != AF_INET) {
        return 0;
    }
    return ntohs(sa.sin_port);
}

} // namespace ringtail::net
