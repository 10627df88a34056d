// Start-up check of --resilience-dir: it must exist and be writable before a worker starts.
#pragma once

#include <string>

#include "engine/result.h"

namespace ringtail::resilience {

// Creates and removes a probe file in `dir`. Errors: config (78) when the path is missing or not
// a directory, cant_create (73) when it is not writable.
status check_dir_writable(const std::string& dir);

} // namespace ringtail::resilience
