// libFuzzer target for the reliable data channel over datagrams (net/channel/datagram_transport.h):
// a peer (or a stranger) sends any datagrams at all, at fuzzer-chosen times, among them DATA frames
// with piggybacked acks and MORE fragments; the transport itself sends bodies of fuzzer-chosen
// sizes, some cut into fragments. The transport must never crash, never deliver more messages
// than the credit it gave nor a body larger than max_body_bytes, keep its held bytes within the
// go-back-N window and one body being fragmented per peer, send every DATA frame from a link
// buffer with its ACK trailer, give every buffer back exactly once, and report each lost peer at
// most once.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "engine/big_endian.h"
#include "net/channel/data_codec.h"
#include "net/channel/datagram_transport.h"

namespace {

using namespace ringtail::net;

void check(bool condition) {
    if (!condition) {
        std::abort();
    }
}

constexpr std::size_t max_datagram = 512;
constexpr std::size_t fragment = max_datagram - data_frame_header_bytes - data_ack_trailer_bytes;

// The one frame in `d`, which must be exactly one good frame.
data_frame_type type_of(std::span<const std::byte> d, bool& has_ack) {
    data_frame_decoder decoder(max_datagram);
    int frames = 0;
    data_frame_type type = data_frame_type::hello;
    auto err = decoder.feed(d, [&](const data_frame& f) {
        ++frames;
        type = f.type;
        has_ack = f.has_ack();
    });
    check(err == data_decode_error::none && frames == 1 && !decoder.mid_frame());
    return type;
}

struct fuzz_link final : datagram_link {
    std::vector<std::pair<ringtail::peer_id, std::string>> inbound;
    std::map<std::uintptr_t, std::vector<std::byte>> live; // buffers handed out
    std::uintptr_t next_id = 0;

    std::uint32_t peer_count() const override { return 3; }
    int wait_fd() const override { return -1; }
    std::size_t max_datagram_bytes() const override { return max_datagram; }
    void send(ringtail::peer_id peer, std::span<const std::byte> d) override {
        check(peer != 0 && peer < 3);
        check(d.size() <= max_datagram_bytes());
        bool has_ack = false;
        check(type_of(d, has_ack) != data_frame_type::data); // DATA goes in buffers
    }
    std::size_t receive(
      const std::function<void(ringtail::peer_id, std::span<const std::byte>)>& on) override {
        auto batch = std::move(inbound);
        inbound.clear();
        for (auto& [peer, bytes] : batch) {
            on(peer, std::as_bytes(std::span(bytes.data(), bytes.size())));
        }
        return batch.size();
    }
    buffer allocate(ringtail::peer_id peer, std::size_t bytes) override {
        check(peer != 0 && peer < 3);
        check(bytes <= max_datagram_bytes());
        auto& memory = live[++next_id];
        memory.resize(bytes);
        return buffer{ reinterpret_cast<void*>(next_id), memory.data(), bytes };
    }
    void send_buffer(ringtail::peer_id peer, const buffer& b) override {
        check(peer != 0 && peer < 3);
        auto it = live.find(reinterpret_cast<std::uintptr_t>(b.handle));
        check(it != live.end() && it->second.data() == b.data && it->second.size() == b.size);
        bool has_ack = false;
        check(type_of(std::span<const std::byte>(b.data, b.size), has_ack) ==
              data_frame_type::data);
        check(has_ack);
    }
    void release(buffer& b) override {
        auto it = live.find(reinterpret_cast<std::uintptr_t>(b.handle));
        check(it != live.end() && it->second.data() == b.data); // released once
        live.erase(it);
        b = buffer{};
    }
};

struct events final : ringtail::transport_events {
    std::size_t max_body = 0;
    std::uint64_t messages[3] = {};
    int lost[3] = {};
    void on_messages(ringtail::peer_id peer, std::span<const std::byte> body,
                     std::uint32_t count) override {
        check(peer < 3 && peer != 0);
        check(count > 0);
        check(!body.empty() && body.size() <= max_body);
        messages[peer] += count;
    }
    void on_peer_lost(ringtail::peer_id peer, const std::string&) override {
        check(peer < 3 && peer != 0);
        ++lost[peer];
        check(lost[peer] == 1);
    }
};

// A DATA frame as a peer's transport would send it: `flags` | ACK, the body, the trailer.
std::string data_frame_with_ack(std::uint8_t flags, std::uint64_t seq, std::uint32_t count,
                                std::size_t body_bytes, std::uint64_t ack,
                                std::uint64_t credit_limit) {
    std::vector<std::byte> f(data_frame_header_bytes + body_bytes + data_ack_trailer_bytes,
                             std::byte{ 'p' });
    write_ack_trailer(std::span(f).last<data_ack_trailer_bytes>(), ack, credit_limit);
    seal_data_frame(f, data_frame_type::data, static_cast<std::uint8_t>(flags | data_flag_ack), seq,
                    count);
    return std::string(reinterpret_cast<const char*>(f.data()), f.size());
}

} // namespace

// Input: a run of records [u8 peer][u8 time step][u16 length][...]. A record whose length has its
// top bit set stands for well-formed frames built from the length's bits and one more byte `x`:
// bits 5-7 pick a plain DATA frame, an ACK frame, BYE, a MORE fragment with a piggybacked ack,
// the last fragment with one, or a whole train of fragments (as a peer's transport cuts a body);
// bit 4 gives DATA the seq the peer expects next (so that fragments are delivered and
// reassembled), else bits 0-3 are the seq; bits 8-13 the count, ack and credit limit (and the
// train's length); the body is x * 4 bytes (some do not fit a datagram). Otherwise
// `length % 600` raw bytes follow. After each record the transport sends each peer a body of a
// record-chosen size (up to a few fragments) if credit allows, and polls.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::uint64_t now = 1'000'000'000;
    fuzz_link link;
    datagram_transport_config cfg;
    cfg.initial_credit = 64;
    cfg.gbn.window_frames = 8;
    cfg.max_body_bytes = 4 * fragment + 100;
    events ev;
    ev.max_body = cfg.max_body_bytes;
    {
        datagram_transport t(link, 0, cfg, [&now] { return now; });
        check(t.max_body_bytes() == cfg.max_body_bytes);
        std::size_t i = 0;
        std::uint64_t next_seq[4] = { 1, 1, 1, 1 }; // what each peer's next DATA frame carries
        const std::string out_body(cfg.max_body_bytes, 'm');
        while (i + 4 <= size) {
            const ringtail::peer_id peer = data[i] % 4; // 3 is no peer at all
            now += static_cast<std::uint64_t>(data[i + 1]) * 100'000;
            std::uint16_t len = static_cast<std::uint16_t>((data[i + 2] << 8) | data[i + 3]);
            i += 4;
            std::size_t send_bytes = 16;
            if ((len & 0x8000) != 0) {
                const std::uint8_t x = i < size ? data[i++] : 0;
                const std::size_t body_bytes = std::max<std::size_t>(1, std::size_t{ x } * 4);
                const unsigned high = (len >> 8) & 0x3F;
                const auto count = static_cast<std::uint32_t>(1 + high % 40);
                const std::uint64_t ack = high & 0x0F;
                const std::uint64_t limit = std::uint64_t{ high } * 2;
                const bool in_order = (len & 0x10) != 0;
                auto seq = [&] {
                    return in_order ? next_seq[peer]++ : std::uint64_t{ len & 0x0Fu };
                };
                std::string d;
                switch ((len >> 5) & 7) {
                    case 0:
                    case 6:
                        append_data_frame(
                          d, data_frame_type::data, seq(), count,
                          std::as_bytes(std::span(out_body.data(), 1 + body_bytes % fragment)));
                        break;
                    case 1:
                        // With selective bits from the input: frames held after a gap.
                        append_ack_frame(d, data_ack{ len & 0x0Fu, limit, 0, { x * 0x0101u } });
                        break;
                    case 2:
                        append_data_frame(d, data_frame_type::bye, 0, 0);
                        break;
                    case 3:
                        d = data_frame_with_ack(data_flag_more, seq(), 0, body_bytes, ack, limit);
                        break;
                    case 4:
                        d = data_frame_with_ack(0, seq(), count, body_bytes, ack, limit);
                        break;
                    default: {
                        // A body of 2..9 fragments of up to a datagram each, in order.
                        const std::size_t piece = std::min(body_bytes, fragment);
                        const unsigned pieces = 2 + high % 8;
                        for (unsigned k = 0; k + 1 < pieces; ++k) {
                            link.inbound.emplace_back(
                              peer,
                              data_frame_with_ack(data_flag_more, seq(), 0, piece, ack, limit));
                        }
                        d = data_frame_with_ack(0, seq(), count, piece, ack, limit);
                        break;
                    }
                }
                link.inbound.emplace_back(peer, std::move(d));
                send_bytes = 1 + std::size_t{ x } * 9 % cfg.max_body_bytes;
            } else {
                len = static_cast<std::uint16_t>(std::min<std::size_t>(len % 600, size - i));
                link.inbound.emplace_back(
                  peer, std::string(reinterpret_cast<const char*>(data + i), len));
                i += len;
            }
            // Send what credit allows, as the exchange would.
            for (ringtail::peer_id p = 1; p < 3; ++p) {
                if (t.credit(p) > 0) {
                    t.send(p, std::as_bytes(std::span(out_body.data(), send_bytes)), 1);
                }
            }
            t.poll(ev);
            for (ringtail::peer_id p = 1; p < 3; ++p) {
                // Nothing was granted back: at most the initial credit is ever delivered.
                check(ev.messages[p] <= cfg.initial_credit);
                if (!t.peer_alive(p)) {
                    check(t.credit(p) == 0);
                }
            }
            // Per peer: a window of frames held, and what waits of one body.
            check(t.pending_bytes() <=
                  2 * (cfg.gbn.window_frames * max_datagram + cfg.max_body_bytes));
            check(link.live.size() <= 2 * cfg.gbn.window_frames);
        }
        if (!t.peer_alive(1) && !t.peer_alive(2)) {
            check(link.live.empty() && t.pending_bytes() == 0);
        }
    }
    // Destroyed: every buffer given back.
    check(link.live.empty());
    return 0;
}
