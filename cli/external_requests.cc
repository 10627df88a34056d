// The external channel's requests turned into replies (JSON built with nlohmann-json).
#include "cli/external_requests.h"

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

external_outcome external_requests::handle(std::uint16_t id, std::string_view body,
                                           const std::string& peer) {
    // Every shard runs every stateless stage (there is no stateless routing), so a stateless
    // stage's partitions on this worker are its shards: ids 0..shard_count-1.
    const std::uint32_t shards = _rt.shard_count();
    auto stateless_ids = [&] {
        json ids = json::array();
        for (std::uint32_t s = 0; s < shards; ++s) {
            ids.push_back(s);
        }
        return ids;
    };
    auto keys_or_close = [&](external_outcome& closed) {
        auto keys = state_keys();
        if (!keys) {
            closed = external_outcome::close("the shards did not list their state within " +
                                             std::to_string(_keys_timeout.count()) +
                                             " ms; query again later");
        }
        return keys;
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
            log::info("external channel: CleanShutdown from {}: stopping", peer);
            _hooks.request_stop();
            return external_outcome::none();
        case external_msg::shrink_request:
            // Query or not: a cluster of one worker built without growing/shrinking.
            return external_outcome::reply(to_id(external_msg::shrink_error_reply),
                                           "shrinking is not available in this build yet");
        case external_msg::cluster_status_query:
            if (!_running.load(std::memory_order_acquire)) {
                return external_outcome::reply(to_id(external_msg::cluster_status_not_initialized),
                                               "");
            }
            return reply(external_msg::cluster_status_reply,
                         json{ { "worker_count", 1 },
                               { "worker_names", json::array({ _worker }) },
                               { "processing_messages", _rt.processing() } });
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
            external_outcome closed;
            auto keys = keys_or_close(closed);
            if (!keys) {
                return closed;
            }
            json state = json::object();
            for (const auto& s : *keys) {
                state[s.stage] = json{ { _worker, counts ? json(s.keys.size()) : json(s.keys) } };
            }
            json stateless = json::object();
            for (const auto& name : stateless_stages()) {
                stateless[name] = json{ { _worker, counts ? json(shards) : stateless_ids() } };
            }
            return reply(
              counts ? external_msg::partition_count_query_reply
                     : external_msg::partition_query_reply,
              json{ { "state_partitions", state }, { "stateless_partitions", stateless } });
        }
        case external_msg::state_entity_query:
        case external_msg::state_entity_count_query:
        case external_msg::cluster_state_entity_count_query: {
            external_outcome closed;
            auto keys = keys_or_close(closed);
            if (!keys) {
                return closed;
            }
            json stages = json::object();
            for (const auto& s : *keys) {
                stages[s.stage] = id == to_id(external_msg::state_entity_query)
                                    ? json(s.keys)
                                    : json(s.keys.size());
            }
            if (id == to_id(external_msg::state_entity_query)) {
                return reply(external_msg::state_entity_query_reply, stages);
            }
            if (id == to_id(external_msg::state_entity_count_query)) {
                return reply(external_msg::state_entity_count_query_reply, stages);
            }
            // Gathered over the cluster: this worker is all of it.
            return reply(external_msg::cluster_state_entity_count_query_reply,
                         json{ { _worker, stages } });
        }
        case external_msg::stateless_partition_query:
        case external_msg::stateless_partition_count_query: {
            const bool counts = id == to_id(external_msg::stateless_partition_count_query);
            json stateless = json::object();
            for (const auto& name : stateless_stages()) {
                stateless[name] = json{ { _worker, counts ? json(shards) : stateless_ids() } };
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
