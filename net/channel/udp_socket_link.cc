// Data-channel frames in kernel UDP datagrams, one socket per worker.
#include "net/channel/udp_socket_link.h"
#include "engine/assert.h"

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <netinet/in.h>
#include <string>
#include <sys/uio.h>
#include <unistd.h>

#include "engine/log.h"

namespace ringtail::net {
namespace {

// The most a UDP/IPv4 datagram carries.
constexpr std::size_t udp_payload_max = 65507;

// `hp` as a socket address: IPv4, as the TCP data listener and the data mesh resolve it.
result<sockaddr_in> resolve(const host_port& hp) {
    auto ip = resolve_ipv4(hp.host);
    if (!ip) {
        return ip.err();
    }
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(hp.port);
    sa.sin_addr.s_addr = ip.value();
    return sa;
}

} // namespace

result<int> bind_udp(const host_port& at, int buffer_bytes) {
    auto addr = resolve(at);
    if (!addr) {
        return error{ errc::usage,
                      "cannot bind UDP " + at.to_string() + ": " + addr.err().message };
    }
    unique_fd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) {
        return bind_error("cannot bind UDP", at, errno);
    }
    // Best effort: a smaller buffer only means more loss under bursts, which go-back-N repairs.
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &buffer_bytes, sizeof buffer_bytes);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDBUF, &buffer_bytes, sizeof buffer_bytes);
    const sockaddr_in& sa = addr.value();
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) {
        return bind_error("cannot bind UDP", at, errno); // fd closed on return
    }
    return fd.release();
}

struct udp_socket_link::rx_buffers {
    explicit rx_buffers(std::size_t datagram_bytes)
      : data(rx_batch * datagram_bytes) {
        for (std::size_t i = 0; i < rx_batch; ++i) {
            iov[i].iov_base = data.data() + i * datagram_bytes;
            iov[i].iov_len = datagram_bytes;
        }
    }
    // recvmmsg rewrites the name lengths and flags: set them afresh before each call.
    void reset() {
        for (std::size_t i = 0; i < rx_batch; ++i) {
            msgs[i].msg_hdr = msghdr{};
            msgs[i].msg_hdr.msg_name = &from[i];
            msgs[i].msg_hdr.msg_namelen = sizeof from[i];
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_len = 0;
        }
    }

    std::vector<std::byte> data;
    std::array<iovec, rx_batch> iov{};
    std::array<sockaddr_in, rx_batch> from{};
    std::array<mmsghdr, rx_batch> msgs{};
};

result<std::unique_ptr<udp_socket_link>> udp_socket_link::open(const host_port& at,
                                                               std::uint32_t self,
                                                               const std::vector<host_port>& peers,
                                                               udp_socket_link_config config) {
    auto fd = bind_udp(at, config.socket_buffer_bytes);
    if (!fd) {
        return fd.err();
    }
    return adopt(fd.value(), self, peers, config);
}

result<std::unique_ptr<udp_socket_link>> udp_socket_link::adopt(int fd, std::uint32_t self,
                                                                const std::vector<host_port>& peers,
                                                                udp_socket_link_config config) {
    unique_fd owned(fd); // ours from here, closed on every error below
    RINGTAIL_ASSERT(self < peers.size(), "adopt: `self` is not one of the peers");
    RINGTAIL_ASSERT(config.max_datagram_bytes > 0 && config.max_datagram_bytes <= udp_payload_max,
                    "adopt: max_datagram_bytes must be within 1..65507");
    sockaddr_in local{};
    socklen_t local_len = sizeof local;
    if (::getsockname(owned.get(), reinterpret_cast<sockaddr*>(&local), &local_len) != 0 ||
        local.sin_family != AF_INET) {
        const int err = errno;
        return error{ errc::unavailable,
                      std::string("the data channel's UDP socket is not a bound IPv4 socket: ") +
                        std::strerror(err) };
    }
    std::vector<sockaddr_in> resolved_peers;
    for (std::size_t i = 0; i < peers.size(); ++i) {
        auto a = resolve(peers[i]);
        if (!a) {
            return error{ errc::unavailable, "the data address of worker " + std::to_string(i) +
                                               " (" + peers[i].to_string() +
                                               ") cannot be reached over UDP: " + a.err().message };
        }
        resolved_peers.push_back(a.value());
    }
    return std::unique_ptr<udp_socket_link>(
      new udp_socket_link(std::move(owned), self, std::move(resolved_peers), config));
}

udp_socket_link::udp_socket_link(unique_fd fd, std::uint32_t self, std::vector<sockaddr_in> peers,
                                 udp_socket_link_config config)
  : _fd(std::move(fd))
  , _self(self)
  , _peers(std::move(peers))
  , _config(config)
  , _rx(std::make_unique<rx_buffers>(config.max_datagram_bytes)) {}

udp_socket_link::~udp_socket_link() = default;

void udp_socket_link::send(peer_id peer, std::span<const std::byte> datagram) {
    RINGTAIL_ASSERT(peer < _peers.size(), "send: no such peer");
    RINGTAIL_ASSERT(datagram.size() <= _config.max_datagram_bytes,
                    "send: datagram beyond the size");
    const sockaddr_in& to = _peers[peer];
    for (;;) {
        if (::sendto(_fd.get(), datagram.data(), datagram.size(), MSG_DONTWAIT | MSG_NOSIGNAL,
                     reinterpret_cast<const sockaddr*>(&to), sizeof to) >= 0) {
            ++_counters.datagrams_out;
            return;
        }
        if (errno != EINTR) {
            // A full send buffer (EAGAIN, ENOBUFS) or an unreachable route: a loss like any
            // other, which the transport's retransmission repairs.
            ++_counters.tx_dropped;
            return;
        }
    }
}

std::size_t udp_socket_link::receive(
  const std::function<void(peer_id, std::span<const std::byte>)>& on) {
    std::size_t handed = 0;
    rx_buffers& rx = *_rx;
    for (int round = 0; round < rx_rounds_max; ++round) {
        rx.reset();
        const int n = ::recvmmsg(_fd.get(), rx.msgs.data(), rx_batch, MSG_DONTWAIT, nullptr);
        if (n <= 0) {
            break; // nothing waiting (EAGAIN), or an error the next turn meets again
        }
        for (int i = 0; i < n; ++i) {
            const mmsghdr& m = rx.msgs[i];
            if ((m.msg_hdr.msg_flags & MSG_TRUNC) != 0) {
                ++_counters.rx_truncated;
                continue;
            }
            const std::uint32_t peer = peer_of(rx.from[i], m.msg_hdr.msg_namelen);
            if (peer >= _peers.size() || peer == _self) {
                ++_counters.rx_foreign;
                continue;
            }
            ++_counters.datagrams_in;
            ++handed;
            on(peer, std::span(static_cast<const std::byte*>(rx.iov[i].iov_base), m.msg_len));
        }
        if (static_cast<std::size_t>(n) < rx_batch) {
            break;
        }
    }
    return handed;
}

std::uint32_t udp_socket_link::peer_of(const sockaddr_in& from, socklen_t len) const {
    if (len != sizeof from || from.sin_family != AF_INET) {
        return peer_count();
    }
    for (std::uint32_t i = 0; i < _peers.size(); ++i) {
        if (_peers[i].sin_port == from.sin_port &&
            _peers[i].sin_addr.s_addr == from.sin_addr.s_addr) {
            return i;
        }
    }
    return peer_count();
}

} // namespace ringtail::net
