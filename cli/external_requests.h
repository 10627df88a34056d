// Answers the external channel's requests (WIRE.md §3) from the running worker's state and, in a
// cluster, from every worker's (gathered through the initializer).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/runtime.h"
#include "net/cluster/cluster.h"
#include "net/external/external_channel.h"

namespace ringtail::cli {

// The dispatch function of the worker's net::external_channel. handle() runs on the channel
// thread; mark_running() on the main thread once the runtime has started. Until then only the
// application's structure is reported (no state exists yet) and ClusterStatusQuery gets 11.
class external_requests {
public:
    struct hooks {
        // Print: writes one line to the worker's stdout (default: stdout, flushed).
        std::function<void(std::string_view line)> print;
        // CleanShutdown: makes the worker stop as on SIGTERM (default: raise SIGTERM at itself).
        std::function<void()> request_stop;
    };

    external_requests(runtime& rt, std::string worker_name, hooks h = {},
                      std::chrono::milliseconds keys_timeout = std::chrono::seconds(2));

    void mark_running() { _running.store(true, std::memory_order_release); }
    // Before mark_running: this worker is a member of `cluster` (which outlives this object).
    void set_cluster(net::cluster_member* cluster) { _cluster = cluster; }

    net::external_outcome handle(std::uint16_t id, std::string_view body, const std::string& peer);

private:
    // The keys of every stateful stage; nullopt when the shards did not answer in time.
    std::optional<std::vector<runtime::stage_keys>> state_keys();
    // The stateless stages' names, in declaration order.
    std::vector<std::string> stateless_stages() const;
    // {worker: [stateless partition ids]} (the shards of each worker, numbered over the cluster)
    // or {worker: count}.
    nlohmann::json stateless_partitions(bool counts) const;
    // Every worker's state: {worker: {stage: [keys] | count}}; nullopt when not all answered.
    std::optional<nlohmann::json> cluster_state(bool counts);

    runtime& _rt;
    std::string _worker;
    hooks _hooks;
    std::chrono::milliseconds _keys_timeout;
    std::atomic<bool> _running{ false };
    net::cluster_member* _cluster = nullptr;
};

} // namespace ringtail::cli
