// The worker's main: parse the command line, check the environment, wire sources and sinks to the
// engine, run until SIGINT/SIGTERM, then stop cleanly.
#pragma once

#include <functional>
#include <string>

#include "engine/application.h"

namespace ringtail::cli {

// Runs `app` as a worker with the options in argv (CLI.md). Returns the process exit code:
// 0 after a clean stop, a sysexits code (with one line on stderr) otherwise.
int run_worker(int argc, char** argv, application& app);

// Builds the application with `build` first, turning a mistake in it (app_error or any other
// exception) into one line on stderr and exit 70.
int run_worker(int argc, char** argv, const std::string& app_name,
               const std::function<void(application&)>& build);

} // namespace ringtail::cli
