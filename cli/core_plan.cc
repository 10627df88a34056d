#include "cli/core_plan.h"

#include <algorithm>

namespace ringtail::cli {

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
