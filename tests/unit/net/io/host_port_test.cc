// Tests of command-line address parsing and IPv4 resolution.
#include "net/io/host_port.h"

#include <arpa/inet.h>

#include <gtest/gtest.h>

namespace ringtail::net {
namespace {

TEST(host_port, parses_host_and_port) {
    auto hp = parse_host_port("127.0.0.1:7000");
    ASSERT_TRUE(hp.ok()) << hp.err().message;
    EXPECT_EQ(hp->host, "127.0.0.1");
    EXPECT_EQ(hp->port, 7000);
    EXPECT_EQ(hp->to_string(), "127.0.0.1:7000");
    auto named = parse_host_port("localhost:65535");
    ASSERT_TRUE(named.ok());
    EXPECT_EQ(named->host, "localhost");
    EXPECT_EQ(named->port, 65535);
}

TEST(host_port, port_zero_only_where_allowed) {
    EXPECT_FALSE(parse_host_port("127.0.0.1:0").ok());
    auto hp = parse_host_port("127.0.0.1:0", /*allow_port_zero=*/true);
    ASSERT_TRUE(hp.ok());
    EXPECT_EQ(hp->port, 0);
}

TEST(host_port, rejects_bad_inputs_with_usage) {
    for (const char* bad :
         { "", "127.0.0.1", ":7000", "host:", "host:abc", "host:65536", "host:-1", "host:70000",
           "a:b:7000", "name@host:7000", "host:7000x", "host: 7000" }) {
        auto hp = parse_host_port(bad);
        ASSERT_FALSE(hp.ok()) << "'" << bad << "'";
        EXPECT_EQ(hp.err().code, errc::usage) << bad;
        EXPECT_NE(hp.err().message.find(bad), std::string::npos) << hp.err().message;
    }
}

TEST(source_address, parses_name_host_port_and_max_size) {
    auto sa = parse_source_address("words@127.0.0.1:7000:100");
    ASSERT_TRUE(sa.ok()) << sa.err().message;
    EXPECT_EQ(sa->name, "words");
    EXPECT_EQ(sa->address, (host_port{ "127.0.0.1", 7000 }));
    EXPECT_EQ(sa->max_size, 100u);
}

TEST(source_address, name_and_max_size_are_optional) {
    auto sa = parse_source_address("127.0.0.1:7000");
    ASSERT_TRUE(sa.ok());
    EXPECT_EQ(sa->name, "");
    EXPECT_EQ(sa->max_size, default_source_max_size);
    auto named = parse_source_address("words@localhost:7000");
    ASSERT_TRUE(named.ok());
    EXPECT_EQ(named->name, "words");
    EXPECT_EQ(named->max_size, default_source_max_size);
    auto sized = parse_source_address("localhost:7000:1");
    ASSERT_TRUE(sized.ok());
    EXPECT_EQ(sized->max_size, 1u);
}

TEST(source_address, listen_port_zero_is_allowed) {
    auto sa = parse_source_address("in@127.0.0.1:0");
    ASSERT_TRUE(sa.ok());
    EXPECT_EQ(sa->address.port, 0);
}

TEST(source_address, rejects_bad_inputs_with_usage) {
    for (const char* bad : { "", "@127.0.0.1:7000", "words@", "words@host", "words@:7000",
                             "host:7000:0", "host:7000:x", "host:7000:", "host:7000:-5",
                             "host:7000:99999999999", "host:x:100", "w@host:70000" }) {
        auto sa = parse_source_address(bad);
        ASSERT_FALSE(sa.ok()) << "'" << bad << "'";
        EXPECT_EQ(sa.err().code, errc::usage) << bad;
    }
}

TEST(resolve_ipv4, dotted_addresses_and_localhost) {
    auto a = resolve_ipv4("127.0.0.1");
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(*a, htonl(0x7f000001));
    auto any = resolve_ipv4("0.0.0.0");
    ASSERT_TRUE(any.ok());
    EXPECT_EQ(*any, 0u);
    auto local = resolve_ipv4("localhost");
    ASSERT_TRUE(local.ok()) << local.err().message;
    EXPECT_EQ(ntohl(*local) >> 24, 127u);
}

} // namespace
} // namespace ringtail::net
