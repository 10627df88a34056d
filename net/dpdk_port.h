// The lowest layer of the DPDK back end of the data channel (DESIGN.md §4): starting DPDK's EAL
// once per process, and one Ethernet port with one RX and one TX queue fed by its own mempool.
//
// No DPDK header is included here, so that the rest of the engine compiles without DPDK: mbufs are
// the opaque `rte_mbuf`, and the few mbuf accessors callers need are static members. In a build
// without DPDK (RINGTAIL_HAVE_DPDK off, see engine/build_info.h) everything compiles and reports
// errc::unavailable, so callers need no #if of their own.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/result.h"

struct rte_mbuf;
struct rte_mempool;

namespace ringtail::net {

// DPDK's Environment Abstraction Layer. rte_eal_init may run only once per process, so the first
// init() starts it and every later call returns that first outcome, whatever its arguments.
// Control plane: call from the main thread before any port is opened.
class dpdk_eal {
public:
    // `eal_args` are the arguments after a literal `--` on the command line (CLI.md), without a
    // program name. Fails with errc::unavailable and a one-line remedy.
    static status init(const std::vector<std::string>& eal_args);
    static bool initialized();
    // Releases EAL's resources (rte_eal_cleanup) after every port was closed; optional at exit.
    static void cleanup();
};

// How to open a port. Either `device` names it (an ethdev name such as "net_memif0" or a PCI
// address) or, when empty, `port_id` does.
struct dpdk_port_config {
    std::string device;
    std::uint16_t port_id = 0;
    // Descriptor ring sizes (adjusted to what the device allows).
    std::uint16_t rx_descriptors = 512;
    std::uint16_t tx_descriptors = 512;
    // mbufs in the queue pair's pool: RX ring + TX ring + bursts in the caller's hands + cache +
    // the frames the data channel holds until acknowledged (up to its go-back-N window, 256, per
    // peer: 4095 leaves room for eight peers; beyond that the link holds frames on the heap and
    // counts it). A power of two minus one is what rte_mempool stores best. 4095 mbufs of 2 KiB
    // data room take about 10 MiB, well inside the 64 MiB that EAL reserves by default with
    // --no-huge.
    std::uint32_t pool_mbufs = 4095;
    std::uint32_t pool_cache = 256;
};

// What a port counted. Data plane: nothing here is an error object, only numbers.
struct dpdk_port_counters {
    std::uint64_t rx = 0;         // frames received
    std::uint64_t tx = 0;         // frames the device accepted for sending
    std::uint64_t tx_dropped = 0; // frames the caller gave up on (drop())
    std::uint64_t rx_bad = 0;     // received frames the caller rejected (count_rx_bad())
    std::uint64_t alloc_failed = 0;
};

// One started DPDK port with RX queue 0 and TX queue 0, and the mempool behind RX queue 0 and
// alloc(). The data-plane calls (rx_burst, tx_burst, alloc, drop, counters) are for the one thread
// that owns the port: DPDK queues are not thread-safe, and neither are the counters.
class dpdk_port {
public:
    // Opens, configures and starts the port; needs dpdk_eal::init to have succeeded.
    static result<std::unique_ptr<dpdk_port>> open(const dpdk_port_config& config);
    ~dpdk_port(); // stops and closes the port, then frees its pool
    dpdk_port(const dpdk_port&) = delete;
    dpdk_port& operator=(const dpdk_port&) = delete;

    std::uint16_t port_id() const { return _port_id; }
    const std::string& name() const { return _name; }
    const std::array<std::uint8_t, 6>& mac() const { return _mac; }
    // Whether the link is up now (a memif port is up once its peer connected). Does not wait.
    bool link_up() const;

    // Receives up to n frames into out[0..return); the caller owns them and frees or sends them.
    std::uint16_t rx_burst(rte_mbuf** out, std::uint16_t n);
    // Hands pkts[0..return) to the device, which frees them once sent; pkts[return..n) stay with
    // the caller, to retry or drop().
    std::uint16_t tx_burst(rte_mbuf** pkts, std::uint16_t n);
    // Frees frames the caller will not send, counting them in tx_dropped.
    void drop(rte_mbuf** pkts, std::uint16_t n);
    // A fresh, empty mbuf from the port's pool, or nullptr when it is exhausted (counted).
    rte_mbuf* alloc();
    void count_rx_bad(std::uint64_t n = 1) { _counters.rx_bad += n; }
    const dpdk_port_counters& counters() const { return _counters; }

    // The frame bytes of a single-segment mbuf (DPDK's data_off..data_off+data_len).
    static std::span<std::byte> data(rte_mbuf* m);
    // Sets a fresh mbuf's frame length to `bytes` and returns the bytes to fill, or an empty span
    // when the mbuf's data room is too small.
    static std::span<std::byte> append(rte_mbuf* m, std::size_t bytes);
    // Returns an mbuf to its pool (a frame received and consumed, or never sent), or drops one
    // reference to it when it has several (see hold()).
    static void free(rte_mbuf* m);
    // Takes one more reference to `m`, so that it outlives a tx_burst (which frees it once sent)
    // and can be sent again: how a sent frame is kept for retransmission without a copy.
    static void hold(rte_mbuf* m);

private:
    dpdk_port() = default;

    std::uint16_t _port_id = 0;
    std::string _name;
    std::array<std::uint8_t, 6> _mac{};
    rte_mempool* _pool = nullptr;
    bool _started = false;
    dpdk_port_counters _counters;
};

// Whether DPDK can carry the data channel here: EAL starts with `eal_args` (once per process: see
// dpdk_eal) and at least one port is available. On false, `why` (when given) gets the one-line
// reason for the `--net auto` warning. Control plane.
bool dpdk_usable(const std::vector<std::string>& eal_args, std::string* why = nullptr);

} // namespace ringtail::net
