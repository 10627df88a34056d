// Reliable, ordered, credit-controlled delivery per peer over a lossy datagram link.
#include "net/channel/datagram_transport.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "engine/clock.h"
#include "engine/log.h"
#include "net/channel/data_codec.h"

namespace ringtail::net {

datagram_link::buffer datagram_link::allocate(peer_id, std::size_t bytes) {
    auto* data = new std::byte[bytes];
    return buffer{ nullptr, data, bytes };
}

void datagram_link::send_buffer(peer_id peer, const buffer& b) {
    send(peer, std::span<const std::byte>(b.data, b.size));
}

void datagram_link::release(buffer& b) {
    delete[] b.data;
    b = buffer{};
}

namespace {

// A sent DATA frame as go-back-N holds it: the link's buffer, given back when acknowledged (or
// when the peer is lost), its bytes counted in `held_bytes` meanwhile.
class held_frame {
public:
    held_frame(datagram_link& link, datagram_link::buffer b, std::size_t& held_bytes)
      : _link(&link)
      , _b(b)
      , _held_bytes(&held_bytes) {
        *_held_bytes += _b.size;
    }
    held_frame(held_frame&& o) noexcept
      : _link(o._link)
      , _b(std::exchange(o._b, datagram_link::buffer{}))
      , _held_bytes(o._held_bytes) {}
    held_frame& operator=(held_frame&& o) noexcept {
        if (this != &o) {
            reset();
            _link = o._link;
            _b = std::exchange(o._b, datagram_link::buffer{});
            _held_bytes = o._held_bytes;
        }
        return *this;
    }
    held_frame(const held_frame&) = delete;
    held_frame& operator=(const held_frame&) = delete;
    ~held_frame() { reset(); }

    const datagram_link::buffer& buffer() const { return _b; }

private:
    void reset() {
        if (_b.data != nullptr) {
            *_held_bytes -= _b.size;
            _link->release(_b);
        }
    }
    datagram_link* _link;
    datagram_link::buffer _b;
    std::size_t* _held_bytes;
};

} // namespace

struct datagram_transport::peer {
    explicit peer(const datagram_transport_config& c)
      : sender(c.gbn)
      , receiver(c.gbn)
      , credit_limit(c.initial_credit) {}

    gbn_sender<held_frame> sender;
    gbn_receiver receiver;
    // A body too large for one frame, whose fragments wait for the window: backlog[backlog_at..]
    // is still to send, and the last fragment carries backlog_count messages.
    std::string backlog;
    std::size_t backlog_at = 0;
    std::uint32_t backlog_count = 0;
    // The fragments of a body received so far (MORE set), waiting for the last one.
    std::string partial;
    // DATA frames that arrived after a gap, within the window, by seq % window_frames: delivered
    // once the gap is filled, so that a frame overtaken on the way (reordered) does not cost the
    // frames behind it a retransmission. Allocated on the first gap.
    struct early_frame {
        std::uint64_t seq = 0; // 0: the slot is empty
        std::uint8_t flags = 0;
        std::uint32_t count = 0;
        std::string body;
    };
    std::vector<early_frame> early;
    std::size_t early_frames = 0; // slots in use
    std::size_t early_bytes = 0;
    std::uint64_t messages_sent = 0;     // DATA messages sent to the peer, in all
    std::uint64_t credit_limit = 0;      // messages_sent may reach this (the peer's last ACK)
    std::uint64_t messages_received = 0; // messages delivered from the peer, in all
    std::uint64_t granted = 0;           // of those, granted back by the engine
    std::uint64_t advertised = 0;        // the credit limit our last ACK carried
    std::uint64_t last_ack_ns = 0;
    std::uint64_t last_heard_ns = 0;
    bool alive = true;
    bool report_pending = false;
    std::string lost_reason;
};

datagram_transport_counters& datagram_transport_counters::operator+=(
  const datagram_transport_counters& o) {
    frames_in += o.frames_in;
    frames_out += o.frames_out;
    messages_in += o.messages_in;
    messages_out += o.messages_out;
    corrupt_frames += o.corrupt_frames;
    duplicates += o.duplicates;
    out_of_order += o.out_of_order;
    kept_early += o.kept_early;
    retransmissions += o.retransmissions;
    fast_retransmissions += o.fast_retransmissions;
    spurious_timeouts += o.spurious_timeouts;
    acks_out += o.acks_out;
    acks_in += o.acks_in;
    acks_piggybacked += o.acks_piggybacked;
    fragments_out += o.fragments_out;
    credit_violations += o.credit_violations;
    peers_lost += o.peers_lost;
    return *this;
}

datagram_transport::datagram_transport(datagram_link& link, peer_id self,
                                       datagram_transport_config config, clock_fn clock)
  : _link(link)
  , _self(self)
  , _config(config)
  , _clock(std::move(clock))
  , _max_datagram_bytes(link.max_datagram_bytes()) {
    if (_max_datagram_bytes <= data_frame_header_bytes + data_ack_trailer_bytes) {
        log::error("datagram_transport: a link whose datagrams ({} bytes) cannot carry a frame",
                   _max_datagram_bytes);
        std::abort(); // a programmer error: every link carries at least an Ethernet MTU
    }
    const std::uint64_t now = now_ns();
    for (peer_id id = 0; id < _link.peer_count(); ++id) {
        auto p = std::make_unique<peer>(_config);
        p->advertised = _config.initial_credit;
        p->last_heard_ns = now;
        p->last_ack_ns = now;
        if (id == _self) {
            p->alive = false;
        }
        _peers.push_back(std::move(p));
    }
}

datagram_transport::~datagram_transport() = default;

std::size_t datagram_transport::max_body_bytes() const {
    return _config.max_body_bytes;
}

std::size_t datagram_transport::fragment_bytes() const {
    return _max_datagram_bytes - data_frame_header_bytes - data_ack_trailer_bytes;
}

bool datagram_transport::peer_alive(peer_id id) const {
    return id < _peers.size() && _peers[id]->alive;
}

std::uint32_t datagram_transport::credit(peer_id id) const {
    if (!peer_alive(id)) {
        return 0;
    }
    const peer& p = *_peers[id];
    if (!p.sender.window_open() || p.backlog_at < p.backlog.size() ||
        p.messages_sent >= p.credit_limit) {
        return 0;
    }
    return static_cast<std::uint32_t>(
      std::min<std::uint64_t>(p.credit_limit - p.messages_sent, 0xFFFFFFFFu));
}

void datagram_transport::send(peer_id id, std::span<const std::byte> body, std::uint32_t count) {
    if (!peer_alive(id)) {
        return; // lost: the exchange counts what it still routes there
    }
    peer& p = *_peers[id];
    if (count == 0 || count > credit(id) || body.size() > max_body_bytes()) {
        log::error("datagram_transport: send of {} messages ({} bytes) beyond the credit or "
                   "frame size for worker {}",
                   count, body.size(), id);
        std::abort(); // the exchange checks credit() and max_body_bytes() first
    }
    const std::uint64_t now = send_ns();
    p.messages_sent += count;
    _counters.messages_out += count;
    if (body.size() <= fragment_bytes()) {
        send_frame(id, body, count, 0, now);
        return;
    }
    // Too large for one datagram: the fragments go out as the window allows, and credit() stays
    // 0 until the last one is sent.
    p.backlog.assign(reinterpret_cast<const char*>(body.data()), body.size());
    p.backlog_at = 0;
    p.backlog_count = count;
    _backlog_bytes += body.size();
    push_backlog(id, now);
}

void datagram_transport::send_frame(peer_id id, std::span<const std::byte> body,
                                    std::uint32_t count, std::uint8_t flags, std::uint64_t now) {
    peer& p = *_peers[id];
    const std::size_t size = data_frame_header_bytes + body.size() + data_ack_trailer_bytes;
    datagram_link::buffer b = _link.allocate(id, size);
    std::memcpy(b.data + data_frame_header_bytes, body.data(), body.size());
    p.advertised = p.granted + _config.initial_credit;
    write_ack_trailer(std::span<std::byte, data_ack_trailer_bytes>(
                        b.data + data_frame_header_bytes + body.size(), data_ack_trailer_bytes),
                      p.receiver.cumulative_ack(), p.advertised);
    seal_data_frame(std::span(b.data, size), data_frame_type::data, flags | data_flag_ack,
                    p.sender.next_seq(), count);
    _link.send_buffer(id, b);
    p.receiver.ack_sent();
    p.last_ack_ns = now;
    p.sender.sent_in_place(now, _link, b, _unacked_bytes);
    ++_counters.frames_out;
    ++_counters.acks_piggybacked;
}

std::size_t datagram_transport::push_backlog(peer_id id, std::uint64_t now) {
    peer& p = *_peers[id];
    std::size_t sent = 0;
    while (p.backlog_at < p.backlog.size() && p.sender.window_open()) {
        const std::size_t left = p.backlog.size() - p.backlog_at;
        const std::size_t take = std::min(left, fragment_bytes());
        const bool last = take == left;
        send_frame(id, std::as_bytes(std::span(p.backlog.data() + p.backlog_at, take)),
                   last ? p.backlog_count : 0, last ? 0 : data_flag_more, now);
        p.backlog_at += take;
        _backlog_bytes -= take;
        ++_counters.fragments_out;
        ++sent;
    }
    if (p.backlog_at == p.backlog.size() && !p.backlog.empty()) {
        std::string{}.swap(p.backlog); // one large body: give its memory back
        p.backlog_at = 0;
    }
    return sent;
}

void datagram_transport::grant(peer_id id, std::uint32_t count) {
    if (id < _peers.size()) {
        _peers[id]->granted += count;
    }
}

void datagram_transport::send_ack(peer_id id, std::uint64_t now) {
    peer& p = *_peers[id];
    p.advertised = p.granted + _config.initial_credit;
    data_ack a{ p.receiver.cumulative_ack(), p.advertised, now };
    if (_config.selective_ack && p.early_frames > 0) {
        // The frames kept after the gap, so that the sender resends none of them: bit i is seq
        // ack + 2 + i (ack + 1 is the gap), as far as the bitmap reaches.
        const std::uint64_t window = _config.gbn.window_frames;
        const std::uint64_t bits = std::min<std::uint64_t>(window, 64 * a.selective.size());
        for (std::uint64_t i = 0; i < bits; ++i) {
            const std::uint64_t seq = a.ack + 2 + i;
            if (p.early[seq % window].seq == seq) {
                a.selective[i / 64] |= std::uint64_t{ 1 } << (i % 64);
            }
        }
    }
    _scratch.clear();
    append_ack_frame(_scratch, a);
    _link.send(id, std::as_bytes(std::span(_scratch.data(), _scratch.size())));
    p.receiver.ack_sent();
    p.last_ack_ns = now;
    ++_counters.acks_out;
}

template<typename Held>
void datagram_transport::resend(peer_id id, const Held& frame) {
    _link.send_buffer(id, frame.buffer());
    ++_counters.retransmissions;
}

void datagram_transport::lose(peer_id id, std::string reason) {
    peer& p = *_peers[id];
    if (!p.alive) {
        return;
    }
    p.alive = false;
    p.report_pending = true;
    p.lost_reason = std::move(reason);
    // Gives the held frames back to the link, and their bytes out of _unacked_bytes.
    p.sender = gbn_sender<held_frame>(_config.gbn);
    _backlog_bytes -= p.backlog.size() - p.backlog_at;
    std::string{}.swap(p.backlog);
    p.backlog_at = 0;
    std::string{}.swap(p.partial);
    std::vector<peer::early_frame>{}.swap(p.early);
    p.early_frames = 0;
    p.early_bytes = 0;
    ++_counters.peers_lost;
}

std::uint64_t datagram_transport::now_ns() const {
    // The engine's clock is called directly: through a std::function it cost a tenth of the time
    // spent on a small frame.
    return _clock ? _clock() : clock::now_ns();
}

std::uint64_t datagram_transport::send_ns() {
    if (_clock) {
        return _clock(); // simulated: exact, as the tests of timeouts expect
    }
    if (_sends_on_reading == 0) {
        _send_reading_ns = clock::now_ns();
    }
    _sends_on_reading = (_sends_on_reading + 1) % sends_per_clock_reading;
    return _send_reading_ns;
}

void datagram_transport::handle(peer_id id, std::span<const std::byte> datagram, std::uint64_t now,
                                transport_events& events) {
    if (id >= _peers.size() || id == _self || !_peers[id]->alive) {
        return;
    }
    peer& p = *_peers[id];
    // One frame per datagram, whole: anything else (a bad checksum, a foreign datagram, two
    // frames or part of one) is dropped and counted, never delivered.
    data_frame f;
    if (decode_data_datagram(datagram, f, _max_datagram_bytes) != data_decode_error::none) {
        ++_counters.corrupt_frames;
        return;
    }
    ++_counters.frames_in;
    p.last_heard_ns = now;
    switch (f.type) {
        case data_frame_type::data:
            if (f.has_ack()) {
                // Stale on a duplicate or a frame out of order, and harmless: acks are cumulative
                // and credit limits only grow.
                apply_ack(id, f.ack, f.credit_limit, now);
            }
            switch (p.receiver.received(f.seq, now)) {
                case gbn_receiver::verdict::deliver:
                    deliver(id, f, events);
                    if (p.early_frames != 0) {
                        deliver_early(id, now, events);
                    }
                    break;
                case gbn_receiver::verdict::duplicate:
                    ++_counters.duplicates;
                    break;
                case gbn_receiver::verdict::out_of_order:
                    ++_counters.out_of_order;
                    keep_early(id, f);
                    // An ACK of its own at once, for every frame after a gap: it says which
                    // frames are kept, so that the sender resends the missing ones before their
                    // timeout and none of the kept ones (gbn_sender::selective_ack).
                    send_ack(id, now);
                    break;
            }
            return;
        case data_frame_type::ack:
            if (auto a = parse_ack(f)) {
                ++_counters.acks_in;
                apply_ack(id, a->ack, a->credit_limit, now);
                const std::uint64_t fast = p.sender.fast_retransmissions();
                p.sender.selective_ack(
                  a->ack, a->selective, now,
                  [&](const held_frame& frame, std::uint64_t) { resend(id, frame); });
                _counters.fast_retransmissions += p.sender.fast_retransmissions() - fast;
            }
            return;
        case data_frame_type::bye:
            lose(id, "left the cluster");
            return;
        case data_frame_type::hello:
        case data_frame_type::credit:
            return; // not used on datagram links
    }
}

void datagram_transport::apply_ack(peer_id id, std::uint64_t ack, std::uint64_t credit_limit,
                                   std::uint64_t now) {
    peer& p = *_peers[id];
    const std::uint64_t spurious = p.sender.spurious_timeouts();
    p.sender.acked(ack, now); // the released frames take their bytes out of _unacked_bytes
    _counters.spurious_timeouts += p.sender.spurious_timeouts() - spurious;
    p.credit_limit = std::max(p.credit_limit, credit_limit);
}

void datagram_transport::keep_early(peer_id id, const data_frame& f) {
    peer& p = *_peers[id];
    const std::uint64_t window = _config.gbn.window_frames;
    if (f.seq >= p.receiver.expected_seq() + window) {
        return; // beyond any window the sender can have: dropped, as go-back-N would
    }
    if (p.early.empty()) {
        p.early.resize(window);
    }
    auto& slot = p.early[f.seq % window];
    if (slot.seq == f.seq) {
        ++_counters.duplicates; // already kept
        return;
    }
    // A slot holds an older seq only if that one was delivered (the window moved past it).
    p.early_frames += slot.seq == 0 ? 1 : 0;
    slot.seq = f.seq;
    slot.flags = f.flags & data_flag_more;
    slot.count = f.count;
    p.early_bytes += f.body.size();
    p.early_bytes -= slot.body.size();
    slot.body.assign(reinterpret_cast<const char*>(f.body.data()), f.body.size());
    ++_counters.kept_early;
}

void datagram_transport::deliver_early(peer_id id, std::uint64_t now, transport_events& events) {
    peer& p = *_peers[id];
    const std::uint64_t window = _config.gbn.window_frames;
    for (;;) {
        if (!p.alive) {
            return; // deliver() cut the peer off
        }
        const std::uint64_t seq = p.receiver.expected_seq();
        auto& slot = p.early[seq % window];
        if (slot.seq != seq) {
            return;
        }
        p.receiver.received(seq, now); // the next in order: deliver
        // Out of the slot first: deliver() may cut the peer off, which frees the slots.
        _early_scratch.swap(slot.body);
        slot.body.clear();
        slot.seq = 0;
        --p.early_frames;
        p.early_bytes -= _early_scratch.size();
        data_frame f;
        f.type = data_frame_type::data;
        f.flags = slot.flags;
        f.seq = seq;
        f.count = slot.count;
        f.body = std::as_bytes(std::span(_early_scratch.data(), _early_scratch.size()));
        deliver(id, f, events);
    }
}

void datagram_transport::deliver(peer_id id, const data_frame& f, transport_events& events) {
    peer& p = *_peers[id];
    if (!f.more() && p.messages_received + f.count > p.granted + _config.initial_credit) {
        // More than we ever allowed: a peer that ignores credit is cut off, as on the socket
        // back end; its frame is never delivered.
        ++_counters.credit_violations;
        lose(id, "corrupt: it sent beyond its credit");
        return;
    }
    const bool fragment = f.more() || !p.partial.empty();
    if (fragment && p.partial.size() + f.body.size() > _config.max_body_bytes) {
        lose(id, "corrupt: its fragments make a body larger than " +
                   std::to_string(_config.max_body_bytes) + " bytes");
        return;
    }
    if (!fragment) {
        p.messages_received += f.count;
        _counters.messages_in += f.count;
        events.on_messages(id, f.body, f.count);
        return;
    }
    p.partial.append(reinterpret_cast<const char*>(f.body.data()), f.body.size());
    if (f.more()) {
        return;
    }
    p.messages_received += f.count;
    _counters.messages_in += f.count;
    events.on_messages(id, std::as_bytes(std::span(p.partial.data(), p.partial.size())), f.count);
    std::string{}.swap(p.partial);
}

std::size_t datagram_transport::poll(transport_events& events) {
    std::size_t work = 0;
    // With every peer gone, the link is left alone: nothing on it can matter any more, and a
    // memif port whose peer has left must not be polled while the peer closes it (the PMD can
    // fault). Lost peers are final, so this is for good.
    if (std::any_of(_peers.begin(), _peers.end(), [](const auto& p) { return p->alive; })) {
        _link.flush(); // DATA frames the exchange sent since the last poll
        // One clock reading for the whole burst received. The callback captures one reference,
        // so that std::function keeps it in place instead of on the heap: a malloc and a free on
        // every poll cost the receiving side as much as its checksums did.
        struct burst {
            datagram_transport& self;
            transport_events& events;
            std::uint64_t received_at;
        } b{ *this, events, now_ns() };
        work = _link.receive([&b](peer_id id, std::span<const std::byte> datagram) {
            b.self.handle(id, datagram, b.received_at, b.events);
        });
    }
    const std::uint64_t now = now_ns();
    _send_reading_ns = now; // the sends until the next poll start from this reading
    _sends_on_reading = 1;
    for (peer_id id = 0; id < _peers.size(); ++id) {
        peer& p = *_peers[id];
        if (!p.alive) {
            continue;
        }
        // A timeout, or frames overtaken in a burst and still missing (fast retransmission).
        const std::uint64_t fast = p.sender.fast_retransmissions();
        work +=
          p.sender.poll(now, [&](const held_frame& frame, std::uint64_t) { resend(id, frame); });
        _counters.fast_retransmissions += p.sender.fast_retransmissions() - fast;
        if (p.sender.unreachable()) {
            lose(id, "unreachable: " + std::to_string(_config.gbn.max_timeouts) +
                       " retransmission timeouts without an acknowledgement");
            continue;
        }
        work += push_backlog(id, now);
        if (now - p.last_heard_ns > _config.silence_timeout_ns) {
            lose(id, "unreachable: nothing heard for " +
                       std::to_string(_config.silence_timeout_ns / 1'000'000) + " ms");
            continue;
        }
        // An ACK when one is owed, when the credit we can give grew by a quarter of the window,
        // or every ack_interval_ns (credit and liveness, made good if an earlier one was lost).
        const std::uint64_t limit = p.granted + _config.initial_credit;
        if (p.receiver.ack_due(now) || limit - p.advertised >= _config.initial_credit / 4 ||
            now - p.last_ack_ns >= _config.ack_interval_ns) {
            send_ack(id, now);
            ++work;
        }
    }
    _link.flush(); // ACKs and retransmissions
    for (peer_id id = 0; id < _peers.size(); ++id) {
        peer& p = *_peers[id];
        if (p.report_pending) {
            p.report_pending = false;
            events.on_peer_lost(id, p.lost_reason);
            ++work;
        }
    }
    return work;
}

// The go-back-N timers' "none" is what the exchange reads as no deadline (engine/transport.h).
static_assert(gbn_no_deadline == transport::no_deadline);

std::uint64_t datagram_transport::next_deadline_ns() const {
    std::uint64_t next = _link.next_deadline_ns();
    for (const auto& p : _peers) {
        if (p->alive) {
            next =
              std::min({ next, p->sender.next_deadline_ns(), p->receiver.next_ack_deadline_ns(),
                         p->last_ack_ns + _config.ack_interval_ns });
        }
    }
    return next;
}

void datagram_transport::say_goodbye() {
    std::string bye;
    append_data_frame(bye, data_frame_type::bye, 0, 0);
    for (peer_id id = 0; id < _peers.size(); ++id) {
        if (_peers[id]->alive) {
            for (int i = 0; i < 3; ++i) {
                _link.send(id, std::as_bytes(std::span(bye.data(), bye.size())));
            }
        }
    }
    _link.flush();
}

} // namespace ringtail::net
