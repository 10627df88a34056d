// Pinning the calling thread to one core with hwloc.
#include "engine/detail/pin_thread.h"

#include <cerrno>
#include <cstring>

#include <hwloc.h>

#include "engine/log.h"

namespace ringtail::detail {

void pin_thread(int cpu, const std::string& who) {
    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo) != 0 || hwloc_topology_load(topo) != 0) {
        log::warn("{}: cannot read the CPU topology; running unpinned", who);
        return;
    }
    hwloc_bitmap_t set = hwloc_bitmap_alloc();
    hwloc_bitmap_only(set, static_cast<unsigned>(cpu));
    if (hwloc_set_cpubind(topo, set, HWLOC_CPUBIND_THREAD) != 0) {
        log::warn("{}: cannot pin to core {} ({}); running unpinned", who, cpu,
                  std::strerror(errno));
    } else {
        log::debug("{} pinned to core {}", who, cpu);
    }
    hwloc_bitmap_free(set);
    hwloc_topology_destroy(topo);
}

} // namespace ringtail::detail
