// Non-blocking TCP connects.
#include "net/io/tcp_connect.h"

#include <arpa/inet.h>
#include <cerrno>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace ringtail::net {

int open_tcp_socket() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int begin_connect(int fd, std::uint32_t ip, std::uint16_t port) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = ip;
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0 ||
        errno == EINPROGRESS) {
        return 0;
    }
    return errno;
}

connect_state poll_connect(int fd, int& err) {
    pollfd p{ fd, POLLOUT, 0 };
    int n = ::poll(&p, 1, 0);
    if (n == 0) {
        return connect_state::pending;
    }
    err = 0;
    socklen_t len = sizeof err;
    if (n < 0 || ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
        err = errno;
    }
    if (err == 0 && (p.revents & (POLLERR | POLLHUP)) != 0) {
        err = ECONNREFUSED;
    }
    return err == 0 ? connect_state::connected : connect_state::failed;
}

} // namespace ringtail::net
