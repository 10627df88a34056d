// Pinning the calling thread to one core (hwloc), shared by shards and subsystem threads.
#pragma once

#include <string>

namespace ringtail::detail {

// Pins the calling thread to OS core `cpu` (with the kernel's call when hwloc cannot read the
// topology); on failure logs one warning naming `who`, and the thread keeps the cores of the
// thread that started it. A thread pins itself before it takes its name (pthread_setname_np), so
// that whoever reads the process's threads by name finds each where it belongs.
void pin_thread(int cpu, const std::string& who);

} // namespace ringtail::detail
