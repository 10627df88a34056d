// One worker process from its options to its exit code, one method per phase (cli/run_worker.cc
// parses the options and runs it).
#pragma once

#include <csignal>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "cli/core_plan.h"
#include "cli/external_requests.h"
#include "cli/worker_options.h"
#include "engine/application.h"
#include "engine/fd.h"
#include "engine/runtime.h"
#include "net/cluster/cluster.h"
#include "net/dpdk/dpdk_port.h"
#include "net/external/external_channel.h"
#include "net/io/acceptor.h"
#include "net/io/event_loop.h"

namespace ringtail::cli {

// Runs on the main thread, which has blocked SIGINT and SIGTERM (`stop_signals`) before any other
// thread starts. `app` and `options` outlive the worker.
class worker {
public:
    worker(application& app, const worker_options& options, const sigset_t& stop_signals);
    worker(const worker&) = delete;
    worker& operator=(const worker&) = delete;

    // Every phase in order; the process exit code: 0 after a clean stop (or a stop signal before
    // the cluster formed), a sysexits code with one line on stderr otherwise.
    int run();

private:
    // What a phase returns: an exit code to stop with at once, or nothing to go on.
    using step = std::optional<int>;

    step plan();           // the app, --resilience-dir, the core plan and this thread's cores
    step open_sources();   // listen on every --in, so that a port in use fails before all else
    step open_dpdk();      // the DPDK port, with --net dpdk, or --net auto in a cluster
    step form_cluster();   // in a cluster: blocks until every worker is there and the mesh is up
    step build_runtime();  // the runtime, its sinks, and the control event loop
    step add_exporters();  // the monitoring hub, the HTTP endpoint and the external channel
    step start();          // the runtime, the cluster's start, and accepting sources
    void wait_for_stop();  // SIGINT/SIGTERM, or the cluster-wide clean shutdown
    int stop_and_report(); // stop accepting, drain, flush sinks; the summary lines

    bool clustered() const;

    application& _app;
    const worker_options& _o;
    sigset_t _stop_signals;

    // Members are destroyed in the reverse order of their declaration, which is the teardown
    // order: what is declared later uses what is declared before it.
    std::optional<core_plan> _cores;
    // Closed on an early return; handed to the acceptor once running.
    std::vector<unique_fd> _listening;
    // Outlives the cluster member, whose transports send through it.
    std::unique_ptr<net::dpdk_port> _dpdk;
    // Outlives the runtime, whose exchange threads drive its transports.
    std::unique_ptr<net::cluster_member> _member;
    runtime_config _cfg;
    // Outlives the HTTP endpoint, which the runtime owns (an exporter), and everything served on
    // it. Started once the control subsystem's cores are set, so that its thread runs there.
    std::optional<net::event_loop_thread> _control_loop;
    std::unique_ptr<runtime> _rt;
    // Read the runtime: destroyed (the channel's threads joined) before it.
    std::unique_ptr<external_requests> _requests;
    std::unique_ptr<net::external_channel> _external;
    std::vector<std::uint32_t> _max_sizes;
    // Hands connections to the runtime's shards: stopped and destroyed first.
    std::unique_ptr<net::acceptor> _acceptor;
};

} // namespace ringtail::cli
