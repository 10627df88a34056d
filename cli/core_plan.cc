#include "cli/core_plan.h"

#include <algorithm>
#include <optional>
#include <sched.h>
#include <utility>

#include <fmt/format.h>

namespace ringtail::cli {

std::vector<unsigned> affinity_cpus() {
    std::vector<unsigned> cpus;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) == 0) {
        for (unsigned c = 0; c < CPU_SETSIZE; ++c) {
            if (CPU_ISSET(c, &set)) {
                cpus.push_back(c);
            }
        }
    }
    if (cpus.empty()) {
        cpus.push_back(0);
    }
    return cpus;
}

result<core_plan> plan_cores(const worker_options& o, const std::vector<unsigned>& allowed) {
    std::string allowed_text;
    for (unsigned c : allowed) {
        allowed_text += (allowed_text.empty() ? "" : ",") + std::to_string(c);
    }
    auto check = [&](const char* option, unsigned core) -> std::optional<error> {
        if (std::find(allowed.begin(), allowed.end(), core) == allowed.end()) {
            return error{ errc::usage,
                          std::string(option) + ": core " + std::to_string(core) +
                            " is not available to this process (cores: " + allowed_text + ")" };
        }
        return std::nullopt;
    };
    for (unsigned c : o.cpus) {
        if (auto e = check("--cpus", c)) {
            return *e;
        }
    }
    for (auto [option, core] : { std::pair{ "--control-core", o.control_core },
                                 std::pair{ "--metrics-core", o.metrics_core },
                                 std::pair{ "--eventlog-core", o.eventlog_core } }) {
        if (core) {
            if (auto e = check(option, *core)) {
                return *e;
            }
        }
    }
    std::vector<unsigned> cpus = o.cpus.empty() ? allowed : o.cpus;
    core_plan plan;
    std::vector<unsigned> for_shards;
    for (unsigned c : cpus) {
        if (!o.control_core || c != *o.control_core) {
            for_shards.push_back(c);
        }
    }
    if (for_shards.empty()) {
        for_shards = cpus;
    }
    if (o.threads) {
        plan.shards = *o.threads;
    } else {
        // Leave one core for the control subsystem when there is more than one.
        plan.shards = cpus.size() > 1 ? static_cast<std::uint32_t>(cpus.size() - 1) : 1;
        if (!o.control_core && cpus.size() > 1) {
            for_shards.assign(cpus.begin() + 1, cpus.end());
        }
    }
    if (plan.shards > for_shards.size()) {
        plan.warnings.push_back(
          fmt::format("{} compute threads on {} cores: threads share cores, expect higher latency",
                      plan.shards, for_shards.size()));
    } else if (o.threads && plan.shards + 1 > cpus.size()) {
        plan.warnings.push_back(
          "no core left for the control subsystem: it shares a core with a shard");
    }
    plan.shard_cpus = for_shards;
    plan.cpus = cpus;
    if (o.control_core) {
        plan.subsystem_cpus = { *o.control_core };
    } else {
        // Not a shard's core, and not one given to the metrics or event-log subsystem while
        // another is left.
        const auto used = plan.used_shard_cpus();
        std::vector<unsigned> spare, spare_but_given;
        for (unsigned c : cpus) {
            if (std::find(used.begin(), used.end(), c) != used.end()) {
                continue;
            }
            (c == o.metrics_core || c == o.eventlog_core ? spare_but_given : spare).push_back(c);
        }
        plan.subsystem_cpus = !spare.empty()             ? spare
                              : !spare_but_given.empty() ? spare_but_given
                                                         : cpus;
    }
    return plan;
}

lane_core_plan plan_lane_cores(std::uint32_t lanes, unsigned network_core,
                               const std::vector<unsigned>& cpus,
                               const std::vector<unsigned>& busy) {
    lane_core_plan plan;
    if (lanes == 0) {
        return plan;
    }
    plan.cpus.push_back(static_cast<int>(network_core));
    std::vector<unsigned> taken = busy;
    taken.push_back(network_core);
    for (unsigned c : cpus) {
        if (plan.cpus.size() == lanes) {
            break;
        }
        if (std::find(taken.begin(), taken.end(), c) == taken.end()) {
            plan.cpus.push_back(static_cast<int>(c));
            taken.push_back(c);
        }
    }
    const std::size_t own = plan.cpus.size();
    if (own < lanes) {
        plan.cpus.resize(lanes, static_cast<int>(network_core));
        plan.warning = std::to_string(lanes - own + 1) + " of the data channel's " +
                       std::to_string(lanes) + " lanes share the network I/O core " +
                       std::to_string(network_core) + ": " + std::to_string(lanes - own) +
                       " more core(s) in --cpus, used by no shard or subsystem, would give each "
                       "lane its own";
    }
    return plan;
}

} // namespace ringtail::cli
