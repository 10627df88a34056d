// What the command-line tools share: the sysexits codes, the usage error their option parsers
// throw, the one-line exit, and the stop flag that SIGINT/SIGTERM set. Header-only: each tool is
// one executable built from its own folder (cli/CMakeLists.txt).
#pragma once

#include <csignal>
#include <cstdlib>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "engine/result.h"

namespace ringtail::tools {

// The sysexits codes the tools exit with (CLI.md), from the one place that defines them
// (ringtail::errc in engine/result.h). Codes below 64 are each tool's own (1: a problem found...).
inline constexpr int exit_usage = exit_code(errc::usage);
inline constexpr int exit_data_error = exit_code(errc::data_error);
inline constexpr int exit_no_input = exit_code(errc::no_input);
inline constexpr int exit_unavailable = exit_code(errc::unavailable);
inline constexpr int exit_cant_create = exit_code(errc::cant_create);
inline constexpr int exit_io_error = exit_code(errc::io_error);

// Thrown while reading the command line; main turns it into one line and exit 64.
struct usage_error {
    std::string message;
};

// Prints "<tool>: <line>" on stderr and exits with `code`.
[[noreturn]] inline void die(std::string_view tool, int code, std::string_view line) {
    fmt::print(stderr, "{}: {}\n", tool, line);
    std::exit(code);
}

// Set by SIGINT/SIGTERM once on_stop_signals() or block_stop_signals() installed the handler.
inline volatile std::sig_atomic_t stop_requested = 0;

extern "C" inline void on_stop_signal(int) {
    stop_requested = 1;
}

// SIGINT/SIGTERM set stop_requested; no SA_RESTART, so a blocked call returns to check it.
inline void on_stop_signals() {
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
}

// As on_stop_signals(), and the stop signals stay blocked except where the tool waits for them
// (ppoll with the mask it had before); SIGPIPE is ignored so a closed peer is an EPIPE error.
inline void block_stop_signals() {
    on_stop_signals();
    ::signal(SIGPIPE, SIG_IGN);
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    ::sigprocmask(SIG_BLOCK, &stop_signals, nullptr);
}

} // namespace ringtail::tools
