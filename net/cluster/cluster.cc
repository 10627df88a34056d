// Cluster formation, heartbeats, loss reports, gathered queries and the clean shutdown.
#include "net/cluster/cluster.h"

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <future>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <random>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <xxhash.h>

#include "engine/build_info.h"
#include "engine/clock.h"
#include "engine/log.h"
#include "net/channel/data_mesh.h"
#include "net/io/tcp_listener.h"

namespace ringtail::net {
namespace {

using json = nlohmann::json;
using steady = std::chrono::steady_clock;

// Control frames between workers may carry every key of a stage (PartitionQuery).
constexpr std::uint32_t cluster_max_control_frame = 64u << 20;
constexpr std::chrono::milliseconds drain_round_interval{ 20 };
constexpr std::chrono::seconds drain_timeout{ 60 };

std::string peer_ip(int fd) {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        return {};
    }
    char buf[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &a.sin_addr, buf, sizeof buf);
    return buf;
}

bool unspecified(const std::string& host) {
    return host.empty() || host == "0.0.0.0";
}

// Waits for `conn` to be readable or writable (as it needs) for at most `ms`, then polls it,
// appending messages to `inbox`.
void pump(control_connection& conn, std::deque<control_msg>& inbox, int ms) {
    if (conn.closed()) {
        return;
    }
    pollfd p{ conn.fd(), static_cast<short>(POLLIN | (conn.wants_write() ? POLLOUT : 0)), 0 };
    ::poll(&p, 1, ms);
    conn.poll([&](control_msg&& m) { inbox.push_back(std::move(m)); });
}

// Waits for one message of `type` on `conn` (heartbeats and others are skipped), checking
// `interrupted` every 100 ms; `deadline` may be time_point::max().
result<control_msg> await(control_connection& conn, std::deque<control_msg>& inbox,
                          std::initializer_list<control_type> types, steady::time_point deadline,
                          const std::function<bool()>& interrupted, const std::string& what) {
    for (;;) {
        while (!inbox.empty()) {
            control_msg m = std::move(inbox.front());
            inbox.pop_front();
            for (auto t : types) {
                if (m.type == t) {
                    return m;
                }
            }
            log::debug("cluster: {} ignored while waiting for {}", to_string(m.type), what);
        }
        if (conn.closed()) {
            return error{ errc::unavailable, "cluster: the connection to " + conn.peer() +
                                               " closed while waiting for " + what + " (" +
                                               conn.close_reason() + ")" };
        }
        if (interrupted && interrupted()) {
            return error{ errc::unavailable, formation_interrupted, reason::formation_interrupted };
        }
        if (steady::now() >= deadline) {
            return error{ errc::unavailable,
                          "cluster: timed out waiting for " + what + " from " + conn.peer() };
        }
        pump(conn, inbox, 100);
    }
}

} // namespace

std::uint64_t app_fingerprint(const application& app) {
    std::string shape = app.name();
    shape += '\0';
    shape += build_info::version;
    shape += '\0';
    shape += __VERSION__; // the compiler: value layouts of trivially copyable types must match
    for (const auto& n : app.nodes()) {
        shape += '\0';
        shape += to_string(n->kind);
        shape += ':';
        shape += n->name;
        shape += ':';
        shape += std::to_string(n->partitions);
        for (auto next : n->next) {
            shape += ',' + std::to_string(next);
        }
    }
    return XXH64(shape.data(), shape.size(), 0);
}

cluster_member::cluster_member(const cluster_config& config)
  : _config(config)
  , _wake_fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}

cluster_member::~cluster_member() {
    // The control thread uses _wake_fd: joined before the members (the fds among them) go.
    stop();
}

result<std::unique_ptr<cluster_member>> cluster_member::form(const cluster_config& config) {
    std::unique_ptr<cluster_member> m(new cluster_member(config));
    auto s = config.initializer ? m->form_as_initializer() : m->form_as_worker();
    if (!s) {
        return s.err();
    }
    m->_lost.assign(m->_workers.size(), false);
    return m;
}

std::vector<std::uint32_t> cluster_member::shards_per_worker() const {
    return net::shards_per_worker(_workers);
}

// ---- formation ---------------------------------------------------------------------------------

status cluster_member::form_as_initializer() {
    const std::uint32_t expected = _config.worker_count;
    auto control_fd = listen_tcp(_config.control);
    if (!control_fd) {
        return error{ control_fd.err().code, "--control: " + control_fd.err().message };
    }
    _control_listen_fd.reset(control_fd.value());
    auto data_fd = listen_tcp(_config.data);
    if (!data_fd) {
        return error{ data_fd.err().code, "--data: " + data_fd.err().message };
    }
    _data_listen_fd.reset(data_fd.value());
    host_port my_data{ _config.data.host, bound_port(_data_listen_fd.get()) };
    const std::string my_mac = _config.dpdk ? mac_to_string(_config.dpdk->mac()) : "";
    _workers.push_back(worker_info{ "initializer", my_data, _config.shards, my_mac,
                                    _config.dpdk ? _config.dpdk->queues() : 1u });
    log::info("cluster: initializer waiting for {} more worker(s) on control {}:{}", expected - 1,
              _config.control.host, bound_port(_control_listen_fd.get()));

    struct candidate {
        std::unique_ptr<control_connection> conn;
        std::deque<control_msg> inbox;
        bool welcomed = false;
        worker_info info;
    };
    std::vector<candidate> cands;
    std::size_t welcomed = 0;
    const initializer_facts facts{ _config.app_name, _config.app_fingerprint, expected,
                                   _config.dpdk != nullptr, _config.dpdk_required };
    while (welcomed + 1 < expected) {
        if (_config.interrupted && _config.interrupted()) {
            return error{ errc::unavailable, formation_interrupted, reason::formation_interrupted };
        }
        std::vector<pollfd> fds{ { _control_listen_fd.get(), POLLIN, 0 } };
        for (auto& c : cands) {
            fds.push_back({ c.conn->fd(),
                            static_cast<short>(POLLIN | (c.conn->wants_write() ? POLLOUT : 0)),
                            0 });
        }
        ::poll(fds.data(), fds.size(), 100);
        for (;;) {
            int fd =
              ::accept4(_control_listen_fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                break;
            }
            std::string ip = peer_ip(fd);
            cands.push_back(candidate{ std::make_unique<control_connection>(
                                         fd, "a worker at " + ip, cluster_max_control_frame),
                                       {},
                                       false,
                                       {} });
        }
        for (auto& c : cands) {
            c.conn->poll([&](control_msg&& m) { c.inbox.push_back(std::move(m)); });
            while (!c.inbox.empty() && !c.conn->closed()) {
                control_msg m = std::move(c.inbox.front());
                c.inbox.pop_front();
                if (m.type != control_type::hello || c.welcomed) {
                    continue;
                }
                std::vector<std::string> names_taken;
                for (const auto& other : cands) {
                    if (other.welcomed) {
                        names_taken.push_back(other.info.name);
                    }
                }
                auto joining = check_hello(m.body, facts, names_taken);
                if (!joining) {
                    const std::string& refusal = joining.err().message;
                    log::warn("cluster: refused {}: {}", c.conn->peer(), refusal);
                    c.conn->send(control_type::reject, json{ { "reason", refusal } });
                    c.conn->flush(std::chrono::milliseconds(500));
                    c.conn->close();
                    continue;
                }
                c.info = std::move(joining.value());
                if (unspecified(c.info.data.host)) {
                    c.info.data.host = peer_ip(c.conn->fd());
                }
                c.welcomed = true;
                ++welcomed;
                c.conn->send(control_type::welcome, json::object());
                log::info("cluster: worker '{}' joined ({} of {})", c.info.name, welcomed + 1,
                          expected);
            }
            if (c.conn->closed() && c.welcomed) {
                log::warn("cluster: worker '{}' disconnected before the cluster formed ({})",
                          c.info.name, c.conn->close_reason());
                --welcomed;
            }
        }
        std::erase_if(cands, [](const candidate& c) { return c.conn->closed(); });
    }
    // Everyone is here: the topology, in the order they joined.
    std::random_device rd;
    _token = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
    for (auto& c : cands) {
        if (c.welcomed) {
            _workers.push_back(c.info);
        }
    }
    _net = choose_transport(_workers);
    topology told{ _token, 1, _workers, _net };
    for (auto& c : cands) {
        if (!c.welcomed) {
            continue;
        }
        c.conn->send(control_type::topology, topology_body(told));
        _links.push_back(link{ std::move(c.conn), told.index, steady::now() });
        ++told.index;
    }
    for (auto& l : _links) {
        l.conn->flush(std::chrono::seconds(2));
    }
    return build_mesh();
}

status cluster_member::form_as_worker() {
    auto data_fd = listen_tcp(_config.data);
    if (!data_fd) {
        return error{ data_fd.err().code, "--my-data: " + data_fd.err().message };
    }
    _data_listen_fd.reset(data_fd.value());
    if (_config.my_control) {
        // Reserved for growing and shrinking (workers will reach each other here); listening now
        // makes a port in use fail at start-up.
        auto control_fd = listen_tcp(*_config.my_control);
        if (!control_fd) {
            return error{ control_fd.err().code, "--my-control: " + control_fd.err().message };
        }
        _control_listen_fd.reset(control_fd.value());
    }
    host_port my_data{ _config.data.host, bound_port(_data_listen_fd.get()) };

    // The initializer may not be up yet: retry until it is (or the operator stops us).
    int fd = -1;
    auto next_note = steady::now();
    for (;;) {
        auto c = connect_tcp_blocking(_config.control, std::chrono::seconds(1));
        if (c) {
            fd = c.value();
            break;
        }
        if (steady::now() >= next_note) {
            log::info("cluster: waiting for the initializer at {} ({})",
                      _config.control.to_string(), c.err().message);
            next_note = steady::now() + std::chrono::seconds(10);
        }
        for (int i = 0; i < 5; ++i) {
            if (_config.interrupted && _config.interrupted()) {
                return error{ errc::unavailable, formation_interrupted,
                              reason::formation_interrupted };
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }
    auto conn = std::make_unique<control_connection>(
      fd, "the initializer at " + _config.control.to_string(), cluster_max_control_frame);
    hello me;
    me.worker = worker_info{ _config.name, my_data, _config.shards,
                             _config.dpdk ? mac_to_string(_config.dpdk->mac()) : "",
                             _config.dpdk ? _config.dpdk->queues() : 1u };
    me.app = _config.app_name;
    me.fingerprint = _config.app_fingerprint;
    me.worker_count = _config.worker_count;
    me.dpdk_required = _config.dpdk_required;
    conn->send(control_type::hello, hello_body(me));
    std::deque<control_msg> inbox;
    auto answer =
      await(*conn, inbox, { control_type::welcome, control_type::reject },
            steady::now() + std::chrono::seconds(30), _config.interrupted, "an answer to HELLO");
    if (!answer) {
        return answer.err();
    }
    if (answer.value().type == control_type::reject) {
        return error{ errc::config, "cluster: the initializer refused this worker: " +
                                      get_string(answer.value().body, "reason").value_or("?") };
    }
    log::info("cluster: joined the initializer at {} as '{}'; waiting for the other workers",
              _config.control.to_string(), _config.name);
    auto topology = await(*conn, inbox, { control_type::topology }, steady::time_point::max(),
                          _config.interrupted, "the cluster topology");
    if (!topology) {
        return topology.err();
    }
    // A worker's data host left unspecified is the initializer's: where we reached it.
    auto told = read_topology(topology.value().body, _config.control.host);
    if (!told) {
        return told.err();
    }
    if (auto s = check_transport(told->net, _config.dpdk != nullptr, _config.dpdk_required); !s) {
        return s.err();
    }
    _workers = std::move(told->workers);
    _net = told->net;
    _token = told->token;
    _self = told->index;
    _links.push_back(link{ std::move(conn), 0, steady::now() });
    return build_mesh();
}

status cluster_member::build_mesh() {
    if (_net == transport_kind::dpdk) {
        std::vector<udp_endpoint> endpoints;
        for (const auto& given : _config.dpdk_peer_macs) {
            const std::string& name = given.first;
            if (std::none_of(_workers.begin(), _workers.end(),
                             [&name](const worker_info& w) { return w.name == name; })) {
                log::warn("cluster: --dpdk-peer names '{}', which is not in this cluster", name);
            }
        }
        for (const auto& w : _workers) {
            auto mac = mac_from_string(w.mac);
            if (auto given = _config.dpdk_peer_macs.find(w.name);
                given != _config.dpdk_peer_macs.end() && w.name != _workers[_self].name) {
                log::info("cluster: frames for worker '{}' go to {} (--dpdk-peer; it reported {})",
                          w.name, mac_to_string(given->second), w.mac);
                mac = given->second;
            }
            if (!mac) {
                return error{ errc::unavailable,
                              "cluster: worker '" + w.name + "' reported no DPDK MAC address" };
            }
            endpoints.push_back(dpdk_endpoint(static_cast<std::uint32_t>(endpoints.size()), *mac));
        }
        // One lane per queue pair that every worker has: lane l of each worker sends on its queue
        // l to the others' queue l, so the lanes never share a queue or a thread.
        const std::uint32_t lanes = lane_count(_config.dpdk->queues(), _workers);
        // A memif or ring port starts here with `lanes` queue pairs, the same count at both ends;
        // any other port was started by open().
        const std::uint16_t opened = _config.dpdk->queues();
        if (auto s = _config.dpdk->start(static_cast<std::uint16_t>(lanes)); !s) {
            return error{ s.err().code, "cluster: " + s.err().message };
        }
        if (_config.test_faults) {
            log::warn("cluster: RINGTAIL_TEST_FAULTS: faults injected on the data channel (a "
                      "test hook)");
        }
        for (std::uint32_t l = 0; l < lanes; ++l) {
            _dpdk_links.push_back(std::make_unique<dpdk_link>(*_config.dpdk, _self, endpoints,
                                                              static_cast<std::uint16_t>(l)));
            datagram_link* link = _dpdk_links.back().get();
            if (_config.test_faults) {
                fault_config faults = *_config.test_faults;
                faults.seed += l; // lanes see different faults
                _faulty_links.push_back(
                  std::make_unique<faulty_link>(*link, faults, [] { return clock::now_ns(); }));
                link = _faulty_links.back().get();
            }
            auto dt = std::make_unique<datagram_transport>(*link, _self, _config.datagram);
            _datagrams.push_back(dt.get());
            _transports.push_back(std::move(dt));
        }
        log::info("cluster: formed, {} workers; data channel on DPDK port '{}' ({}), {} lane(s) "
                  "(queue pairs: this worker's port has {}, the fewest in the cluster {}); this "
                  "is '{}'",
                  _workers.size(), _config.dpdk->name(), mac_to_string(_config.dpdk->mac()), lanes,
                  opened, lanes, _workers[_self].name);
        return ok_status();
    }
    std::string names;
    for (const auto& w : _workers) {
        names += (names.empty() ? "" : ", ") + w.name;
    }
    if (_config.test_faults) {
        // TCP would repair the faults below our frames, so the data channel runs over UDP
        // datagrams instead, in the DPDK back end's stack: udp_socket_link -> faulty_link ->
        // datagram_transport. The socket is bound to the data listener's host:port now, before
        // READY, so no peer's datagram finds the port closed once START has been said (and one
        // lost earlier is retransmitted anyway). The TCP listener stays open, unused: it keeps the
        // port that the others know as ours. No TCP mesh is built, so every worker must see the
        // variable: one that does not waits for a mesh the others never build, and formation
        // fails with its timeout (or the worker is reported unreachable) - acceptable for a test
        // hook. /status still says "net": "socket".
        std::vector<host_port> peers;
        for (const auto& w : _workers) {
            peers.push_back(w.data);
        }
        auto udp = udp_socket_link::open(
          host_port{ _config.data.host, bound_port(_data_listen_fd.get()) }, _self, peers);
        if (!udp) {
            return error{ udp.err().code, "cluster: RINGTAIL_TEST_FAULTS: " + udp.err().message };
        }
        _udp_link = std::move(udp.value());
        _faulty_links.push_back(std::make_unique<faulty_link>(*_udp_link, *_config.test_faults,
                                                              [] { return clock::now_ns(); }));
        auto dt =
          std::make_unique<datagram_transport>(*_faulty_links.back(), _self, _config.datagram);
        _datagrams.push_back(dt.get());
        _transports.push_back(std::move(dt));
        log::warn("cluster: RINGTAIL_TEST_FAULTS: the data channel runs over UDP datagrams with "
                  "go-back-N and faults injected (a test hook; TCP would hide the loss)");
        log::info("cluster: formed, {} workers ({}); data channel on UDP {}; this is '{}'",
                  _workers.size(), names, _workers[_self].data.to_string(), _workers[_self].name);
        return ok_status();
    }
    data_mesh_config mc;
    mc.cluster_token = _token;
    mc.self = _self;
    mc.timeout = _config.mesh_timeout;
    for (const auto& w : _workers) {
        mc.data_addresses.push_back(w.data);
    }
    auto fds = build_data_mesh(_data_listen_fd.get(), mc);
    if (!fds) {
        return fds.err();
    }
    _transports.push_back(
      std::make_unique<socket_transport>(std::move(fds.value()), _self, _config.transport));
    log::info("cluster: formed, {} workers ({}); this is '{}'", _workers.size(), names,
              _workers[_self].name);
    return ok_status();
}

status cluster_member::start(runtime& rt) {
    _rt = &rt;
    const auto deadline = steady::now() + _config.ready_timeout;
    if (_config.initializer) {
        for (auto& l : _links) {
            std::deque<control_msg> inbox;
            auto r = await(*l.conn, inbox, { control_type::ready }, deadline, _config.interrupted,
                           "READY from worker '" + _workers[l.worker].name + "'");
            if (!r) {
                return r.err();
            }
        }
        for (auto& l : _links) {
            l.conn->send(control_type::start, json::object());
            l.conn->flush(std::chrono::seconds(2));
        }
    } else {
        auto& l = _links.front();
        l.conn->send(control_type::ready, json::object());
        std::deque<control_msg> inbox;
        auto r =
          await(*l.conn, inbox, { control_type::start }, deadline, _config.interrupted, "START");
        if (!r) {
            return r.err();
        }
    }
    for (auto& l : _links) {
        l.last_heard = steady::now();
    }
    _started.store(true, std::memory_order_release);
    _thread = std::thread([this] { run(); });
    return ok_status();
}

std::vector<ringtail::transport*> cluster_member::transports() const {
    std::vector<ringtail::transport*> out;
    for (const auto& t : _transports) {
        out.push_back(t.get());
    }
    return out;
}

std::string cluster_member::data_channel_report() const {
    if (_datagrams.empty()) {
        return {};
    }
    datagram_transport_counters c;
    for (const auto* d : _datagrams) {
        c += d->counters();
    }
    std::string out =
      std::string("data channel (") + (_dpdk_links.empty() ? "UDP sockets" : "DPDK") +
      "): " + std::to_string(_datagrams.size()) +
      (_datagrams.size() == 1 ? " lane, " : " lanes, ") + std::to_string(c.frames_out) +
      " frames out, " + std::to_string(c.retransmissions) + " retransmitted (" +
      std::to_string(c.fast_retransmissions) + " fast), " + std::to_string(c.spurious_timeouts) +
      " timeouts found spurious, " + std::to_string(c.frames_in) + " in, " +
      std::to_string(c.corrupt_frames) + " corrupt dropped, " + std::to_string(c.duplicates) +
      " duplicates, " + std::to_string(c.out_of_order) + " out of order (" +
      std::to_string(c.kept_early) + " kept until the gap filled), " +
      std::to_string(c.acks_piggybacked) + " acks piggybacked, " + std::to_string(c.acks_out) +
      " acks alone, " + std::to_string(c.fragments_out) + " fragments";
    if (_datagrams.size() > 1) {
        out += " (frames out by lane:";
        for (const auto* d : _datagrams) {
            out += " " + std::to_string(d->counters().frames_out);
        }
        out += ")";
    }
    if (!_dpdk_links.empty()) {
        std::uint64_t foreign = 0, on_heap = 0;
        for (const auto& l : _dpdk_links) {
            foreign += l->counters().rx_foreign;
            on_heap += l->counters().held_on_heap;
        }
        out += ", " + std::to_string(foreign) + " foreign frames, " + std::to_string(on_heap) +
               " held on the heap (mbuf pool empty)";
    }
    if (_udp_link) {
        const auto& u = _udp_link->counters();
        out += ", " + std::to_string(u.rx_foreign) + " foreign datagrams, " +
               std::to_string(u.tx_dropped) + " refused by the kernel";
    }
    if (!_faulty_links.empty()) {
        std::uint64_t lost = 0, corrupted = 0;
        for (const auto& f : _faulty_links) {
            lost += f->dropped();
            corrupted += f->corrupted();
        }
        out += "; faults injected: " + std::to_string(lost) + " lost, " +
               std::to_string(corrupted) + " corrupted";
    }
    return out;
}

// ---- the control thread ------------------------------------------------------------------------

void cluster_member::post(std::function<void()> task) {
    {
        std::lock_guard lock(_mu);
        _tasks.push_back(std::move(task));
    }
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(_wake_fd.get(), &one, sizeof one);
}

cluster_member::link* cluster_member::link_to(std::uint32_t worker) {
    for (auto& l : _links) {
        if (l.worker == worker && !l.conn->closed()) {
            return &l;
        }
    }
    return nullptr;
}

void cluster_member::broadcast(control_type type, const json& body) {
    for (auto& l : _links) {
        if (!l.conn->closed()) {
            l.conn->send(type, body);
        }
    }
}

void cluster_member::run() {
    ::pthread_setname_np(::pthread_self(), "rt-control");
    auto next_heartbeat = steady::now();
    while (!_quit.load(std::memory_order_acquire)) {
        std::vector<pollfd> fds{ { _wake_fd.get(), POLLIN, 0 } };
        for (auto& l : _links) {
            if (!l.conn->closed()) {
                fds.push_back({ l.conn->fd(),
                                static_cast<short>(POLLIN | (l.conn->wants_write() ? POLLOUT : 0)),
                                0 });
            }
        }
        ::poll(fds.data(), fds.size(), 20);
        std::uint64_t v;
        [[maybe_unused]] auto n = ::read(_wake_fd.get(), &v, sizeof v);
        std::deque<std::function<void()>> tasks;
        {
            std::lock_guard lock(_mu);
            tasks.swap(_tasks);
        }
        for (auto& t : tasks) {
            t();
        }
        const auto now = steady::now();
        for (std::size_t i = 0; i < _links.size(); ++i) {
            link& l = _links[i];
            if (l.conn->closed()) {
                continue;
            }
            l.conn->poll([&](control_msg&& m) {
                l.last_heard = steady::now();
                on_message(l, std::move(m));
            });
            if (l.conn->closed()) {
                lose(l.worker, "control channel: " + l.conn->close_reason(), false);
            } else if (now - l.last_heard > _config.heartbeat_timeout) {
                l.conn->close();
                lose(l.worker,
                     "no heartbeat for " + std::to_string(_config.heartbeat_timeout.count()) +
                       " ms",
                     false);
            }
        }
        if (now >= next_heartbeat) {
            broadcast(control_type::heartbeat, json::object());
            next_heartbeat = now + _config.heartbeat_interval;
        }
        for (auto it = _gathers.begin(); it != _gathers.end();) {
            auto cur = it++;
            if (now >= cur->second.deadline) {
                finish_gather(cur->second, false);
            }
        }
        tick_shutdown();
    }
    for (auto& l : _links) {
        if (!l.conn->closed()) {
            l.conn->flush(std::chrono::milliseconds(200));
        }
    }
}

void cluster_member::on_message(link& l, control_msg&& m) {
    const bool init = _config.initializer;
    switch (m.type) {
        case control_type::heartbeat:
            return;
        case control_type::worker_lost: {
            auto name = get_string(m.body, "name");
            for (std::uint32_t w = 0; name && w < _workers.size(); ++w) {
                if (_workers[w].name == *name && w != _self) {
                    lose(w, get_string(m.body, "reason").value_or("reported by the initializer"),
                         get_bool(m.body, "expected").value_or(false));
                }
            }
            return;
        }
        case control_type::leaving:
            lose(l.worker, "it was stopped", true);
            l.conn->close();
            return;
        case control_type::query: {
            auto id = get_u64(m.body, "id");
            bool counts = get_bool(m.body, "counts_only").value_or(false);
            if (!id) {
                return;
            }
            if (init) {
                begin_gather(counts, l.worker, *id, {});
            } else {
                json reply{ { "id", *id },
                            { "worker", _workers[_self].name },
                            { "state", local_state(counts) } };
                if (encode_control(control_type::query_reply, reply).size() >
                    cluster_max_control_frame) {
                    reply = json{ { "id", *id }, { "error", "too many keys to list" } };
                }
                l.conn->send(control_type::query_reply, reply);
            }
            return;
        }
        case control_type::query_reply: {
            auto id = get_u64(m.body, "id");
            if (!id) {
                return;
            }
            auto it = _gathers.find(*id);
            if (it == _gathers.end()) {
                return; // answered after its deadline
            }
            gather_op& op = it->second;
            if (init) {
                const json* state = get_object(m.body, "state");
                if (state == nullptr) {
                    finish_gather(op, false);
                    return;
                }
                op.result[_workers[l.worker].name] = *state;
                op.waiting.erase(l.worker);
                if (op.waiting.empty()) {
                    finish_gather(op, true);
                }
            } else {
                const json* state = get_object(m.body, "state");
                if (state != nullptr) {
                    op.result = *state;
                }
                finish_gather(op, state != nullptr);
            }
            return;
        }
        case control_type::shutdown_request:
            if (init) {
                log::info("cluster: worker '{}' asks for a clean shutdown of the cluster",
                          _workers[l.worker].name);
                request_shutdown();
            }
            return;
        case control_type::stop_admitting:
            log::info("cluster: clean shutdown: sources stop, draining in-flight messages");
            _shutting_down.store(true, std::memory_order_release);
            _rt->stop_admitting();
            return;
        case control_type::drain_status_request: {
            auto round = get_u64(m.body, "round");
            auto d = _rt->drain();
            l.conn->send(control_type::drain_status, json{ { "round", round.value_or(0) },
                                                           { "quiet", d.quiet },
                                                           { "sent", d.remote_sent },
                                                           { "received", d.remote_received } });
            return;
        }
        case control_type::drain_status: {
            auto round = get_u64(m.body, "round");
            if (init && _shutdown.active && round && *round == _shutdown.round) {
                runtime::drain_state d;
                d.quiet = get_bool(m.body, "quiet").value_or(false);
                d.remote_sent = get_u64(m.body, "sent").value_or(0);
                d.remote_received = get_u64(m.body, "received").value_or(0);
                _shutdown.replies[l.worker] = d;
            }
            return;
        }
        case control_type::finish:
            log::info("cluster: drained; stopping");
            _finished.store(true, std::memory_order_release);
            return;
        default:
            log::debug("cluster: unexpected {} from {}", to_string(m.type), l.conn->peer());
            return;
    }
}

void cluster_member::lose(std::uint32_t worker, const std::string& reason, bool expected) {
    {
        std::lock_guard lock(_mu);
        if (worker >= _lost.size() || _lost[worker] || worker == _self) {
            return;
        }
        _lost[worker] = true;
    }
    _any_lost.store(true, std::memory_order_release);
    const std::string& name = _workers[worker].name;
    if (_finished.load(std::memory_order_acquire) || _leaving.load(std::memory_order_acquire)) {
        log::info("cluster: worker '{}' stopped", name);
    } else if (expected) {
        log::warn("cluster: worker '{}' left the cluster ({}); processing_messages is now false",
                  name, reason);
    } else {
        log::error("cluster: worker '{}' is gone: {}; processing_messages is now false", name,
                   reason);
    }
    if (_config.initializer) {
        for (auto& l : _links) {
            if (l.worker != worker && !l.conn->closed()) {
                l.conn->send(
                  control_type::worker_lost,
                  json{ { "name", name }, { "reason", reason }, { "expected", expected } });
            }
        }
    }
    for (auto it = _gathers.begin(); it != _gathers.end();) {
        auto cur = it++;
        gather_op& op = cur->second;
        if (!_config.initializer && worker == 0) {
            finish_gather(op, false); // the initializer gathers: nobody will answer
        } else if (op.waiting.erase(worker) != 0 && op.waiting.empty()) {
            finish_gather(op, true);
        }
    }
    if (!_config.initializer && worker == 0 && _shutting_down.load(std::memory_order_acquire) &&
        !_finished.load(std::memory_order_acquire)) {
        log::warn("cluster: the initializer went away during the clean shutdown; stopping");
        _finished.store(true, std::memory_order_release);
    }
}

void cluster_member::report_data_peer_lost(peer_id peer, const std::string& reason) {
    const bool left = reason.find("left the cluster") != std::string::npos;
    post([this, peer, reason, left] { lose(peer, "data channel: " + reason, left); });
}

// ---- gathered queries --------------------------------------------------------------------------

json cluster_member::local_state(bool counts_only) {
    json out = json::object();
    auto keys = _rt->live_state_keys(std::chrono::seconds(1));
    if (!keys) {
        return out;
    }
    for (auto& s : *keys) {
        out[s.stage] = counts_only ? json(s.keys.size()) : json(std::move(s.keys));
    }
    return out;
}

void cluster_member::begin_gather(bool counts_only, std::optional<std::uint32_t> requester,
                                  std::uint64_t requester_id,
                                  std::function<void(std::optional<json>)> done) {
    const std::uint64_t id = _next_gather++;
    gather_op& op = _gathers[id];
    op.id = id;
    op.counts_only = counts_only;
    op.requester = requester;
    op.requester_id = requester_id;
    op.done = std::move(done);
    op.deadline = steady::now() + std::chrono::seconds(5);
    if (!_config.initializer) {
        link* l = link_to(0);
        if (l == nullptr) {
            finish_gather(op, false);
            return;
        }
        l->conn->send(control_type::query, json{ { "id", id }, { "counts_only", counts_only } });
        return;
    }
    for (std::uint32_t w = 1; w < _workers.size(); ++w) {
        if (link* l = link_to(w)) {
            bool lost;
            {
                std::lock_guard lock(_mu);
                lost = _lost[w];
            }
            if (!lost) {
                op.waiting.insert(w);
                l->conn->send(control_type::query,
                              json{ { "id", id }, { "counts_only", counts_only } });
            }
        }
    }
    op.result[_workers[_self].name] = local_state(counts_only);
    if (op.waiting.empty()) {
        finish_gather(op, true);
    }
}

void cluster_member::finish_gather(gather_op& op, bool complete) {
    if (op.requester) {
        if (link* l = link_to(*op.requester)) {
            json reply = complete ? json{ { "id", op.requester_id }, { "state", op.result } }
                                  : json{ { "id", op.requester_id },
                                          { "error", "not every worker answered in time" } };
            if (encode_control(control_type::query_reply, reply).size() >
                cluster_max_control_frame) {
                reply = json{ { "id", op.requester_id }, { "error", "too many keys to list" } };
            }
            l->conn->send(control_type::query_reply, reply);
        }
    } else if (op.done) {
        op.done(complete ? std::optional<json>(op.result) : std::nullopt);
    }
    _gathers.erase(op.id);
}

std::optional<json> cluster_member::gather_state(bool counts_only,
                                                 std::chrono::milliseconds timeout) {
    auto promise = std::make_shared<std::promise<std::optional<json>>>();
    auto future = promise->get_future();
    post([this, counts_only, promise] {
        begin_gather(counts_only, std::nullopt, 0,
                     [promise](std::optional<json> r) { promise->set_value(std::move(r)); });
    });
    if (future.wait_for(timeout) != std::future_status::ready) {
        return std::nullopt;
    }
    return future.get();
}

// ---- views, shutdown and leaving ---------------------------------------------------------------

bool cluster_member::processing() const {
    return _started.load(std::memory_order_acquire) && !_any_lost.load(std::memory_order_acquire) &&
           !_shutting_down.load(std::memory_order_acquire) && _rt != nullptr && _rt->processing();
}

std::vector<std::string> cluster_member::live_workers() const {
    std::lock_guard lock(_mu);
    std::vector<std::string> out;
    for (std::uint32_t w = 0; w < _workers.size(); ++w) {
        if (!_lost[w]) {
            out.push_back(_workers[w].name);
        }
    }
    return out;
}

void cluster_member::request_shutdown() {
    post([this] {
        if (_shutdown.active || _finished.load(std::memory_order_acquire)) {
            return;
        }
        if (!_config.initializer) {
            if (link* l = link_to(0)) {
                l->conn->send(control_type::shutdown_request, json::object());
                _shutting_down.store(true, std::memory_order_release);
            } else {
                log::warn("cluster: no initializer to coordinate the shutdown; stopping alone");
                _finished.store(true, std::memory_order_release);
            }
            return;
        }
        log::info("cluster: clean shutdown: sources stop on every worker, draining");
        _shutting_down.store(true, std::memory_order_release);
        _shutdown.active = true;
        broadcast(control_type::stop_admitting, json::object());
        _rt->stop_admitting();
        _shutdown.next_round = steady::now();
        _shutdown.deadline = steady::now() + drain_timeout;
    });
}

void cluster_member::tick_shutdown() {
    if (!_shutdown.active || _finished.load(std::memory_order_acquire)) {
        return;
    }
    const auto now = steady::now();
    if (now < _shutdown.next_round) {
        return;
    }
    if (_shutdown.round != 0) {
        // Judge the round just finished: every live worker answered, all quiet, and the messages
        // sent over the cluster equal those received, with the same totals as the round before
        // (nothing moved in between: no message on the wire or in a ring anywhere).
        std::vector<bool> lost;
        {
            std::lock_guard lock(_mu);
            lost = _lost;
        }
        auto local = _rt->drain();
        bool quiet = local.quiet;
        std::uint64_t sent = local.remote_sent, received = local.remote_received;
        for (std::uint32_t w = 1; w < _workers.size(); ++w) {
            if (lost[w]) {
                continue;
            }
            auto it = _shutdown.replies.find(w);
            if (it == _shutdown.replies.end()) {
                quiet = false;
                continue;
            }
            quiet = quiet && it->second.quiet;
            sent += it->second.remote_sent;
            received += it->second.remote_received;
        }
        const bool any_lost = _any_lost.load(std::memory_order_acquire);
        const bool balanced = any_lost || sent == received;
        const bool unchanged = _shutdown.previous == std::pair{ sent, received };
        _shutdown.previous = { sent, received };
        _shutdown.good_rounds = quiet && balanced ? (unchanged ? _shutdown.good_rounds + 1 : 1) : 0;
        if (_shutdown.good_rounds >= 2 || now >= _shutdown.deadline) {
            if (_shutdown.good_rounds < 2) {
                log::error("cluster: clean shutdown: still not drained after {} s; stopping anyway",
                           drain_timeout.count());
            }
            log::info("cluster: drained ({} messages crossed workers); stopping every worker",
                      sent);
            broadcast(control_type::finish, json::object());
            _finished.store(true, std::memory_order_release);
            return;
        }
    }
    ++_shutdown.round;
    _shutdown.replies.clear();
    broadcast(control_type::drain_status_request, json{ { "round", _shutdown.round } });
    _shutdown.next_round = now + drain_round_interval;
}

void cluster_member::leave() {
    if (!_started.load(std::memory_order_acquire) || _finished.load(std::memory_order_acquire)) {
        return;
    }
    _leaving.store(true, std::memory_order_release);
    auto done = std::make_shared<std::promise<void>>();
    auto f = done->get_future();
    post([this, done] {
        broadcast(control_type::leaving, json::object());
        for (auto& l : _links) {
            if (!l.conn->closed()) {
                l.conn->flush(std::chrono::milliseconds(200));
            }
        }
        done->set_value();
    });
    f.wait_for(std::chrono::seconds(1));
}

void cluster_member::stop() {
    _quit.store(true, std::memory_order_release);
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(_wake_fd.get(), &one, sizeof one);
    if (_thread.joinable()) {
        _thread.join();
    }
}

} // namespace ringtail::net
