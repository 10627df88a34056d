// The monitoring-hub protocol (WIRE.md §5): byte layout, a snapshot's round trip through the
// encoder and decoder, rejection of damaged frames, and the client against a real listening socket
// (handshake, payloads, a hub that is away, a hub that appears later or goes away).
#include "net/metrics/metrics_hub_codec.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <netinet/in.h>
#include <poll.h>
#include <random>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include "engine/application.h"
#include "engine/big_endian.h"
#include "engine/fd.h"
#include "net/io/tcp_listener.h"
#include "net/metrics/metrics_hub_client.h"

namespace ringtail::net {
namespace {

using namespace std::chrono_literals;

std::span<const std::byte> as_bytes(std::string_view s) {
    return std::as_bytes(std::span(s.data(), s.size()));
}

struct count_state {
    std::uint64_t n = 0;
};

// word_count's shape: a source, a 1->N stage, key_by, a stateful stage, a sink.
application make_word_count() {
    application app{ "wc" };
    app
      .source("lines",
              [](std::span<const std::byte> p) {
                  return std::string(reinterpret_cast<const char*>(p.data()), p.size());
              })
      .to_many<std::string>("split",
                            [](std::string& line, output<std::string>& out) { out.push(line); })
      .key_by([](const std::string& w) -> const std::string& { return w; })
      .to_state<count_state>(
        "count",
        [](const std::string& w, count_state& s) { return w + "=" + std::to_string(++s.n); })
      .to_sink("out", [](const std::string& s) { return s + "\n"; });
    return app;
}

// A snapshot where metric i holds the values i*37+1, 1000*(i+1) and 3'000'000'000 + i (so min,
// max and several bins differ per metric); pipeline-ingestion metrics have count 100 + i.
metrics_snapshot make_snapshot(const metric_catalog& catalog, std::uint64_t period_end_ns) {
    metrics_snapshot s;
    s.catalog = &catalog;
    s.latency.resize(catalog.size());
    s.counts.resize(catalog.size());
    for (std::size_t i = 0; i < catalog.size(); ++i) {
        if (catalog.keys()[i].category == metric_category::pipeline_ingestion) {
            s.counts[i] = 100 + i;
            continue;
        }
        s.latency[i].record(i * 37 + 1);
        s.latency[i].record_n(1000 * (i + 1), 5);
        s.latency[i].record(3'000'000'000ULL + i);
        s.counts[i] = s.latency[i].total_count();
    }
    s.period_ns = 2'000'000'000;
    s.period_end_ns = period_end_ns;
    s.shards_reporting = 2;
    return s;
}

// Splits a byte stream into whole frames.
std::vector<std::string> split_frames(std::string_view bytes) {
    std::vector<std::string> out;
    while (!bytes.empty()) {
        const std::size_t len = hub_frame_length(as_bytes(bytes));
        EXPECT_GE(len, 4u);
        EXPECT_LE(len, bytes.size());
        if (len < 4 || len > bytes.size()) {
            break;
        }
        out.emplace_back(bytes.substr(0, len));
        bytes.remove_prefix(len);
    }
    return out;
}

void check_payload(const hub_payload& p, const metrics_snapshot& s, std::size_t i,
                   const std::string& worker) {
    const metric_key& key = s.catalog->keys()[i];
    SCOPED_TRACE("metric " + std::to_string(i) + " " + key.name);
    EXPECT_EQ(p.event, "metrics");
    EXPECT_EQ(p.topic, "metrics:wc");
    const hub_metric& m = p.metric;
    EXPECT_EQ(m.name, key.name);
    EXPECT_EQ(m.category, to_string(key.category));
    EXPECT_EQ(m.worker, worker);
    EXPECT_EQ(m.pipeline, key.pipeline);
    EXPECT_EQ(m.id, key.id);
    EXPECT_EQ(m.period_ns, s.period_ns);
    EXPECT_EQ(m.period_end_ns, s.period_end_ns);
    if (key.category == metric_category::pipeline_ingestion) {
        EXPECT_EQ(m.bins[0], 100 + i);
        EXPECT_EQ(m.count(), 100 + i);
        EXPECT_EQ(m.min, 0u);
        EXPECT_EQ(m.max, 0u);
        return;
    }
    const auto expected_bins = s.latency[i].power_of_two_bins();
    ASSERT_EQ(expected_bins.size(), hub_bin_count);
    for (std::size_t b = 0; b < hub_bin_count; ++b) {
        EXPECT_EQ(m.bins[b], expected_bins[b]) << "bin " << b;
    }
    // And independently of power_of_two_bins: each value in the bin of its bit length.
    std::array<std::uint64_t, hub_bin_count> bins{};
    bins[std::bit_width(i * 37 + 1)] += 1;
    bins[std::bit_width(1000 * (i + 1))] += 5;
    bins[std::bit_width(3'000'000'000ULL + i)] += 1;
    EXPECT_EQ(m.bins, bins);
    EXPECT_EQ(m.min, i * 37 + 1);
    EXPECT_EQ(m.max, 3'000'000'000ULL + i);
    EXPECT_EQ(m.count(), 7u);
}

TEST(MetricsHubCodec, ConnectAndJoinAreByteExact) {
    std::string out;
    append_hub_connect(out);
    EXPECT_EQ(out, std::string("\x00\x00\x00\x01\x01", 5));
    out.clear();
    append_hub_join(out, "metrics:wc", "w1");
    const std::string expected = std::string("\x00\x00\x00\x15\x02", 5) +
                                 std::string("\x00\x00\x00\x0a", 4) + "metrics:wc" +
                                 std::string("\x00\x00\x00\x02", 4) + "w1";
    EXPECT_EQ(out, expected);
    auto frame = decode_hub_frame(as_bytes(out));
    ASSERT_TRUE(frame.ok()) << frame.err().message;
    EXPECT_EQ(std::get<hub_join>(*frame), (hub_join{ "metrics:wc", "w1" }));
    std::string connect;
    append_hub_connect(connect);
    auto c = decode_hub_frame(as_bytes(connect));
    ASSERT_TRUE(c.ok());
    EXPECT_TRUE(std::holds_alternative<hub_connect>(*c));
}

TEST(MetricsHubCodec, PayloadLayoutIsByteExact) {
    hub_metric m;
    m.name = "split";
    m.category = "computation";
    m.worker = "w1";
    m.pipeline = "lines";
    m.id = 0x0102;
    for (std::size_t i = 0; i < hub_bin_count; ++i) {
        m.bins[i] = i * 3;
    }
    m.min = 11;
    m.max = 22;
    m.period_ns = 33;
    m.period_end_ns = 44;
    std::string out;
    append_hub_payload(out, "metrics:wc", m);
    const std::byte* p = reinterpret_cast<const std::byte*>(out.data());
    std::size_t at = 0;
    auto u32 = [&] {
        auto v = be::read<std::uint32_t>(p + at);
        at += 4;
        return v;
    };
    auto str = [&] {
        auto n = u32();
        std::string s(out.data() + at, n);
        at += n;
        return s;
    };
    EXPECT_EQ(u32(), out.size() - 4);
    EXPECT_EQ(out[at++], 3);
    EXPECT_EQ(str(), "metrics");
    EXPECT_EQ(str(), "metrics:wc");
    const std::uint32_t data_size = u32();
    EXPECT_EQ(data_size, out.size() - at);
    const std::uint32_t header = u32();
    EXPECT_EQ(header, data_size - 4);
    EXPECT_EQ(str(), "split");
    EXPECT_EQ(str(), "computation");
    EXPECT_EQ(str(), "w1");
    EXPECT_EQ(str(), "lines");
    EXPECT_EQ(be::read<std::uint16_t>(p + at), 0x0102);
    at += 2;
    for (std::size_t i = 0; i < hub_bin_count; ++i) {
        EXPECT_EQ(be::read<std::uint64_t>(p + at), i * 3);
        at += 8;
    }
    for (std::uint64_t v : { 11u, 22u, 33u, 44u }) {
        EXPECT_EQ(be::read<std::uint64_t>(p + at), v);
        at += 8;
    }
    EXPECT_EQ(at, out.size());
    auto frame = decode_hub_frame(as_bytes(out));
    ASSERT_TRUE(frame.ok()) << frame.err().message;
    const auto& payload = std::get<hub_payload>(*frame);
    EXPECT_EQ(payload.metric, m);
    EXPECT_EQ(payload.topic, "metrics:wc");
    EXPECT_EQ(payload.event, "metrics");
}

TEST(MetricsHubCodec, SnapshotRoundTripsEveryField) {
    auto app = make_word_count();
    metric_catalog catalog(app, "w1");
    ASSERT_GE(catalog.size(), 4u);
    auto snapshot = make_snapshot(catalog, 1'700'000'000'000'000'000ULL);
    std::string out;
    EXPECT_EQ(append_hub_snapshot(out, snapshot, "metrics:wc", "w1"), catalog.size());
    auto frames = split_frames(out);
    ASSERT_EQ(frames.size(), catalog.size());
    bool saw_ingestion = false;
    bool saw_computation = false;
    for (std::size_t i = 0; i < frames.size(); ++i) {
        auto frame = decode_hub_frame(as_bytes(frames[i]));
        ASSERT_TRUE(frame.ok()) << frame.err().message;
        ASSERT_TRUE(std::holds_alternative<hub_payload>(*frame));
        check_payload(std::get<hub_payload>(*frame), snapshot, i, "w1");
        saw_ingestion |= catalog.keys()[i].category == metric_category::pipeline_ingestion;
        saw_computation |= catalog.keys()[i].category == metric_category::computation;
    }
    EXPECT_TRUE(saw_ingestion);
    EXPECT_TRUE(saw_computation);
}

TEST(MetricsHubCodec, DamagedFramesAreRejected) {
    hub_metric m;
    m.name = "count";
    m.category = "computation";
    m.worker = "w1";
    m.pipeline = "lines";
    std::string good;
    append_hub_payload(good, "metrics:wc", m);
    ASSERT_TRUE(decode_hub_frame(as_bytes(good)).ok());

    // Every truncation, with the size field as sent and with it patched to the new length.
    for (std::size_t len = 0; len < good.size(); ++len) {
        std::string cut = good.substr(0, len);
        EXPECT_FALSE(decode_hub_frame(as_bytes(cut)).ok()) << "prefix " << len;
        if (len >= 4) {
            std::string patched;
            be::append<std::uint32_t>(patched, static_cast<std::uint32_t>(len - 4));
            patched += cut.substr(4);
            EXPECT_FALSE(decode_hub_frame(as_bytes(patched)).ok()) << "patched prefix " << len;
        }
    }
    // Trailing bytes, unknown type, oversized size, wrong data_size and header.
    {
        std::string extra = good + "x";
        EXPECT_FALSE(decode_hub_frame(as_bytes(extra)).ok());
        std::string patched;
        be::append<std::uint32_t>(patched, static_cast<std::uint32_t>(extra.size() - 4));
        patched += extra.substr(4);
        EXPECT_FALSE(decode_hub_frame(as_bytes(patched)).ok());
    }
    {
        std::string bad = good;
        bad[4] = 9;
        EXPECT_FALSE(decode_hub_frame(as_bytes(bad)).ok());
    }
    {
        std::string huge;
        be::append<std::uint32_t>(huge, max_hub_frame_size + 1);
        huge += '\x03';
        EXPECT_FALSE(decode_hub_frame(as_bytes(huge)).ok());
    }
    // data_size sits after [size][type][str32 "metrics"][str32 topic]; header right after it.
    const std::size_t data_size_at = 4 + 1 + 4 + 7 + 4 + 10;
    for (std::size_t field : { data_size_at, data_size_at + 4 }) {
        for (int delta : { -1, 1 }) {
            std::string bad = good;
            auto v =
              be::read<std::uint32_t>(reinterpret_cast<const std::byte*>(bad.data()) + field);
            std::string patched;
            be::append<std::uint32_t>(patched, v + delta);
            bad.replace(field, 4, patched);
            EXPECT_FALSE(decode_hub_frame(as_bytes(bad)).ok()) << field << " " << delta;
        }
    }
    // A string length pointing past the end.
    {
        std::string bad = good;
        bad[9 + 7 + 4 + 10 + 4 + 4] = '\x7f'; // high byte of the name's length
        EXPECT_FALSE(decode_hub_frame(as_bytes(bad)).ok());
    }
    // CONNECT with a body; empty and short inputs.
    EXPECT_FALSE(decode_hub_frame(as_bytes(std::string("\x00\x00\x00\x02\x01\x00", 6))).ok());
    EXPECT_FALSE(decode_hub_frame(as_bytes(std::string("\x00\x00\x00\x00", 4))).ok());
    EXPECT_FALSE(decode_hub_frame({}).ok());

    // Random damage never crashes (ASan/UBSan builds check the "never reads out of bounds").
    const unsigned seed = std::random_device{}();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    for (int round = 0; round < 20000; ++round) {
        std::string bad = good;
        const int flips = 1 + static_cast<int>(rng() % 4);
        for (int f = 0; f < flips; ++f) {
            bad[rng() % bad.size()] = static_cast<char>(rng());
        }
        auto r = decode_hub_frame(as_bytes(bad));
        if (r.ok()) {
            EXPECT_TRUE(std::holds_alternative<hub_payload>(*r) ||
                        std::holds_alternative<hub_join>(*r) ||
                        std::holds_alternative<hub_connect>(*r));
        }
    }
}

TEST(MetricsHubCodec, PercentilesFromBinsAreBinUpperBounds) {
    std::array<std::uint64_t, hub_bin_count> bins{};
    EXPECT_EQ(hub_bins_value_at_percentile(bins, 0, 50), 0u);
    bins[0] = 1;  // 0
    bins[4] = 98; // [8, 16)
    bins[11] = 1; // [1024, 2048)
    EXPECT_EQ(hub_bins_value_at_percentile(bins, ~0ULL, 0), 0u);
    EXPECT_EQ(hub_bins_value_at_percentile(bins, ~0ULL, 1), 0u);
    EXPECT_EQ(hub_bins_value_at_percentile(bins, ~0ULL, 50), 15u);
    EXPECT_EQ(hub_bins_value_at_percentile(bins, ~0ULL, 99), 15u);
    EXPECT_EQ(hub_bins_value_at_percentile(bins, ~0ULL, 99.9), 2047u);
    EXPECT_EQ(hub_bins_value_at_percentile(bins, 1500, 100), 1500u); // capped at max
    // Hostile counts saturate instead of wrapping: bin 1 alone already holds every rank.
    bins.fill(~0ULL);
    bins[0] = 0;
    EXPECT_EQ(hub_bins_value_at_percentile(bins, ~0ULL, 100), 1u);
    EXPECT_EQ(hub_bins_value_at_percentile(bins, ~0ULL, std::nan("")), 1u);
}

// A stand-in monitoring hub: a listening socket, one accepted connection at a time, whatever
// arrives split into decoded frames.
class test_hub {
public:
    explicit test_hub(std::uint16_t port = 0) {
        auto fd = listen_tcp(host_port{ "127.0.0.1", port });
        EXPECT_TRUE(fd.ok()) << (fd.ok() ? "" : fd.err().message);
        _listen_fd.reset(fd.ok() ? *fd : -1);
        _port = bound_port(_listen_fd.get());
    }
    std::uint16_t port() const { return _port; }

    // Accepts if nobody is connected, reads what is there; returns true if anything happened.
    bool pump() {
        if (!_conn_fd.valid()) {
            _conn_fd.reset(::accept4(_listen_fd.get(), nullptr, nullptr, SOCK_NONBLOCK));
            if (!_conn_fd.valid()) {
                return false;
            }
            ++accepted;
        }
        char buf[65536];
        bool any = false;
        for (;;) {
            ssize_t n = ::recv(_conn_fd.get(), buf, sizeof buf, 0);
            if (n <= 0) {
                break;
            }
            _bytes.append(buf, static_cast<std::size_t>(n));
            any = true;
        }
        for (;;) {
            const std::size_t len = hub_frame_length(as_bytes(_bytes));
            if (len == 0 || len > _bytes.size()) {
                break;
            }
            auto frame = decode_hub_frame(as_bytes(std::string_view(_bytes).substr(0, len)));
            EXPECT_TRUE(frame.ok()) << (frame.ok() ? "" : frame.err().message);
            if (frame.ok()) {
                frames.push_back(std::move(*frame));
            }
            _bytes.erase(0, len);
        }
        return any;
    }
    void close_connection() {
        _conn_fd.reset();
        _bytes.clear();
    }
    std::size_t payloads() const {
        std::size_t n = 0;
        for (const auto& f : frames) {
            n += std::holds_alternative<hub_payload>(f) ? 1 : 0;
        }
        return n;
    }

    std::vector<hub_frame> frames;
    int accepted = 0;

private:
    unique_fd _listen_fd;
    unique_fd _conn_fd;
    std::uint16_t _port = 0;
    std::string _bytes;
};

// Publishes every 20 ms (pumping the hub in between) until `done` or 5 s pass.
template<typename Done>
bool publish_until(metrics_hub_client& client, const metrics_snapshot& s, test_hub& hub,
                   Done done) {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < deadline) {
        client.publish(s);
        for (int i = 0; i < 4; ++i) {
            hub.pump();
            if (done()) {
                return true;
            }
            std::this_thread::sleep_for(5ms);
        }
    }
    return false;
}

TEST(MetricsHubClient, DeliversConnectJoinAndPayloads) {
    auto app = make_word_count();
    metric_catalog catalog(app, "w1");
    auto snapshot = make_snapshot(catalog, 42'000'000'000);
    test_hub hub;
    metrics_hub_client client(host_port{ "127.0.0.1", hub.port() }, "wc", "w1");
    ASSERT_TRUE(
      publish_until(client, snapshot, hub, [&] { return hub.payloads() >= catalog.size(); }));
    ASSERT_GE(hub.frames.size(), 2 + catalog.size());
    EXPECT_TRUE(std::holds_alternative<hub_connect>(hub.frames[0]));
    ASSERT_TRUE(std::holds_alternative<hub_join>(hub.frames[1]));
    EXPECT_EQ(std::get<hub_join>(hub.frames[1]), (hub_join{ "metrics:wc", "w1" }));
    for (std::size_t i = 0; i < catalog.size(); ++i) {
        ASSERT_TRUE(std::holds_alternative<hub_payload>(hub.frames[2 + i]));
        check_payload(std::get<hub_payload>(hub.frames[2 + i]), snapshot, i, "w1");
    }
    EXPECT_EQ(hub.accepted, 1);
    EXPECT_TRUE(client.connected());
    EXPECT_GE(client.periods_sent(), 1u);
    EXPECT_EQ(client.periods_dropped(), 0u);
}

// A port nothing listens on: bound, then closed.
std::uint16_t free_port() {
    auto fd = listen_tcp(host_port{ "127.0.0.1", 0 });
    EXPECT_TRUE(fd.ok());
    const unique_fd listening(*fd);
    return bound_port(listening.get());
}

TEST(MetricsHubClient, AbsentHubNeverBlocksAndHubAppearingLaterGetsThePeriods) {
    auto app = make_word_count();
    metric_catalog catalog(app, "w1");
    auto snapshot = make_snapshot(catalog, 1);
    std::string one_period;
    append_hub_snapshot(one_period, snapshot, "metrics:wc", "w1");
    const std::uint16_t port = free_port();
    // Room for three periods: the rest are dropped and counted.
    metrics_hub_client client(host_port{ "127.0.0.1", port }, "wc", "w1",
                              3 * one_period.size() + 10);
    for (int i = 0; i < 10; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        client.publish(snapshot);
        EXPECT_LT(std::chrono::steady_clock::now() - t0, 50ms) << "publish " << i;
        if (i % 3 == 0) {
            std::this_thread::sleep_for(260ms); // let a retry fall due
        }
    }
    EXPECT_FALSE(client.connected());
    EXPECT_EQ(client.periods_sent(), 0u);
    EXPECT_EQ(client.pending_periods(), 3u);
    EXPECT_EQ(client.periods_dropped(), 7u);

    test_hub hub(port);
    ASSERT_EQ(hub.port(), port);
    ASSERT_TRUE(publish_until(client, snapshot, hub, [&] {
        return client.periods_sent() >= 4 && hub.payloads() >= 4 * catalog.size();
    }));
    EXPECT_TRUE(std::holds_alternative<hub_connect>(hub.frames[0]));
    EXPECT_TRUE(std::holds_alternative<hub_join>(hub.frames[1]));

    // The hub goes away and comes back on the same listener: a fresh CONNECT and JOIN.
    hub.close_connection();
    hub.frames.clear();
    ASSERT_TRUE(publish_until(client, snapshot, hub, [&] {
        return hub.accepted == 2 && hub.payloads() >= catalog.size();
    }));
    EXPECT_TRUE(std::holds_alternative<hub_connect>(hub.frames[0]));
    EXPECT_TRUE(std::holds_alternative<hub_join>(hub.frames[1]));
    EXPECT_TRUE(client.connected());
}

} // namespace
} // namespace ringtail::net
