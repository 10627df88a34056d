// Pinning the calling thread to one core (hwloc), shared by shards and subsystem threads.
#pragma once

#include <string>

namespace ringtail::detail {

// Pins the calling thread to OS core `cpu`; on failure logs one warning naming `who` and runs
// unpinned.
void pin_thread(int cpu, const std::string& who);

} // namespace ringtail::detail
