// Which cores a worker's threads run on (DESIGN.md §2): the shards on cores of their own, the
// control subsystem on another when there is one, and the data channel's lanes (network I/O is a
// subsystem of its own, on a core of its own when cores allow). Plain functions of the options
// and the cores the process may use, so that each rule is tested apart (cli/core_plan_test.cc).
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "cli/worker_options.h"
#include "engine/result.h"

namespace ringtail::cli {

// Shards get their own cores; the control subsystem (acceptor, signals) gets one more when there
// are enough, else it shares, with one warning line (DESIGN.md §2).
struct core_plan {
    std::uint32_t shards = 1;
    std::vector<unsigned> shard_cpus;
    std::vector<unsigned> cpus; // every core the worker may use (--cpus, else the affinity mask)
    // The cores the shards run on: shard i on shard_cpus[i % size] (runtime), so the first ones.
    std::span<const unsigned> used_shard_cpus() const {
        return std::span(shard_cpus).first(std::min<std::size_t>(shards, shard_cpus.size()));
    }
    // Where the threads without a core of their own run (the control subsystem's): --control-core,
    // else the cores no shard uses, else every core (shared with the shards).
    std::vector<unsigned> subsystem_cpus;
    // Lines to log as warnings (threads sharing cores); empty when every thread has its own.
    std::vector<std::string> warnings;
};

// The cores this process may run on (its affinity mask); {0} when it cannot be read.
std::vector<unsigned> affinity_cpus();

// The plan for the options' --threads, --cpus and --*-core, within `allowed` (affinity_cpus()).
// errc::usage when an option names a core outside `allowed`.
result<core_plan> plan_cores(const worker_options& o, const std::vector<unsigned>& allowed);

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
