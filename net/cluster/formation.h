// Cluster formation as plain functions (DESIGN.md §4), apart from sockets and threads so that
// each rule can be tested on its own: the HELLO a joining worker sends and the checks the
// initializer makes on it, the TOPOLOGY message (built by the initializer, read by the others),
// and what the topology decides: the data channel's back end, its lanes and the shard counts
// that the partition map is laid out over. cluster_member (net/cluster/cluster.h) does the I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/result.h"
#include "net/io/host_port.h"

namespace ringtail::net {

// The data channel's back end in use (DESIGN.md §4); --net's `auto` is resolved before formation.
enum class transport_kind : std::uint8_t {
    socket, // kernel TCP, or UDP sockets under RINGTAIL_TEST_FAULTS
    dpdk,   // datagrams on a DPDK port
};

// "socket" or "dpdk": the name on the wire (TOPOLOGY), in /status and in log lines.
std::string_view to_string(transport_kind k);
// The kind named `text`; nullopt for any other text.
std::optional<transport_kind> parse_transport_kind(std::string_view text);

struct worker_info {
    std::string name;
    host_port data;
    std::uint32_t shards = 1;
    std::string mac; // its DPDK port's MAC, "" when it has none
    // The queue pairs its DPDK port has (1 without one): the data channel runs as many lanes as
    // the worker with the fewest has (DESIGN.md §4).
    std::uint32_t queues = 1;

    friend bool operator==(const worker_info&, const worker_info&) = default;
};

// ---- HELLO: a joining worker to the initializer ----

struct hello {
    worker_info worker;             // its name, data listen address, shards, MAC, queues
    std::string app;                // the application's name
    std::uint64_t fingerprint = 0;  // app_fingerprint(): application shape and build
    std::uint32_t worker_count = 0; // its --worker-count; 0 when not given
    bool dpdk_required = false;     // it runs with --net dpdk
};

nlohmann::json hello_body(const hello& h);

// What the initializer checks a HELLO against.
struct initializer_facts {
    std::string app_name;
    std::uint64_t app_fingerprint = 0;
    std::uint32_t worker_count = 0; // the cluster's total
    bool has_dpdk = false;          // the initializer opened a DPDK port
    bool dpdk_required = false;     // the initializer runs with --net dpdk
};

// Reads and checks a joining worker's HELLO: the worker it describes, or an errc::config error
// whose message is the one-line refusal the initializer sends back (REJECT). `names_taken`: the
// names of the workers already welcomed ("initializer" is always taken).
result<worker_info> check_hello(const nlohmann::json& body, const initializer_facts& initializer,
                                const std::vector<std::string>& names_taken);

// ---- TOPOLOGY: the initializer to each other worker, once all are there ----

struct topology {
    std::uint64_t token = 0; // the cluster token: data connections carry it
    std::uint32_t index = 0; // the receiver's index in `workers` (never 0, the initializer)
    std::vector<worker_info> workers; // in index order, the initializer first
    transport_kind net = transport_kind::socket;
};

nlohmann::json topology_body(const topology& t);

// Reads a TOPOLOGY (errc::unavailable when malformed). A worker whose data host is unspecified
// ("" or 0.0.0.0) is given `initializer_host`: the initializer listens where it was reached.
result<topology> read_topology(const nlohmann::json& body, const std::string& initializer_host);

// A worker's check of the back end the initializer chose against its own port and --net.
status check_transport(transport_kind chosen, bool has_dpdk, bool dpdk_required);

// ---- what the topology decides ----

// DPDK when every worker has a port (reported a MAC), else kernel sockets.
transport_kind choose_transport(const std::vector<worker_info>& workers);

// The data channel's lanes on DPDK: one per queue pair that every worker has (`own_queues` is
// this worker's port's), at least 1.
std::uint32_t lane_count(std::uint32_t own_queues, const std::vector<worker_info>& workers);

// Each worker's compute threads, in index order: the layout the partition map assigns partitions
// over (engine/partition.h).
std::vector<std::uint32_t> shards_per_worker(const std::vector<worker_info>& workers);

} // namespace ringtail::net
