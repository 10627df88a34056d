// Parsing of the `host:port` and `name@host:port[:max_size]` addresses used on the command line.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "engine/result.h"

namespace ringtail::net {

struct host_port {
    std::string host; // a name or a dotted IPv4 address; "" is not valid
    std::uint16_t port = 0;

    std::string to_string() const { return host + ":" + std::to_string(port); }
    friend bool operator==(const host_port&, const host_port&) = default;
};

inline constexpr std::uint32_t default_source_max_size = 16384;

struct source_address {
    std::string name; // empty when given without `name@`
    host_port address;
    std::uint32_t max_size = default_source_max_size;
    friend bool operator==(const source_address&, const source_address&) = default;
};

// `host:port`; port 0 is allowed only where `allow_port_zero` is set (a listen address meaning
// "any free port").
result<host_port> parse_host_port(std::string_view text, bool allow_port_zero = false);

// `name@host:port[:max_size]` or `host:port[:max_size]`.
result<source_address> parse_source_address(std::string_view text);

// Resolves host (names through getaddrinfo, IPv4 only) into an IPv4 address in network order.
result<std::uint32_t> resolve_ipv4(const std::string& host);

// The error for a failed bind or listen on `at` (errno `err`), with a remedy: "<what> <at>:
// address already in use; ...". `what` says which, e.g. "cannot listen on".
error bind_error(std::string_view what, const host_port& at, int err);

} // namespace ringtail::net
