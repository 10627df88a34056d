// The DPDK back end's datagram link (DESIGN.md §4): every data-channel frame travels in one
// UDP/IPv4 frame on a DPDK port (a NIC, or net_memif / net_af_packet in tests), made reliable and
// ordered above it by net/channel/datagram_transport.h. Addresses are the cluster's own, not the
// kernel's: worker i is 10.77.x.y (x.y = i + 1) on UDP port 43210 + lane, and the MAC it reported
// at formation; a frame is taken as worker i's when its source IPv4 address says so. Lane l of a
// worker talks only to lane l of the others, on queue pair l of each one's port.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "net/channel/datagram_transport.h"
#include "net/dpdk/dpdk_port.h"
#include "net/dpdk/udp_frame.h"

namespace ringtail::net {

// Worker `index`'s address on the data channel's lane 0 (UDP port dpdk_data_udp_port).
udp_endpoint dpdk_endpoint(std::uint32_t index, const std::array<std::uint8_t, 6>& mac);
// "02:00:00:00:00:01" and back; nullopt for anything else.
std::string mac_to_string(const std::array<std::uint8_t, 6>& mac);
std::optional<std::array<std::uint8_t, 6>> mac_from_string(const std::string& text);

struct dpdk_link_counters {
    std::uint64_t tx_no_mbuf = 0;   // no mbuf free: the datagram was dropped (retransmitted later)
    std::uint64_t tx_full = 0;      // the TX queue was full: dropped likewise
    std::uint64_t tx_bursts = 0;    // tx_burst calls that sent something
    std::uint64_t rx_foreign = 0;   // not UDP/IPv4 to our lane's port from a known worker: dropped
    std::uint64_t held_on_heap = 0; // frames to hold built on the heap: the pool was empty
};

// Threading: the thread that owns queue pair `queue` of the port (one lane's exchange thread).
// A thread's first data-plane call on any dpdk_link gives it an EAL lcore id, when it has none,
// for as long as it runs (dpdk_eal::register_thread), so that its mbufs go through a mempool cache
// of its own.
class dpdk_link final : public datagram_link {
public:
    // `endpoints[i]` is worker i's address; `self` is this worker's index. The link uses only
    // queue pair `queue` of `port` and UDP port dpdk_data_udp_port + queue as source and
    // destination, whatever port `endpoints` carry.
    dpdk_link(dpdk_port& port, std::uint32_t self, std::vector<udp_endpoint> endpoints,
              std::uint16_t queue = 0);
    ~dpdk_link() override;
    std::uint32_t peer_count() const override {
        return static_cast<std::uint32_t>(_endpoints.size());
    }
    int wait_fd() const override { return -1; } // a poll-mode driver: no fd to sleep on
    std::size_t max_datagram_bytes() const override;
    std::uint16_t queue() const { return _queue; }
    // Builds the frame in an mbuf and holds it for the next burst (sent at tx_burst_max frames or
    // on flush()).
    void send(peer_id peer, std::span<const std::byte> datagram) override;
    void flush() override;
    std::size_t receive(
      const std::function<void(peer_id, std::span<const std::byte>)>& on) override;
    // An mbuf with the UDP/IPv4 headers to `peer` already written; the caller writes the
    // datagram. When the pool is empty, heap memory (sent through a copy, counted in
    // held_on_heap) so that the protocol keeps going.
    buffer allocate(peer_id peer, std::size_t bytes) override;
    // Sends the mbuf itself with one more reference, which the device drops once it is sent: the
    // caller's reference keeps it for a retransmission.
    void send_buffer(peer_id peer, const buffer& b) override;
    void release(buffer& b) override;
    const dpdk_link_counters& counters() const { return _counters; }

private:
    static constexpr std::uint16_t tx_burst_max = 32;
    // An mbuf from the stash, refilled from the pool 32 at a time (one call into the mempool
    // instead of one per frame); nullptr when the pool is empty.
    rte_mbuf* take_mbuf();
    dpdk_port& _port;
    std::uint32_t _self;
    std::uint16_t _queue;
    rte_mbuf* _tx[tx_burst_max] = {};
    std::uint16_t _tx_count = 0;
    rte_mbuf* _stash[tx_burst_max] = {}; // fresh mbufs, used from the end
    std::uint16_t _stash_count = 0;
    std::vector<udp_endpoint> _endpoints;
    std::vector<udp_header_template> _headers; // [peer]: from us to it
    dpdk_link_counters _counters;
};

} // namespace ringtail::net
