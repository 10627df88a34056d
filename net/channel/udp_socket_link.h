// The socket back end's datagram link for fault tests (DESIGN.md §4): each data-channel frame
// travels in one datagram of a kernel UDP socket, so that faults injected at our frame level
// (RINGTAIL_TEST_FAULTS, net/fault/faulty_link.h) are repaired by net/channel/datagram_transport.h
// as on DPDK; over TCP the kernel would hide the loss. The socket is bound to this worker's data
// address (the host:port of its TCP data listener: UDP ports are a namespace of their own) and a
// datagram is taken as worker i's when its source address is worker i's data address.
//
// Addresses are IPv4, resolved as the TCP data listener and the data mesh resolve them
// (resolve_ipv4), so the source address of a peer's datagrams is the address this worker resolved.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>

#include "engine/fd.h"
#include "engine/result.h"
#include "net/channel/datagram_transport.h"
#include "net/io/host_port.h"

namespace ringtail::net {

// The largest datagram: a 1500-byte Ethernet MTU less the IPv4 (20) and UDP (8) headers, as on
// DPDK (net/dpdk/dpdk_link.h), so that no datagram is fragmented on a veth or a real network. It is
// not raised on loopback, where up to 65507 bytes would go through: each worker decodes frames up
// to its own link's size, workers do not negotiate it, and a worker cannot tell for sure that every
// other one sees loopback addresses too (an initializer listening on 0.0.0.0 does not); a size
// that differed between two workers would drop every large frame as corrupt. 1472 bytes also
// keeps the go-back-N window (256 frames, under 400 KB) well inside the socket's receive buffer.
inline constexpr std::size_t udp_link_datagram_bytes = 1472;

struct udp_socket_link_config {
    std::size_t max_datagram_bytes = udp_link_datagram_bytes;
    // SO_RCVBUF and SO_SNDBUF asked for; best effort (the kernel caps them at
    // net.core.rmem_max and wmem_max).
    int socket_buffer_bytes = 4 << 20;
};

struct udp_socket_link_counters {
    std::uint64_t datagrams_out = 0; // handed to the kernel
    std::uint64_t datagrams_in = 0;  // received from a known peer and handed on
    std::uint64_t tx_dropped = 0;    // refused by the kernel (EAGAIN, ENOBUFS, ...): lost
    std::uint64_t rx_foreign = 0;    // from no worker's data address, or from ourselves: dropped
    std::uint64_t rx_truncated = 0;  // longer than max_datagram_bytes: dropped
};

// Opens a non-blocking, close-on-exec UDP socket bound to `at` (port 0: any free port; see
// bound_port in net/io/tcp_listener.h for IPv4) with `buffer_bytes` of SO_RCVBUF/SO_SNDBUF asked
// for. The caller owns the fd. Errors, one line each: the port is in use -> errc::unavailable; the
// host cannot be resolved or is not an address of this machine -> errc::usage; anything else ->
// errc::unavailable. Control plane only: it may resolve a name.
result<int> bind_udp(const host_port& at, int buffer_bytes = 4 << 20);

// Threading: made on the control thread at formation, then used by the exchange thread only.
class udp_socket_link final : public datagram_link {
public:
    // Binds a socket to `at` (bind_udp) that reaches worker i at peers[i]; peers[self] is this
    // worker's own address as the others know it. Errors as bind_udp's, and errc::unavailable
    // for a peer address that cannot be resolved.
    static result<std::unique_ptr<udp_socket_link>> open(const host_port& at, std::uint32_t self,
                                                         const std::vector<host_port>& peers,
                                                         udp_socket_link_config config = {});
    // As open(), with a socket already bound (bind_udp), which the link owns from now on, even
    // when it returns an error.
    static result<std::unique_ptr<udp_socket_link>> adopt(int fd, std::uint32_t self,
                                                          const std::vector<host_port>& peers,
                                                          udp_socket_link_config config = {});
    // Defined where rx_buffers is complete.
    ~udp_socket_link() override;
    udp_socket_link(const udp_socket_link&) = delete;
    udp_socket_link& operator=(const udp_socket_link&) = delete;

    std::uint32_t peer_count() const override { return static_cast<std::uint32_t>(_peers.size()); }
    // The socket: level-readable while datagrams wait.
    int wait_fd() const override { return _fd.get(); }
    std::size_t max_datagram_bytes() const override { return _config.max_datagram_bytes; }
    // Sends at once (sendto, never blocking): the datagram is dropped and counted when the
    // kernel refuses it. Nothing is held back, so flush() has nothing to do; links stacked above
    // (net/fault/faulty_link.h) need not pass flush() on.
    void send(peer_id peer, std::span<const std::byte> datagram) override;
    // Reads with recvmmsg, rx_batch datagrams a call, at most rx_rounds_max calls a turn (the
    // socket stays readable for what is left).
    std::size_t receive(
      const std::function<void(peer_id, std::span<const std::byte>)>& on) override;

    const udp_socket_link_counters& counters() const { return _counters; }

    static constexpr std::size_t rx_batch = 32;
    static constexpr int rx_rounds_max = 8;

private:
    struct rx_buffers; // recvmmsg's headers and one buffer per datagram

    udp_socket_link(unique_fd fd, std::uint32_t self, std::vector<sockaddr_in> peers,
                    udp_socket_link_config config);
    // The worker that `from` is, or peer_count() if none.
    std::uint32_t peer_of(const sockaddr_in& from, socklen_t len) const;

    unique_fd _fd;
    std::uint32_t _self = 0;
    std::vector<sockaddr_in> _peers; // [worker]
    udp_socket_link_config _config;
    std::unique_ptr<rx_buffers> _rx;
    udp_socket_link_counters _counters;
};

} // namespace ringtail::net
