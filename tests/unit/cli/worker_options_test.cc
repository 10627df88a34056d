// Tests of the worker command line (CLI.md): forms that must work, precedence between command
// line, environment and config file, and the one-line errors with their exit codes.
#include "cli/worker_options.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <unistd.h>
#include <vector>

#include "engine/build_info.h"

namespace ringtail::cli {
namespace {

using env_map = std::map<std::string, std::string>;

app_facts one_source_app() {
    return { "word_count", { "Text" }, { "Counts" } };
}

app_facts two_source_app() {
    return { "market", { "Orders", "Quotes" }, { "Fills", "Audit" } };
}

app_facts no_sink_app() {
    return { "drain", { "Text" }, {} };
}

env_lookup fake_env(env_map vars) {
    return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
        auto it = vars.find(name);
        if (it == vars.end()) {
            return std::nullopt;
        }
        return it->second;
    };
}

parse_outcome parse(const std::vector<std::string>& args, const app_facts& app = one_source_app(),
                    env_map env = {}) {
    std::vector<const char*> argv{ "word_count" };
    for (const auto& a : args) {
        argv.push_back(a.c_str());
    }
    return parse_worker_options(static_cast<int>(argv.size()), argv.data(), app,
                                fake_env(std::move(env)));
}

// A config file in the temp directory, removed when the test ends.
class temp_ini {
public:
    explicit temp_ini(const std::string& text) {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        _path = std::filesystem::temp_directory_path() /
                ("ringtail_cli_" + std::to_string(::getpid()) + "_" + info->name() + ".ini");
        std::ofstream(_path) << text;
    }
    ~temp_ini() { std::filesystem::remove(_path); }
    std::string path() const { return _path.string(); }

private:
    std::filesystem::path _path;
};

net::host_port hp(const std::string& host, std::uint16_t port) {
    return net::host_port{ host, port };
}

// Expects a usage error (or `code`) whose one line contains `phrase`.
void expect_error(const parse_outcome& r, int code, const std::string& phrase) {
    EXPECT_TRUE(r.exit_now);
    EXPECT_EQ(r.exit_code, code) << r.err_line;
    EXPECT_NE(r.err_line.find(phrase), std::string::npos)
      << "'" << r.err_line << "' lacks '" << phrase << "'";
    EXPECT_EQ(r.err_line.find('\n'), std::string::npos) << r.err_line;
    EXPECT_TRUE(r.out_text.empty());
}

TEST(worker_options, minimal_single_worker_form) {
    auto r = parse({ "--in", "127.0.0.1:7000", "--out", "127.0.0.1:7002" });
    ASSERT_FALSE(r.exit_now) << r.err_line;
    const auto& o = r.options;
    ASSERT_EQ(o.in.size(), 1u);
    EXPECT_EQ(o.in[0].name, "Text");
    EXPECT_EQ(o.in[0].address, hp("127.0.0.1", 7000));
    EXPECT_EQ(o.in[0].max_size, 16384u);
    ASSERT_EQ(o.out.size(), 1u);
    EXPECT_EQ(o.out[0], hp("127.0.0.1", 7002));
    EXPECT_FALSE(o.cluster_initializer);
    EXPECT_EQ(o.worker_count, 1u);
    EXPECT_EQ(o.name, "initializer");
    EXPECT_EQ(o.resilience_dir, "/tmp");
    EXPECT_EQ(o.time_between_checkpoints_ns, 1'000'000'000u);
    EXPECT_EQ(o.stop_pause_ns, 0u);
    EXPECT_FALSE(o.threads);
    EXPECT_TRUE(o.cpus.empty());
    EXPECT_EQ(o.poll, poll_mode::adaptive);
    EXPECT_EQ(o.net, net_mode::automatic);
    EXPECT_EQ(o.metrics_period_ms, 2000u);
    EXPECT_EQ(o.level, log_level::info);
    EXPECT_EQ(o.format, log_format::text);
    EXPECT_TRUE(o.eal_args.empty());
}

TEST(worker_options, wallaroo_initializer_form) {
    auto r = parse({ "-t",
                     "-w",
                     "1",
                     "-c",
                     "127.0.0.1:6000",
                     "-d",
                     "127.0.0.1:6001",
                     "--in",
                     "Text@127.0.0.1:7000",
                     "-o",
                     "127.0.0.1:7002",
                     "--ponythreads=1",
                     "--ponynoblock",
                     "--ponypin",
                     "--ponypinasio",
                     "--ponyminthreads",
                     "2",
                     "-n",
                     "initializer",
                     "-r",
                     "/var/tmp",
                     "-u",
                     "5000" });
    ASSERT_FALSE(r.exit_now) << r.err_line;
    const auto& o = r.options;
    EXPECT_TRUE(o.cluster_initializer);
    EXPECT_EQ(o.worker_count, 1u);
    EXPECT_EQ(o.control, hp("127.0.0.1", 6000));
    EXPECT_EQ(o.data, hp("127.0.0.1", 6001));
    ASSERT_EQ(o.in.size(), 1u);
    EXPECT_EQ(o.in[0].name, "Text");
    EXPECT_EQ(o.out, std::vector<net::host_port>{ hp("127.0.0.1", 7002) });
    EXPECT_EQ(o.threads, 1u);
    EXPECT_EQ(o.name, "initializer");
    EXPECT_EQ(o.resilience_dir, "/var/tmp");
    EXPECT_EQ(o.stop_pause_ns, 5000u);
}

TEST(worker_options, long_names_and_equals_form) {
    auto r = parse({ "--cluster-initializer",
                     "--worker-count=1",
                     "--control=127.0.0.1:6000",
                     "--data=127.0.0.1:6001",
                     "--in=127.0.0.1:7000:512",
                     "--out=localhost:7002",
                     "--stop-world=7",
                     "--time-between-checkpoints",
                     "250000000",
                     "--threads",
                     "3",
                     "--poll-mode",
                     "busy",
                     "--net",
                     "socket",
                     "--metrics-period",
                     "500",
                     "--log-level",
                     "debug",
                     "--log-format",
                     "json",
                     "--control-core",
                     "1",
                     "--metrics-core",
                     "2",
                     "--eventlog-core",
                     "3" });
    ASSERT_FALSE(r.exit_now) << r.err_line;
    const auto& o = r.options;
    EXPECT_EQ(o.in[0].max_size, 512u);
    EXPECT_EQ(o.out[0], hp("localhost", 7002));
    EXPECT_EQ(o.stop_pause_ns, 7u);
    EXPECT_EQ(o.time_between_checkpoints_ns, 250'000'000u);
    EXPECT_EQ(o.threads, 3u);
    EXPECT_EQ(o.poll, poll_mode::busy);
    EXPECT_EQ(o.net, net_mode::socket);
    EXPECT_EQ(o.metrics_period_ms, 500u);
    EXPECT_EQ(o.level, log_level::debug);
    EXPECT_EQ(o.format, log_format::json);
    EXPECT_EQ(o.control_core, 1u);
    EXPECT_EQ(o.metrics_core, 2u);
    EXPECT_EQ(o.eventlog_core, 3u);
}

TEST(worker_options, initializer_control_may_listen_on_any_port) {
    auto r =
      parse({ "-t", "-c", "127.0.0.1:0", "-d", "127.0.0.1:0", "-i", "127.0.0.1:0", "-o", "h:1" });
    ASSERT_FALSE(r.exit_now) << r.err_line;
    EXPECT_EQ(r.options.control, hp("127.0.0.1", 0));
    EXPECT_EQ(r.options.in[0].address.port, 0u);
}

TEST(worker_options, one_source_app_accepts_its_name_too) {
    auto r = parse({ "-i", "Text@127.0.0.1:7000", "-o", "127.0.0.1:7002" });
    ASSERT_FALSE(r.exit_now) << r.err_line;
    EXPECT_EQ(r.options.in[0].name, "Text");
    expect_error(parse({ "-i", "Other@127.0.0.1:7000", "-o", "127.0.0.1:7002" }), 64,
                 "its sources are: Text");
    expect_error(parse({ "-i", "127.0.0.1:7000,127.0.0.1:7001", "-o", "127.0.0.1:7002" }), 64,
                 "source 'Text' is given more than once");
}

TEST(worker_options, multi_source_in_declaration_order) {
    auto r = parse({ "--in", "Quotes@127.0.0.1:7001:1024", "--in", "Orders@127.0.0.1:7000", "--out",
                     "127.0.0.1:8000,127.0.0.1:8001" },
                   two_source_app());
    ASSERT_FALSE(r.exit_now) << r.err_line;
    const auto& o = r.options;
    ASSERT_EQ(o.in.size(), 2u);
    EXPECT_EQ(o.in[0].name, "Orders");
    EXPECT_EQ(o.in[0].address, hp("127.0.0.1", 7000));
    EXPECT_EQ(o.in[0].max_size, 16384u);
    EXPECT_EQ(o.in[1].name, "Quotes");
    EXPECT_EQ(o.in[1].max_size, 1024u);
    EXPECT_EQ(o.out, (std::vector<net::host_port>{ hp("127.0.0.1", 8000), hp("127.0.0.1", 8001) }));

    auto comma = parse({ "--in", "Orders@127.0.0.1:7000,Quotes@127.0.0.1:7001:1024", "--out",
                         "127.0.0.1:8000", "--out", "127.0.0.1:8001" },
                       two_source_app());
    ASSERT_FALSE(comma.exit_now) << comma.err_line;
    EXPECT_EQ(comma.options.in, o.in);
    EXPECT_EQ(comma.options.out, o.out);
}

TEST(worker_options, multi_source_errors) {
    const std::string out = "--out=127.0.0.1:8000,127.0.0.1:8001";
    expect_error(parse({ "--in", "Orders@127.0.0.1:7000", out }, two_source_app()), 64,
                 "source 'Quotes' has no --in address; add --in Quotes@host:port");
    expect_error(parse({ out }, two_source_app()), 64,
                 "source 'Orders' has no --in address; add --in Orders@host:port");
    expect_error(
      parse({ "--in", "Orders@127.0.0.1:7000,Trades@127.0.0.1:7001", out }, two_source_app()), 64,
      "no source named 'Trades'; its sources are: Orders, Quotes");
    expect_error(parse({ "--in", "Orders@127.0.0.1:7000,127.0.0.1:7001", out }, two_source_app()),
                 64, "give each as name@host:port");
    expect_error(
      parse({ "--in", "Orders@127.0.0.1:7000,Orders@127.0.0.1:7001,Quotes@127.0.0.1:7002", out },
            two_source_app()),
      64, "source 'Orders' is given more than once");
    expect_error(parse({ "--in", "Orders@127.0.0.1", out }, two_source_app()), 64,
                 "bad address 'Orders@127.0.0.1'");
    expect_error(parse({ "--in", "Orders@127.0.0.1:7000,,Quotes@h:1", out }, two_source_app()), 64,
                 "empty item");
}

TEST(worker_options, out_count_must_match_sinks) {
    const std::string in = "--in=Orders@127.0.0.1:7000,Quotes@127.0.0.1:7001";
    expect_error(parse({ in, "--out", "127.0.0.1:8000" }, two_source_app()), 64,
                 "sink 'Audit' has no --out address");
    expect_error(parse({ in }, two_source_app()), 64, "sink 'Fills' has no --out address");
    expect_error(
      parse({ in, "--out", "127.0.0.1:8000,127.0.0.1:8001,127.0.0.1:8002" }, two_source_app()), 64,
      "3 addresses for 2 sink(s) (Fills, Audit)");
    expect_error(parse({ in, "-o", "127.0.0.1:0,127.0.0.1:8001" }, two_source_app()), 64,
                 "port 0 is not allowed here");

    auto none = parse({ "--in", "127.0.0.1:7000" }, no_sink_app());
    ASSERT_FALSE(none.exit_now) << none.err_line;
    EXPECT_TRUE(none.options.out.empty());
    expect_error(parse({ "--in", "127.0.0.1:7000", "--out", "127.0.0.1:8000" }, no_sink_app()), 64,
                 "this application has no sinks; drop --out");
}

TEST(worker_options, precedence_flag_over_env_over_config_over_default) {
    temp_ini ini("# a comment\n"
                 "threads = 2\n"
                 "metrics-period = 300\n"
                 "log-level = warn\n"
                 "poll-mode = busy\n"
                 "resilience-dir = /from/config\n"
                 "in = 127.0.0.1:7100\n"
                 "out = 127.0.0.1:7102\n");
    env_map env{ { "RINGTAIL_THREADS", "4" },
                 { "RINGTAIL_METRICS_PERIOD", "400" },
                 { "RINGTAIL_IN", "127.0.0.1:7200" } };
    auto r = parse({ "--config", ini.path(), "--threads", "6", "--log-level", "error" },
                   one_source_app(), env);
    ASSERT_FALSE(r.exit_now) << r.err_line;
    const auto& o = r.options;
    EXPECT_EQ(o.threads, 6u);                          // command line over env
    EXPECT_EQ(o.metrics_period_ms, 400u);              // env over config
    EXPECT_EQ(o.level, log_level::error);              // command line over config
    EXPECT_EQ(o.poll, poll_mode::busy);                // config over default
    EXPECT_EQ(o.resilience_dir, "/from/config");       // config over default
    EXPECT_EQ(o.in[0].address, hp("127.0.0.1", 7200)); // env over config
    EXPECT_EQ(o.out, std::vector<net::host_port>{ hp("127.0.0.1", 7102) }); // config
    EXPECT_EQ(o.format, log_format::text);                                  // default

    // The config file may also come from the environment.
    auto via_env = parse({}, one_source_app(), { { "RINGTAIL_CONFIG", ini.path() } });
    ASSERT_FALSE(via_env.exit_now) << via_env.err_line;
    EXPECT_EQ(via_env.options.threads, 2u);
    EXPECT_EQ(via_env.options.in[0].address, hp("127.0.0.1", 7100));
}

TEST(worker_options, flags_from_env_and_config) {
    temp_ini ini("cluster-initializer = yes\n"
                 "data = 127.0.0.1:6001\n"
                 "ponypin = no\n"
                 "in = 127.0.0.1:7000\n"
                 "out = 127.0.0.1:7002\n");
    auto r = parse({ "--config", ini.path() });
    ASSERT_FALSE(r.exit_now) << r.err_line;
    EXPECT_TRUE(r.options.cluster_initializer);

    // The environment turns the flag off again, so --data is refused.
    auto off = parse({ "--config", ini.path() }, one_source_app(),
                     { { "RINGTAIL_CLUSTER_INITIALIZER", "0" } });
    expect_error(off, 64, "--data is only for the initializer (-t)");

    auto env_on = parse({ "-d", "127.0.0.1:6001", "-i", "h:1", "-o", "h:2" }, one_source_app(),
                        { { "RINGTAIL_CLUSTER_INITIALIZER", "TRUE" } });
    ASSERT_FALSE(env_on.exit_now) << env_on.err_line;
    EXPECT_TRUE(env_on.options.cluster_initializer);
}

TEST(worker_options, threads_and_ponythreads) {
    auto same = parse({ "-i", "h:1", "-o", "h:2", "-T", "2", "--ponythreads", "2" });
    ASSERT_FALSE(same.exit_now) << same.err_line;
    EXPECT_EQ(same.options.threads, 2u);
    expect_error(parse({ "-i", "h:1", "-o", "h:2", "--threads", "2", "--ponythreads", "3" }), 64,
                 "disagree");
    // The stronger source wins when the two come from different places.
    auto mixed = parse({ "-i", "h:1", "-o", "h:2", "--ponythreads", "3" }, one_source_app(),
                       { { "RINGTAIL_THREADS", "5" } });
    ASSERT_FALSE(mixed.exit_now) << mixed.err_line;
    EXPECT_EQ(mixed.options.threads, 3u);
}

TEST(worker_options, print_config_shows_values_and_sources) {
    temp_ini ini("metrics-period = 300\nlog-format = json\n");
    auto r = parse({ "--print-config", "--config", ini.path(), "-i", "127.0.0.1:7000", "-o",
                     "127.0.0.1:7002", "--threads", "2" },
                   one_source_app(),
                   { { "RINGTAIL_LOG_LEVEL", "debug" }, { "RINGTAIL_LOG_FORMAT", "text" } });
    EXPECT_TRUE(r.exit_now);
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_TRUE(r.err_line.empty());
    const auto& t = r.out_text;
    EXPECT_NE(t.find("worker-count = 1  (default)\n"), std::string::npos) << t;
    EXPECT_NE(t.find("threads = 2  (command line)\n"), std::string::npos) << t;
    EXPECT_NE(t.find("in = 127.0.0.1:7000  (command line)\n"), std::string::npos) << t;
    EXPECT_NE(t.find("log-level = debug  (environment RINGTAIL_LOG_LEVEL)\n"), std::string::npos)
      << t;
    EXPECT_NE(t.find("log-format = text  (environment RINGTAIL_LOG_FORMAT)\n"), std::string::npos)
      << t;
    EXPECT_NE(t.find("metrics-period = 300  (config " + ini.path() + ")\n"), std::string::npos)
      << t;
    EXPECT_NE(t.find("resilience-dir = /tmp  (default)\n"), std::string::npos) << t;
    EXPECT_NE(t.find("control = <none>  (default)\n"), std::string::npos) << t;
    // Every setting has a line.
    for (const char* name : { "control",
                              "data",
                              "my-control",
                              "my-data",
                              "external",
                              "name",
                              "metrics",
                              "cluster-initializer",
                              "run-with-resilience",
                              "time-between-checkpoints",
                              "log-rotation",
                              "event-log-file-size",
                              "join",
                              "stop-pause",
                              "out",
                              "ponythreads",
                              "ponypin",
                              "ponypinasio",
                              "ponynoblock",
                              "ponyminthreads",
                              "application-module",
                              "cpus",
                              "control-core",
                              "metrics-core",
                              "eventlog-core",
                              "poll-mode",
                              "net",
                              "dpdk-port",
                              "dpdk-peer",
                              "metrics-listen",
                              "config" }) {
        EXPECT_NE(("\n" + t).find("\n" + std::string(name) + " = "), std::string::npos) << name;
    }
}

TEST(worker_options, print_config_works_before_sources_and_sinks_have_addresses) {
    auto r = parse({ "--print-config", "--threads", "2" });
    EXPECT_TRUE(r.exit_now);
    EXPECT_EQ(r.exit_code, 0) << r.err_line;
    EXPECT_NE(r.out_text.find("in = <none>  (default)\n"), std::string::npos) << r.out_text;
    EXPECT_NE(r.out_text.find("threads = 2  (command line)\n"), std::string::npos) << r.out_text;
    // Bad values are still errors.
    EXPECT_EQ(parse({ "--print-config", "--threads", "0" }).exit_code, 64);
}

TEST(worker_options, help_and_version_exit_zero) {
    auto h = parse({ "--help" });
    EXPECT_TRUE(h.exit_now);
    EXPECT_EQ(h.exit_code, 0);
    EXPECT_EQ(h.out_text.rfind("Usage: word_count [options] [-- EAL args]\n", 0), 0u) << h.out_text;
    for (const char* needle :
         { "Wallaroo options", "Ringtail options", "-w, --worker-count n", "--ponynoblock",
           "compatibility only, no effect", "--stop-world", "--poll-mode busy|adaptive",
           "-T, --threads n", "--print-config" }) {
        EXPECT_NE(h.out_text.find(needle), std::string::npos) << needle;
    }
    // Help wins even over a broken environment.
    auto h2 =
      parse({ "--in", "nonsense", "--help" }, one_source_app(), { { "RINGTAIL_THREADS", "x" } });
    EXPECT_EQ(h2.exit_code, 0);
    EXPECT_FALSE(h2.out_text.empty());

    auto v = parse({ "--version" });
    EXPECT_TRUE(v.exit_now);
    EXPECT_EQ(v.exit_code, 0);
    EXPECT_EQ(v.out_text, std::string("word_count (ringtail ") + build_info::version + ")\n");
}

TEST(worker_options, dpdk_peer_gives_macs_by_worker_name) {
    const std::string in = "--in=127.0.0.1:7000";
    const std::string out = "--out=127.0.0.1:7002";
    {
        auto r = parse({ in, out, "--dpdk-peer", "w1=02:00:00:00:00:01,w2=0A:1b:2c:3d:4e:5f",
                         "--dpdk-peer", "initializer=02:00:00:00:00:03" });
        ASSERT_FALSE(r.exit_now) << r.err_line;
        ASSERT_EQ(r.options.dpdk_peers.size(), 3u);
        EXPECT_EQ(r.options.dpdk_peers.at("w1"), (std::array<std::uint8_t, 6>{ 2, 0, 0, 0, 0, 1 }));
        EXPECT_EQ(r.options.dpdk_peers.at("w2"),
                  (std::array<std::uint8_t, 6>{ 0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f }));
        EXPECT_EQ(r.options.dpdk_peers.at("initializer"),
                  (std::array<std::uint8_t, 6>{ 2, 0, 0, 0, 0, 3 }));
    }
    for (const char* bad :
         { "w1", "w1=", "=02:00:00:00:00:01", "w1=02:00:00:00:00", "w1=02:00:00:00:00:01:02",
           "w1=zz:00:00:00:00:01", "w1=02-00-00-00-00-01" }) {
        SCOPED_TRACE(bad);
        expect_error(parse({ in, out, "--dpdk-peer", bad }), 64, "expected name=mac");
    }
    expect_error(parse({ in, out, "--dpdk-peer", "w1=02:00:00:00:00:01,w1=02:00:00:00:00:02" }), 64,
                 "worker 'w1' is given twice");
    expect_error(parse({ in, out, "--net", "socket", "--dpdk-peer", "w1=02:00:00:00:00:01" }), 64,
                 "--dpdk-peer addresses workers on the DPDK transport, but --net is socket");
}

TEST(worker_options, unavailable_features_are_refused) {
    const std::string in = "--in=127.0.0.1:7000";
    const std::string out = "--out=127.0.0.1:7002";
    const std::string init = "-t";
    const std::string data = "--data=127.0.0.1:6001";
    const std::vector<std::vector<std::string>> cases{
        { "-j", "127.0.0.1:6000" },
        { "--run-with-resilience" },
        { "--log-rotation" },
        { "-l", "1000000" },
        { "--application-module", "word_count" },
    };
    for (auto args : cases) {
        args.insert(args.begin(), { in, out });
        auto r = parse(args);
        std::string joined;
        for (const auto& a : args) {
            joined += a + " ";
        }
        SCOPED_TRACE(joined);
        expect_error(r, 64, "not available in this build yet");
        EXPECT_TRUE(r.err_line.ends_with("not available in this build yet")) << r.err_line;
    }
    // From the environment the line names the variable.
    expect_error(parse({ in, out }, one_source_app(), { { "RINGTAIL_JOIN", "127.0.0.1:6000" } }),
                 64, "RINGTAIL_JOIN=127.0.0.1:6000: joining a running cluster is not available");
    // The external channel is built: the address is accepted (port 0 = any free port).
    for (const char* at : { "127.0.0.1:5050", "127.0.0.1:0" }) {
        auto r = parse({ in, out, "-e", at });
        ASSERT_FALSE(r.exit_now) << r.err_line;
        ASSERT_TRUE(r.options.external.has_value());
        EXPECT_EQ(r.options.external->host, "127.0.0.1");
    }
    expect_error(parse({ in, out, "--external", "127.0.0.1:notaport" }), 64, "notaport");
    // Metrics export is built: both addresses are accepted, and a period of 0 turns metrics off.
    {
        auto r = parse({ in, out, "-m", "127.0.0.1:5001", "--metrics-listen", "127.0.0.1:0",
                         "--metrics-period", "0" });
        ASSERT_FALSE(r.exit_now) << r.err_line;
        EXPECT_EQ(r.options.metrics, (net::host_port{ "127.0.0.1", 5001 }));
        EXPECT_EQ(r.options.metrics_listen, (net::host_port{ "127.0.0.1", 0 }));
        EXPECT_EQ(r.options.metrics_period_ms, 0u);
    }
    // The DPDK transport is built: --net dpdk, --dpdk-port and EAL arguments after `--` are
    // accepted (whether DPDK can run is found at start-up: exit 69); EAL arguments with --net
    // socket are a usage error.
    {
        auto r = parse(
          { in, out, "--net", "dpdk", "--dpdk-port", "1", "--", "--no-huge", "--vdev=net_memif0" });
        ASSERT_FALSE(r.exit_now) << r.err_line;
        EXPECT_EQ(r.options.net, net_mode::dpdk);
        EXPECT_EQ(r.options.dpdk_port, std::optional<std::uint16_t>(1));
        EXPECT_EQ(r.options.eal_args,
                  (std::vector<std::string>{ "--no-huge", "--vdev=net_memif0" }));
    }
    expect_error(parse({ in, out, "--net", "socket", "--", "--no-huge" }), 64,
                 "EAL arguments are for the DPDK transport, but --net is socket");
    // Accepted transports and switched-off flags are fine.
    for (const char* net : { "auto", "socket" }) {
        auto r = parse({ in, out, "--net", net });
        EXPECT_FALSE(r.exit_now) << r.err_line;
    }
    auto off =
      parse({ in, out }, one_source_app(), { { "RINGTAIL_RUN_WITH_RESILIENCE", "false" } });
    EXPECT_FALSE(off.exit_now) << off.err_line;
}

TEST(worker_options, initializer_rules) {
    const std::string in = "--in=127.0.0.1:7000";
    const std::string out = "--out=127.0.0.1:7002";
    expect_error(parse({ in, out, "-d", "127.0.0.1:6001" }), 64,
                 "--data is only for the initializer (-t)");
    expect_error(parse({ in, out, "-t", "-c", "127.0.0.1:6000" }), 64, "needs --data");
    expect_error(parse({ in, out, "-n", "worker2" }), 64, "always named 'initializer'");
    expect_error(parse({ in, out, "-t", "-d", "127.0.0.1:6001", "-n", "w1" }), 64,
                 "always named 'initializer'");
    auto named = parse({ in, out, "-n", "initializer" });
    ASSERT_FALSE(named.exit_now) << named.err_line;
    EXPECT_EQ(named.options.name, "initializer");
}

TEST(worker_options, cluster_roles) {
    const std::string in = "--in=127.0.0.1:7000";
    const std::string out = "--out=127.0.0.1:7002";
    // The initializer of three.
    auto init = parse({ in, out, "-t", "-w", "3", "-c", "127.0.0.1:6000", "-d", "127.0.0.1:6001" });
    ASSERT_FALSE(init.exit_now) << init.err_line;
    EXPECT_TRUE(init.options.cluster_initializer);
    EXPECT_EQ(init.options.worker_count, 3u);
    expect_error(parse({ in, out, "-t", "-w", "3", "-d", "127.0.0.1:6001" }), 64,
                 "needs --control host:port");
    expect_error(parse({ in, out, "-t", "-w", "2", "-c", "127.0.0.1:6000", "-d", "127.0.0.1:6001",
                         "-y", "127.0.0.1:0" }),
                 64, "--my-data is for workers other than the initializer");
    // Another worker: --control, --name and --my-data; --my-control and -w optional.
    auto w = parse({ in, out, "-c", "127.0.0.1:6000", "-n", "w2", "-x", "127.0.0.1:0", "-y",
                     "127.0.0.1:0", "-w", "3" });
    ASSERT_FALSE(w.exit_now) << w.err_line;
    EXPECT_EQ(w.options.name, "w2");
    EXPECT_EQ(w.options.control, (net::host_port{ "127.0.0.1", 6000 }));
    EXPECT_EQ(w.options.my_data, (net::host_port{ "127.0.0.1", 0 }));
    expect_error(parse({ in, out, "-c", "127.0.0.1:6000", "-y", "127.0.0.1:0" }), 64,
                 "--name is required for a worker that is not the initializer");
    expect_error(parse({ in, out, "-c", "127.0.0.1:6000", "-n", "initializer", "-y", "h:1" }), 64,
                 "'initializer' is the initializer's name");
    expect_error(parse({ in, out, "-c", "127.0.0.1:6000", "-n", "w2" }), 64,
                 "--my-data host:port is required");
    expect_error(parse({ in, out, "-c", "127.0.0.1:6000", "-n", "w2", "-y", "h:1", "-d", "h:2" }),
                 64, "--data is only for the initializer");
    // Alone: no cluster options.
    expect_error(parse({ in, out, "-w", "2" }), 64, "--worker-count 2 needs -t --control --data");
    expect_error(parse({ in, out, "-y", "127.0.0.1:0" }), 64, "needs --control");
}

TEST(worker_options, bad_values_are_usage_errors) {
    const std::string in = "--in=127.0.0.1:7000";
    const std::string out = "--out=127.0.0.1:7002";
    const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
        { { "--worker-count", "x" }, "--worker-count x: expected a whole number" },
        { { "-w", "0" }, "from 1 to" },
        { { "--threads", "0" }, "--threads 0: expected a whole number from 1 to 4096" },
        { { "--ponythreads", "-1" }, "" },
        { { "--metrics-period", "-5" }, "--metrics-period -5" },
        { { "--time-between-checkpoints", "1s" }, "--time-between-checkpoints 1s" },
        { { "--stop-pause", "abc" }, "--stop-pause abc" },
        { { "--poll-mode", "spin" }, "expected one of busy, adaptive" },
        { { "--net", "rdma" }, "expected one of auto, socket, dpdk" },
        { { "--log-level", "trace" }, "expected one of error, warn, info, debug" },
        { { "--log-format", "xml" }, "expected one of text, json" },
        { { "-t", "-c", "127.0.0.1", "-d", "127.0.0.1:6001" }, "bad address '127.0.0.1'" },
        { { "-t", "-c", "127.0.0.1:6000", "-d", "127.0.0.1:99999" }, "--data 127.0.0.1:99999" },
        { { "--cpus", "3-1" }, "--cpus 3-1: expected core numbers" },
        { { "--cpus", "x" }, "--cpus x" },
        { { "--cpus", "1,,2" }, "--cpus 1,,2" },
        { { "--cpus", "0-100000" }, "--cpus 0-100000" },
        { { "--control-core", "k" }, "--control-core k" },
        { { "--ponyminthreads", "many" }, "--ponyminthreads many" },
        { { "--foo" }, "unknown option '--foo'; see --help" },
        { { "--foo=3" }, "unknown option '--foo'; see --help" },
        { { "-z" }, "unknown option '-z'" },
        { { "--work", "1" }, "unknown option '--work'" }, // no abbreviations
        { { "stray" }, "unexpected argument 'stray'" },
        { { "--worker-count" }, "--worker-count" },
        { { "-w", "1", "-w", "1" }, "more than once" },
        { { "--stop-pause", "1", "--stop-world", "1" }, "same option" },
    };
    for (auto [args, phrase] : cases) {
        args.insert(args.begin(), { in, out });
        SCOPED_TRACE(args.back());
        expect_error(parse(args), 64, phrase);
    }
}

TEST(worker_options, bad_environment_value_names_the_variable) {
    const std::vector<std::string> args{ "--in=127.0.0.1:7000", "--out=127.0.0.1:7002" };
    expect_error(parse(args, one_source_app(), { { "RINGTAIL_WORKER_COUNT", "three" } }), 64,
                 "RINGTAIL_WORKER_COUNT=three: expected a whole number");
    expect_error(parse(args, one_source_app(), { { "RINGTAIL_POLL_MODE", "fast" } }), 64,
                 "RINGTAIL_POLL_MODE=fast");
    expect_error(parse(args, one_source_app(), { { "RINGTAIL_PONYPIN", "maybe" } }), 64,
                 "RINGTAIL_PONYPIN=maybe: expected true, false");
    expect_error(
      parse({ "--out=127.0.0.1:7002" }, one_source_app(), { { "RINGTAIL_IN", "nowhere" } }), 64,
      "RINGTAIL_IN=nowhere: bad address");
    // A bad value that the command line overrides does not matter.
    auto r = parse({ "--in=127.0.0.1:7000", "--out=127.0.0.1:7002", "-w", "1" }, one_source_app(),
                   { { "RINGTAIL_WORKER_COUNT", "three" } });
    EXPECT_FALSE(r.exit_now) << r.err_line;
}

TEST(worker_options, bad_config_is_exit_78) {
    const std::vector<std::string> io{ "--in=127.0.0.1:7000", "--out=127.0.0.1:7002" };
    auto with = [&](const std::string& path) {
        auto args = io;
        args.push_back("--config=" + path);
        return parse(args);
    };
    expect_error(with("/nonexistent/ringtail.ini"), 78,
                 "cannot read config file /nonexistent/ringtail.ini");
    {
        temp_ini ini("worker-count = 1\nfrobnicate = 2\n");
        expect_error(with(ini.path()), 78,
                     "config file " + ini.path() + ": unknown key 'frobnicate'");
    }
    {
        temp_ini ini("threads = lots\n");
        expect_error(with(ini.path()), 78, "config file " + ini.path() + ": threads = lots");
    }
    {
        temp_ini ini("run-with-resilience = perhaps\n");
        expect_error(with(ini.path()), 78, "run-with-resilience = perhaps: expected true");
    }
    {
        temp_ini ini("config = /other.ini\n"); // a file cannot name another file
        expect_error(with(ini.path()), 78, "unknown key 'config'");
    }
    {
        temp_ini ini("this line has no equals sign\n");
        expect_error(with(ini.path()), 78, "config file " + ini.path());
    }
    {
        temp_ini ini("log-level = info\nlog-level = warn\n");
        expect_error(with(ini.path()), 78, "config file " + ini.path());
    }
}

TEST(worker_options, eal_args_after_double_dash) {
    // EAL arguments are split off before option parsing and kept for DPDK (--net auto, the
    // default, or dpdk); with --net socket they are refused.
    auto r = parse({ "--in=127.0.0.1:7000", "--out=127.0.0.1:7002", "--", "--no-huge", "-l", "2" });
    ASSERT_FALSE(r.exit_now) << r.err_line;
    EXPECT_EQ(r.options.eal_args, (std::vector<std::string>{ "--no-huge", "-l", "2" }));
    expect_error(parse({ "--in=127.0.0.1:7000", "--out=127.0.0.1:7002", "--net=socket", "--",
                         "--no-huge", "-l", "2" }),
                 64, "-- --no-huge -l 2: EAL arguments");
    // What follows `--` is never read as one of our options.
    auto r2 = parse({ "--in=127.0.0.1:7000", "--out=127.0.0.1:7002", "--", "--help" });
    EXPECT_FALSE(r2.exit_now) << r2.err_line;
    EXPECT_TRUE(r2.out_text.empty());
    EXPECT_EQ(r2.options.eal_args, (std::vector<std::string>{ "--help" }));
    // A bare `--` with nothing after it is fine.
    auto r3 = parse({ "--in=127.0.0.1:7000", "--out=127.0.0.1:7002", "--" });
    EXPECT_FALSE(r3.exit_now) << r3.err_line;
    EXPECT_TRUE(r3.options.eal_args.empty());
}

TEST(worker_options, cpus_list) {
    auto cpus_of = [](const std::string& text) {
        auto r = parse({ "--in=127.0.0.1:7000", "--out=127.0.0.1:7002", "--cpus", text });
        EXPECT_FALSE(r.exit_now) << r.err_line;
        return r.options.cpus;
    };
    EXPECT_EQ(cpus_of("2-7,10"), (std::vector<unsigned>{ 2, 3, 4, 5, 6, 7, 10 }));
    EXPECT_EQ(cpus_of("10,3,3,1-2"), (std::vector<unsigned>{ 1, 2, 3, 10 }));
    EXPECT_EQ(cpus_of("5"), (std::vector<unsigned>{ 5 }));
    EXPECT_EQ(cpus_of("4-4, 0"), (std::vector<unsigned>{ 0, 4 }));
}

TEST(worker_options, process_env_reads_the_environment) {
    ::setenv("RINGTAIL_TEST_ONLY_VARIABLE", "42", 1);
    auto env = process_env();
    EXPECT_EQ(env("RINGTAIL_TEST_ONLY_VARIABLE"), "42");
    ::unsetenv("RINGTAIL_TEST_ONLY_VARIABLE");
    EXPECT_EQ(env("RINGTAIL_TEST_ONLY_VARIABLE"), std::nullopt);
}

} // namespace
} // namespace ringtail::cli
