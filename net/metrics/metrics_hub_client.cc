// The monitoring-hub client's connection state machine, driven by publish() on the metrics thread:
// connect without blocking, handshake, write whole periods until EAGAIN, reconnect on failure.
#include "net/metrics/metrics_hub_client.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/log.h"
#include "net/io/tcp_connect.h"
#include "net/metrics/metrics_hub_codec.h"

namespace ringtail::net {
namespace {

std::uint64_t steady_now_ns() {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

} // namespace

metrics_hub_client::metrics_hub_client(host_port hub, std::string app_name, std::string worker_name,
                                       std::size_t buffer_limit_bytes)
  : _hub(std::move(hub))
  , _app_name(std::move(app_name))
  , _worker_name(std::move(worker_name))
  , _topic(hub_topic(_app_name))
  , _buffer_limit_bytes(buffer_limit_bytes) {
    // Resolved here, on the constructing (control) thread, when possible: a name lookup in
    // publish() would block the metrics thread. A failure is retried on each connect attempt.
    if (auto ip = resolve_ipv4(_hub.host)) {
        _ip = *ip;
        _resolved = true;
    }
}

metrics_hub_client::~metrics_hub_client() {
    close_socket();
}

void metrics_hub_client::publish(const metrics_snapshot& snapshot) {
    const std::uint64_t now = steady_now_ns();
    // Drive first: a connect started on the last publish has had a period to finish.
    drive(now);
    _scratch.clear();
    if (append_hub_snapshot(_scratch, snapshot, _topic, _worker_name) == 0) {
        return; // no catalog, nothing to send
    }
    if (_buffered_bytes + _scratch.size() > _buffer_limit_bytes) {
        _periods_dropped.fetch_add(1, std::memory_order_relaxed);
    } else {
        _buffered_bytes += _scratch.size();
        _periods.emplace_back(std::move(_scratch));
        _scratch = std::string();
    }
    update_pending();
    if (_state == state::connected) {
        flush(now);
    }
}

void metrics_hub_client::drive(std::uint64_t now_ns) {
    if (_state == state::disconnected && now_ns >= _next_attempt_ns) {
        start_connect(now_ns);
    }
    if (_state == state::connecting) {
        check_connect(now_ns);
    }
    if (_state == state::connected) {
        check_hub(now_ns);
    }
    if (_state == state::connected) {
        flush(now_ns);
    }
}

void metrics_hub_client::start_connect(std::uint64_t now_ns) {
    if (!_resolved) {
        // A dotted address resolves without I/O; a name costs one lookup until it succeeds.
        auto ip = resolve_ipv4(_hub.host);
        if (!ip) {
            connect_failed(now_ns, EHOSTUNREACH);
            return;
        }
        _ip = *ip;
        _resolved = true;
    }
    const int opened = open_tcp_socket();
    if (opened < 0) {
        connect_failed(now_ns, -opened);
        return;
    }
    _fd.reset(opened);
    _connect_started_ns = now_ns;
    int err = begin_connect(_fd.get(), _ip, _hub.port);
    if (err == 0) {
        // Even an immediate success goes through check_connect, which logs it.
        _state = state::connecting;
        return;
    }
    close_socket();
    connect_failed(now_ns, err);
}

void metrics_hub_client::check_connect(std::uint64_t now_ns) {
    int err = 0;
    auto st = poll_connect(_fd.get(), err);
    if (st == connect_state::pending) {
        if (now_ns - _connect_started_ns > connect_timeout_ns) {
            close_socket();
            connect_failed(now_ns, ETIMEDOUT);
        }
        return;
    }
    if (st == connect_state::failed) {
        close_socket();
        connect_failed(now_ns, err);
        return;
    }
    _state = state::connected;
    _connected.store(true, std::memory_order_relaxed);
    _warned_this_outage = false;
    _handshake.clear();
    append_hub_connect(_handshake);
    append_hub_join(_handshake, _topic, _worker_name);
    _handshake_offset = 0;
    log::info("metrics: connected to the monitoring hub at {} (topic '{}')", _hub.to_string(),
              _topic);
}

void metrics_hub_client::connect_failed(std::uint64_t now_ns, int err) {
    _state = state::disconnected;
    _next_attempt_ns = now_ns + retry_interval_ns;
    if (!_warned_this_outage) {
        log::warn("metrics: monitoring hub at {} not reachable ({}); buffering up to {} KiB of "
                  "periods and retrying",
                  _hub.to_string(), std::strerror(err), _buffer_limit_bytes / 1024);
        _warned_this_outage = true;
    }
}

void metrics_hub_client::flush(std::uint64_t now_ns) {
    while (_state == state::connected) {
        const std::string* chunk = nullptr;
        std::size_t offset = 0;
        if (_handshake_offset < _handshake.size()) {
            chunk = &_handshake;
            offset = _handshake_offset;
        } else if (!_periods.empty()) {
            chunk = &_periods.front();
            offset = _front_offset;
        } else {
            return;
        }
        const ssize_t n = ::send(_fd.get(), chunk->data() + offset, chunk->size() - offset,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return;
            }
            disconnect(now_ns, std::strerror(errno));
            return;
        }
        const auto written = static_cast<std::size_t>(n);
        if (chunk == &_handshake) {
            _handshake_offset += written;
            continue;
        }
        _front_offset += written;
        if (_front_offset == chunk->size()) {
            _buffered_bytes -= chunk->size();
            _periods.pop_front();
            _front_offset = 0;
            _periods_sent.fetch_add(1, std::memory_order_relaxed);
            update_pending();
        }
    }
}

void metrics_hub_client::check_hub(std::uint64_t now_ns) {
    char buf[4096];
    // Bounded: a hub that floods us must not hold the metrics thread.
    for (int reads = 0; reads < 16; ++reads) {
        const ssize_t n = ::recv(_fd.get(), buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            continue; // the hub has nothing to say to a worker; ignore it
        }
        if (n == 0) {
            disconnect(now_ns, "the hub closed the connection");
            return;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            disconnect(now_ns, std::strerror(errno));
        }
        return;
    }
}

void metrics_hub_client::disconnect(std::uint64_t now_ns, const char* why) {
    log::warn("metrics: lost the monitoring hub at {} ({}); reconnecting", _hub.to_string(), why);
    close_socket();
    if (_front_offset != 0) {
        // Part of this period reached the old connection; its tail alone would be garbage on
        // the next one.
        _buffered_bytes -= _periods.front().size();
        _periods.pop_front();
        _front_offset = 0;
        _periods_dropped.fetch_add(1, std::memory_order_relaxed);
        update_pending();
    }
    _state = state::disconnected;
    _next_attempt_ns = now_ns + retry_interval_ns;
    // The outage has been reported; a failing reconnect stays quiet.
    _warned_this_outage = true;
}

void metrics_hub_client::close_socket() {
    _fd.reset();
    _connected.store(false, std::memory_order_relaxed);
}

void metrics_hub_client::update_pending() {
    _pending_periods.store(_periods.size(), std::memory_order_relaxed);
}

} // namespace ringtail::net
