// DPDK's EAL start-up and one RX/TX queue pair on an ethdev port, with its own mempool; in a build
// without DPDK, the same API reporting errc::unavailable.
#include "net/dpdk_port.h"

#include <fmt/format.h>

#if RINGTAIL_HAVE_DPDK

#include <cerrno>
#include <cstring>
#include <mutex>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "engine/log.h"

namespace ringtail::net {

namespace {

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
    rte_eth_conf conf{};
    if (int rc = rte_eth_dev_configure(port_id, 1, 1, &conf); rc != 0) {
        return port_error(p->_name, "rte_eth_dev_configure", rc);
    }
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
    // Pool names are global to the EAL instance: one per port (and, later, per queue).
    const std::string pool_name = fmt::format("rt_p{}_q0", port_id);
    p->_pool = rte_pktmbuf_pool_create(pool_name.c_str(), config.pool_mbufs, config.pool_cache, 0,
                                       RTE_MBUF_DEFAULT_BUF_SIZE, socket);
    if (p->_pool == nullptr) {
        return error{ errc::unavailable,
                      fmt::format("DPDK: port {}: no memory for {} mbufs ({}): give EAL more "
                                  "memory (-m MB with --no-huge, or more hugepages)",
                                  p->_name, config.pool_mbufs, rte_strerror(rte_errno)) };
    }
    if (int rc =
          rte_eth_rx_queue_setup(port_id, 0, rxd, static_cast<unsigned>(socket), nullptr, p->_pool);
        rc != 0) {
        return port_error(p->_name, "rte_eth_rx_queue_setup", rc);
    }
    if (int rc = rte_eth_tx_queue_setup(port_id, 0, txd, static_cast<unsigned>(socket), nullptr);
        rc != 0) {
        return port_error(p->_name, "rte_eth_tx_queue_setup", rc);
    }
    if (int rc = rte_eth_dev_start(port_id); rc != 0) {
        return port_error(p->_name, "rte_eth_dev_start", rc);
    }
    p->_started = true;
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

dpdk_port::~dpdk_port() {
    if (_started) {
        rte_eth_dev_stop(_port_id);
        rte_eth_dev_close(_port_id);
    }
    // After the close: the device's rings held mbufs of this pool until then.
    if (_pool != nullptr) {
        rte_mempool_free(_pool);
    }
}

bool dpdk_port::link_up() const {
    rte_eth_link link{};
    return rte_eth_link_get_nowait(_port_id, &link) == 0 && link.link_status == RTE_ETH_LINK_UP;
}

std::uint16_t dpdk_port::rx_burst(rte_mbuf** out, std::uint16_t n) {
    const std::uint16_t got = rte_eth_rx_burst(_port_id, 0, out, n);
    _counters.rx += got;
    return got;
}

std::uint16_t dpdk_port::tx_burst(rte_mbuf** pkts, std::uint16_t n) {
    const std::uint16_t sent = rte_eth_tx_burst(_port_id, 0, pkts, n);
    _counters.tx += sent;
    return sent;
}

void dpdk_port::drop(rte_mbuf** pkts, std::uint16_t n) {
    rte_pktmbuf_free_bulk(pkts, n);
    _counters.tx_dropped += n;
}

rte_mbuf* dpdk_port::alloc() {
    rte_mbuf* m = rte_pktmbuf_alloc(_pool);
    if (m == nullptr) {
        ++_counters.alloc_failed;
    }
    return m;
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

result<std::unique_ptr<dpdk_port>> dpdk_port::open(const dpdk_port_config&) {
    return error{ errc::unavailable, no_dpdk };
}

// Unreachable: open() never makes a port in this build.
dpdk_port::~dpdk_port() = default;
bool dpdk_port::link_up() const {
    return false;
}
std::uint16_t dpdk_port::rx_burst(rte_mbuf**, std::uint16_t) {
    return 0;
}
std::uint16_t dpdk_port::tx_burst(rte_mbuf**, std::uint16_t) {
    return 0;
}
void dpdk_port::drop(rte_mbuf**, std::uint16_t) {}
rte_mbuf* dpdk_port::alloc() {
    return nullptr;
}
std::span<std::byte> dpdk_port::data(rte_mbuf*) {
    return {};
}
std::span<std::byte> dpdk_port::append(rte_mbuf*, std::size_t) {
    return {};
}
void dpdk_port::free(rte_mbuf*) {}
void dpdk_port::hold(rte_mbuf*) {}

bool dpdk_usable(const std::vector<std::string>&, std::string* why) {
    if (why != nullptr) {
        *why = no_dpdk;
    }
    return false;
}

} // namespace ringtail::net

#endif
