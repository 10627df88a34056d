// Parsing of command-line addresses.
#include "net/io/host_port.h"

#include <arpa/inet.h>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <netdb.h>
#include <sys/socket.h>

namespace ringtail::net {
namespace {

template<typename Int>
bool parse_uint(std::string_view s, Int& out) {
    if (s.empty()) {
        return false;
    }
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc{} && p == s.data() + s.size();
}

error bad(std::string_view text, std::string_view why) {
    return error{ errc::usage, "bad address '" + std::string(text) + "': " + std::string(why) };
}

} // namespace

result<host_port> parse_host_port(std::string_view text, bool allow_port_zero) {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
        return bad(text, "expected host:port");
    }
    host_port hp;
    hp.host = std::string(text.substr(0, colon));
    if (hp.host.empty()) {
        return bad(text, "the host is empty");
    }
    if (hp.host.find(':') != std::string::npos || hp.host.find('@') != std::string::npos) {
        return bad(text, "expected host:port");
    }
    std::uint32_t port = 0;
    if (!parse_uint(text.substr(colon + 1), port) || port > 65535) {
        return bad(text, "the port must be a number from 1 to 65535");
    }
    if (port == 0 && !allow_port_zero) {
        return bad(text, "port 0 is not allowed here");
    }
    hp.port = static_cast<std::uint16_t>(port);
    return hp;
}

result<source_address> parse_source_address(std::string_view text) {
    source_address sa;
    std::string_view rest = text;
    if (auto at = rest.find('@'); at != std::string_view::npos) {
        sa.name = std::string(rest.substr(0, at));
        if (sa.name.empty()) {
            return bad(text, "the source name before '@' is empty");
        }
        rest = rest.substr(at + 1);
    }
    // host:port or host:port:max
    auto first = rest.find(':');
    if (first == std::string_view::npos) {
        return bad(text, "expected [name@]host:port[:max_size]");
    }
    auto second = rest.find(':', first + 1);
    std::string_view hp_text = rest;
    if (second != std::string_view::npos) {
        hp_text = rest.substr(0, second);
        std::uint32_t max = 0;
        if (!parse_uint(rest.substr(second + 1), max) || max == 0) {
            return bad(text, "max_size must be a positive number of bytes");
        }
        sa.max_size = max;
    }
    auto hp = parse_host_port(hp_text, /*allow_port_zero=*/true);
    if (!hp) {
        return hp.err();
    }
    sa.address = hp.value();
    return sa;
}

result<std::uint32_t> resolve_ipv4(const std::string& host) {
    in_addr a{};
    if (::inet_pton(AF_INET, host.c_str(), &a) == 1) {
        return a.s_addr;
    }
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res);
    if (rc != 0 || res == nullptr) {
        return error{ errc::usage, "cannot resolve host '" + host + "': " + ::gai_strerror(rc) };
    }
    auto addr = reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr.s_addr;
    ::freeaddrinfo(res);
    return addr;
}

error bind_error(std::string_view what, const host_port& at, int err) {
    std::string where = std::string(what) + " " + at.to_string() + ": ";
    switch (err) {
        case EADDRINUSE:
            return error{ errc::unavailable,
                          where + "address already in use; stop the process using it or choose "
                                  "another port" };
        case EADDRNOTAVAIL:
            return error{ errc::usage, where + "cannot assign requested address; use an address of "
                                               "this machine (or 0.0.0.0)" };
        case EACCES:
            return error{ errc::unavailable,
                          where +
                            "permission denied; choose a port above 1023 or grant the process "
                            "CAP_NET_BIND_SERVICE" };
        default:
            return error{ errc::unavailable, where + std::strerror(err) };
    }
}

} // namespace ringtail::net
