// The socket back end of the data channel (DESIGN.md §4): one kernel TCP connection per peer,
// data-channel frames (net/channel/data_codec.h), credit-based flow control, one epoll for all
// peers.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/fd.h"
#include "engine/transport.h"
#include "net/channel/data_codec.h"

namespace ringtail::net {

struct socket_transport_config {
    // Messages each side may send to a peer before the peer grants more. Both ends of a
    // connection must use the same value: the receiver checks that the sender keeps to it.
    std::uint32_t initial_credit = 16384;
    // The largest body one DATA frame carries (transport::max_body_bytes).
    std::size_t max_body_bytes = 256 * 1024;
    // The largest frame accepted from a peer, header included; at least max_body_bytes plus the
    // header.
    std::size_t max_frame_bytes = default_max_data_frame_bytes;
    // Frames each side has already sent on every connection before the transport takes it over:
    // the HELLO of build_data_mesh (net/channel/data_mesh.h), so 1. 0 for bare connections (tests).
    std::uint64_t first_seq = 1;
};

// What a socket_transport has done so far; a snapshot of relaxed counters.
struct socket_transport_counters {
    std::uint64_t frames_in = 0;
    std::uint64_t frames_out = 0; // frames queued (DATA, CREDIT, BYE)
    std::uint64_t bytes_in = 0;
    std::uint64_t bytes_out = 0; // bytes handed to the kernel
    std::uint64_t messages_in = 0;
    std::uint64_t messages_out = 0;
    // Connections dropped for a bad frame, a sequence gap, or a peer breaking the credit rules.
    std::uint64_t corrupt_frames = 0;
    // Connections lost for any reason but a BYE (closed, reset, corrupt).
    std::uint64_t peers_lost = 0;
    // Peers that said BYE.
    std::uint64_t peers_left = 0;
    // Messages given to send() for a peer already lost, and dropped.
    std::uint64_t messages_dropped = 0;
};

// The data channel over connected TCP sockets, one per peer.
//
// Threading: every call but counters() on one thread, the engine's exchange thread (as
// engine/transport.h says); counters() from any thread.
//
// Ownership: the transport owns the sockets it is given and closes them; it makes them
// non-blocking and sets TCP_NODELAY.
//
// Flow control: each direction of a connection starts with initial_credit messages of credit.
// send() consumes credit; the receiver returns it with CREDIT frames as the engine calls grant().
// A peer that sends beyond the credit it was given, grants more than it was sent, skips a
// sequence number or sends a frame that does not decode is cut off (on_peer_lost, counted in
// corrupt_frames).
//
// Waiting: wait_fd() is a level-triggered epoll over the sockets (EPOLLIN always, EPOLLOUT only
// while a socket has refused output), so it is readable exactly while poll() has socket work.
// Frames queued by send() and grant() since the last poll() are not announced by it: the caller
// polls after queueing (pending_bytes() tells whether output is waiting).
class socket_transport final : public ringtail::transport {
public:
    // `fds[i]` is the connection to worker i, -1 at `self`. Throws std::system_error if the
    // epoll cannot be made (start-up only).
    socket_transport(std::vector<int> fds, std::uint32_t self, socket_transport_config config = {});
    ~socket_transport() override;
    socket_transport(const socket_transport&) = delete;
    socket_transport& operator=(const socket_transport&) = delete;

    std::uint32_t peer_count() const override { return static_cast<std::uint32_t>(_peers.size()); }
    int wait_fd() const override { return _epoll_fd.get(); }
    std::size_t poll(transport_events& events) override;
    std::uint32_t credit(peer_id peer) const override;
    void send(peer_id peer, std::span<const std::byte> body, std::uint32_t count) override;
    std::size_t max_body_bytes() const override { return _config.max_body_bytes; }
    void grant(peer_id peer, std::uint32_t count) override;
    std::size_t pending_bytes() const override { return _pending_bytes; }
    bool peer_alive(peer_id peer) const override;

    // Leaving the cluster cleanly: queues BYE to every live peer, writes what is queued for at
    // most goodbye_timeout_ms, and shuts the connections down for writing. Afterwards every peer
    // counts as gone (credit 0, sends dropped) and poll() does nothing; no on_peer_lost is
    // reported for them.
    void say_goodbye() override;
    static constexpr int goodbye_timeout_ms = 200;

    std::uint32_t self() const { return _self; }
    // Any thread.
    socket_transport_counters counters() const;

private:
    struct peer {
        unique_fd fd; // none at self and once the peer is lost
        bool alive = false;
        // Set when the peer is lost; reported (once) at the end of the poll that lost it.
        bool report_pending = false;
        std::string lost_reason;
        data_frame_decoder decoder;
        std::uint64_t next_seq_in = 0;
        std::uint64_t next_seq_out = 0;
        // Messages we may still send to the peer.
        std::uint32_t credit = 0;
        // Messages the peer sent that the engine has not granted back yet (at most
        // initial_credit), and what was granted but not yet sent in a CREDIT frame.
        std::uint32_t unreturned_in = 0;
        std::uint32_t grant_pending = 0;
        // Output: bytes [out_offset, out.size()) are waiting for the kernel.
        std::string out;
        std::size_t out_offset = 0;
        // The kernel refused output and has not announced room since.
        bool blocked = false;
        // EPOLLOUT is registered: from a refused write until the output is empty.
        bool want_output = false;

        explicit peer(std::size_t max_frame_bytes)
          : decoder(max_frame_bytes) {}
        std::size_t pending() const { return out.size() - out_offset; }
    };

    struct atomic_counters {
        std::atomic<std::uint64_t> frames_in{ 0 };
        std::atomic<std::uint64_t> frames_out{ 0 };
        std::atomic<std::uint64_t> bytes_in{ 0 };
        std::atomic<std::uint64_t> bytes_out{ 0 };
        std::atomic<std::uint64_t> messages_in{ 0 };
        std::atomic<std::uint64_t> messages_out{ 0 };
        std::atomic<std::uint64_t> corrupt_frames{ 0 };
        std::atomic<std::uint64_t> peers_lost{ 0 };
        std::atomic<std::uint64_t> peers_left{ 0 };
        std::atomic<std::uint64_t> messages_dropped{ 0 };
    };

    peer& live_peer_or_abort(peer_id id, const char* what);
    // Reads what the socket holds (up to a budget) and decodes it; returns frames delivered.
    std::size_t read_peer(peer_id id, transport_events& events);
    // Handles one decoded frame; returns false once the peer is lost.
    bool on_frame(peer_id id, const data_frame& frame, transport_events& events);
    // Writes until the output is empty or the kernel refuses; returns bytes written.
    std::size_t flush_peer(peer_id id);
    void set_want_output(peer_id id, bool want);
    void queue_frame(peer_id id, data_frame_type type, std::uint32_t count,
                     std::span<const std::byte> body);
    // Closes the connection and drops its output. `corrupt`: the peer broke the protocol.
    void lose_peer(peer_id id, std::string reason, bool corrupt, bool left = false);
    void drop_output(peer& p);

    socket_transport_config _config;
    std::uint32_t _self;
    // Declared before _peers, so destroyed after them: the epoll outlives the sockets in it.
    unique_fd _epoll_fd;
    std::vector<peer> _peers;
    std::size_t _pending_bytes = 0;
    bool _said_goodbye = false;
    // One read buffer for all peers; the decoders copy out only unfinished tails.
    std::vector<std::byte> _read_buf;
    atomic_counters _counters;
};

} // namespace ringtail::net
