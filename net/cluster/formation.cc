// Cluster formation's messages and checks (net/cluster/formation.h).
#include "net/cluster/formation.h"

#include <algorithm>

#include "net/cluster/control_codec.h"
#include "net/dpdk/dpdk_link.h"

namespace ringtail::net {
namespace {

using json = nlohmann::json;

// Limits on what a HELLO or a TOPOLOGY may say about a worker.
constexpr std::uint64_t max_shards = 4096;
constexpr std::uint64_t max_queues = 4096;

bool unspecified(const std::string& host) {
    return host.empty() || host == "0.0.0.0";
}

json worker_json(const worker_info& w) {
    return json{
        { "name", w.name }, { "data", w.data.to_string() }, { "shards", w.shards },
        { "mac", w.mac },   { "queues", w.queues },
    };
}

error refused(std::string line) {
    return error{ errc::config, std::move(line) };
}

error malformed_topology() {
    return error{ errc::unavailable, "cluster: the initializer sent a malformed topology" };
}

} // namespace

std::string_view to_string(transport_kind k) {
    switch (k) {
        case transport_kind::socket:
            return "socket";
        case transport_kind::dpdk:
            return "dpdk";
    }
    return "socket";
}

std::optional<transport_kind> parse_transport_kind(std::string_view text) {
    for (auto k : { transport_kind::socket, transport_kind::dpdk }) {
        if (text == to_string(k)) {
            return k;
        }
    }
    return std::nullopt;
}

json hello_body(const hello& h) {
    return json{ { "name", h.worker.name },
                 { "app", h.app },
                 { "fingerprint", h.fingerprint },
                 { "worker_count", h.worker_count },
                 { "data", h.worker.data.to_string() },
                 { "shards", h.worker.shards },
                 { "mac", h.worker.mac },
                 { "queues", h.worker.queues },
                 { "dpdk_required", h.dpdk_required } };
}

result<worker_info> check_hello(const json& body, const initializer_facts& initializer,
                                const std::vector<std::string>& names_taken) {
    auto name = get_string(body, "name");
    auto app = get_string(body, "app");
    auto fingerprint = get_u64(body, "fingerprint");
    auto count = get_u64(body, "worker_count");
    auto data = get_string(body, "data");
    auto shards = get_u64(body, "shards");
    const std::string mac = get_string(body, "mac").value_or("");
    const std::uint64_t queues = get_u64(body, "queues").value_or(1);
    const bool requires_dpdk = get_bool(body, "dpdk_required").value_or(false);
    result<host_port> data_addr =
      data ? parse_host_port(*data) : result<host_port>(error{ errc::usage, "" });
    if (!name || name->empty() || !app || !fingerprint || !count || !data_addr || !shards ||
        *shards == 0 || *shards > max_shards || queues == 0 || queues > max_queues) {
        return refused("its HELLO is incomplete or malformed");
    }
    if (*app != initializer.app_name) {
        return refused("it runs application '" + *app + "', the cluster runs '" +
                       initializer.app_name + "'");
    }
    if (*fingerprint != initializer.app_fingerprint) {
        return refused("it runs another build or shape of '" + *app +
                       "' (stages or version differ); run the same executable everywhere");
    }
    if (*count != 0 && *count != initializer.worker_count) {
        return refused("its --worker-count is " + std::to_string(*count) +
                       ", the initializer's is " + std::to_string(initializer.worker_count));
    }
    if (!mac.empty() && !mac_from_string(mac)) {
        return refused("its HELLO carries a malformed MAC address");
    }
    if (initializer.dpdk_required && mac.empty()) {
        return refused("it has no usable DPDK port, and the initializer runs with --net dpdk; "
                       "start it with --net dpdk and EAL arguments after --");
    }
    if (requires_dpdk && !initializer.has_dpdk) {
        return refused("it requires --net dpdk, but the initializer has no DPDK port; start the "
                       "initializer with --net dpdk or auto and EAL arguments");
    }
    if (*name == "initializer" ||
        std::find(names_taken.begin(), names_taken.end(), *name) != names_taken.end()) {
        return refused("the worker name '" + *name + "' is already taken in this cluster");
    }
    return worker_info{ *name, data_addr.value(), static_cast<std::uint32_t>(*shards), mac,
                        static_cast<std::uint32_t>(queues) };
}

json topology_body(const topology& t) {
    json workers = json::array();
    for (const auto& w : t.workers) {
        workers.push_back(worker_json(w));
    }
    return json{ { "token", t.token },
                 { "index", t.index },
                 { "workers", std::move(workers) },
                 { "net", to_string(t.net) } };
}

result<topology> read_topology(const json& body, const std::string& initializer_host) {
    auto token = get_u64(body, "token");
    auto index = get_u64(body, "index");
    const json* workers = get_array(body, "workers");
    if (!token || !index || workers == nullptr || *index == 0 || *index >= workers->size()) {
        return malformed_topology();
    }
    topology t;
    t.token = *token;
    t.index = static_cast<std::uint32_t>(*index);
    for (const auto& w : *workers) {
        auto name = get_string(w, "name");
        auto data = get_string(w, "data");
        auto shards = get_u64(w, "shards");
        const std::uint64_t queues = get_u64(w, "queues").value_or(1);
        auto addr = data ? parse_host_port(*data) : result<host_port>(error{ errc::usage, "" });
        if (!name || !addr || !shards || *shards == 0 || queues == 0 || queues > max_queues) {
            return malformed_topology();
        }
        host_port a = addr.value();
        if (unspecified(a.host)) {
            a.host = initializer_host;
        }
        t.workers.push_back(worker_info{ *name, a, static_cast<std::uint32_t>(*shards),
                                         get_string(w, "mac").value_or(""),
                                         static_cast<std::uint32_t>(queues) });
    }
    auto net = parse_transport_kind(get_string(body, "net").value_or("socket"));
    if (!net) {
        return malformed_topology();
    }
    t.net = *net;
    return t;
}

status check_transport(transport_kind chosen, bool has_dpdk, bool dpdk_required) {
    if (chosen == transport_kind::dpdk && !has_dpdk) {
        return error{ errc::unavailable, "cluster: the initializer chose DPDK, but this worker "
                                         "has no DPDK port" };
    }
    if (chosen != transport_kind::dpdk && dpdk_required) {
        return error{ errc::unavailable,
                      "cluster: this worker requires --net dpdk, but the cluster's data channel "
                      "runs on kernel sockets (a worker has no usable DPDK port)" };
    }
    return ok_status();
}

transport_kind choose_transport(const std::vector<worker_info>& workers) {
    const bool all_dpdk = std::all_of(workers.begin(), workers.end(),
                                      [](const worker_info& w) { return !w.mac.empty(); });
    return all_dpdk ? transport_kind::dpdk : transport_kind::socket;
}

std::uint32_t lane_count(std::uint32_t own_queues, const std::vector<worker_info>& workers) {
    std::uint32_t lanes = own_queues;
    for (const auto& w : workers) {
        lanes = std::min(lanes, w.queues);
    }
    return std::max(lanes, 1u);
}

std::vector<std::uint32_t> shards_per_worker(const std::vector<worker_info>& workers) {
    std::vector<std::uint32_t> out;
    out.reserve(workers.size());
    for (const auto& w : workers) {
        out.push_back(w.shards);
    }
    return out;
}

} // namespace ringtail::net
