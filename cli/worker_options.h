// The worker's command line (CLI.md): Boost.Program_options over flags, RINGTAIL_* environment
// variables and an INI config file, with that precedence, plus validation into typed options.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "net/io/host_port.h"

namespace ringtail::cli {

enum class poll_mode { busy, adaptive };
enum class net_mode { automatic, socket, dpdk };
enum class log_level { error, warn, info, debug };
enum class log_format { text, json };

// Facts about the application that option validation needs.
struct app_facts {
    std::string name;                      // e.g. "word_count"
    std::vector<std::string> source_names; // in declaration order
    std::vector<std::string> sink_names;   // in declaration order
};

struct worker_options {
    // Wallaroo options.
    bool cluster_initializer = false;
    std::optional<net::host_port> control, data, my_control, my_data, external, metrics, join;
    std::uint32_t worker_count = 1;
    std::string name = "initializer";
    std::string resilience_dir = "/tmp";
    bool run_with_resilience = false;
    std::uint64_t time_between_checkpoints_ns = 1'000'000'000;
    bool log_rotation = false;
    std::optional<std::uint64_t> event_log_file_size;
    std::uint64_t stop_pause_ns = 0;
    // One entry per app source, in the app's declaration order (name filled in even when the
    // command line gave `host:port` alone for a one-source app).
    std::vector<net::source_address> in;
    // One entry per app sink, in declaration order.
    std::vector<net::host_port> out;

    // Ringtail options.
    std::optional<std::uint32_t> threads; // --threads / --ponythreads; nullopt = automatic
    std::vector<unsigned> cpus;           // empty = the process's affinity mask
    std::optional<unsigned> control_core, metrics_core, eventlog_core;
    poll_mode poll = poll_mode::adaptive;
    net_mode net = net_mode::automatic;
    std::vector<std::string> eal_args; // everything after a literal `--`
    std::optional<std::uint16_t> dpdk_port;
    // --dpdk-peer name=mac,...: the MAC address to send a worker's DPDK frames to, instead of the
    // one it reported at formation (a router's, say, when the workers are not on one segment).
    std::map<std::string, std::array<std::uint8_t, 6>> dpdk_peers;
    std::optional<net::host_port> metrics_listen;
    std::uint32_t metrics_period_ms = 2000;
    log_level level = log_level::info;
    log_format format = log_format::text;
};

// What parsing decided. `exit_now` covers --help, --version, --print-config (exit 0, text on
// stdout) and every error (one line on stderr, the sysexits code of CLI.md).
struct parse_outcome {
    bool exit_now = false;
    int exit_code = 0;
    std::string out_text; // for stdout (help, version, print-config)
    std::string err_line; // for stderr, one line without the trailing newline
    worker_options options;
};

// Looks up an environment variable; returns nullopt when unset. Tests pass a fake.
using env_lookup = std::function<std::optional<std::string>(const std::string&)>;
env_lookup process_env();

parse_outcome parse_worker_options(int argc, const char* const* argv, const app_facts& app,
                                   const env_lookup& env);

} // namespace ringtail::cli
