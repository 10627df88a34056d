// ringtail-ctl: the external channel's client (WIRE.md §3 and §7). It speaks the flags of
// Wallaroo's external_sender (`-e host:port -t TYPE [-m MSG] [-j]`), and of cluster_shrinker
// (`ringtail-ctl shrink -e host:port -q | -c n | -w a,b`) and cluster_shutdown
// (`ringtail-ctl shutdown -e host:port`). It sends one request, prints the reply if one is due,
// and exits: 0 done, 1 connect failure or bad reply, 64 bad flags.
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <optional>
#include <poll.h>
#include <span>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include <boost/program_options.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/tools/tool_support.h"
#include "engine/fd.h"
#include "net/external/external_codec.h"
#include "net/io/host_port.h"
#include "net/io/tcp_connect.h"

namespace {

namespace po = boost::program_options;
using ringtail::net::external_msg;
using ringtail::net::to_id;

constexpr int exit_failed = 1;
using ringtail::tools::exit_usage;
// Replies list every key a worker holds: far larger than a request may be.
constexpr std::uint32_t max_reply_bytes = 256u << 20;

using ringtail::tools::usage_error;
struct run_error {
    std::string message;
};

// One request: what to send, and which reply ids answer it (none: no reply is due).
struct request {
    std::uint16_t id = 0;
    std::string body;
    std::vector<std::uint16_t> replies;
    bool json = false; // --json: print only the body, which must be JSON
};

struct type_entry {
    const char* name;
    external_msg id;
    std::optional<external_msg> reply;
};

// WIRE.md §7's types, in its order.
constexpr type_entry types[] = {
    { "print", external_msg::print, std::nullopt },
    { "rotate-log", external_msg::rotate_log, std::nullopt },
    { "clean-shutdown", external_msg::clean_shutdown, std::nullopt },
    { "cluster-status-query", external_msg::cluster_status_query,
      external_msg::cluster_status_reply },
    { "partition-query", external_msg::partition_query, external_msg::partition_query_reply },
    { "partition-count-query", external_msg::partition_count_query,
      external_msg::partition_count_query_reply },
    { "source-ids-query", external_msg::source_ids_query, external_msg::source_ids_query_reply },
    { "state-entity-query", external_msg::state_entity_query,
      external_msg::state_entity_query_reply },
    { "state-entity-count-query", external_msg::state_entity_count_query,
      external_msg::state_entity_count_query_reply },
    { "stateless-partition-query", external_msg::stateless_partition_query,
      external_msg::stateless_partition_query_reply },
    { "stateless-partition-count-query", external_msg::stateless_partition_count_query,
      external_msg::stateless_partition_count_query_reply },
    { "cluster-state-entity-count-query", external_msg::cluster_state_entity_count_query,
      external_msg::cluster_state_entity_count_query_reply },
    { "boundary-count-status", external_msg::report_status, std::nullopt },
};

const char* reply_name(std::uint16_t id) {
    switch (static_cast<external_msg>(id)) {
        case external_msg::shrink_query_reply:
            return "ShrinkQueryReply";
        case external_msg::shrink_error_reply:
            return "ShrinkResult";
        case external_msg::partition_query_reply:
            return "PartitionQueryReply";
        case external_msg::cluster_status_reply:
            return "ClusterStatusReply";
        case external_msg::cluster_status_not_initialized:
            return "ClusterStatusNotInitialized";
        case external_msg::partition_count_query_reply:
            return "PartitionCountQueryReply";
        case external_msg::source_ids_query_reply:
            return "SourceIdsQueryReply";
        case external_msg::state_entity_query_reply:
            return "StateEntityQueryReply";
        case external_msg::stateless_partition_query_reply:
            return "StatelessPartitionQueryReply";
        case external_msg::state_entity_count_query_reply:
            return "StateEntityCountQueryReply";
        case external_msg::stateless_partition_count_query_reply:
            return "StatelessPartitionCountQueryReply";
        case external_msg::cluster_state_entity_count_query_reply:
            return "ClusterStateEntityCountQueryReply";
        default:
            return "unknown";
    }
}

const char* usage_text =
  "Usage: ringtail-ctl -e host:port -t TYPE [-m MESSAGE] [-j] [--timeout S]\n"
  "       ringtail-ctl shrink -e host:port (-q | -c N | -w NAME[,NAME..]) [--timeout S]\n"
  "       ringtail-ctl shutdown -e host:port\n"
  "Sends one request on a worker's external channel (WIRE.md §3) and prints the reply.\n"
  "TYPE: print, rotate-log, clean-shutdown, cluster-status-query, partition-query,\n"
  "  partition-count-query, source-ids-query, state-entity-query, state-entity-count-query,\n"
  "  stateless-partition-query, stateless-partition-count-query,\n"
  "  cluster-state-entity-count-query, boundary-count-status.\n"
  "Exit: 0 done, 1 connect failure or bad reply, 64 bad flags.\n";

struct parsed {
    std::optional<request> req; // nullopt: --help was printed
    ringtail::net::host_port to;
    double timeout_s = 30;
};

parsed parse(int argc, char** argv) {
    std::string mode;
    int first = 1;
    if (argc > 1 &&
        (std::string_view(argv[1]) == "shrink" || std::string_view(argv[1]) == "shutdown")) {
        mode = argv[1];
        first = 2;
    }
    po::options_description desc("options");
    desc.add_options()("help", "print this help and exit")(
      "external,e", po::value<std::string>(), "the worker's external channel, host:port")(
      "timeout", po::value<double>(), "seconds to wait for the connection and the reply");
    if (mode.empty()) {
        desc.add_options()("type,t", po::value<std::string>(), "the request type")(
          "message,m", po::value<std::string>(), "the request's text")(
          "json,j", po::bool_switch(), "print only the reply's JSON body and a newline");
    } else if (mode == "shrink") {
        desc.add_options()("query,q", po::bool_switch(), "ask which workers could go")(
          "count,c", po::value<std::uint32_t>(), "shrink by this many workers")(
          "workers,w", po::value<std::string>(), "shrink by these workers (comma-separated)");
    }
    const po::variables_map vm = ringtail::tools::parse_command_line(
      std::vector<std::string>(argv + first, argv + argc), desc);
    parsed p;
    if (vm.count("help")) {
        std::fputs(usage_text, stdout);
        return p;
    }
    if (!vm.count("external")) {
        throw usage_error{ "--external/-e host:port is required" };
    }
    auto at = ringtail::net::parse_host_port(vm["external"].as<std::string>());
    if (!at) {
        throw usage_error{ "--external: " + at.err().message };
    }
    p.to = *at;
    if (vm.count("timeout")) {
        p.timeout_s = vm["timeout"].as<double>();
        if (!(p.timeout_s > 0)) {
            throw usage_error{ "--timeout: expected a positive number of seconds" };
        }
    }
    request r;
    if (mode == "shutdown") {
        r.id = to_id(external_msg::clean_shutdown);
    } else if (mode == "shrink") {
        const bool query = vm["query"].as<bool>();
        const int chosen = int(query) + int(vm.count("count")) + int(vm.count("workers"));
        if (chosen != 1) {
            throw usage_error{ "shrink: give exactly one of --query/-q, --count/-c, --workers/-w" };
        }
        nlohmann::json body{ { "query", query },
                             { "node_names", nlohmann::json::array() },
                             { "node_count", 0 } };
        if (vm.count("count")) {
            body["node_count"] = vm["count"].as<std::uint32_t>();
        }
        if (vm.count("workers")) {
            const std::string list = vm["workers"].as<std::string>();
            std::size_t at_char = 0;
            while (at_char <= list.size()) {
                std::size_t comma = list.find(',', at_char);
                if (comma == std::string::npos) {
                    comma = list.size();
                }
                if (comma == at_char) {
                    throw usage_error{ "--workers: empty worker name in '" + list + "'" };
                }
                body["node_names"].push_back(list.substr(at_char, comma - at_char));
                at_char = comma + 1;
            }
            body["node_count"] = body["node_names"].size();
        }
        r.id = to_id(external_msg::shrink_request);
        r.body = body.dump();
        r.replies = { to_id(external_msg::shrink_query_reply),
                      to_id(external_msg::shrink_error_reply) };
    } else {
        if (!vm.count("type")) {
            throw usage_error{ "--type/-t is required" };
        }
        const std::string type = vm["type"].as<std::string>();
        const type_entry* entry = nullptr;
        for (const auto& t : types) {
            if (type == t.name) {
                entry = &t;
            }
        }
        if (entry == nullptr) {
            throw usage_error{ "--type: unknown type '" + type + "'" };
        }
        r.id = to_id(entry->id);
        r.json = vm["json"].as<bool>();
        const std::string message = vm.count("message") ? vm["message"].as<std::string>() : "";
        if (entry->id == external_msg::rotate_log) {
            r.body = message.empty() ? "initializer" : message; // the worker to rotate
        } else if (entry->id == external_msg::report_status) {
            r.body = message.empty() ? "boundary-count-status" : message;
        } else {
            r.body = message;
        }
        if (entry->reply) {
            r.replies = { to_id(*entry->reply) };
            if (entry->id == external_msg::cluster_status_query) {
                r.replies.push_back(to_id(external_msg::cluster_status_not_initialized));
            }
        }
    }
    if (r.body.size() > ringtail::net::external_default_max_frame - 2) {
        throw usage_error{ "--message is longer than a worker accepts" };
    }
    p.req = std::move(r);
    return p;
}

// Waits for `events` on fd until deadline_ms (monotonic); false on timeout.
bool wait_for(int fd, short events, std::int64_t deadline_ms) {
    for (;;) {
        timespec ts{};
        ::clock_gettime(CLOCK_MONOTONIC, &ts);
        const std::int64_t now_ms = ts.tv_sec * 1000 + ts.tv_nsec / 1'000'000;
        if (now_ms >= deadline_ms) {
            return false;
        }
        pollfd p{ fd, events, 0 };
        const int n = ::poll(&p, 1, static_cast<int>(deadline_ms - now_ms));
        if (n > 0) {
            return true;
        }
        if (n < 0 && errno != EINTR) {
            throw run_error{ std::string("poll: ") + std::strerror(errno) };
        }
    }
}

int run(const parsed& p) {
    const request& r = *p.req;
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    const std::int64_t deadline_ms =
      ts.tv_sec * 1000 + ts.tv_nsec / 1'000'000 + static_cast<std::int64_t>(p.timeout_s * 1000);
    const std::string where = p.to.to_string();
    auto ip = ringtail::net::resolve_ipv4(p.to.host);
    if (!ip) {
        throw run_error{ "cannot connect to " + where + ": " + ip.err().message };
    }
    const ringtail::unique_fd sock(ringtail::net::open_tcp_socket());
    if (!sock.valid()) {
        throw run_error{ std::string("socket: ") + std::strerror(-sock.get()) };
    }
    const int fd = sock.get();
    if (int err = ringtail::net::begin_connect(fd, *ip, p.to.port); err != 0) {
        throw run_error{ "cannot connect to " + where + ": " + std::strerror(err) };
    }
    for (;;) {
        int err = 0;
        const auto state = ringtail::net::poll_connect(fd, err);
        if (state == ringtail::net::connect_state::connected) {
            break;
        }
        if (state == ringtail::net::connect_state::failed) {
            throw run_error{ "cannot connect to " + where + ": " + std::strerror(err) };
        }
        if (!wait_for(fd, POLLOUT, deadline_ms)) {
            throw run_error{ "cannot connect to " + where + ": timed out" };
        }
    }
    const std::string out = ringtail::net::encode_external_frame(r.id, r.body);
    std::size_t sent = 0;
    while (sent < out.size()) {
        const ssize_t n = ::send(fd, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
        if (n > 0) {
            sent += static_cast<std::size_t>(n);
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!wait_for(fd, POLLOUT, deadline_ms)) {
                throw run_error{ "sending to " + where + ": timed out" };
            }
        } else if (n < 0 && errno != EINTR) {
            throw run_error{ "sending to " + where + ": " + std::strerror(errno) };
        }
    }
    if (r.replies.empty()) {
        return 0;
    }
    ringtail::net::external_decoder decoder(max_reply_bytes);
    std::vector<ringtail::net::external_frame> frames;
    std::vector<char> buf(256 * 1024);
    while (frames.empty()) {
        const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
        if (n == 0) {
            throw run_error{ where + " closed the connection without a reply" };
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (!wait_for(fd, POLLIN, deadline_ms)) {
                    throw run_error{ "no reply from " + where + " within " +
                                     fmt::format("{}", p.timeout_s) + " s" };
                }
                continue;
            }
            if (errno == EINTR) {
                continue;
            }
            throw run_error{ "reading from " + where + ": " + std::strerror(errno) };
        }
        if (decoder.feed(
              std::as_bytes(std::span<const char>(buf.data(), static_cast<std::size_t>(n))),
              frames) != ringtail::net::external_decode_status::ok) {
            throw run_error{ fmt::format("bad reply from {}: frame length {}", where,
                                         decoder.bad_length()) };
        }
    }
    const auto& reply = frames.front();
    if (std::find(r.replies.begin(), r.replies.end(), reply.id) == r.replies.end()) {
        throw run_error{ fmt::format("bad reply from {}: message id {} does not answer request {}",
                                     where, reply.id, r.id) };
    }
    if (r.json) {
        if (reply.id == to_id(external_msg::cluster_status_not_initialized)) {
            throw run_error{ where + ": the cluster is not initialized yet (reply 11)" };
        }
        if (!nlohmann::json::accept(reply.body)) {
            throw run_error{ fmt::format("bad reply from {}: reply {} is not JSON", where,
                                         reply.id) };
        }
        std::fwrite(reply.body.data(), 1, reply.body.size(), stdout);
        std::fputc('\n', stdout);
    } else {
        fmt::print("{} {}: {}\n", reply.id, reply_name(reply.id), reply.body);
    }
    std::fflush(stdout);
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    parsed p;
    try {
        p = parse(argc, argv);
    } catch (const usage_error& e) {
        fmt::print(stderr, "ringtail-ctl: {} (see --help)\n", e.message);
        return exit_usage;
    }
    if (!p.req) {
        return 0;
    }
    try {
        return run(p);
    } catch (const run_error& e) {
        fmt::print(stderr, "ringtail-ctl: {}\n", e.message);
        return exit_failed;
    } catch (const std::exception& e) {
        fmt::print(stderr, "ringtail-ctl: {}\n", e.what());
        return exit_failed;
    }
}
