// libFuzzer target for the reliable data channel over datagrams (net/datagram_transport.h): a
// peer (or a stranger) sends any datagrams at all, at fuzzer-chosen times. The transport must
// never crash, never deliver more messages than the credit it gave, keep its held bytes within the
// go-back-N window, and report each lost peer at most once.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "engine/big_endian.h"
#include "net/data_codec.h"
#include "net/datagram_transport.h"

namespace {

void check(bool condition) {
    if (!condition) {
        std::abort();
    }
}

struct fuzz_link final : ringtail::net::datagram_link {
    std::vector<std::pair<ringtail::peer_id, std::string>> inbound;
    std::uint32_t peer_count() const override { return 3; }
    int wait_fd() const override { return -1; }
    std::size_t max_datagram_bytes() const override { return 512; }
    void send(ringtail::peer_id, std::span<const std::byte> d) override {
        check(d.size() <= max_datagram_bytes());
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
};

struct events final : ringtail::transport_events {
    std::uint64_t messages[3] = {};
    int lost[3] = {};
    void on_messages(ringtail::peer_id peer, std::span<const std::byte>,
                     std::uint32_t count) override {
        check(peer < 3 && peer != 0);
        messages[peer] += count;
    }
    void on_peer_lost(ringtail::peer_id peer, const std::string&) override {
        check(peer < 3 && peer != 0);
        ++lost[peer];
        check(lost[peer] == 1);
    }
};

} // namespace

// Input: a run of records [u8 peer][u8 time step][u16 length][length bytes]; a record whose
// length byte pair has its top bit set is turned into a well-formed frame of that type (DATA,
// ACK, BYE) with fuzzer-chosen fields, so the protocol's states are reached, not only the
// decoder's rejections.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace ringtail::net;
    std::uint64_t now = 1'000'000'000;
    fuzz_link link;
    datagram_transport_config cfg;
    cfg.initial_credit = 64;
    cfg.gbn.window_frames = 8;
    datagram_transport t(link, 0, cfg, [&now] { return now; });
    events ev;
    std::size_t i = 0;
    const std::string body(16, 'm');
    while (i + 4 <= size) {
        const ringtail::peer_id peer = data[i] % 4; // 3 is no peer at all
        now += static_cast<std::uint64_t>(data[i + 1]) * 100'000;
        std::uint16_t len = static_cast<std::uint16_t>((data[i + 2] << 8) | data[i + 3]);
        i += 4;
        std::string d;
        if ((len & 0x8000) != 0) {
            const std::uint64_t seq = len & 0x1F;
            switch ((len >> 5) % 3) {
                case 0:
                    append_data_frame(d, data_frame_type::data, seq, 1 + (len >> 7) % 40,
                                      std::as_bytes(std::span(body.data(), body.size())));
                    break;
                case 1:
                    append_ack_frame(d, data_ack{ seq, static_cast<std::uint64_t>(len >> 7), 0 });
                    break;
                default:
                    append_data_frame(d, data_frame_type::bye, 0, 0);
                    break;
            }
        } else {
            len = static_cast<std::uint16_t>(std::min<std::size_t>(len % 600, size - i));
            d.assign(reinterpret_cast<const char*>(data + i), len);
            i += len;
        }
        link.inbound.emplace_back(peer, std::move(d));
        // Send what credit allows, as the exchange would.
        for (ringtail::peer_id p = 1; p < 3; ++p) {
            if (t.credit(p) > 0) {
                t.send(p, std::as_bytes(std::span(body.data(), body.size())), 1);
            }
        }
        t.poll(ev);
        for (ringtail::peer_id p = 1; p < 3; ++p) {
            // Nothing was granted back: at most the initial credit is ever delivered.
            check(ev.messages[p] <= cfg.initial_credit);
        }
        check(t.pending_bytes() <= 2 * cfg.gbn.window_frames * (data_frame_header_bytes + 16));
    }
    return 0;
}
