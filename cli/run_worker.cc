// The worker's main: options, start-up checks, wiring of sources and sinks, signals, clean stop.
#include "cli/run_worker.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <pthread.h>
#include <sched.h>
#include <span>
#include <string_view>
#include <thread>
#include <unistd.h>
#include <utility>

#include <fmt/format.h>

#include "cli/core_plan.h"
#include "cli/external_requests.h"
#include "cli/worker_options.h"
#include "engine/log.h"
#include "engine/runtime.h"
#include "net/cluster/cluster.h"
#include "net/dpdk/dpdk_port.h"
#include "net/edge/tcp_sink.h"
#include "net/edge/tcp_source_connection.h"
#include "net/external/external_channel.h"
#include "net/io/acceptor.h"
#include "net/io/event_loop.h"
#include "net/io/tcp_listener.h"
#include "net/metrics/http_endpoint.h"
#include "net/metrics/metrics_hub_client.h"
#include "resilience/dir_check.h"

namespace ringtail::cli {
namespace {

int fail(const error& e) {
    std::fprintf(stderr, "%s\n", e.message.c_str());
    return exit_code(e.code);
}

} // namespace

int run_worker(int argc, char** argv, application& app) {
    // Signals: SIGPIPE is ignored (sockets report EPIPE instead); SIGINT and SIGTERM are blocked
    // in every thread and taken by sigwait below, so a stop is an orderly step of the main thread.
    std::signal(SIGPIPE, SIG_IGN);
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    ::pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    app_facts facts{ app.name(), app.source_names(), app.sink_names() };
    auto parsed = parse_worker_options(argc, argv, facts, process_env());
    if (parsed.exit_now) {
        if (!parsed.out_text.empty()) {
            std::fputs(parsed.out_text.c_str(), stdout);
            std::fflush(stdout);
        }
        if (!parsed.err_line.empty()) {
            std::fprintf(stderr, "%s\n", parsed.err_line.c_str());
        }
        return parsed.exit_code;
    }
    const worker_options& o = parsed.options;
    log::set_level(static_cast<log::level>(static_cast<int>(o.level)));
    log::set_json(o.format == log_format::json);

    if (auto v = app.validate(); !v) {
        return fail(v.err());
    }
    if (auto d = resilience::check_dir_writable(o.resilience_dir); !d) {
        return fail(d.err());
    }
    auto cores = plan_cores(o, affinity_cpus());
    if (!cores) {
        return fail(cores.err());
    }
    for (const auto& line : cores->warnings) {
        log::warn("{}", line);
    }
    if (o.eventlog_core) {
        // Accepted for Wallaroo's and our own command lines, but nothing would run there yet.
        log::warn("--eventlog-core {}: no event log runs in this build yet (resilience is not in "
                  "it); the core is only kept free of the other threads",
                  *o.eventlog_core);
    }
    // The threads that get no core of their own (this one, the control event loop that accepts
    // sources and serves the external channel and the HTTP endpoint, the cluster's control
    // thread, the metrics thread without --metrics-core, the exchange lanes without
    // --control-core) inherit this thread's affinity, set here before any of them starts: the
    // control subsystem's cores, off the shards' when cores allow (DESIGN.md §2), and always
    // within --cpus. Shards and the threads given a core are pinned there by the runtime later.
    {
        cpu_set_t set;
        CPU_ZERO(&set);
        for (unsigned c : cores->subsystem_cpus) {
            CPU_SET(c, &set);
        }
        if (::sched_setaffinity(0, sizeof set, &set) != 0) {
            log::warn("cannot keep the control subsystem on cores {} ({}); threads without a core "
                      "of their own run anywhere",
                      fmt::join(cores->subsystem_cpus, ","), std::strerror(errno));
        }
    }

    // Listen on every source address before anything starts, so a port in use fails fast.
    // Closed on every early return; handed to the acceptor (which closes them) once running.
    struct fd_guard {
        std::vector<int> fds;
        ~fd_guard() {
            for (int f : fds) {
                const net::unique_fd closing(f);
            }
        }
    } listening;
    std::vector<int>& listen_fds = listening.fds;
    for (const auto& in : o.in) {
        auto fd = net::listen_tcp(in.address);
        if (!fd) {
            return fail(fd.err());
        }
        listen_fds.push_back(fd.value());
    }

    // In a cluster: form it (this blocks until every worker is there and the data mesh is up).
    const bool clustered =
      (o.cluster_initializer && o.worker_count > 1) || (!o.cluster_initializer && o.control);

    // The DPDK port for the data channel (DESIGN.md §4): required with --net dpdk (exit 69 with a
    // remedy when unusable), tried with --net auto in a cluster (kernel sockets otherwise, with
    // one warning line). EAL pins the calling thread to its main lcore; the process's own
    // affinity is put back so that the threads started later are placed by our core plan.
    std::unique_ptr<net::dpdk_port> dpdk;
    if (o.net == net_mode::dpdk || (o.net == net_mode::automatic && clustered)) {
        cpu_set_t before;
        CPU_ZERO(&before);
        const bool saved = ::sched_getaffinity(0, sizeof before, &before) == 0;
        auto eal = net::dpdk_eal::init(o.eal_args);
        if (saved) {
            ::sched_setaffinity(0, sizeof before, &before);
        }
        std::string why;
        if (eal) {
            net::dpdk_port_config pc;
            pc.port_id = o.dpdk_port.value_or(0);
            // A queue pair per shard where the device can keep each on its own (DESIGN.md §4):
            // the data channel runs a lane per queue pair that every worker has.
            pc.queues = static_cast<std::uint16_t>(std::min<std::uint32_t>(cores->shards, 64));
            auto port = net::dpdk_port::open(pc);
            if (port) {
                dpdk = std::move(port.value());
            } else {
                why = port.err().message;
            }
        } else {
            why = eal.err().message;
        }
        if (!dpdk && o.net == net_mode::dpdk) {
            return fail(error{ errc::unavailable, "--net dpdk: " + why });
        }
        if (!dpdk) {
            log::warn("--net auto: no usable DPDK port ({}); the data channel uses kernel sockets",
                      why);
        }
    }
    std::unique_ptr<net::cluster_member> member;
    if (clustered) {
        if (auto r = runtime::check_routable(app); !r) {
            return fail(r.err());
        }
        net::cluster_config cc;
        cc.initializer = o.cluster_initializer;
        cc.name = o.name;
        // A worker's -w is checked against the initializer's; 1 (the default) means not given.
        cc.worker_count = o.cluster_initializer || o.worker_count > 1 ? o.worker_count : 0;
        cc.control = *o.control;
        cc.my_control = o.my_control;
        cc.data = o.cluster_initializer ? *o.data : *o.my_data;
        cc.app_name = app.name();
        cc.app_fingerprint = net::app_fingerprint(app);
        cc.shards = cores->shards;
        cc.dpdk = dpdk.get();
        cc.dpdk_required = o.net == net_mode::dpdk;
        cc.dpdk_peer_macs = o.dpdk_peers;
        if (const char* faults = std::getenv("RINGTAIL_TEST_FAULTS"); faults && *faults) {
            auto parsed_faults = net::parse_fault_config(faults);
            if (!parsed_faults) {
                return fail(
                  error{ errc::usage, "RINGTAIL_TEST_FAULTS: " + parsed_faults.err().message });
            }
            cc.test_faults = parsed_faults.value();
        }
        cc.interrupted = [&stop_signals] {
            timespec zero{};
            siginfo_t info;
            return ::sigtimedwait(&stop_signals, &info, &zero) > 0;
        };
        auto formed = net::cluster_member::form(cc);
        if (!formed) {
            if (formed.err().why == reason::formation_interrupted) {
                log::info("{}", net::formation_interrupted);
                return 0;
            }
            return fail(formed.err());
        }
        member = std::move(formed.value());
    }

    runtime_config cfg;
    cfg.shards = cores->shards;
    cfg.cpus = cores->shard_cpus;
    cfg.busy_poll = o.poll == poll_mode::busy;
    cfg.metrics_period_ns = static_cast<std::uint64_t>(o.metrics_period_ms) * 1'000'000;
    cfg.metrics_cpu = o.metrics_core ? static_cast<int>(*o.metrics_core) : -1;
    cfg.worker_name = o.name;
    if (member) {
        cfg.cluster_shards = member->shards_per_worker();
        cfg.worker_index = member->self();
        cfg.data_transports = member->transports();
        if (o.control_core) {
            // Lane 0 on the control core, more lanes on cores no one else uses (cli/core_plan.h).
            const auto used = cores->used_shard_cpus();
            std::vector<unsigned> busy(used.begin(), used.end());
            for (const auto& core : { o.metrics_core, o.eventlog_core }) {
                if (core) {
                    busy.push_back(*core);
                }
            }
            auto lanes = plan_lane_cores(static_cast<std::uint32_t>(cfg.data_transports.size()),
                                         *o.control_core, cores->cpus, busy);
            if (!lanes.warning.empty()) {
                log::warn("{}", lanes.warning);
            }
            if (lanes.cpus.size() > 1) {
                log::info("data channel: lane exchange threads on cores {}",
                          fmt::join(lanes.cpus, ","));
            }
            cfg.exchange_cpus = std::move(lanes.cpus);
        }
    }
    // The control plane's event loop (net/io/event_loop.h), on a thread placed with the control
    // subsystem: the HTTP endpoint and the external channel are served on it. Declared before
    // `rt`, so that it outlives the endpoint the runtime owns.
    net::event_loop_thread control_loop;
    runtime rt(app, cfg, [&](std::uint32_t sink, std::uint32_t) -> std::unique_ptr<sink_output> {
        return std::make_unique<net::tcp_sink>(o.out[sink], app.sink_names()[sink]);
    });
    if ((o.metrics || o.metrics_listen) && cfg.metrics_period_ns == 0) {
        return fail(error{ errc::usage, "--metrics-period 0 turns metrics off, but --metrics or "
                                        "--metrics-listen asks for them: drop one" });
    }
    if (o.metrics) {
        rt.add_exporter(std::make_unique<net::metrics_hub_client>(*o.metrics, app.name(), o.name));
        log::info("metrics to the monitoring hub at {} every {} ms", o.metrics->to_string(),
                  o.metrics_period_ms);
    }
    if (o.metrics_listen) {
        auto endpoint = net::http_endpoint::open(
          control_loop.loop(), *o.metrics_listen, app.name(), o.name,
          std::string(net::to_string(member ? member->net() : net::transport_kind::socket)), {});
        if (!endpoint) {
            return fail(endpoint.err());
        }
        log::info("metrics endpoint on http://{}:{}/ (/metrics, /status, /healthz)",
                  o.metrics_listen->host, endpoint.value()->bound_port());
        rt.add_exporter(std::move(endpoint.value()));
    }
    // The external channel listens before processing starts, so a port in use fails fast; until
    // mark_running() its requests see a cluster that is not initialized yet. Declared after `rt`:
    // destroyed (its thread joined) before the runtime it reads.
    std::unique_ptr<external_requests> requests;
    std::unique_ptr<net::external_channel> external;
    if (o.external) {
        requests = std::make_unique<external_requests>(rt, o.name);
        requests->set_cluster(member.get());
        auto channel = net::external_channel::open(
          control_loop.loop(), *o.external,
          [r = requests.get()](std::uint16_t id, std::string_view body, const std::string& peer) {
              return r->handle(id, body, peer);
          },
          {});
        if (!channel) {
            return fail(error{ channel.err().code, "--external: " + channel.err().message });
        }
        external = std::move(channel.value());
        log::info("external channel on {}:{}", o.external->host, external->bound_port());
    }
    if (member) {
        rt.set_peer_lost_callback([m = member.get()](peer_id peer, const std::string& reason) {
            m->report_data_peer_lost(peer, reason);
        });
    }
    if (auto s = rt.start(); !s) {
        return fail(s.err());
    }
    if (member) {
        // Every worker's runtime is up before any source opens.
        if (auto s = member->start(rt); !s) {
            rt.stop(std::chrono::seconds(1));
            if (s.err().why == reason::formation_interrupted) {
                log::info("{}", net::formation_interrupted);
                return 0;
            }
            return fail(s.err());
        }
    }

    std::vector<std::uint32_t> max_sizes;
    for (std::size_t i = 0; i < o.in.size(); ++i) {
        max_sizes.push_back(o.in[i].max_size);
        log::info("source '{}' listening on {}:{} (max frame {} bytes)", o.in[i].name,
                  o.in[i].address.host, net::bound_port(listen_fds[i]), o.in[i].max_size);
    }
    for (std::size_t i = 0; i < o.out.size(); ++i) {
        log::info("sink '{}' writes to {}", app.sink_names()[i], o.out[i].to_string());
    }
    net::acceptor acceptor(
      control_loop.loop(), std::exchange(listen_fds, {}),
      [&](std::size_t index, int fd, std::string peer) {
          log::debug("source '{}': connection from {}", o.in[index].name, peer);
          rt.adopt(std::make_unique<net::tcp_source_connection>(
            fd, static_cast<std::uint32_t>(index), max_sizes[index], std::move(peer)));
      });
    acceptor.start();
    if (requests) {
        requests->mark_running();
    }
    log::info("worker '{}' of '{}' running: {} compute thread(s), poll mode {}", o.name, app.name(),
              cfg.shards, cfg.busy_poll ? "busy" : "adaptive");

    // Until SIGINT/SIGTERM, or (in a cluster) until the cluster-wide clean shutdown has drained.
    int sig = 0;
    while (sig <= 0 && !(member && member->finished())) {
        timespec tick{ 0, 100'000'000 };
        siginfo_t info;
        sig = ::sigtimedwait(&stop_signals, &info, &tick);
    }
    if (sig > 0) {
        log::info("{} received: stopping (draining in-flight messages, flushing sinks)",
                  sig == SIGINT ? "SIGINT" : "SIGTERM");
        if (member) {
            member->leave(); // the others report this worker as stopped
        }
    }
    acceptor.stop();
    // No control request may touch the runtime while it stops.
    external.reset();
    auto report = rt.stop(std::chrono::seconds(30));
    if (member) {
        for (auto* t : member->transports()) {
            t->say_goodbye(); // the exchange threads have stopped: ours now
        }
        member->stop();
        if (dpdk && member->net() == net::transport_kind::dpdk) {
            // Nothing polls the port any more, but a peer may still: when a memif port's peer
            // goes away, the PMD's interrupt thread unmaps the shared rings, and an rx_burst
            // running meanwhile in the peer can fault (DPDK 22.11). So the port stays open until
            // the peer has closed its end or a second has passed, by which time a peer in the
            // same clean shutdown has long stopped polling. On a NIC the link stays up: one
            // second more at exit.
            dpdk->wait_link_down(1.0);
        }
    }
    auto c = rt.counters();
    log::info("stopped: {}", summary_text(c, summary_line::stopped));
    if (member && !member->data_channel_report().empty()) {
        log::info("{}", member->data_channel_report());
    }
    if (member) {
        log::info("data channel: {}", summary_text(c, summary_line::data_channel));
    }
    if (report.undelivered_bytes != 0) {
        log::error("{} bytes of sink output were never taken by a receiver",
                   report.undelivered_bytes);
        return exit_code(errc::io_error);
    }
    return 0;
}

int run_worker(int argc, char** argv, const std::string& app_name,
               const std::function<void(application&)>& build) {
    try {
        application app{ app_name };
        build(app);
        return run_worker(argc, argv, app);
    } catch (const app_error& e) {
        std::fprintf(stderr, "application '%s' is built wrong: %s\n", app_name.c_str(), e.what());
        return exit_code(errc::internal);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s: internal error: %s\n", app_name.c_str(), e.what());
        return exit_code(errc::internal);
    }
}

} // namespace ringtail::cli
