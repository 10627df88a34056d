// Pinning the calling thread to one core with hwloc.
#include "engine/detail/pin_thread.h"

#include <cerrno>
#include <cstring>
#include <pthread.h>
#include <sched.h>

#include <hwloc.h>

#include "engine/log.h"

namespace ringtail::detail {

namespace {

// The kernel's call, when hwloc cannot read the topology: a thread that stayed where it was
// started would run on the cores of the thread that started it (the worker's control subsystem,
// cli/run_worker.cc), not on the core planned for it. Returns the error number, or 0.
int pin_without_hwloc(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return ::pthread_setaffinity_np(::pthread_self(), sizeof set, &set);
}

// The process's topology, loaded once by the first thread that pins itself, and kept (never
// destroyed: a thread may pin itself while the process exits); binding reads it only, which hwloc
// allows from several threads at once. Loading binds the loading thread to each core in turn and
// then back (its x86 discovery reads each core's CPUID there): done once, not in every shard
// thread, whose affinity would otherwise visit every core before it settles. Null when hwloc
// cannot load it.
hwloc_topology_t process_topology() {
    static const hwloc_topology_t topo = [] {
        hwloc_topology_t t = nullptr;
        if (hwloc_topology_init(&t) != 0) {
            return hwloc_topology_t{ nullptr };
        }
        if (hwloc_topology_load(t) != 0) {
            hwloc_topology_destroy(t);
            return hwloc_topology_t{ nullptr };
        }
        return t;
    }();
    return topo;
}

} // namespace

void pin_thread(int cpu, const std::string& who) {
    hwloc_topology_t topo = process_topology();
    if (topo == nullptr) {
        if (int e = pin_without_hwloc(cpu); e != 0) {
            log::warn("{}: cannot read the CPU topology nor pin to core {} ({}); running where it "
                      "was started",
                      who, cpu, std::strerror(e));
        } else {
            log::debug("{} pinned to core {} (without hwloc: it cannot read the topology)", who,
                       cpu);
        }
        return;
    }
    hwloc_bitmap_t set = hwloc_bitmap_alloc();
    hwloc_bitmap_only(set, static_cast<unsigned>(cpu));
    if (hwloc_set_cpubind(topo, set, HWLOC_CPUBIND_THREAD) != 0) {
        log::warn("{}: cannot pin to core {} ({}); running where it was started", who, cpu,
                  std::strerror(errno));
    } else {
        log::debug("{} pinned to core {}", who, cpu);
    }
    hwloc_bitmap_free(set);
}

} // namespace ringtail::detail
