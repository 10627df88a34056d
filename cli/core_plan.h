// Which cores the data channel's lanes run on (DESIGN.md §2: network I/O is a subsystem of its
// own, on a core of its own when cores allow).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ringtail::cli {

struct lane_core_plan {
    std::vector<int> cpus; // [lane]: the core its exchange thread is pinned to
    std::string warning;   // one line when lanes share a core; empty otherwise
};

// Lane 0 runs on `network_core` (the control core, which has always carried the data channel's
// polling); lanes 1, 2, ... on the cores of `cpus` that appear in neither `busy` (the shards' and
// the other subsystems' cores) nor before them, in order; lanes beyond those share `network_core`,
// with one warning line that says how many cores more would give each lane its own.
lane_core_plan plan_lane_cores(std::uint32_t lanes, unsigned network_core,
                               const std::vector<unsigned>& cpus,
                               const std::vector<unsigned>& busy);

} // namespace ringtail::cli
