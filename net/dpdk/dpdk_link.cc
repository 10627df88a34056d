// UDP/IPv4 frames on a DPDK port, one data-channel frame each.
#include "net/dpdk/dpdk_link.h"

#include <cstdio>
#include <cstring>
#include <optional>

namespace ringtail::net {

namespace {

// An EAL lcore id for the thread (dpdk_eal::register_thread), from its first data-plane call on a
// dpdk_link until it ends: the mbufs it allocates and frees then go through a mempool cache of its
// own instead of the pool's shared ring. A thread EAL started keeps the id it has.
struct eal_thread_registration {
    eal_thread_registration() { dpdk_eal::register_thread(); }
    ~eal_thread_registration() { dpdk_eal::unregister_thread(); }
    eal_thread_registration(const eal_thread_registration&) = delete;
    eal_thread_registration& operator=(const eal_thread_registration&) = delete;
};

thread_local bool eal_thread_checked = false;

void register_eal_thread() {
    if (!eal_thread_checked) [[unlikely]] {
        eal_thread_checked = true;
        thread_local const eal_thread_registration registration;
    }
}

} // namespace

udp_endpoint dpdk_endpoint(std::uint32_t index, const std::array<std::uint8_t, 6>& mac) {
    const std::uint32_t host = index + 1;
    return udp_endpoint{ mac, (10u << 24) | (77u << 16) | (host & 0xFFFF), dpdk_data_udp_port };
}

std::string mac_to_string(const std::array<std::uint8_t, 6>& mac) {
    char buf[18];
    std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
                  mac[4], mac[5]);
    return buf;
}

std::optional<std::array<std::uint8_t, 6>> mac_from_string(const std::string& text) {
    std::array<unsigned, 6> v{};
    char tail = 0;
    if (text.size() != 17 || std::sscanf(text.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1],
                                         &v[2], &v[3], &v[4], &v[5], &tail) != 6) {
        return std::nullopt;
    }
    std::array<std::uint8_t, 6> mac{};
    for (std::size_t i = 0; i < 6; ++i) {
        mac[i] = static_cast<std::uint8_t>(v[i]);
    }
    return mac;
}

dpdk_link::dpdk_link(dpdk_port& port, std::uint32_t self, std::vector<udp_endpoint> endpoints,
                     std::uint16_t queue)
  : _port(port)
  , _self(self)
  , _queue(queue)
  , _endpoints(std::move(endpoints)) {
    for (auto& e : _endpoints) {
        e.port = static_cast<std::uint16_t>(dpdk_data_udp_port + queue);
    }
    for (const auto& e : _endpoints) {
        _headers.emplace_back(_endpoints[_self], e);
    }
}

std::size_t dpdk_link::max_datagram_bytes() const {
    // A standard 1500-byte MTU: the IPv4 and UDP headers come out of it.
    return 1500 - ipv4_header_min_bytes - udp_header_bytes;
}

rte_mbuf* dpdk_link::take_mbuf() {
    if (_stash_count == 0) {
        if (!_port.alloc_bulk(_queue, _stash, tx_burst_max)) {
            return _port.alloc(_queue); // the pool's last few
        }
        _stash_count = tx_burst_max;
    }
    return _stash[--_stash_count];
}

void dpdk_link::send(peer_id peer, std::span<const std::byte> datagram) {
    register_eal_thread();
    rte_mbuf* m = take_mbuf();
    if (m == nullptr) {
        ++_counters.tx_no_mbuf;
        return;
    }
    auto room = dpdk_port::append(m, udp_frame_bytes(datagram.size()));
    if (room.empty()) {
        dpdk_port::free(m);
        ++_counters.tx_no_mbuf;
        return;
    }
    _headers[peer].write(room.first<udp_frame_header_bytes>(), datagram.size());
    if (!datagram.empty()) {
        std::memcpy(room.data() + udp_frame_header_bytes, datagram.data(), datagram.size());
    }
    _tx[_tx_count++] = m;
    if (_tx_count == tx_burst_max) {
        flush();
    }
}

datagram_link::buffer dpdk_link::allocate(peer_id peer, std::size_t bytes) {
    register_eal_thread();
    rte_mbuf* m = take_mbuf();
    if (m != nullptr) {
        auto room = dpdk_port::append(m, udp_frame_bytes(bytes));
        if (!room.empty()) {
            _headers[peer].write(room.first<udp_frame_header_bytes>(), bytes);
            return buffer{ m, room.data() + udp_frame_header_bytes, bytes };
        }
        dpdk_port::free(m);
    }
    ++_counters.held_on_heap;
    return datagram_link::allocate(peer, bytes);
}

void dpdk_link::send_buffer(peer_id peer, const buffer& b) {
    register_eal_thread();
    if (b.handle == nullptr) {
        send(peer, std::span<const std::byte>(b.data, b.size)); // heap: a copy into a fresh mbuf
        return;
    }
    auto* m = static_cast<rte_mbuf*>(b.handle);
    dpdk_port::hold(m); // the device's reference; ours stays with the caller
    _tx[_tx_count++] = m;
    if (_tx_count == tx_burst_max) {
        flush();
    }
}

void dpdk_link::release(buffer& b) {
    register_eal_thread();
    if (b.handle == nullptr) {
        datagram_link::release(b);
        return;
    }
    dpdk_port::free(static_cast<rte_mbuf*>(b.handle));
    b = buffer{};
}

void dpdk_link::flush() {
    register_eal_thread();
    if (_tx_count == 0) {
        return;
    }
    const std::uint16_t sent = _port.tx_burst(_queue, _tx, _tx_count);
    if (sent != 0) {
        ++_counters.tx_bursts;
    }
    if (sent < _tx_count) {
        _port.drop(_queue, _tx + sent, static_cast<std::uint16_t>(_tx_count - sent));
        _counters.tx_full += _tx_count - sent;
    }
    _tx_count = 0;
}

dpdk_link::~dpdk_link() {
    flush();
    dpdk_port::free_bulk(_stash, _stash_count);
}

std::size_t dpdk_link::receive(const std::function<void(peer_id, std::span<const std::byte>)>& on) {
    register_eal_thread();
    rte_mbuf* burst[32];
    const std::uint16_t n = _port.rx_burst(_queue, burst, 32);
    parsed_udp frame;
    for (std::uint16_t i = 0; i < n; ++i) {
        std::optional<peer_id> from;
        if (parse_udp_frame(dpdk_port::data(burst[i]), frame) &&
            frame.dst.port == _endpoints[_self].port && frame.dst.ip == _endpoints[_self].ip) {
            for (peer_id p = 0; p < _endpoints.size(); ++p) {
                if (p != _self && _endpoints[p].ip == frame.src.ip) {
                    from = p;
                }
            }
        }
        if (from) {
            on(*from, frame.payload);
        } else {
            ++_counters.rx_foreign;
            _port.count_rx_bad(_queue);
        }
    }
    dpdk_port::free_bulk(burst, n);
    return n;
}

} // namespace ringtail::net
