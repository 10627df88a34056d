#include "cli/worker.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sched.h>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "engine/log.h"
#include "net/edge/tcp_sink.h"
#include "net/edge/tcp_source_connection.h"
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

worker::worker(application& app, const worker_options& options, const sigset_t& stop_signals)
  : _app(app)
  , _o(options)
  , _stop_signals(stop_signals) {}

int worker::run() {
    for (auto phase :
         { &worker::plan, &worker::open_sources, &worker::open_dpdk, &worker::form_cluster,
           &worker::build_runtime, &worker::add_exporters, &worker::start }) {
        if (step exit = (this->*phase)()) {
            return *exit;
        }
    }
    wait_for_stop();
    return stop_and_report();
}

bool worker::clustered() const {
    return (_o.cluster_initializer && _o.worker_count > 1) ||
           (!_o.cluster_initializer && _o.control);
}

worker::step worker::plan() {
    if (auto v = _app.validate(); !v) {
        return fail(v.err());
    }
    if (auto d = resilience::check_dir_writable(_o.resilience_dir); !d) {
        return fail(d.err());
    }
    auto cores = plan_cores(_o, affinity_cpus());
    if (!cores) {
        return fail(cores.err());
    }
    _cores = std::move(cores.value());
    for (const auto& line : _cores->warnings) {
        log::warn("{}", line);
    }
    if (_o.eventlog_core) {
        // Accepted for Wallaroo's and our own command lines, but nothing would run there yet.
        log::warn("--eventlog-core {}: no event log runs in this build yet (resilience is not in "
                  "it); the core is only kept free of the other threads",
                  *_o.eventlog_core);
    }
    // The threads that get no core of their own (this one, the control event loop that accepts
    // sources and serves the external channel and the HTTP endpoint, the cluster's control
    // thread, the metrics thread without --metrics-core, the exchange lanes without
    // --control-core) inherit this thread's affinity, set here before any of them starts: the
    // control subsystem's cores, off the shards' when cores allow (DESIGN.md §2), and always
    // within --cpus. Shards and the threads given a core are pinned there by the runtime later.
    cpu_set_t set;
    CPU_ZERO(&set);
    for (unsigned c : _cores->subsystem_cpus) {
        CPU_SET(c, &set);
    }
    if (::sched_setaffinity(0, sizeof set, &set) != 0) {
        log::warn("cannot keep the control subsystem on cores {} ({}); threads without a core "
                  "of their own run anywhere",
                  fmt::join(_cores->subsystem_cpus, ","), std::strerror(errno));
    }
    return {};
}

worker::step worker::open_sources() {
    for (const auto& in : _o.in) {
        auto fd = net::listen_tcp(in.address);
        if (!fd) {
            return fail(fd.err());
        }
        _listening.emplace_back(fd.value());
    }
    return {};
}

// The DPDK port for the data channel (DESIGN.md §4): required with --net dpdk (exit 69 with a
// remedy when unusable), tried with --net auto in a cluster (kernel sockets otherwise, with one
// warning line). EAL pins the calling thread to its main lcore; the process's own affinity is put
// back so that the threads started later are placed by our core plan.
worker::step worker::open_dpdk() {
    if (!(_o.net == net_mode::dpdk || (_o.net == net_mode::automatic && clustered()))) {
        return {};
    }
    cpu_set_t before;
    CPU_ZERO(&before);
    const bool saved = ::sched_getaffinity(0, sizeof before, &before) == 0;
    auto eal = net::dpdk_eal::init(_o.eal_args);
    if (saved) {
        ::sched_setaffinity(0, sizeof before, &before);
    }
    std::string why;
    if (eal) {
        net::dpdk_port_config pc;
        pc.port_id = _o.dpdk_port.value_or(0);
        // A queue pair per shard where the device can keep each on its own (DESIGN.md §4): the
        // data channel runs a lane per queue pair that every worker has.
        pc.queues = static_cast<std::uint16_t>(std::min<std::uint32_t>(_cores->shards, 64));
        auto port = net::dpdk_port::open(pc);
        if (port) {
            _dpdk = std::move(port.value());
        } else {
            why = port.err().message;
        }
    } else {
        why = eal.err().message;
    }
    if (!_dpdk && _o.net == net_mode::dpdk) {
        return fail(error{ errc::unavailable, "--net dpdk: " + why });
    }
    if (!_dpdk) {
        log::warn("--net auto: no usable DPDK port ({}); the data channel uses kernel sockets",
                  why);
    }
    return {};
}

worker::step worker::form_cluster() {
    if (!clustered()) {
        return {};
    }
    if (auto r = runtime::check_routable(_app); !r) {
        return fail(r.err());
    }
    net::cluster_config cc;
    cc.initializer = _o.cluster_initializer;
    cc.name = _o.name;
    // A worker's -w is checked against the initializer's; 1 (the default) means not given.
    cc.worker_count = _o.cluster_initializer || _o.worker_count > 1 ? _o.worker_count : 0;
    cc.control = *_o.control;
    cc.my_control = _o.my_control;
    cc.data = _o.cluster_initializer ? *_o.data : *_o.my_data;
    cc.app_name = _app.name();
    cc.app_fingerprint = net::app_fingerprint(_app);
    cc.shards = _cores->shards;
    cc.dpdk = _dpdk.get();
    cc.dpdk_required = _o.net == net_mode::dpdk;
    cc.dpdk_peer_macs = _o.dpdk_peers;
    if (const char* faults = std::getenv("RINGTAIL_TEST_FAULTS"); faults && *faults) {
        auto parsed_faults = net::parse_fault_config(faults);
        if (!parsed_faults) {
            return fail(
              error{ errc::usage, "RINGTAIL_TEST_FAULTS: " + parsed_faults.err().message });
        }
        cc.test_faults = parsed_faults.value();
    }
    cc.interrupted = [this] {
        timespec zero{};
        siginfo_t info;
        return ::sigtimedwait(&_stop_signals, &info, &zero) > 0;
    };
    auto formed = net::cluster_member::form(cc);
    if (!formed) {
        if (formed.err().why == reason::formation_interrupted) {
            log::info("{}", net::formation_interrupted);
            return 0;
        }
        return fail(formed.err());
    }
    _member = std::move(formed.value());
    return {};
}

worker::step worker::build_runtime() {
    _cfg.shards = _cores->shards;
    _cfg.cpus = _cores->shard_cpus;
    _cfg.busy_poll = _o.poll == poll_mode::busy;
    _cfg.metrics_period_ns = static_cast<std::uint64_t>(_o.metrics_period_ms) * 1'000'000;
    _cfg.metrics_cpu = _o.metrics_core ? static_cast<int>(*_o.metrics_core) : -1;
    _cfg.worker_name = _o.name;
    if (_member) {
        _cfg.cluster_shards = _member->shards_per_worker();
        _cfg.worker_index = _member->self();
        _cfg.data_transports = _member->transports();
        if (_o.control_core) {
            // Lane 0 on the control core, more lanes on cores no one else uses (cli/core_plan.h).
            const auto used = _cores->used_shard_cpus();
            std::vector<unsigned> busy(used.begin(), used.end());
            for (const auto& core : { _o.metrics_core, _o.eventlog_core }) {
                if (core) {
                    busy.push_back(*core);
                }
            }
            auto lanes = plan_lane_cores(static_cast<std::uint32_t>(_cfg.data_transports.size()),
                                         *_o.control_core, _cores->cpus, busy);
            if (!lanes.warning.empty()) {
                log::warn("{}", lanes.warning);
            }
            if (lanes.cpus.size() > 1) {
                log::info("data channel: lane exchange threads on cores {}",
                          fmt::join(lanes.cpus, ","));
            }
            _cfg.exchange_cpus = std::move(lanes.cpus);
        }
    }
    // The control plane's event loop (net/io/event_loop.h), on a thread placed with the control
    // subsystem: the sources' acceptor, the HTTP endpoint and the external channel run on it.
    _control_loop.emplace();
    _rt = std::make_unique<runtime>(
      _app, _cfg, [this](std::uint32_t sink, std::uint32_t) -> std::unique_ptr<sink_output> {
          return std::make_unique<net::tcp_sink>(_o.out[sink], _app.sink_names()[sink]);
      });
    return {};
}

worker::step worker::add_exporters() {
    if ((_o.metrics || _o.metrics_listen) && _cfg.metrics_period_ns == 0) {
        return fail(error{ errc::usage, "--metrics-period 0 turns metrics off, but --metrics or "
                                        "--metrics-listen asks for them: drop one" });
    }
    if (_o.metrics) {
        _rt->add_exporter(
          std::make_unique<net::metrics_hub_client>(*_o.metrics, _app.name(), _o.name));
        log::info("metrics to the monitoring hub at {} every {} ms", _o.metrics->to_string(),
                  _o.metrics_period_ms);
    }
    if (_o.metrics_listen) {
        auto endpoint = net::http_endpoint::open(
          _control_loop->loop(), *_o.metrics_listen, _app.name(), _o.name,
          std::string(net::to_string(_member ? _member->net() : net::transport_kind::socket)), {});
        if (!endpoint) {
            return fail(endpoint.err());
        }
        log::info("metrics endpoint on http://{}:{}/ (/metrics, /status, /healthz)",
                  _o.metrics_listen->host, endpoint.value()->bound_port());
        _rt->add_exporter(std::move(endpoint.value()));
    }
    // The external channel listens before processing starts, so a port in use fails fast; until
    // mark_running() its requests see a cluster that is not initialized yet.
    if (_o.external) {
        _requests = std::make_unique<external_requests>(*_rt, _o.name);
        _requests->set_cluster(_member.get());
        auto channel = net::external_channel::open(
          _control_loop->loop(), *_o.external,
          [r = _requests.get()](std::uint16_t id, std::string_view body, const std::string& peer) {
              return r->handle(id, body, peer);
          },
          {});
        if (!channel) {
            return fail(error{ channel.err().code, "--external: " + channel.err().message });
        }
        _external = std::move(channel.value());
        log::info("external channel on {}:{}", _o.external->host, _external->bound_port());
    }
    return {};
}

worker::step worker::start() {
    if (_member) {
        _rt->set_peer_lost_callback([m = _member.get()](peer_id peer, const std::string& reason) {
            m->report_data_peer_lost(peer, reason);
        });
    }
    if (auto s = _rt->start(); !s) {
        return fail(s.err());
    }
    if (_member) {
        // Every worker's runtime is up before any source opens.
        if (auto s = _member->start(*_rt); !s) {
            _rt->stop(std::chrono::seconds(1));
            if (s.err().why == reason::formation_interrupted) {
                log::info("{}", net::formation_interrupted);
                return 0;
            }
            return fail(s.err());
        }
    }
    std::vector<int> listen_fds;
    for (std::size_t i = 0; i < _o.in.size(); ++i) {
        _max_sizes.push_back(_o.in[i].max_size);
        log::info("source '{}' listening on {}:{} (max frame {} bytes)", _o.in[i].name,
                  _o.in[i].address.host, net::bound_port(_listening[i].get()), _o.in[i].max_size);
        listen_fds.push_back(_listening[i].release());
    }
    _listening.clear();
    for (std::size_t i = 0; i < _o.out.size(); ++i) {
        log::info("sink '{}' writes to {}", _app.sink_names()[i], _o.out[i].to_string());
    }
    _acceptor = std::make_unique<net::acceptor>(
      _control_loop->loop(), std::move(listen_fds),
      [this](std::size_t index, int fd, std::string peer) {
          log::debug("source '{}': connection from {}", _o.in[index].name, peer);
          _rt->adopt(std::make_unique<net::tcp_source_connection>(
            fd, static_cast<std::uint32_t>(index), _max_sizes[index], std::move(peer)));
      });
    _acceptor->start();
    if (_requests) {
        _requests->mark_running();
    }
    log::info("worker '{}' of '{}' running: {} compute thread(s), poll mode {}", _o.name,
              _app.name(), _cfg.shards, _cfg.busy_poll ? "busy" : "adaptive");
    return {};
}

void worker::wait_for_stop() {
    int sig = 0;
    while (sig <= 0 && !(_member && _member->finished())) {
        timespec tick{ 0, 100'000'000 };
        siginfo_t info;
        sig = ::sigtimedwait(&_stop_signals, &info, &tick);
    }
    if (sig > 0) {
        log::info("{} received: stopping (draining in-flight messages, flushing sinks)",
                  sig == SIGINT ? "SIGINT" : "SIGTERM");
        if (_member) {
            _member->leave(); // the others report this worker as stopped
        }
    }
}

int worker::stop_and_report() {
    _acceptor->stop();
    // No control request may touch the runtime while it stops.
    _external.reset();
    auto report = _rt->stop(std::chrono::seconds(30));
    if (_member) {
        for (auto* t : _member->transports()) {
            t->say_goodbye(); // the exchange threads have stopped: ours now
        }
        _member->stop();
        if (_dpdk && _member->net() == net::transport_kind::dpdk) {
            // Nothing polls the port any more, but a peer may still: when a memif port's peer
            // goes away, the PMD's interrupt thread unmaps the shared rings, and an rx_burst
            // running meanwhile in the peer can fault (DPDK 22.11). So the port stays open until
            // the peer has closed its end or a second has passed, by which time a peer in the
            // same clean shutdown has long stopped polling. On a NIC the link stays up: one
            // second more at exit.
            _dpdk->wait_link_down(1.0);
        }
    }
    auto c = _rt->counters();
    log::info("stopped: {}", summary_text(c, summary_line::stopped));
    if (_member && !_member->data_channel_report().empty()) {
        log::info("{}", _member->data_channel_report());
    }
    if (_member) {
        log::info("data channel: {}", summary_text(c, summary_line::data_channel));
    }
    if (report.undelivered_bytes != 0) {
        log::error("{} bytes of sink output were never taken by a receiver",
                   report.undelivered_bytes);
        return exit_code(errc::io_error);
    }
    return 0;
}

} // namespace ringtail::cli
