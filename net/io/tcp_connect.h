// Non-blocking TCP connects, shared by every client connection that must never block its thread
// (sink connections on shards, the monitoring-hub client on the metrics thread).
#pragma once

#include <cstdint>

namespace ringtail::net {

// A fresh non-blocking, close-on-exec TCP socket with TCP_NODELAY; -errno on failure.
int open_tcp_socket();

// Starts connecting `fd` to `ip` (network byte order) and `port`. Returns 0 when the connect is
// under way or already done (poll_connect tells which), else the errno.
int begin_connect(int fd, std::uint32_t ip, std::uint16_t port);

enum class connect_state { pending, connected, failed };

// Where a connect begun with begin_connect stands, without blocking; `err` is the reason of a
// failure.
connect_state poll_connect(int fd, int& err);

} // namespace ringtail::net
