// The HTTP endpoint over real sockets: Prometheus text that parses and matches what was published,
// cumulative histograms, /status JSON, /healthz, and the answers to wrong or hostile requests.
#include "net/metrics/http_endpoint.h"

#include <arpa/inet.h>
#include <chrono>
#include <map>
#include <netinet/in.h>
#include <poll.h>
#include <regex>
#include <sstream>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine/application.h"
#include "engine/fd.h"

namespace ringtail::net {
namespace {

using namespace std::chrono_literals;

struct count_state {
    std::uint64_t n = 0;
};

application make_app() {
    application app{ "wc" };
    app
      .source("lines",
              [](std::span<const std::byte> p) {
                  return std::string(reinterpret_cast<const char*>(p.data()), p.size());
              })
      .to("upper", [](std::string&& s) { return s; })
      .key_by([](const std::string& w) -> const std::string& { return w; })
      .to_state<count_state>(
        "count",
        [](const std::string& w, count_state& s) { return w + "=" + std::to_string(++s.n); })
      .to_sink("out", [](const std::string& s) { return s + "\n"; });
    return app;
}

// Every latency metric holds 500 ns, 5 us, 50 us x 2 and 2 s; ingestion counts are 10.
metrics_snapshot make_snapshot(const metric_catalog& catalog, std::uint64_t end_ns,
                               std::uint64_t scale) {
    metrics_snapshot s;
    s.catalog = &catalog;
    s.latency.resize(catalog.size());
    s.counts.resize(catalog.size());
    for (std::size_t i = 0; i < catalog.size(); ++i) {
        if (catalog.keys()[i].category == metric_category::pipeline_ingestion) {
            s.counts[i] = 10;
            continue;
        }
        s.latency[i].record(500);
        s.latency[i].record(5'000);
        s.latency[i].record_n(50'000, 2);
        s.latency[i].record(2'000'000'000);
        s.counts[i] = 5;
    }
    s.period_ns = 2'000'000'000;
    s.period_end_ns = end_ns;
    s.shards_reporting = 2;
    s.totals.ingested = 1000 * scale;
    s.totals.decode_errors = 1 * scale;
    s.totals.protocol_errors = 2 * scale;
    s.totals.filtered = 3 * scale;
    s.totals.sink_writes = 900 * scale;
    s.totals.sink_bytes = 9000 * scale;
    s.totals.remote_sent = 40 * scale;
    s.totals.remote_received = 50 * scale;
    s.totals.remote_dropped = 6 * scale;
    s.totals.remote_oversize = 7 * scale;
    return s;
}

struct http_reply {
    int code = 0;
    std::string head;
    std::string body;
};

unique_fd connect_to_fd(std::uint16_t port) {
    unique_fd owned(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const int fd = owned.get();
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    timeval tv{ 5, 0 };
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return owned;
}

// Sends `request` as is and reads until the server closes.
http_reply http_exchange(std::uint16_t port, const std::string& request) {
    const unique_fd owned = connect_to_fd(port);
    const int fd = owned.get();
    std::size_t sent = 0;
    while (sent < request.size()) {
        ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) {
            break;
        }
        sent += static_cast<std::size_t>(n);
    }
    std::string all;
    char buf[65536];
    for (;;) {
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
            break;
        }
        all.append(buf, static_cast<std::size_t>(n));
    }
    http_reply r;
    const auto split = all.find("\r\n\r\n");
    if (split == std::string::npos) {
        return r;
    }
    r.head = all.substr(0, split);
    r.body = all.substr(split + 4);
    if (r.head.rfind("HTTP/1.1 ", 0) == 0) {
        r.code = std::stoi(r.head.substr(9, 3));
    }
    return r;
}

http_reply get(std::uint16_t port, const std::string& path) {
    return http_exchange(port, "GET " + path + " HTTP/1.1\r\nHost: localhost\r\n\r\n");
}

struct sample {
    std::string name;
    std::map<std::string, std::string> labels;
    std::string value;
};

// Every non-comment line must be `name{labels} value` (or `name value`).
std::vector<sample> parse_prometheus(const std::string& text) {
    static const std::regex line_re(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$)");
    static const std::regex label_re(R"(([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)\",?)");
    std::vector<sample> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') {
            EXPECT_TRUE(line.empty() || line.rfind("# HELP ", 0) == 0 ||
                        line.rfind("# TYPE ", 0) == 0)
              << line;
            continue;
        }
        std::smatch m;
        EXPECT_TRUE(std::regex_match(line, m, line_re)) << line;
        if (m.empty()) {
            continue;
        }
        sample s{ m[1], {}, m[4] };
        std::string labels = m[3];
        for (auto it = std::sregex_iterator(labels.begin(), labels.end(), label_re);
             it != std::sregex_iterator(); ++it) {
            s.labels[(*it)[1]] = (*it)[2];
        }
        out.push_back(std::move(s));
    }
    return out;
}

std::string counter(const std::vector<sample>& samples, const std::string& name) {
    for (const auto& s : samples) {
        if (s.name == name) {
            EXPECT_EQ(s.labels.at("app"), "wc");
            EXPECT_EQ(s.labels.at("worker"), "w1");
            return s.value;
        }
    }
    ADD_FAILURE() << "no " << name;
    return "";
}

class HttpEndpoint : public ::testing::Test {
protected:
    void SetUp() override {
        auto e = http_endpoint::open(host_port{ "127.0.0.1", 0 }, "wc", "w1");
        ASSERT_TRUE(e.ok()) << e.err().message;
        endpoint = std::move(*e);
        ASSERT_NE(endpoint->bound_port(), 0);
    }
    application app = make_app();
    metric_catalog catalog{ app, "w1" };
    std::unique_ptr<http_endpoint> endpoint;
};

TEST_F(HttpEndpoint, MetricsAreCountersAndCumulativeHistograms) {
    endpoint->publish(make_snapshot(catalog, 2'000'000'000, 1));
    auto r1 = get(endpoint->bound_port(), "/metrics");
    ASSERT_EQ(r1.code, 200) << r1.head;
    EXPECT_NE(r1.head.find("text/plain; version=0.0.4"), std::string::npos);
    auto s1 = parse_prometheus(r1.body);
    EXPECT_EQ(counter(s1, "ringtail_messages_ingested_total"), "1000");
    EXPECT_EQ(counter(s1, "ringtail_decode_errors_total"), "1");
    EXPECT_EQ(counter(s1, "ringtail_protocol_errors_total"), "2");
    EXPECT_EQ(counter(s1, "ringtail_filtered_total"), "3");
    EXPECT_EQ(counter(s1, "ringtail_sink_writes_total"), "900");
    EXPECT_EQ(counter(s1, "ringtail_sink_bytes_total"), "9000");
    EXPECT_EQ(counter(s1, "ringtail_remote_sent_total"), "40");
    EXPECT_EQ(counter(s1, "ringtail_remote_received_total"), "50");
    EXPECT_EQ(counter(s1, "ringtail_remote_dropped_total"), "6");
    EXPECT_EQ(counter(s1, "ringtail_remote_oversize_total"), "7");

    // Histograms: per label set, buckets in le order, cumulative, +Inf == _count.
    const std::vector<std::string> le_order{ "1e-06", "1e-05", "0.0001", "0.001",
                                             "0.01",  "0.1",   "1",      "+Inf" };
    std::map<std::string, std::vector<std::uint64_t>> buckets;
    std::map<std::string, std::uint64_t> counts;
    std::map<std::string, double> sums;
    for (const auto& s : s1) {
        if (s.name.rfind("ringtail_latency_seconds", 0) != 0) {
            continue;
        }
        auto labels = s.labels;
        const std::string key =
          labels["category"] + "/" + labels["pipeline"] + "/" + labels["name"];
        if (s.name == "ringtail_latency_seconds_bucket") {
            auto& v = buckets[key];
            ASSERT_LT(v.size(), le_order.size());
            EXPECT_EQ(labels["le"], le_order[v.size()]);
            v.push_back(std::stoull(s.value));
        } else if (s.name == "ringtail_latency_seconds_count") {
            counts[key] = std::stoull(s.value);
        } else if (s.name == "ringtail_latency_seconds_sum") {
            sums[key] = std::stod(s.value);
        }
    }
    std::size_t latency_metrics = 0;
    for (const auto& k : catalog.keys()) {
        latency_metrics += k.category != metric_category::pipeline_ingestion ? 1 : 0;
    }
    EXPECT_EQ(buckets.size(), latency_metrics);
    ASSERT_TRUE(buckets.count("computation/lines/upper")) << r1.body;
    ASSERT_TRUE(buckets.count("computation/lines/count"));
    ASSERT_TRUE(buckets.count("start-to-end/lines/lines"));
    for (const auto& [key, v] : buckets) {
        SCOPED_TRACE(key);
        ASSERT_EQ(v.size(), le_order.size());
        for (std::size_t i = 1; i < v.size(); ++i) {
            EXPECT_LE(v[i - 1], v[i]);
        }
        EXPECT_EQ(v.back(), counts[key]);
        EXPECT_EQ(v, (std::vector<std::uint64_t>{ 1, 2, 4, 4, 4, 4, 4, 5 }));
        EXPECT_NEAR(sums[key], 2.0001055, 0.01);
    }

    // A second period with larger totals: the counters follow.
    endpoint->publish(make_snapshot(catalog, 4'000'000'000, 3));
    auto s2 = parse_prometheus(get(endpoint->bound_port(), "/metrics").body);
    EXPECT_EQ(counter(s2, "ringtail_messages_ingested_total"), "3000");
    EXPECT_EQ(counter(s2, "ringtail_sink_bytes_total"), "27000");
    EXPECT_GT(std::stoull(counter(s2, "ringtail_filtered_total")),
              std::stoull(counter(s1, "ringtail_filtered_total")));
}

TEST_F(HttpEndpoint, StatusIsJsonWithRates) {
    endpoint->publish(make_snapshot(catalog, 2'000'000'000, 1));
    auto first = nlohmann::json::parse(get(endpoint->bound_port(), "/status").body);
    EXPECT_TRUE(first["rates"]["ingested_per_s"].is_null());
    endpoint->publish(make_snapshot(catalog, 4'000'000'000, 3));
    auto r = get(endpoint->bound_port(), "/status");
    ASSERT_EQ(r.code, 200);
    EXPECT_NE(r.head.find("application/json"), std::string::npos);
    auto j = nlohmann::json::parse(r.body);
    EXPECT_EQ(j["app"], "wc");
    EXPECT_EQ(j["worker"], "w1");
    EXPECT_EQ(j["net"], "socket");
    EXPECT_EQ(j["period_ms"], 2000);
    EXPECT_EQ(j["period_end_ns"], 4'000'000'000ULL);
    EXPECT_EQ(j["shards"], 2);
    EXPECT_EQ(j["totals"]["ingested"], 3000);
    EXPECT_EQ(j["totals"]["sink_writes"], 2700);
    EXPECT_EQ(j["totals"]["remote_sent"], 120);
    EXPECT_EQ(j["totals"]["remote_received"], 150);
    EXPECT_EQ(j["totals"]["remote_dropped"], 18);
    EXPECT_EQ(j["totals"]["remote_oversize"], 21);
    // (3000 - 1000) over 2 s.
    EXPECT_DOUBLE_EQ(j["rates"]["ingested_per_s"].get<double>(), 1000.0);
    ASSERT_EQ(j["pipelines"].size(), 1u);
    EXPECT_EQ(j["pipelines"][0]["name"], "lines");
    EXPECT_EQ(j["pipelines"][0]["ingested"], 10);
    const auto& lat = j["pipelines"][0]["latency"];
    EXPECT_EQ(lat["count"], 5);
    // Within the histogram's 0.1 % (it reports a slot's highest value).
    EXPECT_NEAR(lat["p50_ns"].get<double>(), 50'000, 50);
    EXPECT_GE(lat["max_ns"].get<std::uint64_t>(), 2'000'000'000ULL);
    for (const char* f : { "p99_ns", "p999_ns" }) {
        EXPECT_TRUE(lat.contains(f));
    }
    ASSERT_EQ(j["stages"].size(), 2u);
    for (const auto& s : j["stages"]) {
        EXPECT_EQ(s["pipeline"], "lines");
        EXPECT_EQ(s["category"], "computation");
        EXPECT_EQ(s["count"], 5);
        for (const char* f : { "name", "p50_ns", "p99_ns", "p999_ns", "max_ns" }) {
            EXPECT_TRUE(s.contains(f)) << f;
        }
    }
    EXPECT_EQ(j["worker_latency"]["count"], 5);
}

TEST_F(HttpEndpoint, HealthzNotFoundWrongMethodAndGarbage) {
    const auto port = endpoint->bound_port();
    auto h = get(port, "/healthz");
    EXPECT_EQ(h.code, 200);
    EXPECT_EQ(h.body, "ok\n");
    EXPECT_EQ(get(port, "/healthz?x=1").code, 200);
    EXPECT_EQ(get(port, "/nope").code, 404);
    EXPECT_EQ(
      http_exchange(port, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi").code,
      405);
    EXPECT_EQ(http_exchange(port, "BLAH\x01\x02 nonsense\r\n\r\n").code, 400);
    EXPECT_EQ(
      http_exchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n").code,
      400);
    // A header larger than the limit.
    EXPECT_EQ(
      http_exchange(port, "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n")
        .code,
      400);
    // A request cut short by the client closing its side.
    {
        const unique_fd owned = connect_to_fd(port);
        const int fd = owned.get();
        std::string part = "GET /metr";
        ASSERT_EQ(::send(fd, part.data(), part.size(), 0), static_cast<ssize_t>(part.size()));
        ::shutdown(fd, SHUT_WR);
        char buf[4096];
        std::string got;
        for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) {
            got.append(buf, static_cast<std::size_t>(n));
        }
        EXPECT_EQ(got.rfind("HTTP/1.1 400", 0), 0u) << got;
    }
    // Before any publish /metrics and /status still answer.
    EXPECT_EQ(get(port, "/metrics").code, 200);
    EXPECT_TRUE(nlohmann::json::accept(get(port, "/status").body));
}

TEST_F(HttpEndpoint, SlowClientsBlockNeitherPublishNorOtherClients) {
    const auto port = endpoint->bound_port();
    // Clients that connect and send half a request, then nothing.
    std::vector<unique_fd> idle;
    for (int i = 0; i < 5; ++i) {
        idle.push_back(connect_to_fd(port));
        ::send(idle.back().get(), "GET /sta", 8, 0);
    }
    // A client that asks for /metrics and never reads.
    const unique_fd reader = connect_to_fd(port);
    ::send(reader.get(), "GET /metrics HTTP/1.1\r\n\r\n", 25, 0);
    for (int i = 0; i < 20; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        endpoint->publish(make_snapshot(catalog, 2'000'000'000ULL * (i + 1), i + 1));
        EXPECT_LT(std::chrono::steady_clock::now() - t0, 200ms);
    }
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(get(port, "/healthz").code, 200);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
}

// Hostile clients (net/metrics/README.md): hundreds of connections that send nothing, or half a
// request, take no slot that /healthz needs (there were 32, and 32 idle clients made it time out).
TEST_F(HttpEndpoint, HealthzAnswersWhileHundredsOfIdleConnectionsAreHeld) {
    const auto port = endpoint->bound_port();
    std::vector<unique_fd> idle;
    for (int i = 0; i < 300; ++i) {
        idle.push_back(connect_to_fd(port));
        if (i % 2 == 0) {
            ::send(idle.back().get(), "GET /hea", 8, MSG_NOSIGNAL);
        }
    }
    for (int i = 0; i < 5; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        const auto r = get(port, "/healthz");
        EXPECT_EQ(r.code, 200);
        EXPECT_EQ(r.body, "ok\n");
        EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
    }
    EXPECT_EQ(endpoint->connections_refused(), 0u);
}

// An idle connection is closed after the client timeout (short here; 5 s by default).
TEST(HttpEndpointLimits, AnIdleConnectionIsClosedAfterTheTimeout) {
    http_endpoint::limits lim;
    lim.client_timeout_ns = 200'000'000;
    auto e = http_endpoint::open(host_port{ "127.0.0.1", 0 }, "wc", "w1", "socket", lim);
    ASSERT_TRUE(e.ok()) << e.err().message;
    unique_fd c = connect_to_fd((*e)->bound_port());
    const auto t0 = std::chrono::steady_clock::now();
    char b;
    EXPECT_EQ(::recv(c.get(), &b, 1, 0), 0); // EOF, well before the 5 s receive timeout
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 150ms);
    EXPECT_EQ((*e)->connections_timed_out(), 1u);
    // A request after that is served as ever.
    EXPECT_EQ(get((*e)->bound_port(), "/healthz").code, 200);
}

// The cap refuses the newest connections (closed at once) with one log line, and frees a place
// when one of the open ones goes.
TEST(HttpEndpointLimits, TheCapRefusesTheNewestWithOneLogLine) {
    http_endpoint::limits lim;
    lim.max_connections = 4;
    auto e = http_endpoint::open(host_port{ "127.0.0.1", 0 }, "wc", "w1", "socket", lim);
    ASSERT_TRUE(e.ok()) << e.err().message;
    const auto port = (*e)->bound_port();
    std::vector<unique_fd> held;
    for (int i = 0; i < 4; ++i) {
        held.push_back(connect_to_fd(port));
    }
    testing::internal::CaptureStderr();
    std::vector<unique_fd> refused;
    for (int i = 0; i < 3; ++i) {
        refused.push_back(connect_to_fd(port));
        char b;
        EXPECT_EQ(::recv(refused.back().get(), &b, 1, 0), 0) << "refused connection " << i;
    }
    const std::string log = testing::internal::GetCapturedStderr();
    EXPECT_EQ((*e)->connections_refused(), 3u);
    EXPECT_NE(log.find("http endpoint: 4 connections open, the limit"), std::string::npos) << log;
    EXPECT_EQ(log.find("refusing"), log.rfind("refusing")) << log;
    held.pop_back(); // closed by the client: the server sees EOF and frees its place
    const auto give_up = std::chrono::steady_clock::now() + 5s;
    int code = 0;
    while (code != 200 && std::chrono::steady_clock::now() < give_up) {
        code = get(port, "/healthz").code;
        std::this_thread::sleep_for(10ms);
    }
    EXPECT_EQ(code, 200);
}

} // namespace
} // namespace ringtail::net
