// What the command-line tools share: the usage error their option parsers throw, the one-line
// exit, and the stop flag that SIGINT/SIGTERM set. Header-only: each tool is one executable built
// from its own folder (cli/CMakeLists.txt).
#pragma once

#include <csignal>
#include <cstdlib>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace ringtail::tools {

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
