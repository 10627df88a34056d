// The external channel's requests turned into replies (JSON built with nlohmann-json).
#include "cli/external_requests.h"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "engine/log.h"

namespace ringtail::cli {
namespace {

using net::external_msg;
using net::external_outcome;
using net::to_id;
using json = nlohmann::json;

// Keys come from the application (integer keys are 8 raw bytes): invalid UTF-8 is replaced, a
// dump never throws.
std::string dump(const json& j) {
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

external_outcome reply(external_msg id, const json& j) {
    return external_outcome::reply(to_id(id), dump(j));
}

} // namespace

external_requests::external_requests(runtime& rt, std::string worker_name, hooks h,
                                     std::chrono::milliseconds keys_timeout)
  : _rt(rt)
  , _worker(std::move(worker_name))
  , _hooks(std::move(h))
  , _keys_timeout(keys_timeout) {
    if (!_hooks.print) {
        _hooks.print = [](std::string_view line) {
            std::fwrite(line.data(), 1, line.size(), stdout);
            std::fputc('\n', stdout);
            std::fflush(stdout);
        };
    }
    if (!_hooks.request_stop) {
        // SIGTERM is blocked in every thread and taken by run_worker's sigwait: the stop is the
        // same orderly step as an operator's SIGTERM.
        _hooks.request_stop = [] { ::kill(::getpid(), SIGTERM); };
    }
}

std::optional<std::vector<runtime::stage_keys>> external_requests::state_keys() {
    if (!_running.load(std::memory_order_acquire)) {
        // Before start no state exists, and the runtime is still being set up on the main thread:
        // report the stages from the application alone.
        std::vector<runtime::stage_keys> out;
        for (const auto& n : _rt.app().nodes()) {
            if (n->kind == node_kind::stateful) {
                out.push_back(runtime::stage_keys{ n->id, n->name, {} });
            }
        }
        return out;
    }
    return _rt.live_state_keys(_keys_timeout);
}

std::vector<std::string> external_requests::stateless_stages() const {
    std::vector<std::string> out;
    for (const auto& n : _rt.app().nodes()) {
        if (n->kind == node_kind::stateless) {
            out.push_back(n->name);
        }
    }
    return out;
}

json external_requests::stateless_partitions(bool counts) const {
    // Every shard runs every stateless stage (there is no stateless routing), so a stateless
    // stage's partitions on a worker are its shards, numbered over the cluster.
    const partition_map& map = _rt.partitions();
    const std::vector<std::string> live =
      _cluster ? _cluster->live_workers() : std::vector<std::string>{ _worker };
    json out = json::object();
    for (std::uint32_t w = 0; w < map.workers(); ++w) {
        const std::string name = _cluster ? _cluster->workers()[w].name : _worker;
        if (std::find(live.begin(), live.end(), name) == live.end()) {
            continue; // a worker that left: its shards run nothing any more
        }
        if (counts) {
            out[name] = map.shards_of(w);
            continue;
        }
        json ids = json::array();
        for (std::uint32_t s = 0; s < map.shards_of(w); ++s) {
            ids.push_back(map.first_of(w) + s);
        }
        out[name] = ids;
    }
    return out;
}

std::optional<json> external_requests::cluster_state(bool counts) {
    if (_cluster != nullptr && _running.load(std::memory_order_acquire)) {
        return _cluster->gather_state(counts, _keys_timeout + std::chrono::seconds(5));
    }
    auto keys = state_keys();
    if (!keys) {
        return std::nullopt;
    }
    json stages = json::object();
    for (auto& s : *keys) {
        stages[s.stage] = counts ? json(s.keys.size()) : json(std::move(s.keys));
    }
    return json{ { _worker, stages } };
}

external_outcome external_requests::handle(std::uint16_t id, std::string_view body,
                                           const std::string& peer) {
    const bool running = _running.load(std::memory_order_acquire);
    auto not_answered = [&] {
        return external_outcome::close("not every worker listed its state within " +
                                       std::to_string(_keys_timeout.count()) +
                                       " ms; query again later");
    };

    switch (static_cast<external_msg>(id)) {
        case external_msg::print:
            _hooks.print("$$$ ExternalPrint: " + std::string(body) + " $$$");
            return external_outcome::none();
        case external_msg::rotate_log:
            log::warn("external channel: RotateLog from {}: log rotation is not available in this "
                      "build yet",
                      peer);
            return external_outcome::none();
        case external_msg::clean_shutdown:
            log::info("external channel: CleanShutdown from {}: stopping{}", peer,
                      _cluster ? " the whole cluster" : "");
            if (_cluster != nullptr && running) {
                _cluster->request_shutdown();
            } else {
                _hooks.request_stop();
            }
            return external_outcome::none();
        case external_msg::shrink_request:
            return external_outcome::reply(to_id(external_msg::shrink_error_reply),
                                           "shrinking is not available in this build yet");
        case external_msg::cluster_status_query: {
            if (!running) {
                return external_outcome::reply(to_id(external_msg::cluster_status_not_initialized),
                                               "");
            }
            std::vector<std::string> names =
              _cluster ? _cluster->live_workers() : std::vector<std::string>{ _worker };
            const bool processing = _cluster ? _cluster->processing() : _rt.processing();
            return reply(external_msg::cluster_status_reply,
                         json{ { "worker_count", names.size() },
                               { "worker_names", names },
                               { "processing_messages", processing } });
        }
        case external_msg::source_ids_query: {
            json ids = json::array();
            for (const auto& name : _rt.app().source_names()) {
                ids.push_back(name);
            }
            return reply(external_msg::source_ids_query_reply, json{ { "source_ids", ids } });
        }
        case external_msg::report_status:
            log::debug("external channel: ReportStatus '{}' from {}", body, peer);
            return external_outcome::none();
        case external_msg::partition_query:
        case external_msg::partition_count_query: {
            const bool counts = id == to_id(external_msg::partition_count_query);
            auto gathered = cluster_state(counts);
            if (!gathered) {
                return not_answered();
            }
            // {worker: {stage: x}} -> {stage: {worker: x}}, every stage listed.
            json state = json::object();
            for (const auto& n : _rt.app().nodes()) {
                if (n->kind == node_kind::stateful) {
                    state[n->name] = json::object();
                }
            }
            for (auto& [worker, stages] : gathered->items()) {
                for (auto& [stage, x] : stages.items()) {
                    state[stage][worker] = x;
                }
            }
            json stateless = json::object();
            for (const auto& name : stateless_stages()) {
                stateless[name] = stateless_partitions(counts);
            }
            return reply(
              counts ? external_msg::partition_count_query_reply
                     : external_msg::partition_query_reply,
              json{ { "state_partitions", state }, { "stateless_partitions", stateless } });
        }
        case external_msg::state_entity_query:
        case external_msg::state_entity_count_query: {
            auto keys = state_keys();
            if (!keys) {
                return not_answered();
            }
            const bool list = id == to_id(external_msg::state_entity_query);
            json stages = json::object();
            for (const auto& s : *keys) {
                stages[s.stage] = list ? json(s.keys) : json(s.keys.size());
            }
            return reply(list ? external_msg::state_entity_query_reply
                              : external_msg::state_entity_count_query_reply,
                         stages);
        }
        case external_msg::cluster_state_entity_count_query: {
            auto gathered = cluster_state(true);
            if (!gathered) {
                return not_answered();
            }
            return reply(external_msg::cluster_state_entity_count_query_reply, *gathered);
        }
        case external_msg::stateless_partition_query:
        case external_msg::stateless_partition_count_query: {
            const bool counts = id == to_id(external_msg::stateless_partition_count_query);
            json stateless = json::object();
            for (const auto& name : stateless_stages()) {
                stateless[name] = stateless_partitions(counts);
            }
            return reply(counts ? external_msg::stateless_partition_count_query_reply
                                : external_msg::stateless_partition_query_reply,
                         stateless);
        }
        default:
            break;
    }
    return external_outcome::close("unknown or unexpected message id " + std::to_string(id));
}

} // namespace ringtail::cli
