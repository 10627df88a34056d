// A worker's membership in a cluster (DESIGN.md §4): formation through the initializer, the data
// mesh, then the control thread that keeps heartbeats, reports workers that disappear, gathers
// queries over the cluster and runs the cluster-wide clean shutdown.
//
// The control channel is a star: every worker keeps one control connection to the initializer,
// which relays what concerns everyone (a lost worker, a query, a shutdown). The data channel is a
// full mesh: TCP (net/channel/data_mesh.h, net/channel/socket_transport.h), or datagrams with our
// own reliability (net/channel/datagram_transport.h) on a DPDK port (net/dpdk/dpdk_link.h) or, when
// a test injects faults, on UDP kernel sockets (net/channel/udp_socket_link.h).
//
// Formation, as in Wallaroo: the initializer listens on --control and --data; each other worker
// listens on --my-data (and --my-control), connects to the initializer's control address
// (retrying, so start-up order does not matter) and says HELLO (name, application fingerprint,
// addresses, compute threads). The initializer refuses a mismatched build or application, a
// duplicate name or a --worker-count that differs, with one line the refused worker prints
// before it exits 78. Once --worker-count workers are present it sends everyone the TOPOLOGY
// (workers in index order, a cluster token); everyone builds the data mesh, starts its runtime
// and says READY; when all are ready the initializer says START and sources open.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/fd.h"
#include "engine/result.h"
#include "engine/runtime.h"
#include "net/channel/datagram_transport.h"
#include "net/channel/socket_transport.h"
#include "net/channel/udp_socket_link.h"
#include "net/cluster/control_connection.h"
#include "net/cluster/formation.h"
#include "net/dpdk/dpdk_link.h"
#include "net/fault/faulty_link.h"
#include "net/io/host_port.h"

namespace ringtail::net {

struct cluster_config {
    bool initializer = false;
    std::string name;                    // "initializer" for the initializer
    std::uint32_t worker_count = 0;      // initializer: the total; others: 0 when not given
    host_port control;                   // initializer: listen here; others: the initializer's
    std::optional<host_port> my_control; // others: own control listen address (reserved)
    host_port data;                      // initializer: --data; others: --my-data (listen)
    std::string app_name;
    std::uint64_t app_fingerprint = 0; // application shape and build: must match everywhere
    std::uint32_t shards = 1;          // this worker's compute threads
    std::chrono::milliseconds heartbeat_interval{ 500 };
    std::chrono::milliseconds heartbeat_timeout{ 3000 };
    std::chrono::milliseconds mesh_timeout{ 30'000 };
    std::chrono::milliseconds ready_timeout{ 60'000 };
    socket_transport_config transport;
    // The DPDK port this worker opened (nullptr: none usable, or --net socket), and whether the
    // operator required it (--net dpdk). The data channel runs on DPDK only when every worker has
    // a port; otherwise on kernel sockets, unless a worker required DPDK: then formation fails.
    dpdk_port* dpdk = nullptr;
    bool dpdk_required = false;
    // --dpdk-peer: MAC addresses to use for the named workers instead of those they reported.
    std::map<std::string, std::array<std::uint8_t, 6>> dpdk_peer_macs;
    datagram_transport_config datagram;
    // Test hook: faults injected on the data channel (RINGTAIL_TEST_FAULTS). On DPDK they go
    // between the port and the datagram transport; on sockets the data channel then runs over UDP
    // datagrams instead of the TCP mesh (see build_mesh in cluster.cc).
    std::optional<fault_config> test_faults;
    // Polled while formation waits (for the initializer, for other workers): true stops it with
    // an error whose `why` is reason::formation_interrupted (SIGINT/SIGTERM before the cluster
    // formed).
    std::function<bool()> interrupted;
};

// The message of the error form() and start() return when `interrupted` said so; callers test
// its `why` (reason::formation_interrupted), not this text.
inline constexpr const char* formation_interrupted = "stopped before the cluster formed";

// The application's fingerprint: name, stages (kind, name, partitions) and the build, hashed.
std::uint64_t app_fingerprint(const application& app);

class cluster_member {
public:
    // Forms the cluster: blocks until the topology is known and the data mesh is built, or fails
    // (refused: errc::config; unreachable or timed out: errc::unavailable; port in use: as
    // listen_tcp says).
    static result<std::unique_ptr<cluster_member>> form(const cluster_config& config);
    ~cluster_member();
    cluster_member(const cluster_member&) = delete;
    cluster_member& operator=(const cluster_member&) = delete;

    const std::vector<worker_info>& workers() const { return _workers; }
    std::uint32_t self() const { return _self; }
    std::vector<std::uint32_t> shards_per_worker() const;
    // The data channel's lanes, one transport each (several only on DPDK, one queue pair each);
    // the runtime's exchange threads drive them once the runtime starts.
    std::vector<ringtail::transport*> transports() const;
    // The data channel's back end.
    transport_kind net() const { return _net; }
    // One line on the datagram channel's protocol counters (DPDK, or UDP sockets under
    // RINGTAIL_TEST_FAULTS); "" on the TCP mesh. After the exchange stopped.
    std::string data_channel_report() const;

    // With the runtime started: says READY and waits until every worker is (START), then runs the
    // control thread. Wire the runtime's peer-lost callback to report_data_peer_lost first.
    status start(runtime& rt);

    // Thread-safe views for the external channel.
    bool processing() const;
    std::vector<std::string> live_workers() const;
    // The state keys (or only their counts) of every live worker: {worker: {stage: [keys] | n}}.
    // nullopt when the workers did not all answer within `timeout`.
    std::optional<nlohmann::json> gather_state(bool counts_only, std::chrono::milliseconds timeout);
    // CleanShutdown: the whole cluster stops admitting, drains (nothing in any ring or on the
    // wire), then every worker flushes its sinks and exits 0. Thread-safe; returns at once.
    void request_shutdown();
    // True once this worker may stop: the cluster finished draining (FINISH).
    bool finished() const { return _finished.load(std::memory_order_acquire); }
    // This worker stops on its own (SIGTERM): tell the others, which report it.
    void leave();
    // Called on the exchange thread when a data connection is gone.
    void report_data_peer_lost(peer_id peer, const std::string& reason);
    // Stops the control thread and closes the control connections (after the runtime stopped).
    void stop();

private:
    struct link {
        std::unique_ptr<control_connection> conn;
        std::uint32_t worker = 0; // index of the worker at the other end
        std::chrono::steady_clock::time_point last_heard;
    };
    struct gather_op {
        std::uint64_t id = 0;
        bool counts_only = false;
        std::set<std::uint32_t> waiting; // workers not answered yet
        nlohmann::json result = nlohmann::json::object();
        std::chrono::steady_clock::time_point deadline;
        // Who asked: a worker (its request id there) or this process.
        std::optional<std::uint32_t> requester;
        std::uint64_t requester_id = 0;
        std::function<void(std::optional<nlohmann::json>)> done;
    };

    explicit cluster_member(const cluster_config& config);
    status form_as_initializer();
    status form_as_worker();
    status build_mesh();
    void run();
    void post(std::function<void()> task);
    void on_message(link& l, control_msg&& m);
    void lose(std::uint32_t worker, const std::string& reason, bool expected);
    void begin_gather(bool counts_only, std::optional<std::uint32_t> requester,
                      std::uint64_t requester_id,
                      std::function<void(std::optional<nlohmann::json>)> done);
    void finish_gather(gather_op& op, bool complete);
    nlohmann::json local_state(bool counts_only);
    void tick_shutdown();
    void broadcast(control_type type, const nlohmann::json& body);
    link* link_to(std::uint32_t worker);

    cluster_config _config;
    std::vector<worker_info> _workers;
    std::uint32_t _self = 0;
    std::uint64_t _token = 0;
    std::vector<link> _links; // initializer: one per other worker; others: one, to it
    transport_kind _net = transport_kind::socket;
    // Per lane (DESIGN.md §4): lane l runs on the DPDK port's queue pair l.
    std::vector<std::unique_ptr<dpdk_link>> _dpdk_links;
    std::unique_ptr<udp_socket_link> _udp_link; // sockets with RINGTAIL_TEST_FAULTS only
    std::vector<std::unique_ptr<faulty_link>> _faulty_links;
    std::vector<std::unique_ptr<ringtail::transport>> _transports;
    std::vector<datagram_transport*> _datagrams; // _transports, when they are datagram ones
    runtime* _rt = nullptr;

    // Shared with other threads.
    mutable std::mutex _mu;
    std::deque<std::function<void()>> _tasks;
    std::vector<bool> _lost;
    unique_fd _wake_fd; // the control thread's wake-up (eventfd)
    std::atomic<bool> _started{ false };
    std::atomic<bool> _any_lost{ false };
    std::atomic<bool> _shutting_down{ false };
    std::atomic<bool> _finished{ false };
    std::atomic<bool> _leaving{ false }; // this worker stops on its own: others closing is expected
    std::atomic<bool> _quit{ false };
    std::thread _thread;

    // Control thread only.
    std::uint64_t _next_gather = 1;
    std::map<std::uint64_t, gather_op> _gathers;
    struct shutdown_state {
        bool active = false;
        std::uint64_t round = 0;
        std::map<std::uint32_t, runtime::drain_state> replies;
        int good_rounds = 0;
        std::pair<std::uint64_t, std::uint64_t> previous{ ~0ull, ~0ull }; // sent, received
        std::chrono::steady_clock::time_point next_round;
        std::chrono::steady_clock::time_point deadline;
    } _shutdown;

    // The listening sockets. Declared last, so closed first (data, then control, then _wake_fd):
    // no connection is accepted while the links and transports above are torn down.
    unique_fd _control_listen_fd;
    unique_fd _data_listen_fd;
};

} // namespace ringtail::net
