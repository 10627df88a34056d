// The data mesh's single-threaded poll loop: connects with retries to the workers below this one,
// accepts the workers above it, and runs the HELLO exchange on every connection.
#include "net/channel/data_mesh.h"

#include <algorithm>
#include <arpa/inet.h>
#include <array>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <optional>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include "engine/fd.h"
#include "engine/log.h"
#include "net/channel/data_codec.h"
#include "net/io/tcp_connect.h"

namespace ringtail::net {
namespace {

using mesh_clock = std::chrono::steady_clock;

// A connect that neither succeeds nor fails within this is abandoned and retried.
constexpr std::chrono::milliseconds connect_attempt_timeout{ 1000 };
// Connections accepted but not yet through their HELLO; more are closed at once (a flood of
// strangers must not exhaust the fds).
constexpr std::size_t max_pending_incoming = 64;
constexpr std::uint32_t no_worker = UINT32_MAX;

std::string ip_text(const sockaddr_in& sa) {
    char text[INET_ADDRSTRLEN] = "?";
    ::inet_ntop(AF_INET, &sa.sin_addr, text, sizeof text);
    return text;
}

// One connection's HELLO exchange: ours out, theirs in. Exactly one HELLO's worth is read, so
// whatever the peer sends after it (its transport may start at once) stays in the socket.
struct handshake {
    unique_fd fd;
    std::string out;
    std::size_t out_done = 0;
    std::array<std::byte, data_hello_frame_bytes> in{};
    std::size_t in_have = 0;

    bool sent() const { return out_done == out.size(); }
    bool received() const { return in_have == in.size(); }

    // Writes what is left of `out`; false (and `problem`) once the connection is broken.
    bool write_some(std::string& problem) {
        while (!sent()) {
            ssize_t n =
              ::send(fd.get(), out.data() + out_done, out.size() - out_done, MSG_NOSIGNAL);
            if (n > 0) {
                out_done += static_cast<std::size_t>(n);
                continue;
            }
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                return true;
            }
            problem = fmt::format("connection failed: {}", std::strerror(errno));
            return false;
        }
        return true;
    }

    // Reads towards a whole HELLO; false (and `problem`) on a closed or broken connection.
    bool read_some(std::string& problem) {
        while (!received()) {
            ssize_t n = ::recv(fd.get(), in.data() + in_have, in.size() - in_have, 0);
            if (n > 0) {
                in_have += static_cast<std::size_t>(n);
                continue;
            }
            if (n == 0) {
                problem = "closed the connection during the handshake";
                return false;
            }
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return true;
            }
            problem = fmt::format("connection failed: {}", std::strerror(errno));
            return false;
        }
        return true;
    }

    // The HELLO received (received() must be true), or nullopt and `problem`.
    std::optional<data_hello> hello(std::string& problem) const {
        // A limit of one HELLO: a longer frame is not what is expected here.
        data_frame_decoder decoder(data_hello_frame_bytes);
        std::optional<data_hello> got;
        bool first = true;
        auto status = decoder.feed(in, [&](const data_frame& frame) {
            if (!first) {
                return;
            }
            first = false;
            if (frame.type != data_frame_type::hello) {
                problem =
                  fmt::format("sent a {} frame where a HELLO was expected", to_string(frame.type));
            } else if (frame.seq != 0) {
                problem =
                  fmt::format("sent a HELLO with sequence number {}, expected 0", frame.seq);
            } else {
                got = parse_hello(frame);
            }
        });
        if (status != data_decode_error::none) {
            problem = "not a HELLO: " + decoder.error_message();
            return std::nullopt;
        }
        if (!got && problem.empty()) {
            problem = "not a HELLO: a frame longer than a HELLO";
        }
        return got;
    }

    // Closes the connection (if any) and forgets the exchange.
    void close() { *this = handshake{}; }
};

// A worker below this one, which this one connects to.
struct outgoing_peer {
    std::uint32_t index = 0;
    std::string address;
    std::uint32_t ip = 0; // network order
    std::uint16_t port = 0;
    handshake hs;
    bool connecting = false;
    mesh_clock::time_point attempt_started{};
    mesh_clock::time_point next_attempt{};
    unique_fd done_fd; // the connection, once through its HELLO
    // Why the last attempt failed, for the timeout error; and the last one logged, so that a
    // retry loop logs each new problem once.
    std::string problem;
    std::string warned;
};

// A connection accepted from a worker above this one (or from a stranger).
struct incoming_conn {
    handshake hs;
    std::string from;
    // The worker its HELLO named, once accepted; then our HELLO is being written.
    std::uint32_t worker = no_worker;
};

class mesh_builder {
public:
    mesh_builder(int listen_fd, const data_mesh_config& config)
      : _listen_fd(listen_fd)
      , _config(config)
      , _n(static_cast<std::uint32_t>(config.data_addresses.size()))
      , _accepted(_n)
      , _our_hello{ config.cluster_token, config.self, _n } {}

    result<std::vector<int>> run();

private:
    status resolve();
    void step_outgoing(outgoing_peer& o, mesh_clock::time_point now);
    void attempt_failed(outgoing_peer& o, std::string problem, mesh_clock::time_point now,
                        bool warn);
    void accept_new();
    // Advances one incoming connection; false when it is finished (handed over or closed).
    bool step_incoming(incoming_conn& c);
    void refuse(incoming_conn& c, const std::string& problem);
    // Another connection already holds worker `j`: true if it is still up (a closed one is
    // dropped, so that a worker that reconnects is not refused for good).
    bool worker_taken(std::uint32_t j);
    std::string hello_problem(const data_hello& hello) const;
    bool complete() const;
    std::vector<pollfd> wait_set() const;
    error timeout_error() const;

    int _listen_fd;
    const data_mesh_config& _config;
    std::uint32_t _n;
    std::vector<outgoing_peer> _outgoing;
    std::vector<incoming_conn> _incoming;
    // Index = worker above self, its connection once our HELLO went out.
    std::vector<unique_fd> _accepted;
    data_hello _our_hello;
    std::string _last_refusal;
    std::string _last_warned_refusal;
    bool _warned_accept_error = false;
};

status mesh_builder::resolve() {
    for (std::uint32_t j = 0; j < _config.self; ++j) {
        const host_port& at = _config.data_addresses[j];
        auto ip = resolve_ipv4(at.host);
        if (!ip) {
            return error{ ip.err().code, fmt::format("data mesh: worker {}'s data address: {}", j,
                                                     ip.err().message) };
        }
        outgoing_peer& o = _outgoing.emplace_back();
        o.index = j;
        o.address = at.to_string();
        o.ip = *ip;
        o.port = at.port;
    }
    return ok_status();
}

result<std::vector<int>> mesh_builder::run() {
    if (auto st = resolve(); !st) {
        return st.err();
    }
    if (_config.self + 1 < _n) {
        int flags = ::fcntl(_listen_fd, F_GETFL);
        if (flags < 0 || ::fcntl(_listen_fd, F_SETFL, flags | O_NONBLOCK) != 0) {
            return error{ errc::unavailable,
                          fmt::format("data mesh: the data listening socket is unusable: {}",
                                      std::strerror(errno)) };
        }
    }
    const auto deadline = mesh_clock::now() + _config.timeout;
    for (;;) {
        auto now = mesh_clock::now();
        for (outgoing_peer& o : _outgoing) {
            step_outgoing(o, now);
        }
        if (_config.self + 1 < _n) {
            accept_new();
        }
        std::erase_if(_incoming, [this](incoming_conn& c) { return !step_incoming(c); });
        if (complete()) {
            std::vector<int> fds(_n, -1);
            for (outgoing_peer& o : _outgoing) {
                fds[o.index] = o.done_fd.release();
            }
            for (std::uint32_t j = _config.self + 1; j < _n; ++j) {
                fds[j] = _accepted[j].release();
            }
            return fds;
        }
        if (now >= deadline) {
            return timeout_error();
        }
        // Sleep until a socket moves, the next retry, or the deadline; never more than one
        // retry interval, so that a missed wake-up costs little.
        auto wake = std::min(deadline, now + data_mesh_retry_interval);
        for (const outgoing_peer& o : _outgoing) {
            if (!o.done_fd && !o.hs.fd) {
                wake = std::min(wake, o.next_attempt);
            }
        }
        auto wait_ms = std::chrono::ceil<std::chrono::milliseconds>(wake - now).count();
        auto fds = wait_set();
        ::poll(fds.data(), fds.size(), static_cast<int>(std::max<std::int64_t>(wait_ms, 0)));
    }
}

void mesh_builder::step_outgoing(outgoing_peer& o, mesh_clock::time_point now) {
    if (o.done_fd) {
        return;
    }
    std::string problem;
    if (!o.hs.fd) {
        if (now < o.next_attempt) {
            return;
        }
        int fd = open_tcp_socket();
        if (fd < 0) {
            attempt_failed(o, std::strerror(-fd), now, false);
            return;
        }
        o.hs.fd.reset(fd);
        if (int err = begin_connect(fd, o.ip, o.port); err != 0) {
            attempt_failed(o, std::strerror(err), now, false);
            return;
        }
        o.connecting = true;
        o.attempt_started = now;
    }
    if (o.connecting) {
        int err = 0;
        auto st = poll_connect(o.hs.fd.get(), err);
        if (st == connect_state::pending) {
            if (now - o.attempt_started > connect_attempt_timeout) {
                attempt_failed(o, "connect timed out", now, false);
            }
            return;
        }
        if (st == connect_state::failed) {
            attempt_failed(o, std::strerror(err), now, false);
            return;
        }
        o.connecting = false;
        append_hello_frame(o.hs.out, 0, _our_hello);
    }
    if (!o.hs.write_some(problem)) {
        attempt_failed(o, problem, now, false);
        return;
    }
    if (!o.hs.sent()) {
        return;
    }
    if (!o.hs.read_some(problem)) {
        // Refusing workers answer a wrong token with their HELLO, so a silent close is odd.
        attempt_failed(o, problem, now, true);
        return;
    }
    if (!o.hs.received()) {
        return;
    }
    auto hello = o.hs.hello(problem);
    if (hello) {
        problem = hello_problem(*hello);
        if (problem.empty() && hello->worker_index != o.index) {
            problem = fmt::format("it says it is worker {}", hello->worker_index);
        }
    }
    if (!problem.empty()) {
        attempt_failed(o, "answered the HELLO wrongly: " + problem, now, true);
        return;
    }
    o.done_fd = std::move(o.hs.fd);
    o.hs.close();
    log::debug("data mesh: connected to worker {} at {}", o.index, o.address);
}

void mesh_builder::attempt_failed(outgoing_peer& o, std::string problem, mesh_clock::time_point now,
                                  bool warn) {
    o.hs.close();
    o.connecting = false;
    o.next_attempt = now + data_mesh_retry_interval;
    if (warn && problem != o.warned) {
        log::warn("data mesh: worker {} at {} {}; retrying", o.index, o.address, problem);
        o.warned = problem;
    }
    o.problem = std::move(problem);
}

void mesh_builder::accept_new() {
    for (;;) {
        sockaddr_in sa{};
        socklen_t len = sizeof sa;
        unique_fd fd(::accept4(_listen_fd, reinterpret_cast<sockaddr*>(&sa), &len,
                               SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!fd) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK && !_warned_accept_error) {
                // EMFILE and the like: the poll timeout paces the retries.
                log::warn("data mesh: accept failed: {}", std::strerror(errno));
                _warned_accept_error = true;
            }
            return;
        }
        if (_incoming.size() >= max_pending_incoming) {
            fd.reset();
            _last_refusal =
              fmt::format("more than {} connections waiting for their HELLO", max_pending_incoming);
            continue;
        }
        int one = 1;
        ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        incoming_conn& c = _incoming.emplace_back();
        c.hs.fd = std::move(fd);
        c.from = ip_text(sa);
    }
}

bool mesh_builder::step_incoming(incoming_conn& c) {
    std::string problem;
    if (c.worker == no_worker) {
        if (!c.hs.read_some(problem)) {
            log::debug("data mesh: connection from {} {}", c.from, problem);
            c.hs.close();
            return false;
        }
        if (!c.hs.received()) {
            return true;
        }
        auto hello = c.hs.hello(problem);
        if (!hello) {
            refuse(c, problem);
            return false;
        }
        problem = hello_problem(*hello);
        if (!problem.empty()) {
            // Answer with our HELLO, best effort, so that the other side can say why it failed.
            std::string ours;
            append_hello_frame(ours, 0, _our_hello);
            [[maybe_unused]] auto n =
              ::send(c.hs.fd.get(), ours.data(), ours.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            refuse(c, problem);
            return false;
        }
        std::uint32_t j = hello->worker_index;
        if (j <= _config.self || j >= _n) {
            refuse(c, fmt::format("it says it is worker {}, which does not connect to worker {} "
                                  "in a cluster of {}",
                                  j, _config.self, _n));
            return false;
        }
        if (worker_taken(j)) {
            refuse(c, fmt::format("worker {} is already connected", j));
            return false;
        }
        c.worker = j;
        append_hello_frame(c.hs.out, 0, _our_hello);
    }
    if (!c.hs.write_some(problem)) {
        log::debug("data mesh: worker {} from {}: {}", c.worker, c.from, problem);
        c.hs.close();
        return false;
    }
    if (!c.hs.sent()) {
        return true;
    }
    _accepted[c.worker] = std::move(c.hs.fd);
    log::debug("data mesh: worker {} connected from {}", c.worker, c.from);
    return false;
}

bool mesh_builder::worker_taken(std::uint32_t j) {
    for (const incoming_conn& other : _incoming) {
        if (other.worker == j && other.hs.fd) {
            return true;
        }
    }
    if (!_accepted[j]) {
        return false;
    }
    // Only a hang-up counts: input there may be the worker's first data frames.
    pollfd p{ _accepted[j].get(), POLLRDHUP, 0 };
    if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) {
        _accepted[j].reset();
        return false;
    }
    return true;
}

void mesh_builder::refuse(incoming_conn& c, const std::string& problem) {
    c.hs.close();
    _last_refusal = fmt::format("from {}: {}", c.from, problem);
    // A refused worker retries every 100 ms: log each different refusal once.
    if (_last_refusal != _last_warned_refusal) {
        log::warn("data mesh: refused a data connection {}", _last_refusal);
        _last_warned_refusal = _last_refusal;
    }
}

std::string mesh_builder::hello_problem(const data_hello& hello) const {
    if (hello.cluster_token != _config.cluster_token) {
        return fmt::format("cluster token {:#x} is not this cluster's {:#x}", hello.cluster_token,
                           _config.cluster_token);
    }
    if (hello.worker_count != _n) {
        return fmt::format("it counts {} workers in the cluster, this worker {}",
                           hello.worker_count, _n);
    }
    return {};
}

bool mesh_builder::complete() const {
    for (const outgoing_peer& o : _outgoing) {
        if (!o.done_fd) {
            return false;
        }
    }
    for (std::uint32_t j = _config.self + 1; j < _n; ++j) {
        if (!_accepted[j]) {
            return false;
        }
    }
    return true;
}

std::vector<pollfd> mesh_builder::wait_set() const {
    std::vector<pollfd> fds;
    if (_config.self + 1 < _n) {
        fds.push_back({ _listen_fd, POLLIN, 0 });
    }
    for (const outgoing_peer& o : _outgoing) {
        if (!o.done_fd && o.hs.fd) {
            bool writing = o.connecting || !o.hs.sent();
            fds.push_back({ o.hs.fd.get(), static_cast<short>(writing ? POLLOUT : POLLIN), 0 });
        }
    }
    for (const incoming_conn& c : _incoming) {
        bool writing = c.worker != no_worker;
        fds.push_back({ c.hs.fd.get(), static_cast<short>(writing ? POLLOUT : POLLIN), 0 });
    }
    return fds;
}

error mesh_builder::timeout_error() const {
    std::string missing;
    auto add = [&](const std::string& what) {
        missing += missing.empty() ? "" : "; ";
        missing += what;
    };
    for (const outgoing_peer& o : _outgoing) {
        if (!o.done_fd) {
            add(fmt::format("worker {} at {} ({})", o.index, o.address,
                            o.problem.empty() ? "no answer" : o.problem));
        }
    }
    for (std::uint32_t j = _config.self + 1; j < _n; ++j) {
        if (!_accepted[j]) {
            add(fmt::format("worker {} never connected", j));
        }
    }
    std::string message =
      fmt::format("data mesh: worker {} did not reach every worker within {} ms: {}", _config.self,
                  _config.timeout.count(), missing);
    if (!_last_refusal.empty()) {
        message += "; last refused connection " + _last_refusal;
    }
    return error{ errc::unavailable, message };
}

} // namespace

result<std::vector<int>> build_data_mesh(int listen_fd, const data_mesh_config& config) {
    const auto n = config.data_addresses.size();
    if (config.self >= n) {
        return error{ errc::usage, fmt::format("data mesh: worker index {} outside a cluster of {}",
                                               config.self, n) };
    }
    mesh_builder builder(listen_fd, config);
    return builder.run();
}

} // namespace ringtail::net
