// Pinning the calling thread to one core (hwloc), shared by shards and subsystem threads.
#pragma once

#include <string>

namespace ringtail::detail {

// Pins the calling thread to OS core `cpu` (with the kernel's call when hwloc cannot read the
// topology); on failure logs one warning naming `who`, and the thread keeps the cores of the
// thread that started it.
void pin_thread(int cpu, const std::string& who);

} // namespace ringtail::detail
