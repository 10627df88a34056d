// One control-channel connection to a peer worker: queued non-blocking writes and incremental reads
// of control_codec frames over a kernel TCP socket, driven by the thread that owns it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/fd.h"
#include "engine/result.h"
#include "net/cluster/control_codec.h"
#include "net/io/host_port.h"

namespace ringtail::net {

// Owns a connected TCP socket (made non-blocking here) and speaks control frames on it. Owned and
// used by one thread (the control thread); it has no thread of its own and never blocks, except in
// flush(), which exists for goodbye messages.
//
// The owner waits on fd() for readability, and for writability while wants_write(), then calls
// poll(). Level-triggered readiness is assumed: poll() reads at most read_budget_bytes, so data may
// remain readable after it returns.
//
// Closing: the peer's EOF, a socket error, a corrupt frame from the peer (counted in
// protocol_errors(), logged once with the peer's description; nothing after it is delivered), a
// send() finding more than max_queued_bytes of earlier output still unread by the peer (so at most
// max_queued_bytes plus one frame is ever queued), or close(). Once closed, fd() is -1, the
// socket is closed, send() drops its message and poll() does nothing; close_reason() says why.
class control_connection {
public:
    static constexpr std::size_t default_max_queued_bytes = 64u << 20;
    static constexpr std::size_t read_chunk_bytes = 64 * 1024;
    static constexpr std::size_t read_budget_bytes = 16 * read_chunk_bytes;

    // Takes ownership of `fd`. `peer_description` names the peer in close reasons and logs
    // ("worker2 at 10.0.0.2:6000"). Frames from the peer above `max_frame` are corrupt.
    control_connection(int fd, std::string peer_description,
                       std::uint32_t max_frame = control_default_max_frame,
                       std::size_t max_queued_bytes = default_max_queued_bytes);
    control_connection(const control_connection&) = delete;
    control_connection& operator=(const control_connection&) = delete;

    // Queues one message; written by later poll() or flush() calls, in send order. Never blocks.
    // `body` must be a JSON object whose frame fits the peer's max_frame (asserted against ours:
    // both ends are meant to use the same limit).
    void send(control_type type, const nlohmann::json& body);

    // Writes queued output until EAGAIN, reads what is available (at most read_budget_bytes) and
    // passes each complete message to `on_message` in order, then writes again (replies the
    // callback queued). The callback may call send() and close(); after close() nothing more is
    // delivered. Returns the bytes read plus the bytes written: 0 means nothing moved.
    std::size_t poll(const std::function<void(control_msg&&)>& on_message);

    // Blocks for at most `max_wait` writing queued output. True when nothing is left queued. Reads
    // nothing, so a peer that stops reading while also writing to us can make it time out.
    bool flush(std::chrono::milliseconds max_wait);

    // Closes the socket now, dropping queued output; reason "closed locally" unless already closed.
    void close();

    bool closed() const { return !_fd; }
    // Why it closed: "connection closed" (the peer's EOF between frames), "connection closed
    // mid-frame", "connection reset", "read failed: ...", "write failed: ...", the decoder's
    // error message, "closed locally"; empty while open.
    const std::string& close_reason() const { return _close_reason; }
    // The socket, or -1 once closed.
    int fd() const { return _fd.get(); }
    bool wants_write() const { return _fd && _out_offset < _out.size(); }
    const std::string& peer() const { return _peer; }

    // Bytes queued and not yet written.
    std::size_t queued_bytes() const { return _out.size() - _out_offset; }
    std::uint64_t messages_sent() const { return _messages_sent; }
    std::uint64_t messages_received() const { return _messages_received; }
    // Corrupt frames received: 0, or 1 if that is why the connection closed.
    std::uint64_t protocol_errors() const { return _protocol_errors; }
    // The decoder's verdict when a corrupt frame closed the connection; none otherwise.
    control_error decode_error() const { return _decoder.error(); }

private:
    // Writes until EAGAIN or nothing is left; returns bytes written. May close the connection.
    std::size_t write_some();
    void close_with(std::string reason);

    unique_fd _fd; // none once closed
    std::string _peer;
    std::size_t _max_queued_bytes;
    control_decoder _decoder;
    std::string _close_reason;
    // Encoded frames; [_out_offset, size) still to write.
    std::string _out;
    std::size_t _out_offset = 0;
    std::string _read_buffer;
    std::uint64_t _messages_sent = 0;
    std::uint64_t _messages_received = 0;
    std::uint64_t _protocol_errors = 0;
};

// Connects to `address` (resolving a name first), blocking for at most `timeout` in all. Returns a
// connected, non-blocking, close-on-exec socket with TCP_NODELAY, ready for control_connection;
// errc::unavailable with one line naming the address on failure or timeout. For the control
// thread at start-up (a worker connecting to the initializer), where blocking is what we want.
result<int> connect_tcp_blocking(const host_port& address, std::chrono::milliseconds timeout);

} // namespace ringtail::net
