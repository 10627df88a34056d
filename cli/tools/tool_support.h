// What the command-line tools share: the sysexits codes, the usage error their option parsers
// throw, the one-line exit, and the stop flag that SIGINT/SIGTERM set. Header-only: each tool is
// one executable built from its own folder (cli/CMakeLists.txt).
#pragma once

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sstream>
#include <string>
#include <string_view>
#include <unistd.h>
#include <vector>

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include "engine/fd.h"
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

// Reads `args` (the command line without the program name) against `desc`; a flag it does not
// know, a missing value or a value of the wrong type is a usage_error with Boost's message.
inline boost::program_options::variables_map parse_command_line(
  const std::vector<std::string>& args, const boost::program_options::options_description& desc) {
    namespace po = boost::program_options;
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(args).options(desc).run(), vm);
        po::notify(vm);
    } catch (const po::error& e) {
        throw usage_error{ e.what() };
    }
    return vm;
}

// As above, for main's argc/argv.
inline boost::program_options::variables_map parse_command_line(
  int argc, char** argv, const boost::program_options::options_description& desc) {
    return parse_command_line(std::vector<std::string>(argv + (argc > 0 ? 1 : 0), argv + argc),
                              desc);
}

// The options' table as --help prints it.
inline std::string options_text(const boost::program_options::options_description& desc) {
    std::ostringstream text;
    text << desc;
    return text.str();
}

// Writes `text` to `path` beside it and renames it there, so that a reader polling for the file
// (a script waiting for a ready file) never sees it half-written; on failure prints one line and
// exits with exit_cant_create.
inline void write_file_atomically(std::string_view tool, const std::string& path,
                                  std::string_view text) {
    const std::string tmp = path + ".tmp";
    unique_fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd.valid()) {
        die(tool, exit_cant_create, fmt::format("cannot write {}: {}", tmp, std::strerror(errno)));
    }
    bool ok = ::write(fd.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size());
    ok = fd.close() && ok;
    if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
        die(tool, exit_cant_create, fmt::format("cannot write {}: {}", path, std::strerror(errno)));
    }
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
