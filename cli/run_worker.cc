// The worker's main: options, start-up checks, wiring of sources and sinks, signals, clean stop.
#include "cli/run_worker.h"

#include <csignal>
#include <cstdio>
#include <exception>
#include <pthread.h>

#include "cli/worker.h"
#include "cli/worker_options.h"
#include "engine/log.h"

namespace ringtail::cli {

int run_worker(int argc, char** argv, application& app) {
    // Signals: SIGPIPE is ignored (sockets report EPIPE instead); SIGINT and SIGTERM are blocked
    // in every thread and taken by sigtimedwait (worker::wait_for_stop), so a stop is an orderly
    // step of the main thread.
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
    return worker(app, o, stop_signals).run();
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
