// The lowest layer of the DPDK back end of the data channel (DESIGN.md §4): starting DPDK's EAL
// once per process, and one Ethernet port with one or more RX/TX queue pairs, each fed by its own
// mempool.
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
    // Gives the calling thread, when it is not one of EAL's own, an EAL lcore id
    // (rte_thread_register), so that the mbufs it allocates and frees go through a mempool cache
    // of its own instead of each taking the pool's shared ring. Leaves the thread's CPU affinity
    // as it is. Returns false, changing nothing, where EAL is not started, has no lcore id left or
    // runs with multi-process in use, and in a build without DPDK. EAL threads need not call it.
    static bool register_thread();
    // Gives back the id register_thread took for this thread, if any (rte_thread_unregister),
    // before the thread ends; nothing once cleanup() ran. mbufs left in its caches stay there for
    // the next thread given that id.
    static void unregister_thread();
    // The CPU of each of EAL's lcores (its -l / --lcores), in lcore id order; empty where EAL is
    // not started, and in a build without DPDK.
    static std::vector<unsigned> lcore_cpus();
};

// The data channel's UDP port (DESIGN.md §4): lane i of the data channel uses this + i as its
// source and destination port, and a port steering by rte_flow sends that port to queue i.
inline constexpr std::uint16_t dpdk_data_udp_port = 43210;

// How to open a port. Either `device` names it (an ethdev name such as "net_memif0" or a PCI
// address) or, when empty, `port_id` does.
struct dpdk_port_config {
    std::string device;
    std::uint16_t port_id = 0;
    // RX/TX queue pairs wanted, one per lane of the data channel. The port opens with fewer when
    // the device has fewer, above 8, or when frames sent on TX queue i are not sure to arrive on
    // the peer's RX queue i (see dpdk_port::open); dpdk_port::queues() says how many.
    std::uint16_t queues = 1;
    // Descriptor ring sizes (adjusted to what the device allows).
    std::uint16_t rx_descriptors = 512;
    std::uint16_t tx_descriptors = 512;
    // mbufs in each queue pair's pool: RX ring + TX ring + bursts in the caller's hands + cache +
    // the frames the data channel holds until acknowledged (up to its go-back-N window, 256, per
    // peer: 4095 leaves room for eight peers; beyond that the link holds frames on the heap and
    // counts it). A power of two minus one is what rte_mempool stores best. 4095 mbufs of 2 KiB
    // data room take about 10 MiB per queue pair. With --no-huge, EAL's default 64 MiB holds the
    // pools of 3 queue pairs beside EAL's own needs, -m 128 those of 7, -m 144 those of 8
    // (net_memif, DPDK 22.11). open() uses as many queue pairs as have a pool that fits, saying so
    // with the remedy, and fails only when the first pool does not fit.
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

    dpdk_port_counters& operator+=(const dpdk_port_counters& o);
};

// One DPDK port with queues() RX/TX queue pairs, each with its own mempool behind its RX queue
// and alloc(queue). The data-plane calls (rx_burst, tx_burst, alloc, drop, count_rx_bad,
// counters(queue)) need a started port and take the queue first; each queue belongs to one
// thread: DPDK queues are not thread-safe, and neither are a queue's counters. Queues of one port
// may be used by different threads at once.
class dpdk_port {
public:
    // Opens and configures the port and sets up its queue pairs; needs dpdk_eal::init to have
    // succeeded. Queue pairs: min(config.queues, the device's RX and TX queues, 8, the pools that
    // fit in EAL's memory), and more than one only where TX queue i is sure to reach the peer's RX
    // queue i: net_memif and net_ring map queue indexes straight across; on any other device an
    // rte_flow rule per queue i steers IPv4/UDP to destination port dpdk_data_udp_port + i to
    // queue i, and when a rule fails the port is restarted with one queue pair. Logs one info
    // line saying how many queue pairs are used and why.
    //
    // net_memif and net_ring ports are left stopped: both ends of the pair must use the same
    // number of queue pairs (a memif client with more rings than its server never connects; one
    // with fewer leaves the server's extra RX queues reading ring 0), so start() sets the count
    // once the peers agreed on it. Any other port is started here (its rte_flow rules need that).
    static result<std::unique_ptr<dpdk_port>> open(const dpdk_port_config& config);
    // Removes its flow rules, stops (when started) and closes the port, then frees its pools.
    ~dpdk_port();
    dpdk_port(const dpdk_port&) = delete;
    dpdk_port& operator=(const dpdk_port&) = delete;

    std::uint16_t port_id() const { return _port_id; }
    const std::string& name() const { return _name; }
    const std::array<std::uint8_t, 6>& mac() const { return _mac; }
    // The RX/TX queue pairs set up, 0 .. queues() - 1: after start(), those in use.
    std::uint16_t queues() const { return static_cast<std::uint16_t>(_queues.size()); }
    // Starts a port that open() left stopped with `queues` pairs (1 .. queues()): when fewer than
    // open() set up, the port is configured again with `queues`, its queues set up again and the
    // pools of the others freed. Call once, from the thread that opened the port, before any
    // data-plane call. A memif client (role=client) returns once its server accepted it,
    // starting again until then (a server not started yet turns a client away for good) after
    // 250 ms, then after twice as long each time up to 2 s; it fails after about 10 s, or at once
    // when no server listens on the socket. On a port open() started, only checks that `queues`
    // <= queues(). Fails with errc::unavailable and a one-line reason.
    status start(std::uint16_t queues);
    bool started() const { return _started; }
    // Whether the link is up now (a memif port is up once its peer connected); false while the
    // port is stopped. Does not wait.
    bool link_up() const;
    // Waits, checking about every millisecond, until link_up() is false or `timeout_s` passed;
    // returns whether the link went down (at once on a stopped port).
    bool wait_link_down(double timeout_s) const;

    // Receives up to n frames from RX queue `queue` into out[0..return); the caller owns them and
    // frees or sends them.
    std::uint16_t rx_burst(std::uint16_t queue, rte_mbuf** out, std::uint16_t n);
    // Hands pkts[0..return) to TX queue `queue`, which frees them once sent; pkts[return..n) stay
    // with the caller, to retry or drop().
    std::uint16_t tx_burst(std::uint16_t queue, rte_mbuf** pkts, std::uint16_t n);
    // Frees frames the caller will not send, counting them in the queue's tx_dropped.
    void drop(std::uint16_t queue, rte_mbuf** pkts, std::uint16_t n);
    // A fresh, empty mbuf from the queue's pool, or nullptr when it is exhausted (counted).
    rte_mbuf* alloc(std::uint16_t queue);
    // n fresh, empty mbufs from the queue's pool into out[0..n), in one call, or none and false
    // when it has fewer (not counted: the caller falls back to alloc() for the last few).
    bool alloc_bulk(std::uint16_t queue, rte_mbuf** out, std::uint16_t n);
    void count_rx_bad(std::uint16_t queue, std::uint64_t n = 1) {
        _queues[queue].counters.rx_bad += n;
    }
    // One queue's counters, for the thread that owns the queue.
    const dpdk_port_counters& counters(std::uint16_t queue) const {
        return _queues[queue].counters;
    }
    // The sum over all queues; exact only once no thread uses the port.
    dpdk_port_counters counters() const;

    // The frame bytes of a single-segment mbuf (DPDK's data_off..data_off+data_len).
    static std::span<std::byte> data(rte_mbuf* m);
    // Sets a fresh mbuf's frame length to `bytes` and returns the bytes to fill, or an empty span
    // when the mbuf's data room is too small.
    static std::span<std::byte> append(rte_mbuf* m, std::size_t bytes);
    // Returns an mbuf to its pool (a frame received and consumed, or never sent), or drops one
    // reference to it when it has several (see hold()).
    static void free(rte_mbuf* m);
    // free() for each of ms[0..n), in one call.
    static void free_bulk(rte_mbuf** ms, std::uint16_t n);
    // Takes one more reference to `m`, so that it outlives a tx_burst (which frees it once sent)
    // and can be sent again: how a sent frame is kept for retransmission without a copy.
    static void hold(rte_mbuf* m);

private:
    dpdk_port() = default;

    // One queue pair's pool and counters, on cache lines of its own: each queue's owning thread
    // writes its counters on every burst.
    struct alignas(64) queue_state {
        rte_mempool* pool = nullptr;
        dpdk_port_counters counters;
    };

    // Configures the port for `queues` pairs, sets up queue pairs 0 .. queues - 1 on their
    // pools and frees the pools of any queue pairs beyond (which the port no longer has, and
    // which never ran or were stopped). The port must be stopped.
    status configure(std::uint16_t queues);
    // rte_eth_dev_start.
    status start_device();
    // One rte_flow rule per queue i: IPv4/UDP to port dpdk_data_udp_port + i goes to queue i.
    // False, with the reason, as soon as one cannot be made.
    bool steer_udp_ports(std::string* reason);

    std::uint16_t _port_id = 0;
    std::string _name;
    std::array<std::uint8_t, 6> _mac{};
    std::vector<queue_state> _queues;
    // What configure() sets up the queues with.
    std::uint16_t _rx_descriptors = 0;
    std::uint16_t _tx_descriptors = 0;
    int _socket = 0;
    bool _memif_client = false; // net_memif with role=client: start() connects it
    bool _configured = false;   // rte_eth_dev_configure succeeded: closed on destruction
    bool _started = false;
    bool _flows = false; // rte_flow rules were created: flushed on close
};

// Whether DPDK can carry the data channel here: EAL starts with `eal_args` (once per process: see
// dpdk_eal) and at least one port is available. On false, `why` (when given) gets the one-line
// reason for the `--net auto` warning. Control plane.
bool dpdk_usable(const std::vector<std::string>& eal_args, std::string* why = nullptr);

} // namespace ringtail::net
