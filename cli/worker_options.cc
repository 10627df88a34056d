// The worker's command line (CLI.md). Boost.Program_options tokenises the command line and the INI
// file; the RINGTAIL_* environment is read through the caller's lookup. Every option is kept as
// text together with where it came from, so that one table drives parsing, precedence, --help and
// --print-config, and so that an error can name the flag, variable or file key the user must fix.
#include "cli/worker_options.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <map>
#include <set>
#include <string_view>
#include <utility>

#include <boost/program_options.hpp>

#include "engine/assert.h"
#include "engine/build_info.h"
#include "net/dpdk/dpdk_link.h"

namespace ringtail::cli {
namespace po = boost::program_options;
namespace {

// sysexits.h codes used here (CLI.md).
constexpr int exit_usage = exit_code(errc::usage);
constexpr int exit_config = exit_code(errc::config);
constexpr int exit_internal = exit_code(errc::internal);

// Core ids and thread counts are bounded so that a typo such as `--cpus 0-4000000000` cannot make
// the parser allocate gigabytes; no machine we target has more.
constexpr unsigned max_cpu_id = 4095;
constexpr std::uint32_t max_threads = 4096;

enum class kind { flag, value, list };
enum class group { wallaroo, ringtail };
// Where an option may be set: the config file cannot name another config file, and help, version
// and print-config are actions of one invocation rather than settings.
enum class scope { everywhere, not_in_file, command_line_only };

struct option_spec {
    std::string_view long_name;
    char short_name; // '\0' when none
    kind k;
    group g;
    std::string_view arg;          // argument name shown by --help; "" for flags
    std::string_view default_text; // shown by --print-config; "" = unset
    std::string_view help;         // one line for --help
    scope where;
    std::string_view alias; // a second long name with the same meaning ("" = none)
};

// The single table of options (CLI.md order). Help texts marked "(not in this build yet)" belong to
// features that are parsed but refused until they land.
// clang-format off
const option_spec specs[] = {
    {"control", 'c', kind::value, group::wallaroo, "h:p", "",
     "initializer: control-channel listen address (other workers: the initializer's address)",
     scope::everywhere, ""},
    {"data", 'd', kind::value, group::wallaroo, "h:p", "",
     "initializer only: data-channel listen address (required with -t)", scope::everywhere, ""},
    {"my-control", 'x', kind::value, group::wallaroo, "h:p", "",
     "other workers: their own control listen address (optional; port 0 = any)",
     scope::everywhere, ""},
    {"my-data", 'y', kind::value, group::wallaroo, "h:p", "",
     "other workers: their own data listen address (required; port 0 = any)", scope::everywhere,
     ""},
    {"external", 'e', kind::value, group::wallaroo, "h:p", "",
     "external-channel listen address (WIRE.md §3; port 0 = any)", scope::everywhere, ""},
    {"worker-count", 'w', kind::value, group::wallaroo, "n", "1",
     "initializer: total workers including itself (others: checked against it if given)",
     scope::everywhere, ""},
    {"name", 'n', kind::value, group::wallaroo, "s", "initializer",
     "worker name (required for workers other than the initializer, which is always named "
     "'initializer')",
     scope::everywhere, ""},
    {"metrics", 'm', kind::value, group::wallaroo, "h:p", "",
     "monitoring-hub address (WIRE.md §5), optional", scope::everywhere, ""},
    {"cluster-initializer", 't', kind::flag, group::wallaroo, "", "false",
     "this process initializes the cluster", scope::everywhere, ""},
    {"resilience-dir", 'r', kind::value, group::wallaroo, "dir", "/tmp",
     "directory for recovery files; must exist and be writable", scope::everywhere, ""},
    {"run-with-resilience", '\0', kind::flag, group::wallaroo, "", "false",
     "turn on checkpoints, event log and recovery (not in this build yet)", scope::everywhere, ""},
    {"time-between-checkpoints", '\0', kind::value, group::wallaroo, "ns", "1000000000",
     "interval between checkpoints in nanoseconds", scope::everywhere, ""},
    {"log-rotation", '\0', kind::flag, group::wallaroo, "", "false",
     "allow event-log rotation (not in this build yet)", scope::everywhere, ""},
    {"event-log-file-size", 'l', kind::value, group::wallaroo, "bytes", "",
     "rotate the event log at this size (not in this build yet)", scope::everywhere, ""},
    {"join", 'j', kind::value, group::wallaroo, "h:p", "",
     "join a running cluster through a worker's control address (not in this build yet)",
     scope::everywhere, ""},
    {"stop-pause", 'u', kind::value, group::wallaroo, "ns", "0",
     "pause after stop-the-world before state migration, in nanoseconds (alias --stop-world)",
     scope::everywhere, "stop-world"},
    {"in", 'i', kind::list, group::wallaroo, "name@h:p[:max],...", "",
     "TCP source listen addresses by source name (repeatable)", scope::everywhere, ""},
    {"out", 'o', kind::list, group::wallaroo, "h:p,...", "",
     "TCP sink addresses, one per sink in declaration order (repeatable)", scope::everywhere, ""},
    {"ponythreads", '\0', kind::value, group::wallaroo, "n", "auto",
     "compute core threads (same as --threads)", scope::everywhere, ""},
    {"ponypin", '\0', kind::flag, group::wallaroo, "", "false",
     "compatibility only, no effect: Ringtail pins compute threads by default", scope::everywhere,
     ""},
    {"ponypinasio", '\0', kind::flag, group::wallaroo, "", "false",
     "compatibility only, no effect: Ringtail pins the I/O thread by default", scope::everywhere,
     ""},
    {"ponynoblock", '\0', kind::flag, group::wallaroo, "", "false",
     "compatibility only, no effect", scope::everywhere, ""},
    {"ponyminthreads", '\0', kind::value, group::wallaroo, "n", "",
     "compatibility only, no effect", scope::everywhere, ""},
    {"application-module", '\0', kind::value, group::wallaroo, "m", "",
     "Python host only: module that defines the application (not in this build yet)",
     scope::everywhere, ""},

    {"threads", 'T', kind::value, group::ringtail, "n", "auto",
     "compute core threads (default: cores left after the dedicated ones, at least 1)",
     scope::everywhere, ""},
    {"cpus", '\0', kind::value, group::ringtail, "list", "",
     "cores the worker may use, e.g. 2-7,10 (default: the process's affinity mask)",
     scope::everywhere, ""},
    {"control-core", '\0', kind::value, group::ringtail, "k", "",
     "core for the control subsystem", scope::everywhere, ""},
    {"metrics-core", '\0', kind::value, group::ringtail, "k", "",
     "core for the metrics subsystem", scope::everywhere, ""},
    {"eventlog-core", '\0', kind::value, group::ringtail, "k", "",
     "core for the event-log subsystem", scope::everywhere, ""},
    {"poll-mode", '\0', kind::value, group::ringtail, "busy|adaptive", "adaptive",
     "shards spin only, or spin briefly then sleep until woken", scope::everywhere, ""},
    {"net", '\0', kind::value, group::ringtail, "auto|socket|dpdk", "auto",
     "data-channel transport: dpdk (exit 69 when unusable), socket, or auto (DPDK when EAL "
     "starts and a port is usable, else sockets)",
     scope::everywhere, ""},
    {"dpdk-port", '\0', kind::value, group::ringtail, "n", "",
     "DPDK port id for the data channel (default 0)", scope::everywhere, ""},
    {"dpdk-peer", '\0', kind::list, group::ringtail, "name=mac,...", "",
     "frames for a worker go to this MAC instead of the one it reported at formation",
     scope::everywhere, ""},
    {"metrics-listen", '\0', kind::value, group::ringtail, "h:p", "",
     "HTTP endpoint for /metrics, /status, /healthz", scope::everywhere,
     ""},
    {"metrics-period", '\0', kind::value, group::ringtail, "ms", "2000",
     "metrics period in milliseconds (0: no latency recording)", scope::everywhere, ""},
    {"log-level", '\0', kind::value, group::ringtail, "error|warn|info|debug", "info",
     "stderr log level", scope::everywhere, ""},
    {"log-format", '\0', kind::value, group::ringtail, "text|json", "text",
     "stderr log format", scope::everywhere, ""},
    {"config", '\0', kind::value, group::ringtail, "FILE", "",
     "INI file of long-name keys (below environment and command line)", scope::not_in_file, ""},
    {"print-config", '\0', kind::flag, group::ringtail, "", "",
     "print every effective value with its source and exit", scope::command_line_only, ""},
    {"help", '\0', kind::flag, group::ringtail, "", "", "print this help and exit",
     scope::command_line_only, ""},
    {"version", '\0', kind::flag, group::ringtail, "", "", "print the version and exit",
     scope::command_line_only, ""},
};
// clang-format on

const option_spec& spec_of(std::string_view long_name) {
    for (const auto& s : specs) {
        if (s.long_name == long_name) {
            return s;
        }
    }
    // Only this file names options, so a miss is a typo in this file.
    RINGTAIL_ASSERT(false, "no option named --{}", long_name);
    std::abort(); // not reached; the compiler cannot see that the assertion does not return
}

// A user mistake: one line and a sysexits code. Thrown inside this file only and caught once in
// parse_worker_options, which turns it into the parse_outcome.
struct failure {
    int code;
    std::string line;
};

[[noreturn]] void fail(int code, std::string line) {
    throw failure{ code, std::move(line) };
}

enum class origin { default_value, config_file, environment, command_line }; // rising precedence

// One option's effective text and where it came from.
struct setting {
    origin from = origin::default_value;
    std::vector<std::string> values; // as given; lists keep one entry per occurrence
    std::string env_var;             // set when from == environment
};

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
    std::string out;
    for (const auto& p : parts) {
        if (!out.empty()) {
            out += sep;
        }
        out += p;
    }
    return out;
}

std::string env_name(std::string_view long_name) {
    std::string out = "RINGTAIL_";
    for (char c : long_name) {
        out += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return out;
}

std::string trim(std::string_view s) {
    auto is_space = [](char c) { return c == ' ' || c == '\t'; };
    while (!s.empty() && is_space(s.front())) {
        s.remove_prefix(1);
    }
    while (!s.empty() && is_space(s.back())) {
        s.remove_suffix(1);
    }
    return std::string(s);
}

template<typename Int>
std::optional<Int> to_number(std::string_view s) {
    Int v{};
    if (s.empty()) {
        return std::nullopt;
    }
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || p != s.data() + s.size()) {
        return std::nullopt;
    }
    return v;
}

// All effective settings, plus what error messages need to name their origin.
class settings {
public:
    explicit settings(std::string config_path)
      : _config_path(std::move(config_path)) {}

    void set(std::string_view long_name, setting s) { _by_name[std::string(long_name)] = s; }
    const setting& get(std::string_view long_name) const {
        return _by_name.at(std::string(long_name));
    }
    bool is_set(std::string_view long_name) const {
        return get(long_name).from != origin::default_value;
    }
    std::string text(std::string_view long_name) const { return join(get(long_name).values, ","); }
    const std::string& config_path() const { return _config_path; }

    // How the user wrote it: `--worker-count 3`, `RINGTAIL_WORKER_COUNT=3` or
    // `config file /etc/x.ini: worker-count = 3`.
    std::string where(std::string_view long_name) const {
        const auto& s = get(long_name);
        const auto& spec = spec_of(long_name);
        switch (s.from) {
            case origin::command_line:
                if (spec.k == kind::flag) {
                    return "--" + std::string(long_name);
                }
                return "--" + std::string(long_name) + " " + text(long_name);
            case origin::environment:
                return s.env_var + "=" + text(long_name);
            case origin::config_file:
                return "config file " + _config_path + ": " + std::string(long_name) + " = " +
                       text(long_name);
            case origin::default_value:
                break;
        }
        return "--" + std::string(long_name) + " (default " + std::string(spec.default_text) + ")";
    }

    std::string source(std::string_view long_name) const {
        const auto& s = get(long_name);
        switch (s.from) {
            case origin::command_line:
                return "command line";
            case origin::environment:
                return "environment " + s.env_var;
            case origin::config_file:
                return "config " + _config_path;
            case origin::default_value:
                break;
        }
        return "default";
    }

    // A value the user gave is wrong: 78 when it sits in the config file, else 64.
    [[noreturn]] void bad_value(std::string_view long_name, std::string_view why) const {
        int code = get(long_name).from == origin::config_file ? exit_config : exit_usage;
        fail(code, where(long_name) + ": " + std::string(why));
    }

    [[noreturn]] void unavailable(std::string_view long_name, std::string_view what) const {
        fail(exit_usage,
             where(long_name) + ": " + std::string(what) + " not available in this build yet");
    }

    bool flag(std::string_view long_name) const {
        if (!is_set(long_name)) {
            return spec_of(long_name).default_text == "true";
        }
        std::string t = text(long_name);
        std::transform(t.begin(), t.end(), t.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        if (t == "true" || t == "1" || t == "yes") {
            return true;
        }
        if (t == "false" || t == "0" || t == "no") {
            return false;
        }
        bad_value(long_name, "expected true, false, 1, 0, yes or no");
    }

    // nullopt when the option was not given (the caller keeps its default).
    template<typename Int>
    std::optional<Int> number(std::string_view long_name, Int min,
                              Int max = std::numeric_limits<Int>::max()) const {
        if (!is_set(long_name)) {
            return std::nullopt;
        }
        auto v = to_number<Int>(text(long_name));
        if (!v || *v < min || *v > max) {
            bad_value(long_name, "expected a whole number from " + std::to_string(min) + " to " +
                                   std::to_string(max));
        }
        return v;
    }

    std::optional<net::host_port> address(std::string_view long_name, bool allow_port_zero) const {
        if (!is_set(long_name)) {
            return std::nullopt;
        }
        auto hp = net::parse_host_port(text(long_name), allow_port_zero);
        if (!hp) {
            bad_value(long_name, hp.err().message);
        }
        return hp.value();
    }

    // A list option's items: every occurrence split at commas.
    std::vector<std::string> items(std::string_view long_name) const {
        std::vector<std::string> out;
        for (const auto& v : get(long_name).values) {
            std::string_view rest = v;
            while (true) {
                auto comma = rest.find(',');
                std::string item = trim(rest.substr(0, comma));
                if (item.empty()) {
                    bad_value(long_name, "empty item in the comma-separated list");
                }
                out.push_back(std::move(item));
                if (comma == std::string_view::npos) {
                    break;
                }
                rest.remove_prefix(comma + 1);
            }
        }
        return out;
    }

    template<typename Enum>
    Enum choice(std::string_view long_name, Enum fallback,
                std::initializer_list<std::pair<std::string_view, Enum>> choices) const {
        if (!is_set(long_name)) {
            return fallback;
        }
        std::string t = text(long_name);
        std::vector<std::string> names;
        for (const auto& [name, value] : choices) {
            if (t == name) {
                return value;
            }
            names.emplace_back(name);
        }
        bad_value(long_name, "expected one of " + join(names, ", "));
    }

private:
    std::string _config_path;
    std::map<std::string, setting> _by_name;
};

// Boost descriptions: on the command line flags take no argument; in the file every key needs
// `= value`, so flags there are plain strings read as true/false/1/0/yes/no.
po::options_description make_description(bool for_file) {
    po::options_description desc;
    for (const auto& s : specs) {
        if (for_file && s.where != scope::everywhere) {
            continue;
        }
        std::vector<std::string> names{ std::string(s.long_name) };
        if (!s.alias.empty()) {
            names.emplace_back(s.alias);
        }
        for (std::size_t i = 0; i < names.size(); ++i) {
            std::string boost_name = names[i];
            if (i == 0 && s.short_name != '\0' && !for_file) {
                boost_name += ",";
                boost_name += s.short_name;
            }
            const po::value_semantic* semantic = nullptr;
            if (s.k == kind::list) {
                semantic = po::value<std::vector<std::string>>()->composing();
            } else if (s.k == kind::flag && !for_file) {
                semantic = po::value<std::string>()->zero_tokens()->implicit_value("true");
            } else {
                semantic = po::value<std::string>();
            }
            desc.add_options()(boost_name.c_str(), semantic, "");
        }
    }
    return desc;
}

// The texts an option got in one variables_map (its alias counts as the same option).
std::optional<std::vector<std::string>> texts_in(const po::variables_map& vm,
                                                 const option_spec& s) {
    std::optional<std::vector<std::string>> found;
    for (std::string_view name : { s.long_name, s.alias }) {
        if (name.empty() || vm.count(std::string(name)) == 0) {
            continue;
        }
        if (found) {
            return std::vector<std::string>{}; // both names given: reported by the caller
        }
        const auto& v = vm[std::string(name)];
        if (s.k == kind::list) {
            found = v.as<std::vector<std::string>>();
        } else {
            found = std::vector<std::string>{ v.as<std::string>() };
        }
    }
    return found;
}

po::variables_map read_config_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        fail(exit_config, "cannot read config file " + path + ": " + std::strerror(errno) +
                            "; fix the path given to --config");
    }
    po::variables_map vm;
    try {
        // The parsed options point into the description, so it must outlive store().
        const auto desc = make_description(/*for_file=*/true);
        po::store(po::parse_config_file(in, desc, false), vm);
    } catch (const po::unknown_option& e) {
        fail(exit_config, "config file " + path + ": unknown key '" + e.get_option_name() +
                            "'; keys are the long option names (see --help)");
    } catch (const po::error& e) {
        fail(exit_config, "config file " + path + ": " + e.what() + "; fix the file");
    }
    return vm;
}

std::string help_text(const std::string& app_name) {
    std::string out = "Usage: " + app_name + " [options] [-- EAL args]\n";
    for (group g : { group::wallaroo, group::ringtail }) {
        out += g == group::wallaroo ? "\nWallaroo options (same names and meaning):\n"
                                    : "\nRingtail options:\n";
        for (const auto& s : specs) {
            if (s.g != g) {
                continue;
            }
            std::string left = "  ";
            left += s.short_name != '\0' ? std::string{ '-', s.short_name, ',' } + " " : "    ";
            left += "--" + std::string(s.long_name);
            if (!s.arg.empty()) {
                left += " " + std::string(s.arg);
            }
            constexpr std::size_t column = 42;
            left += left.size() < column ? std::string(column - left.size(), ' ') : "  ";
            out += left + std::string(s.help) + "\n";
        }
    }
    out += "\n  -- <EAL args>                           everything after a literal -- goes to "
           "DPDK's EAL\n";
    out += "\nPrecedence: command line > environment RINGTAIL_<LONG_NAME> (- as _) > --config FILE"
           " > defaults.\n";
    out += "Options marked 'compatibility only' are accepted for Wallaroo command lines and have "
           "no effect.\n";
    return out;
}

// `2-7,10` -> {2,3,4,5,6,7,10}.
std::vector<unsigned> parse_cpus(const settings& st) {
    std::set<unsigned> cpus;
    std::string t = st.text("cpus");
    std::string_view rest = t;
    const std::string why = "expected core numbers and ranges such as 2-7,10 (cores 0 to " +
                            std::to_string(max_cpu_id) + ")";
    while (true) {
        auto comma = rest.find(',');
        std::string item = trim(rest.substr(0, comma));
        auto dash = item.find('-');
        auto first = to_number<unsigned>(std::string_view(item).substr(0, dash));
        auto last = dash == std::string::npos
                      ? first
                      : to_number<unsigned>(std::string_view(item).substr(dash + 1));
        if (!first || !last || *first > *last || *last > max_cpu_id) {
            st.bad_value("cpus", why);
        }
        for (unsigned c = *first; c <= *last; ++c) {
            cpus.insert(c);
        }
        if (comma == std::string_view::npos) {
            break;
        }
        rest.remove_prefix(comma + 1);
    }
    return { cpus.begin(), cpus.end() };
}

// --threads and --ponythreads mean the same; the one from the stronger source wins, and two
// different values from the same source are a mistake.
std::optional<std::uint32_t> parse_threads(const settings& st) {
    auto threads = st.number<std::uint32_t>("threads", 1, max_threads);
    auto pony = st.number<std::uint32_t>("ponythreads", 1, max_threads);
    if (!threads || !pony) {
        return threads ? threads : pony;
    }
    auto from_threads = st.get("threads").from;
    auto from_pony = st.get("ponythreads").from;
    if (from_threads == from_pony) {
        if (*threads != *pony) {
            int code = from_threads == origin::config_file ? exit_config : exit_usage;
            fail(code, st.where("threads") + " and " + st.where("ponythreads") +
                         " disagree; give only one of them");
        }
        return threads;
    }
    return from_threads > from_pony ? threads : pony;
}

void parse_sources(const settings& st, const app_facts& app, worker_options& o) {
    const auto& names = app.source_names;
    auto items = st.items("in");
    if (names.empty()) {
        if (!items.empty()) {
            st.bad_value("in", "this application has no sources; drop --in");
        }
        return;
    }
    std::map<std::string, net::source_address> by_name;
    for (const auto& item : items) {
        auto sa = net::parse_source_address(item);
        if (!sa) {
            st.bad_value("in", sa.err().message);
        }
        if (sa->name.empty()) {
            if (names.size() > 1) {
                st.bad_value("in", "'" + item + "' has no source name; this application has " +
                                     "several sources (" + join(names, ", ") +
                                     "), so give each as name@host:port");
            }
            sa->name = names.front();
        }
        if (std::find(names.begin(), names.end(), sa->name) == names.end()) {
            st.bad_value("in", "this application has no source named '" + sa->name +
                                 "'; its sources are: " + join(names, ", "));
        }
        if (by_name.count(sa->name) != 0) {
            st.bad_value("in", "source '" + sa->name + "' is given more than once");
        }
        by_name.emplace(sa->name, sa.value());
    }
    for (const auto& name : names) {
        auto it = by_name.find(name);
        if (it == by_name.end()) {
            fail(exit_usage,
                 "source '" + name + "' has no --in address; add --in " + name + "@host:port");
        }
        o.in.push_back(it->second);
    }
}

void parse_sinks(const settings& st, const app_facts& app, worker_options& o) {
    const auto& names = app.sink_names;
    auto items = st.items("out");
    if (names.empty()) {
        if (!items.empty()) {
            st.bad_value("out", "this application has no sinks; drop --out");
        }
        return;
    }
    for (const auto& item : items) {
        auto hp = net::parse_host_port(item);
        if (!hp) {
            st.bad_value("out", hp.err().message);
        }
        o.out.push_back(hp.value());
    }
    if (o.out.size() < names.size()) {
        fail(st.get("out").from == origin::config_file ? exit_config : exit_usage,
             "sink '" + names[o.out.size()] + "' has no --out address; give one host:port per " +
               "sink, in this order: " + join(names, ", "));
    }
    if (o.out.size() > names.size()) {
        st.bad_value("out", std::to_string(o.out.size()) + " addresses for " +
                              std::to_string(names.size()) + " sink(s) (" + join(names, ", ") +
                              "); give exactly one host:port per sink");
    }
}

// Typed values from the settings; every bad value fails with a line naming its origin.
worker_options typed_options(const settings& st) {
    worker_options o;
    o.cluster_initializer = st.flag("cluster-initializer");
    // Listen addresses may use port 0 (any free port); addresses to connect to may not.
    bool control_listens = o.cluster_initializer;
    o.control = st.address("control", control_listens);
    o.data = st.address("data", true);
    o.my_control = st.address("my-control", true);
    o.my_data = st.address("my-data", true);
    o.external = st.address("external", true);
    o.metrics = st.address("metrics", false);
    o.join = st.address("join", false);
    o.worker_count = st.number<std::uint32_t>("worker-count", 1).value_or(o.worker_count);
    if (st.is_set("name")) {
        o.name = st.text("name");
        if (o.name.empty()) {
            st.bad_value("name", "the name is empty");
        }
    }
    if (st.is_set("resilience-dir")) {
        o.resilience_dir = st.text("resilience-dir");
        if (o.resilience_dir.empty()) {
            st.bad_value("resilience-dir", "the directory is empty");
        }
    }
    o.run_with_resilience = st.flag("run-with-resilience");
    o.time_between_checkpoints_ns = st.number<std::uint64_t>("time-between-checkpoints", 1)
                                      .value_or(o.time_between_checkpoints_ns);
    o.log_rotation = st.flag("log-rotation");
    o.event_log_file_size = st.number<std::uint64_t>("event-log-file-size", 1);
    o.stop_pause_ns = st.number<std::uint64_t>("stop-pause", 0).value_or(o.stop_pause_ns);

    o.threads = parse_threads(st);
    // Compatibility-only options are still checked, so a typo is not silently ignored.
    st.flag("ponypin");
    st.flag("ponypinasio");
    st.flag("ponynoblock");
    st.number<std::uint32_t>("ponyminthreads", 0);
    if (st.is_set("cpus")) {
        o.cpus = parse_cpus(st);
    }
    o.control_core = st.number<unsigned>("control-core", 0, max_cpu_id);
    o.metrics_core = st.number<unsigned>("metrics-core", 0, max_cpu_id);
    o.eventlog_core = st.number<unsigned>("eventlog-core", 0, max_cpu_id);
    o.poll = st.choice("poll-mode", o.poll,
                       { { "busy", poll_mode::busy }, { "adaptive", poll_mode::adaptive } });
    o.net = st.choice("net", o.net,
                      { { "auto", net_mode::automatic },
                        { "socket", net_mode::socket },
                        { "dpdk", net_mode::dpdk } });
    o.dpdk_port = st.number<std::uint16_t>("dpdk-port", 0);
    if (st.is_set("dpdk-peer")) {
        for (const auto& item : st.items("dpdk-peer")) {
            auto eq = item.find('=');
            auto mac =
              eq == std::string::npos ? std::nullopt : net::mac_from_string(item.substr(eq + 1));
            if (eq == 0 || !mac) {
                st.bad_value("dpdk-peer", "'" + item +
                                            "': expected name=mac, the MAC as six hex pairs "
                                            "(02:00:00:00:00:01)");
            }
            if (!o.dpdk_peers.emplace(item.substr(0, eq), *mac).second) {
                st.bad_value("dpdk-peer", "worker '" + item.substr(0, eq) + "' is given twice");
            }
        }
    }
    o.metrics_listen = st.address("metrics-listen", true);
    o.metrics_period_ms =
      st.number<std::uint32_t>("metrics-period", 0).value_or(o.metrics_period_ms);
    o.level = st.choice("log-level", o.level,
                        { { "error", log_level::error },
                          { "warn", log_level::warn },
                          { "info", log_level::info },
                          { "debug", log_level::debug } });
    o.format = st.choice("log-format", o.format,
                         { { "text", log_format::text }, { "json", log_format::json } });
    return o;
}

// Who this worker is: the initializer (-t), another worker of a cluster (--control without -t), or
// a worker alone (neither). Each role takes its own addresses; a mix is a usage error.
void check_cluster_roles(const settings& st, const worker_options& o) {
    if (o.cluster_initializer) {
        if (!o.data) {
            fail(exit_usage, "--cluster-initializer (-t) needs --data host:port, the "
                             "initializer's data address");
        }
        if (o.worker_count > 1 && !o.control) {
            fail(exit_usage, "--cluster-initializer (-t) with --worker-count " +
                               std::to_string(o.worker_count) +
                               " needs --control host:port, where the other workers connect");
        }
        if (o.name != "initializer") {
            st.bad_value("name", "the initializer is always named 'initializer'; drop --name");
        }
        for (const char* own : { "my-control", "my-data" }) {
            if (st.is_set(own)) {
                fail(exit_usage, st.where(own) + ": --" + own +
                                   " is for workers other than the initializer (it listens on "
                                   "--control and --data); drop it");
            }
        }
        return;
    }
    if (o.data) {
        fail(exit_usage,
             "--data is only for the initializer (-t); drop " + st.where("data") + " or add -t");
    }
    if (o.control) {
        // Another worker of a cluster: it needs a name and its own data address.
        if (!st.is_set("name")) {
            fail(exit_usage, "--name is required for a worker that is not the initializer (-t); "
                             "give each worker a unique name");
        }
        if (o.name == "initializer") {
            st.bad_value("name", "'initializer' is the initializer's name; choose another");
        }
        if (!o.my_data) {
            fail(exit_usage, "--my-data host:port is required for a worker that is not the "
                             "initializer: other workers send it data there");
        }
        return;
    }
    // A worker alone.
    if (o.worker_count > 1) {
        fail(exit_usage, "--worker-count " + std::to_string(o.worker_count) +
                           " needs -t --control --data (the initializer) or --control (another "
                           "worker)");
    }
    if (o.name != "initializer") {
        st.bad_value("name", "a worker without --control runs alone and is always named "
                             "'initializer'; add --control to join a cluster, or drop --name");
    }
    for (const char* own : { "my-control", "my-data" }) {
        if (st.is_set(own)) {
            fail(exit_usage, st.where(own) + ": --" + own +
                               " needs --control, the initializer's control address");
        }
    }
}

// Features not built yet are refused clearly rather than started and silently ignored.
void check_available(const settings& st, const worker_options& o) {
    if (!o.eal_args.empty() && o.net == net_mode::socket) {
        fail(exit_usage, "-- " + join(o.eal_args, " ") +
                           ": EAL arguments are for the DPDK transport, but --net is socket; drop "
                           "them or use --net auto|dpdk");
    }
    if (!o.dpdk_peers.empty() && o.net == net_mode::socket) {
        fail(exit_usage, "--dpdk-peer addresses workers on the DPDK transport, but --net is "
                         "socket; drop it or use --net auto|dpdk");
    }
    if (o.join) {
        st.unavailable("join", "joining a running cluster is");
    }
    check_cluster_roles(st, o);
    if (o.run_with_resilience) {
        st.unavailable("run-with-resilience", "checkpoints, event log and recovery are");
    }
    if (o.log_rotation) {
        st.unavailable("log-rotation", "event-log rotation is");
    }
    if (o.event_log_file_size) {
        st.unavailable("event-log-file-size", "event-log rotation is");
    }
    if (st.is_set("application-module")) {
        st.unavailable("application-module", "the Python host is");
    }
}

std::string print_config(const settings& st) {
    std::string out;
    for (const auto& s : specs) {
        if (s.where == scope::command_line_only) {
            continue;
        }
        std::string value =
          st.is_set(s.long_name) ? st.text(s.long_name) : std::string(s.default_text);
        if (value.empty()) {
            value = "<none>";
        }
        out += std::string(s.long_name) + " = " + value + "  (" + st.source(s.long_name) + ")\n";
    }
    return out;
}

void parse(int argc, const char* const* argv, const app_facts& app, const env_lookup& env,
           parse_outcome& out) {
    std::string app_name = app.name;
    if (app_name.empty()) {
        app_name = argc > 0 && argv[0] != nullptr ? argv[0] : "ringtail";
    }

    // Everything after the first literal `--` belongs to DPDK's EAL, not to us.
    std::vector<std::string> args;
    std::vector<std::string> eal_args;
    bool after_dashes = false;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (!after_dashes && a == "--") {
            after_dashes = true;
        } else {
            (after_dashes ? eal_args : args).emplace_back(a);
        }
    }

    po::variables_map cmd;
    try {
        // The parsed options point into the description, so it must outlive store().
        const auto desc = make_description(/*for_file=*/false);
        // No abbreviations: `--work` must not silently mean --worker-count.
        auto style =
          po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
        auto parsed =
          po::command_line_parser(args).options(desc).style(style).allow_unregistered().run();
        auto unknown = po::collect_unrecognized(parsed.options, po::include_positional);
        if (!unknown.empty()) {
            const std::string& token = unknown.front();
            if (token.size() > 1 && token[0] == '-') {
                fail(exit_usage,
                     "unknown option '" + token.substr(0, token.find('=')) + "'; see --help");
            }
            fail(exit_usage,
                 "unexpected argument '" + token + "'; options start with - or -- (see --help)");
        }
        po::store(parsed, cmd);
    } catch (const po::error& e) {
        fail(exit_usage, std::string(e.what()) + "; see --help");
    }
    if (cmd.count("stop-pause") != 0 && cmd.count("stop-world") != 0) {
        fail(exit_usage, "--stop-pause and --stop-world are the same option; give only one");
    }

    if (cmd.count("help") != 0) {
        out.exit_now = true;
        out.out_text = help_text(app_name);
        return;
    }
    if (cmd.count("version") != 0) {
        out.exit_now = true;
        out.out_text = app_name + " (ringtail " + build_info::version + ")\n";
        return;
    }

    std::optional<std::string> config_path;
    if (cmd.count("config") != 0) {
        config_path = cmd["config"].as<std::string>();
    } else if (auto v = env(env_name("config"))) {
        config_path = *v;
    }
    po::variables_map file;
    if (config_path) {
        file = read_config_file(*config_path);
        if (file.count("stop-pause") != 0 && file.count("stop-world") != 0) {
            fail(exit_config, "config file " + *config_path +
                                ": stop-pause and stop-world are the same key; keep one");
        }
    }

    settings st(config_path.value_or(""));
    for (const auto& s : specs) {
        if (s.where == scope::command_line_only) {
            continue;
        }
        setting chosen;
        if (auto v = texts_in(cmd, s)) {
            chosen.from = origin::command_line;
            chosen.values = *v;
        } else {
            for (std::string_view name : { s.long_name, s.alias }) {
                if (name.empty()) {
                    continue;
                }
                if (auto e = env(env_name(name))) {
                    chosen.from = origin::environment;
                    chosen.values = { *e };
                    chosen.env_var = env_name(name);
                    break;
                }
            }
            if (chosen.from == origin::default_value) {
                if (auto f = texts_in(file, s)) {
                    chosen.from = origin::config_file;
                    chosen.values = *f;
                }
            }
        }
        st.set(s.long_name, std::move(chosen));
    }

    worker_options o = typed_options(st);
    o.eal_args = std::move(eal_args);
    check_available(st, o);
    // --print-config shows what is set even when sources or sinks still lack an address (that is
    // what one wants to see while writing a config file); bad values above are still errors.
    if (cmd.count("print-config") != 0) {
        out.exit_now = true;
        out.out_text = print_config(st);
        return;
    }
    parse_sources(st, app, o);
    parse_sinks(st, app, o);
    out.options = std::move(o);
}

} // namespace

env_lookup process_env() {
    return [](const std::string& name) -> std::optional<std::string> {
        if (const char* v = std::getenv(name.c_str())) {
            return std::string(v);
        }
        return std::nullopt;
    };
}

parse_outcome parse_worker_options(int argc, const char* const* argv, const app_facts& app,
                                   const env_lookup& env) {
    parse_outcome out;
    try {
        parse(argc, argv, app, env, out);
    } catch (const failure& f) {
        out = parse_outcome{};
        out.exit_now = true;
        out.exit_code = f.code;
        out.err_line = f.line;
    } catch (const std::exception& e) {
        // Not a user mistake (e.g. out of memory): still one line, never an escaping exception.
        out = parse_outcome{};
        out.exit_now = true;
        out.exit_code = exit_internal;
        out.err_line = std::string("internal error while reading options: ") + e.what();
    }
    return out;
}

} // namespace ringtail::cli
