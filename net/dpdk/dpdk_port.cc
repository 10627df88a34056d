// DPDK's EAL start-up and RX/TX queue pairs on an ethdev port, each with its own mempool, steered
// by rte_flow where the device needs it; in a build without DPDK, the same API reporting
// errc::unavailable.
#include "net/dpdk/dpdk_port.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include <fmt/format.h>

#if RINGTAIL_HAVE_DPDK

#include <cerrno>
#include <cstring>
#include <mutex>
#include <string_view>

#include <rte_byteorder.h>
#include <rte_dev.h>
#include <rte_devargs.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_flow.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "engine/log.h"

namespace ringtail::net {

namespace {

// Queue pairs a port uses at most, whatever is asked.
constexpr unsigned max_queue_pairs = 8;

// The first init()'s outcome, returned to every later call: rte_eal_init may not run twice.
std::once_flag eal_once;
status eal_outcome = error{ errc::internal, "DPDK: EAL was never started" };
bool eal_up = false;

// What to do about rte_eal_init's rte_errno (rte_eal.h lists them).
const char* eal_remedy(int e) {
    switch (e) {
        case EACCES:
            return "run as root (or with CAP_SYS_ADMIN and CAP_IPC_LOCK)";
        case ENOMEM:
        case ENODEV:
            return "give --no-huge (with -m MB), or reserve hugepages (dpdk-hugepages.py --setup "
                   "1G)";
        case EINVAL:
            return "check the EAL arguments after `--` (dpdk-testpmd --help lists them)";
        case EALREADY:
            return "another EAL in this process already runs";
        default:
            return "run as root, give --no-huge or reserve hugepages, or bind a NIC with "
                   "dpdk-devbind.py; another DPDK process with the same --file-prefix may be "
                   "running";
    }
}

status start_eal(const std::vector<std::string>& eal_args) {
    // rte_eal_init permutes and keeps pointers into argv, so the strings live for the process.
    static std::vector<std::string> storage;
    static std::vector<char*> argv;
    storage.clear();
    storage.push_back("ringtail");
    storage.insert(storage.end(), eal_args.begin(), eal_args.end());
    argv.clear();
    for (auto& s : storage) {
        argv.push_back(s.data());
    }
    argv.push_back(nullptr);
    const int rc = rte_eal_init(static_cast<int>(storage.size()), argv.data());
    if (rc < 0) {
        const int e = rte_errno;
        return error{ errc::unavailable, fmt::format("DPDK: EAL could not start ({}): {}",
                                                     rte_strerror(e), eal_remedy(e)) };
    }
    eal_up = true;
    return ok_status();
}

// How long start() keeps trying to connect a memif client, and how long its tries wait for the
// server's answer: the first, then each one twice as long as the one before, up to the last.
constexpr auto memif_connect_timeout = std::chrono::seconds(10);
constexpr auto memif_first_try = std::chrono::milliseconds(250);
constexpr auto memif_longest_try = std::chrono::milliseconds(2000);

// Whether the device arguments (--vdev) of the port say role=client: a memif client.
bool memif_client_role(const rte_eth_dev_info& info) {
    const rte_devargs* devargs = info.device != nullptr ? rte_dev_devargs(info.device) : nullptr;
    if (devargs == nullptr || devargs->args == nullptr) {
        return false;
    }
    std::string_view rest(devargs->args);
    while (!rest.empty()) {
        const std::size_t comma = rest.find(',');
        if (rest.substr(0, comma) == "role=client") {
            return true;
        }
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    }
    return false;
}

error port_error(const std::string& name, const char* step, int rc) {
    return error{ errc::unavailable,
                  fmt::format("DPDK: port {}: {} failed ({}): check the device arguments (--vdev) "
                              "and that no other process uses the port",
                              name, step, rte_strerror(rc < 0 ? -rc : rc)) };
}

} // namespace

status dpdk_eal::init(const std::vector<std::string>& eal_args) {
    std::call_once(eal_once, [&] { eal_outcome = start_eal(eal_args); });
    return eal_outcome;
}

bool dpdk_eal::initialized() {
    return eal_up;
}

void dpdk_eal::cleanup() {
    if (eal_up) {
        rte_eal_cleanup();
        eal_up = false;
    }
}

namespace {
// Whether register_thread gave this thread its lcore id.
thread_local bool thread_registered = false;
} // namespace

bool dpdk_eal::register_thread() {
    if (!eal_up) {
        return false;
    }
    if (thread_registered || rte_lcore_id() != LCORE_ID_ANY) {
        return true; // registered before, or one of EAL's threads
    }
    if (rte_thread_register() != 0) {
        log::debug("DPDK: no EAL lcore id for this thread ({}): its mbufs bypass the mempool "
                   "caches",
                   rte_strerror(rte_errno));
        return false;
    }
    thread_registered = true;
    return true;
}

void dpdk_eal::unregister_thread() {
    if (thread_registered && eal_up) {
        rte_thread_unregister();
    }
    thread_registered = false;
}

std::vector<unsigned> dpdk_eal::lcore_cpus() {
    std::vector<unsigned> cpus;
    if (!eal_up) {
        return cpus;
    }
    unsigned lcore = 0;
    RTE_LCORE_FOREACH(lcore) {
        const int cpu = rte_lcore_to_cpu_id(static_cast<int>(lcore));
        if (cpu >= 0) {
            cpus.push_back(static_cast<unsigned>(cpu));
        }
    }
    return cpus;
}

result<std::unique_ptr<dpdk_port>> dpdk_port::open(const dpdk_port_config& config) {
    if (!eal_up) {
        return error{ errc::internal, "DPDK: dpdk_port::open before dpdk_eal::init succeeded" };
    }
    std::uint16_t port_id = config.port_id;
    if (!config.device.empty()) {
        if (rte_eth_dev_get_port_by_name(config.device.c_str(), &port_id) != 0) {
            return error{ errc::unavailable,
                          fmt::format("DPDK: no port named {} ({} ports available): add it with "
                                      "--vdev or bind a NIC with dpdk-devbind.py",
                                      config.device, rte_eth_dev_count_avail()) };
        }
    } else if (!rte_eth_dev_is_valid_port(port_id)) {
        return error{ errc::unavailable,
                      fmt::format("DPDK: no port {} ({} ports available): add one with --vdev or "
                                  "bind a NIC with dpdk-devbind.py",
                                  port_id, rte_eth_dev_count_avail()) };
    }
    std::unique_ptr<dpdk_port> p(new dpdk_port());
    p->_port_id = port_id;
    char name[RTE_ETH_NAME_MAX_LEN] = {};
    if (rte_eth_dev_get_name_by_port(port_id, name) == 0) {
        p->_name = name;
    } else {
        p->_name = fmt::format("port {}", port_id);
    }

    rte_eth_dev_info info{};
    if (int rc = rte_eth_dev_info_get(port_id, &info); rc != 0) {
        return port_error(p->_name, "rte_eth_dev_info_get", rc);
    }
    const std::string driver = info.driver_name != nullptr ? info.driver_name : "unknown driver";
    const std::uint16_t wanted = std::max<std::uint16_t>(config.queues, 1);
    const auto queues = static_cast<std::uint16_t>(std::max<unsigned>(
      1, std::min<unsigned>({ wanted, info.max_rx_queues, info.max_tx_queues, max_queue_pairs })));
    // What the info line says about the count, before any rte_flow verdict.
    std::string why;
    if (queues < wanted && queues == max_queue_pairs) {
        why =
          fmt::format("{} queues wanted, {} used: at most {} are", wanted, queues, max_queue_pairs);
    } else if (queues < wanted) {
        why = fmt::format("{} queues wanted, {} used: {} has {} RX and {} TX queues", wanted,
                          queues, driver, info.max_rx_queues, info.max_tx_queues);
    } else {
        why = fmt::format("{} queue pair{} as asked", queues, queues == 1 ? "," : "s,");
    }
    // memif and ring ports hand a frame sent on TX queue i to the peer's RX queue i; any other
    // device spreads frames over its RX queues by its own rules unless rte_flow steers them.
    const bool maps_queues = driver == "net_memif" || driver == "net_ring";
    p->_memif_client = driver == "net_memif" && memif_client_role(info);

    std::uint16_t rxd = config.rx_descriptors;
    std::uint16_t txd = config.tx_descriptors;
    if (int rc = rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &rxd, &txd); rc != 0) {
        return port_error(p->_name, "rte_eth_dev_adjust_nb_rx_tx_desc", rc);
    }
    // Virtual devices report SOCKET_ID_ANY; their memory then comes from the caller's socket.
    int socket = rte_eth_dev_socket_id(port_id);
    if (socket < 0) {
        socket = static_cast<int>(rte_socket_id());
    }
    if (config.pool_mbufs < std::uint32_t{ rxd } + txd + config.pool_cache) {
        return error{ errc::config,
                      fmt::format("DPDK: port {}: a pool of {} mbufs cannot fill {} RX and {} TX "
                                  "descriptors plus a cache of {}",
                                  p->_name, config.pool_mbufs, rxd, txd, config.pool_cache) };
    }
    p->_rx_descriptors = rxd;
    p->_tx_descriptors = txd;
    p->_socket = socket;
    p->_queues.resize(queues);
    for (std::uint16_t q = 0; q < queues; ++q) {
        // Pool names are global to the EAL instance: one per port and queue.
        const std::string pool_name = fmt::format("rt_p{}_q{}", port_id, q);
        p->_queues[q].pool =
          rte_pktmbuf_pool_create(pool_name.c_str(), config.pool_mbufs, config.pool_cache, 0,
                                  RTE_MBUF_DEFAULT_BUF_SIZE, socket);
        if (p->_queues[q].pool != nullptr) {
            continue;
        }
        const int e = rte_errno;
        if (q > 0 && e == ENOMEM) {
            // As many queue pairs as have a pool.
            p->_queues.resize(q);
            why = fmt::format("{} queues wanted, {} used: EAL memory holds {} pool{} of {} mbufs; "
                              "give EAL more (-m MB with --no-huge, or hugepages)",
                              wanted, q, q, q == 1 ? "" : "s", config.pool_mbufs);
            break;
        }
        return error{ errc::unavailable,
                      fmt::format("DPDK: port {}: no memory for {} mbufs for queue {} of {} ({}): "
                                  "give EAL more memory (-m MB with --no-huge, or more "
                                  "hugepages), or use fewer queues",
                                  p->_name, config.pool_mbufs, q, queues, rte_strerror(e)) };
    }
    const std::uint16_t pools = p->queues();
    if (auto s = p->configure(pools); !s) {
        return s.err();
    }
    if (maps_queues) {
        // Started by start(), with the count both ends use.
        if (pools > 1 && pools == queues) {
            why += fmt::format(" ({} maps TX queue i to the peer's RX queue i)", driver);
        }
    } else {
        if (auto s = p->start_device(); !s) {
            return s.err();
        }
        if (pools > 1) {
            std::string reason;
            if (p->steer_udp_ports(&reason)) {
                why += fmt::format(" ({} steers UDP port {}+i to queue i by rte_flow)", driver,
                                   dpdk_data_udp_port);
            } else {
                // Back to one queue pair, which receives everything.
                rte_flow_error flush_error{};
                rte_flow_flush(port_id, &flush_error);
                p->_flows = false;
                if (int rc = rte_eth_dev_stop(port_id); rc != 0) {
                    return port_error(p->_name, "rte_eth_dev_stop", rc);
                }
                p->_started = false;
                if (auto s = p->configure(1); !s) {
                    return s.err();
                }
                if (auto s = p->start_device(); !s) {
                    return s.err();
                }
                why =
                  fmt::format("{} queues wanted, 1 used: {} cannot steer UDP ports to queues ({})",
                              wanted, driver, reason);
            }
        }
    }
    log::info("DPDK: port {}: {}", p->_name, why);
    // Peers address each other by MAC, but a veth or a switch may still hand us frames for other
    // addresses; the layer above filters. Devices without the notion (memif) say ENOTSUP.
    if (int rc = rte_eth_promiscuous_enable(port_id); rc != 0 && rc != -ENOTSUP) {
        log::debug("DPDK: port {}: promiscuous mode unavailable ({})", p->_name, rte_strerror(-rc));
    }
    rte_ether_addr mac{};
    if (int rc = rte_eth_macaddr_get(port_id, &mac); rc != 0) {
        return port_error(p->_name, "rte_eth_macaddr_get", rc);
    }
    std::memcpy(p->_mac.data(), mac.addr_bytes, 6);
    return p;
}

status dpdk_port::configure(std::uint16_t queues) {
    const rte_eth_conf conf{};
    if (int rc = rte_eth_dev_configure(_port_id, queues, queues, &conf); rc != 0) {
        return port_error(_name, "rte_eth_dev_configure", rc);
    }
    _configured = true;
    // The queues beyond `queues` are released by the configure: their pools lend mbufs to no one.
    for (std::size_t q = queues; q < _queues.size(); ++q) {
        rte_mempool_free(_queues[q].pool);
    }
    _queues.resize(std::min<std::size_t>(_queues.size(), queues));
    for (std::uint16_t q = 0; q < this->queues(); ++q) {
        if (int rc =
              rte_eth_rx_queue_setup(_port_id, q, _rx_descriptors, static_cast<unsigned>(_socket),
                                     nullptr, _queues[q].pool);
            rc != 0) {
            return port_error(_name, "rte_eth_rx_queue_setup", rc);
        }
        if (int rc = rte_eth_tx_queue_setup(_port_id, q, _tx_descriptors,
                                            static_cast<unsigned>(_socket), nullptr);
            rc != 0) {
            return port_error(_name, "rte_eth_tx_queue_setup", rc);
        }
    }
    return ok_status();
}

status dpdk_port::start_device() {
    if (int rc = rte_eth_dev_start(_port_id); rc != 0) {
        return port_error(_name, "rte_eth_dev_start", rc);
    }
    _started = true;
    return ok_status();
}

status dpdk_port::start(std::uint16_t queues) {
    if (queues == 0 || queues > this->queues()) {
        return error{ errc::unavailable,
                      fmt::format("DPDK: port {}: cannot start with {} queue pairs: it has {}",
                                  _name, queues, this->queues()) };
    }
    if (_started) {
        return ok_status();
    }
    if (queues < this->queues()) {
        log::info("DPDK: port {}: starting with {} of its {} queue pairs", _name, queues,
                  this->queues());
        if (auto s = configure(queues); !s) {
            return s;
        }
    }
    if (!_memif_client) {
        return start_device();
    }
    // A memif client connects once, in rte_eth_dev_start (which fails when no server listens on
    // the socket), and a server whose port is not started yet turns it away ("ID not found") for
    // good. So until the link is up: start, wait, stop and start again.
    const auto deadline = std::chrono::steady_clock::now() + memif_connect_timeout;
    std::chrono::milliseconds wait = memif_first_try;
    for (;;) {
        if (auto s = start_device(); !s) {
            return s;
        }
        const auto answered = std::chrono::steady_clock::now() + wait;
        wait = std::min(wait * 2, memif_longest_try);
        while (!link_up() && std::chrono::steady_clock::now() < answered) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        if (link_up()) {
            return ok_status();
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            const auto waited =
              std::chrono::duration_cast<std::chrono::seconds>(memif_connect_timeout).count();
            return error{ errc::unavailable,
                          fmt::format("DPDK: port {}: the memif server did not accept the "
                                      "connection within {} s: is its port started, with the same "
                                      "id and socket?",
                                      _name, waited) };
        }
        rte_eth_dev_stop(_port_id);
        _started = false;
    }
}

bool dpdk_port::steer_udp_ports(std::string* reason) {
    for (std::uint16_t q = 0; q < queues(); ++q) {
        rte_flow_attr attr{};
        attr.ingress = 1;
        rte_flow_item_udp udp_spec{};
        rte_flow_item_udp udp_mask{};
        udp_spec.hdr.dst_port =
          rte_cpu_to_be_16(static_cast<std::uint16_t>(dpdk_data_udp_port + q));
        udp_mask.hdr.dst_port = RTE_BE16(0xFFFF);
        std::array<rte_flow_item, 4> pattern{};
        pattern[0].type = RTE_FLOW_ITEM_TYPE_ETH;
        pattern[1].type = RTE_FLOW_ITEM_TYPE_IPV4;
        pattern[2].type = RTE_FLOW_ITEM_TYPE_UDP;
        pattern[2].spec = &udp_spec;
        pattern[2].mask = &udp_mask;
        pattern[3].type = RTE_FLOW_ITEM_TYPE_END;
        rte_flow_action_queue to_queue{};
        to_queue.index = q;
        std::array<rte_flow_action, 2> actions{};
        actions[0].type = RTE_FLOW_ACTION_TYPE_QUEUE;
        actions[0].conf = &to_queue;
        actions[1].type = RTE_FLOW_ACTION_TYPE_END;
        rte_flow_error err{};
        const char* step = "rte_flow_validate";
        int rc = rte_flow_validate(_port_id, &attr, pattern.data(), actions.data(), &err);
        if (rc == 0) {
            step = "rte_flow_create";
            if (rte_flow_create(_port_id, &attr, pattern.data(), actions.data(), &err) != nullptr) {
                _flows = true;
                continue;
            }
            rc = -rte_errno;
        }
        // The message the driver (or ethdev) gave, else the error number's text.
        *reason =
          fmt::format("{} for queue {}: {}", step, q,
                      err.message != nullptr ? err.message : rte_strerror(rc < 0 ? -rc : rc));
        return false;
    }
    return true;
}

dpdk_port::~dpdk_port() {
    if (_flows) {
        rte_flow_error err{};
        rte_flow_flush(_port_id, &err);
    }
    if (_started) {
        rte_eth_dev_stop(_port_id);
    }
    if (_configured) {
        rte_eth_dev_close(_port_id);
    }
    // After the close: the device's rings held mbufs of these pools until then.
    for (auto& q : _queues) {
        if (q.pool != nullptr) {
            rte_mempool_free(q.pool);
        }
    }
}

bool dpdk_port::link_up() const {
    if (!_started) {
        return false;
    }
    rte_eth_link link{};
    return rte_eth_link_get_nowait(_port_id, &link) == 0 && link.link_status == RTE_ETH_LINK_UP;
}

std::uint16_t dpdk_port::rx_burst(std::uint16_t queue, rte_mbuf** out, std::uint16_t n) {
    const std::uint16_t got = rte_eth_rx_burst(_port_id, queue, out, n);
    _queues[queue].counters.rx += got;
    return got;
}

std::uint16_t dpdk_port::tx_burst(std::uint16_t queue, rte_mbuf** pkts, std::uint16_t n) {
    const std::uint16_t sent = rte_eth_tx_burst(_port_id, queue, pkts, n);
    _queues[queue].counters.tx += sent;
    return sent;
}

void dpdk_port::drop(std::uint16_t queue, rte_mbuf** pkts, std::uint16_t n) {
    rte_pktmbuf_free_bulk(pkts, n);
    _queues[queue].counters.tx_dropped += n;
}

rte_mbuf* dpdk_port::alloc(std::uint16_t queue) {
    rte_mbuf* m = rte_pktmbuf_alloc(_queues[queue].pool);
    if (m == nullptr) {
        ++_queues[queue].counters.alloc_failed;
    }
    return m;
}

bool dpdk_port::alloc_bulk(std::uint16_t queue, rte_mbuf** out, std::uint16_t n) {
    return rte_pktmbuf_alloc_bulk(_queues[queue].pool, out, n) == 0;
}

std::span<std::byte> dpdk_port::data(rte_mbuf* m) {
    return { rte_pktmbuf_mtod(m, std::byte*), m->data_len };
}

std::span<std::byte> dpdk_port::append(rte_mbuf* m, std::size_t bytes) {
    if (bytes > rte_pktmbuf_tailroom(m)) {
        return {};
    }
    char* at = rte_pktmbuf_append(m, static_cast<std::uint16_t>(bytes));
    if (at == nullptr) {
        return {};
    }
    return { reinterpret_cast<std::byte*>(at), bytes };
}

void dpdk_port::free(rte_mbuf* m) {
    rte_pktmbuf_free(m);
}

void dpdk_port::free_bulk(rte_mbuf** ms, std::uint16_t n) {
    rte_pktmbuf_free_bulk(ms, n);
}

void dpdk_port::hold(rte_mbuf* m) {
    rte_mbuf_refcnt_update(m, 1);
}

bool dpdk_usable(const std::vector<std::string>& eal_args, std::string* why) {
    if (auto s = dpdk_eal::init(eal_args); !s) {
        if (why != nullptr) {
            *why = s.err().message;
        }
        return false;
    }
    if (rte_eth_dev_count_avail() == 0) {
        if (why != nullptr) {
            *why = "DPDK: EAL started but no port is available: add one with --vdev or bind a NIC "
                   "with dpdk-devbind.py";
        }
        return false;
    }
    return true;
}

} // namespace ringtail::net

#else // !RINGTAIL_HAVE_DPDK

namespace ringtail::net {

namespace {
constexpr const char* no_dpdk =
  "DPDK: this build has no DPDK: install libdpdk-dev (22.11) and rebuild, or use --net socket";
} // namespace

status dpdk_eal::init(const std::vector<std::string>&) {
    return error{ errc::unavailable, no_dpdk };
}

bool dpdk_eal::initialized() {
    return false;
}

void dpdk_eal::cleanup() {}

bool dpdk_eal::register_thread() {
    return false;
}

void dpdk_eal::unregister_thread() {}

std::vector<unsigned> dpdk_eal::lcore_cpus() {
    return {};
}

result<std::unique_ptr<dpdk_port>> dpdk_port::open(const dpdk_port_config&) {
    return error{ errc::unavailable, no_dpdk };
}

// Unreachable: open() never makes a port in this build.
dpdk_port::~dpdk_port() = default;
status dpdk_port::start(std::uint16_t) {
    return error{ errc::unavailable, no_dpdk };
}
bool dpdk_port::link_up() const {
    return false;
}
std::uint16_t dpdk_port::rx_burst(std::uint16_t, rte_mbuf**, std::uint16_t) {
    return 0;
}
std::uint16_t dpdk_port::tx_burst(std::uint16_t, rte_mbuf**, std::uint16_t) {
    return 0;
}
void dpdk_port::drop(std::uint16_t, rte_mbuf**, std::uint16_t) {}
rte_mbuf* dpdk_port::alloc(std::uint16_t) {
    return nullptr;
}
bool dpdk_port::alloc_bulk(std::uint16_t, rte_mbuf**, std::uint16_t) {
    return false;
}
std::span<std::byte> dpdk_port::data(rte_mbuf*) {
    return {};
}
std::span<std::byte> dpdk_port::append(rte_mbuf*, std::size_t) {
    return {};
}
void dpdk_port::free(rte_mbuf*) {}
void dpdk_port::free_bulk(rte_mbuf**, std::uint16_t) {}
void dpdk_port::hold(rte_mbuf*) {}

bool dpdk_usable(const std::vector<std::string>&, std::string* why) {
    if (why != nullptr) {
        *why = no_dpdk;
    }
    return false;
}

} // namespace ringtail::net

#endif

// Both builds.
namespace ringtail::net {

dpdk_port_counters& dpdk_port_counters::operator+=(const dpdk_port_counters& o) {
    rx += o.rx;
    tx += o.tx;
    tx_dropped += o.tx_dropped;
    rx_bad += o.rx_bad;
    alloc_failed += o.alloc_failed;
    return *this;
}

dpdk_port_counters dpdk_port::counters() const {
    dpdk_port_counters sum;
    for (const auto& q : _queues) {
        sum += q.counters;
    }
    return sum;
}

bool dpdk_port::wait_link_down(double timeout_s) const {
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(std::max(timeout_s, 0.0)));
    while (link_up()) {
        if (std::chrono::steady_clock::now() >= deadline) {
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

} // namespace ringtail::net
