// Building the full mesh of data-channel connections between the workers of a cluster, each
// connection opened by a HELLO exchange (net/channel/data_codec.h), before the transport takes it
// over.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "engine/result.h"
#include "net/io/host_port.h"

namespace ringtail::net {

struct data_mesh_config {
    // Shared by the workers of one cluster (handed out by the initializer); a HELLO carrying
    // another is from a different cluster and is refused.
    std::uint64_t cluster_token = 0;
    // This worker's index in data_addresses.
    std::uint32_t self = 0;
    // Every worker's data-channel address, index = worker index.
    std::vector<host_port> data_addresses;
    // How long to wait for the whole mesh.
    std::chrono::milliseconds timeout{ 10'000 };
};

// How often a connect to a worker that is not listening yet is retried.
inline constexpr std::chrono::milliseconds data_mesh_retry_interval{ 100 };

// Connects this worker to every other one: it connects to each worker j < self (retrying every
// data_mesh_retry_interval, since j may not be listening yet) and sends HELLO; it accepts a
// connection from each worker j > self on `listen_fd` (bound and listening; made non-blocking
// here; still owned by the caller), reads its HELLO and answers with its own. Both sides check
// the HELLO they receive: cluster token, version, worker count, and the index (the worker
// connected to, or a worker above self not yet connected). A HELLO that fails is logged in one
// warn line, its connection closed, and the wait goes on.
//
// Returns the connections, index = worker index, -1 at self: non-blocking, TCP_NODELAY, each
// with exactly one frame (the HELLO, seq 0) exchanged each way and nothing more read, ready for
// net/channel/socket_transport.h. On timeout, errc::unavailable naming the workers missing; no fd
// is left open. Blocks the calling thread (the control thread at start-up) for at most `timeout`.
result<std::vector<int>> build_data_mesh(int listen_fd, const data_mesh_config& config);

} // namespace ringtail::net
