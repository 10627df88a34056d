// Tests of cluster formation's plain functions: the checks on a joining worker's HELLO (one
// refusal line per rule), the TOPOLOGY built and read back, the back end and lanes it decides,
// and the transport kind's names.
#include "net/cluster/formation.h"

#include <gtest/gtest.h>

namespace ringtail::net {
namespace {

using json = nlohmann::json;

initializer_facts facts() {
    initializer_facts f;
    f.app_name = "word_count";
    f.app_fingerprint = 0xfeed;
    f.worker_count = 3;
    return f;
}

hello a_hello() {
    hello h;
    h.worker = worker_info{ "w1", host_port{ "127.0.0.1", 7001 }, 2, "", 1 };
    h.app = "word_count";
    h.fingerprint = 0xfeed;
    h.worker_count = 3;
    return h;
}

std::string refusal(const json& body, const initializer_facts& f = facts(),
                    const std::vector<std::string>& taken = {}) {
    auto r = check_hello(body, f, taken);
    EXPECT_FALSE(r.ok());
    if (r.ok()) {
        return "";
    }
    EXPECT_EQ(r.err().code, errc::config);
    EXPECT_EQ(r.err().message.find('\n'), std::string::npos);
    return r.err().message;
}

TEST(transport_kind, names_print_and_parse_back) {
    EXPECT_EQ(to_string(transport_kind::socket), "socket");
    EXPECT_EQ(to_string(transport_kind::dpdk), "dpdk");
    for (auto k : { transport_kind::socket, transport_kind::dpdk }) {
        EXPECT_EQ(parse_transport_kind(to_string(k)), k);
    }
    EXPECT_FALSE(parse_transport_kind("auto").has_value()); // resolved before formation
    EXPECT_FALSE(parse_transport_kind("").has_value());
    EXPECT_FALSE(parse_transport_kind("DPDK").has_value());
}

TEST(check_hello, a_hello_built_by_a_worker_is_accepted_as_it_was_sent) {
    const hello h = a_hello();
    auto r = check_hello(hello_body(h), facts(), {});
    ASSERT_TRUE(r.ok()) << r.err().message;
    EXPECT_EQ(r.value(), h.worker);
}

TEST(check_hello, a_worker_count_not_given_is_accepted) {
    hello h = a_hello();
    h.worker_count = 0;
    EXPECT_TRUE(check_hello(hello_body(h), facts(), {}).ok());
}

TEST(check_hello, an_incomplete_or_malformed_hello_is_refused) {
    const json good = hello_body(a_hello());
    for (const char* key : { "name", "app", "fingerprint", "worker_count", "data", "shards" }) {
        json body = good;
        body.erase(key);
        EXPECT_EQ(refusal(body), "its HELLO is incomplete or malformed") << key;
    }
    for (auto [key, value] : { std::pair{ "name", json("") }, std::pair{ "data", json("nohost") },
                               std::pair{ "shards", json(0) }, std::pair{ "shards", json(4097) },
                               std::pair{ "queues", json(0) }, std::pair{ "queues", json(4097) },
                               std::pair{ "fingerprint", json("text") } }) {
        json body = good;
        body[key] = value;
        EXPECT_EQ(refusal(body), "its HELLO is incomplete or malformed") << key << "=" << value;
    }
}

TEST(check_hello, another_application_or_build_is_refused) {
    hello h = a_hello();
    h.app = "alphabet";
    EXPECT_EQ(refusal(hello_body(h)),
              "it runs application 'alphabet', the cluster runs 'word_count'");
    h = a_hello();
    h.fingerprint = 0xbeef;
    EXPECT_EQ(refusal(hello_body(h)), "it runs another build or shape of 'word_count' (stages or "
                                      "version differ); run the same executable everywhere");
}

TEST(check_hello, another_worker_count_is_refused) {
    hello h = a_hello();
    h.worker_count = 4;
    EXPECT_EQ(refusal(hello_body(h)), "its --worker-count is 4, the initializer's is 3");
}

TEST(check_hello, dpdk_must_agree_both_ways) {
    hello h = a_hello();
    h.worker.mac = "not a mac";
    EXPECT_EQ(refusal(hello_body(h)), "its HELLO carries a malformed MAC address");

    initializer_facts needs_dpdk = facts();
    needs_dpdk.has_dpdk = true;
    needs_dpdk.dpdk_required = true;
    EXPECT_NE(refusal(hello_body(a_hello()), needs_dpdk)
                .find("it has no usable DPDK port, and the initializer runs with --net dpdk"),
              std::string::npos);
    h = a_hello();
    h.worker.mac = "02:00:00:00:00:01";
    EXPECT_TRUE(check_hello(hello_body(h), needs_dpdk, {}).ok());

    h.dpdk_required = true;
    EXPECT_NE(
      refusal(hello_body(h)).find("it requires --net dpdk, but the initializer has no DPDK port"),
      std::string::npos);
    initializer_facts has_dpdk = facts();
    has_dpdk.has_dpdk = true;
    EXPECT_TRUE(check_hello(hello_body(h), has_dpdk, {}).ok());
}

TEST(check_hello, a_name_already_taken_is_refused) {
    hello h = a_hello();
    EXPECT_EQ(refusal(hello_body(h), facts(), { "w0", "w1" }),
              "the worker name 'w1' is already taken in this cluster");
    h.worker.name = "initializer";
    EXPECT_EQ(refusal(hello_body(h)),
              "the worker name 'initializer' is already taken in this cluster");
}

topology a_topology() {
    topology t;
    t.token = 0x1234'5678'9abc'def0;
    t.index = 2;
    t.workers = { worker_info{ "initializer", host_port{ "10.0.0.1", 7000 }, 4, "", 1 },
                  worker_info{ "w1", host_port{ "10.0.0.2", 7001 }, 2, "", 1 },
                  worker_info{ "w2", host_port{ "10.0.0.3", 7002 }, 1, "", 1 } };
    return t;
}

TEST(topology, read_back_as_it_was_built) {
    for (auto net : { transport_kind::socket, transport_kind::dpdk }) {
        topology t = a_topology();
        t.net = net;
        if (net == transport_kind::dpdk) {
            t.workers[0].mac = "02:00:00:00:00:01";
            t.workers[1].queues = 4;
        }
        auto r = read_topology(topology_body(t), "10.0.0.1");
        ASSERT_TRUE(r.ok()) << r.err().message;
        EXPECT_EQ(r->token, t.token);
        EXPECT_EQ(r->index, t.index);
        EXPECT_EQ(r->workers, t.workers);
        EXPECT_EQ(r->net, net);
    }
}

TEST(topology, an_unspecified_data_host_is_where_the_initializer_was_reached) {
    topology t = a_topology();
    t.workers[0].data.host = "0.0.0.0";
    auto r = read_topology(topology_body(t), "192.168.1.5");
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->workers[0].data, (host_port{ "192.168.1.5", 7000 }));
    EXPECT_EQ(r->workers[1].data, (host_port{ "10.0.0.2", 7001 }));
}

TEST(topology, without_net_it_is_sockets) {
    json body = topology_body(a_topology());
    body.erase("net");
    auto r = read_topology(body, "h");
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->net, transport_kind::socket);
}

TEST(topology, a_malformed_one_is_an_error) {
    const json good = topology_body(a_topology());
    std::vector<json> bad;
    for (const char* key : { "token", "index", "workers" }) {
        bad.push_back(good);
        bad.back().erase(key);
    }
    bad.push_back(good);
    bad.back()["index"] = 0; // the initializer's own
    bad.push_back(good);
    bad.back()["index"] = 3; // beyond the workers
    bad.push_back(good);
    bad.back()["net"] = "carrier pigeon";
    bad.push_back(good);
    bad.back()["workers"][1]["shards"] = 0;
    bad.push_back(good);
    bad.back()["workers"][1]["queues"] = 0;
    bad.push_back(good);
    bad.back()["workers"][2].erase("name");
    bad.push_back(good);
    bad.back()["workers"][2]["data"] = "no port";
    for (const auto& body : bad) {
        auto r = read_topology(body, "h");
        ASSERT_FALSE(r.ok()) << body.dump();
        EXPECT_EQ(r.err().code, errc::unavailable);
        EXPECT_EQ(r.err().message, "cluster: the initializer sent a malformed topology");
    }
}

TEST(check_transport, a_worker_checks_the_chosen_back_end_against_its_port_and_net) {
    EXPECT_TRUE(check_transport(transport_kind::socket, false, false).ok());
    EXPECT_TRUE(check_transport(transport_kind::socket, true, false).ok());
    EXPECT_TRUE(check_transport(transport_kind::dpdk, true, true).ok());
    auto no_port = check_transport(transport_kind::dpdk, false, false);
    ASSERT_FALSE(no_port.ok());
    EXPECT_EQ(no_port.err().code, errc::unavailable);
    EXPECT_NE(no_port.err().message.find("has no DPDK port"), std::string::npos);
    auto required = check_transport(transport_kind::socket, true, true);
    ASSERT_FALSE(required.ok());
    EXPECT_NE(required.err().message.find("requires --net dpdk"), std::string::npos);
}

TEST(choose_transport, dpdk_only_when_every_worker_has_a_port) {
    auto workers = a_topology().workers;
    EXPECT_EQ(choose_transport(workers), transport_kind::socket);
    for (auto& w : workers) {
        w.mac = "02:00:00:00:00:0" + std::to_string(&w - workers.data());
    }
    EXPECT_EQ(choose_transport(workers), transport_kind::dpdk);
    workers[1].mac.clear();
    EXPECT_EQ(choose_transport(workers), transport_kind::socket);
}

TEST(lane_count, one_lane_per_queue_pair_every_worker_has) {
    auto workers = a_topology().workers;
    for (auto& w : workers) {
        w.queues = 8;
    }
    EXPECT_EQ(lane_count(4, workers), 4u);
    workers[2].queues = 2;
    EXPECT_EQ(lane_count(4, workers), 2u);
    EXPECT_EQ(lane_count(0, workers), 1u);
}

TEST(shards_per_worker, in_index_order) {
    EXPECT_EQ(shards_per_worker(a_topology().workers), (std::vector<std::uint32_t>{ 4, 2, 1 }));
    EXPECT_TRUE(shards_per_worker({}).empty());
}

} // namespace
} // namespace ringtail::net
