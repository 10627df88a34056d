// Opening the listening sockets of TCP sources and channels.
#pragma once

#include <cstdint>

#include "engine/result.h"
#include "net/io/host_port.h"

namespace ringtail::net {

// Opens a non-blocking, close-on-exec IPv4 listening socket with SO_REUSEADDR on `at` (port 0 picks
// a free port; see bound_port). The caller owns the returned fd. Errors: the address is in use ->
// errc::unavailable; the host cannot be resolved or is not an address of this machine ->
// errc::usage; any other failure -> errc::unavailable. Control plane only: it may resolve a name.
result<int> listen_tcp(const host_port& at, int backlog = 1024);

// The local port a bound socket listens on (0 if it cannot be read).
std::uint16_t bound_port(int fd);

} // namespace ringtail::net
