// libFuzzer target for the data-channel frame decoder (version 2): arbitrary bytes, fed whole and
// cut at a point the input picks, must decode without UB, within the size limit, identically both
// ways, and every frame delivered must encode back (with its flags and ACK trailer) to exactly the
// bytes it came from. In the structured mode the input describes frames of any type, flags, count
// and body, and the decoder's verdict on each is compared with a model of the rules written here
// from the spec (net/channel/data_codec.h). The whole input as one datagram must get the same
// verdict from decode_data_datagram as from the decoder.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "engine/big_endian.h"
#include "net/channel/crc32c.h"
#include "net/channel/data_codec.h"

namespace {

using ringtail::net::data_ack_trailer_bytes;
using ringtail::net::data_decode_error;
using ringtail::net::data_flag_ack;
using ringtail::net::data_flag_more;
using ringtail::net::data_frame;
using ringtail::net::data_frame_decoder;
using ringtail::net::data_frame_header_bytes;
using ringtail::net::data_frame_type;

void check(bool condition) {
    if (!condition) {
        std::abort();
    }
}

struct frame_copy {
    data_frame_type type;
    std::uint8_t flags;
    std::uint64_t seq;
    std::uint32_t count;
    std::vector<std::byte> body;
    std::uint64_t ack;
    std::uint64_t credit_limit;
    friend bool operator==(const frame_copy&, const frame_copy&) = default;

    // The bytes of the frame on the wire: header, body and trailer.
    std::size_t wire_bytes() const {
        return data_frame_header_bytes + body.size() +
               ((flags & data_flag_ack) != 0 ? data_ack_trailer_bytes : 0);
    }
};

struct decoded {
    std::vector<frame_copy> frames;
    data_decode_error error = data_decode_error::none;
    bool mid_frame = false;
};

frame_copy copy_of(const data_frame& f) {
    return {
        f.type, f.flags,       f.seq, f.count, std::vector<std::byte>(f.body.begin(), f.body.end()),
        f.ack,  f.credit_limit
    };
}

// The version-2 checksum of a frame: every byte but the crc field (8..11), computed here.
std::uint32_t spec_checksum(std::span<const std::byte> frame) {
    std::vector<std::byte> covered(frame.begin(), frame.begin() + 8);
    covered.insert(covered.end(), frame.begin() + 12, frame.end());
    return ringtail::net::crc32c(covered);
}

void write_crc(std::byte* frame, std::uint32_t crc) {
    ringtail::be::write<std::uint32_t>(frame + 8, crc);
}

// A checksum is hard to guess, so that the checks after it are reached too, some inputs get the
// checksum of every frame the stream's lengths delimit written in.
void repair_checksums(std::vector<std::byte>& s) {
    std::size_t at = 0;
    while (s.size() - at >= 12) {
        std::uint32_t len = ringtail::be::read<std::uint32_t>(s.data() + at);
        if (len < data_frame_header_bytes - 4 || len > s.size() - at - 4) {
            return;
        }
        std::size_t end = at + 4 + len;
        write_crc(s.data() + at, spec_checksum(std::span(s.data() + at, end - at)));
        at = end;
    }
}

// The verdict the spec gives a whole, correctly checksummed frame with these fields, in the order
// the decoder checks them (its prefix first, then the body): the model the decoder is held to.
data_decode_error model_verdict(std::uint8_t type, std::uint8_t flags, std::uint32_t count,
                                std::size_t body_bytes, std::size_t max_frame) {
    if (data_frame_header_bytes + body_bytes > max_frame) {
        return data_decode_error::oversized;
    }
    if (type < 1 || type > 5) {
        return data_decode_error::unknown_type;
    }
    const bool data = type == static_cast<std::uint8_t>(data_frame_type::data);
    if (flags != 0 && (!data || (flags & ~(data_flag_ack | data_flag_more)) != 0)) {
        return data_decode_error::malformed;
    }
    std::size_t messages = body_bytes;
    if ((flags & data_flag_ack) != 0) {
        if (body_bytes < data_ack_trailer_bytes) {
            return data_decode_error::malformed;
        }
        messages -= data_ack_trailer_bytes;
    }
    bool ok = false;
    switch (static_cast<data_frame_type>(type)) {
        case data_frame_type::hello:
            ok = count == 0 && messages == 16;
            break;
        case data_frame_type::data:
            ok = (flags & data_flag_more) != 0 ? count == 0 && messages > 0
                                               : count > 0 && messages > 0;
            break;
        case data_frame_type::credit:
            ok = count > 0 && messages == 0;
            break;
        case data_frame_type::bye:
            ok = count == 0 && messages == 0;
            break;
        case data_frame_type::ack:
            // 24 bytes, then 0 to 4 words of selective acknowledgement.
            ok = count == 0 && messages >= 24 && messages <= 56 && messages % 8 == 0;
            break;
    }
    return ok ? data_decode_error::none : data_decode_error::malformed;
}

// What the structured mode built: the stream, and what the model expects of it.
struct built {
    std::vector<std::byte> stream;
    std::vector<frame_copy> frames; // the frames before the first the model refuses
    data_decode_error error = data_decode_error::none;
};

// Structured mode: records [u8 spec][u8 count][u8 body length][body], each one frame with a good
// checksum. spec bits 0-2: type (0, 6 and 7 are unknown); bit 3: ACK; bit 4: MORE; bit 5: an
// unknown flag bit (0x04 << (count % 6)); bits 6-7: count 0, the count byte, 1, or 0xFFFFFFFF.
built build_frames(std::span<const std::uint8_t> in, std::size_t max_frame) {
    built out;
    std::uint64_t seq = 0;
    bool refused = false;
    while (in.size() >= 3) {
        const std::uint8_t spec = in[0];
        const std::uint8_t count_byte = in[1];
        const std::size_t len = std::min<std::size_t>(in[2], in.size() - 3);
        auto body = in.subspan(3, len);
        in = in.subspan(3 + len);
        const auto type = static_cast<std::uint8_t>(spec & 7);
        auto flags = static_cast<std::uint8_t>(((spec & 0x08) != 0 ? data_flag_ack : 0) |
                                               ((spec & 0x10) != 0 ? data_flag_more : 0));
        if ((spec & 0x20) != 0) {
            flags = static_cast<std::uint8_t>(flags | (0x04u << (count_byte % 6)));
        }
        std::uint32_t count = 0;
        switch (spec >> 6) {
            case 0:
                count = 0;
                break;
            case 1:
                count = count_byte;
                break;
            case 2:
                count = 1;
                break;
            default:
                count = 0xFFFFFFFFu;
                break;
        }
        const std::size_t at = out.stream.size();
        out.stream.resize(at + data_frame_header_bytes + body.size());
        std::byte* f = out.stream.data() + at;
        ringtail::be::write<std::uint32_t>(f, static_cast<std::uint32_t>(20 + body.size()));
        f[4] = std::byte{ 0xD7 };
        f[5] = std::byte{ 2 };
        f[6] = std::byte{ type };
        f[7] = std::byte{ flags };
        ringtail::be::write<std::uint64_t>(f + 12, seq);
        ringtail::be::write<std::uint32_t>(f + 20, count);
        if (!body.empty()) {
            std::memcpy(f + data_frame_header_bytes, body.data(), body.size());
        }
        write_crc(f, spec_checksum(std::span(f, data_frame_header_bytes + body.size())));
        if (!refused) {
            auto verdict = model_verdict(type, flags, count, body.size(), max_frame);
            if (verdict != data_decode_error::none) {
                refused = true;
                out.error = verdict;
            } else {
                frame_copy want{ static_cast<data_frame_type>(type), flags, seq, count, {}, 0, 0 };
                auto messages = std::as_bytes(body);
                if ((flags & data_flag_ack) != 0) {
                    auto trailer = messages.last(data_ack_trailer_bytes);
                    want.ack = ringtail::be::read<std::uint64_t>(trailer.data());
                    want.credit_limit = ringtail::be::read<std::uint64_t>(trailer.data() + 8);
                    messages = messages.first(messages.size() - data_ack_trailer_bytes);
                }
                want.body.assign(messages.begin(), messages.end());
                out.frames.push_back(std::move(want));
            }
        }
        ++seq;
    }
    return out;
}

// Encodes `f` again with the codec: seal_data_frame in a buffer, and for frames without flags
// append_data_frame too (which must agree).
std::vector<std::byte> encode(const frame_copy& f) {
    std::vector<std::byte> out(f.wire_bytes());
    std::copy(f.body.begin(), f.body.end(), out.begin() + data_frame_header_bytes);
    if ((f.flags & data_flag_ack) != 0) {
        ringtail::net::write_ack_trailer(std::span(out).last<data_ack_trailer_bytes>(), f.ack,
                                         f.credit_limit);
    }
    ringtail::net::seal_data_frame(out, f.type, f.flags, f.seq, f.count);
    if (f.flags == 0) {
        std::string appended;
        ringtail::net::append_data_frame(appended, f.type, f.seq, f.count, f.body);
        check(appended.size() == out.size() &&
              std::memcmp(appended.data(), out.data(), out.size()) == 0);
    }
    return out;
}

} // namespace

// Input layout: byte 0 picks max_frame_bytes (low 6 bits: 24..1662, small so that both accepted
// and oversized frames are common), the structured mode (bit 6) and, in the raw mode, whether
// checksums are repaired (bit 7); bytes 1-2 pick the cut (modulo the stream's length + 1); the
// rest is the stream, or in the structured mode the records build_frames reads.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 3) {
        return 0;
    }
    const std::size_t max_frame = data_frame_header_bytes + std::size_t{ data[0] & 0x3Fu } * 26;
    const bool structured = (data[0] & 0x40u) != 0;
    const bool repair = (data[0] & 0x80u) != 0;
    std::vector<std::byte> stream;
    built model;
    if (structured) {
        model = build_frames(std::span(data + 3, size - 3), max_frame);
        stream = model.stream;
    } else {
        stream.assign(reinterpret_cast<const std::byte*>(data + 3),
                      reinterpret_cast<const std::byte*>(data + size));
        if (repair) {
            repair_checksums(stream);
        }
    }
    const std::size_t cut = (std::size_t{ data[1] } << 8 | data[2]) % (stream.size() + 1);

    auto run = [&](bool split) {
        decoded out;
        data_frame_decoder decoder(max_frame);
        auto on_frame = [&](const data_frame& f) {
            check(f.body.size() + data_frame_header_bytes +
                    (f.has_ack() ? data_ack_trailer_bytes : 0) <=
                  max_frame);
            check(f.has_ack() == ((f.flags & data_flag_ack) != 0));
            check(f.more() == ((f.flags & data_flag_more) != 0));
            check(f.has_ack() || (f.ack == 0 && f.credit_limit == 0));
            out.frames.push_back(copy_of(f));
        };
        std::span<const std::byte> all(stream);
        out.error = split ? decoder.feed(all.first(cut), on_frame) : decoder.feed(all, on_frame);
        if (split && out.error == data_decode_error::none) {
            out.error = decoder.feed(all.subspan(cut), on_frame);
        }
        check(out.error == decoder.error());
        check(decoder.dead() == (out.error != data_decode_error::none));
        check(decoder.dead() == !decoder.error_message().empty());
        if (decoder.dead()) {
            // Dead for good: the same error, and nothing more delivered.
            std::size_t before = out.frames.size();
            check(decoder.feed(all, on_frame) == out.error);
            check(out.frames.size() == before);
        }
        out.mid_frame = decoder.mid_frame();
        return out;
    };

    decoded whole = run(false);
    decoded cut_in_two = run(true);
    check(whole.frames == cut_in_two.frames);
    check(whole.error == cut_in_two.error);
    check(whole.mid_frame == cut_in_two.mid_frame);

    // The stream as one datagram: decode_data_datagram takes exactly what the decoder delivers as
    // a single frame with nothing left over, and refuses the first frame for the same reason.
    {
        data_frame f;
        const data_decode_error e = ringtail::net::decode_data_datagram(stream, f, max_frame);
        const bool one =
          whole.error == data_decode_error::none && whole.frames.size() == 1 && !whole.mid_frame;
        check((e == data_decode_error::none) == one);
        if (one) {
            check(copy_of(f) == whole.frames[0]);
        } else if (whole.frames.empty() && whole.error != data_decode_error::none) {
            // The prefix's checks come first in both; a frame that does not fill the datagram is
            // refused before its checksum and shape are looked at, where the decoder looks.
            const bool fills =
              stream.size() >= 8 &&
              std::size_t{ ringtail::be::read<std::uint32_t>(stream.data()) } + 4 == stream.size();
            check(e == whole.error || (!fills && e == data_decode_error::not_one_frame &&
                                       (whole.error == data_decode_error::bad_checksum ||
                                        whole.error == data_decode_error::malformed)));
        } else {
            check(e == data_decode_error::not_one_frame);
        }
    }
    if (structured) {
        // Every frame is whole and checksummed: the decoder does what the model says.
        check(whole.frames == model.frames);
        check(whole.error == model.error);
        check(!whole.mid_frame);
    }

    std::size_t at = 0;
    for (const auto& f : whole.frames) {
        // Frames are delivered back to back from the start of the stream, and encoding one again
        // gives exactly the bytes it was decoded from.
        const std::size_t n = f.wire_bytes();
        check(at + n <= stream.size());
        std::vector<std::byte> again = encode(f);
        check(again.size() == n && std::equal(again.begin(), again.end(), stream.begin() + at));
        at += n;
        if (f.type == data_frame_type::hello) {
            data_frame view;
            view.type = f.type;
            view.seq = f.seq;
            view.body = f.body;
            auto hello = ringtail::net::parse_hello(view);
            check(hello.has_value());
            std::string h;
            ringtail::net::append_hello_frame(h, f.seq, *hello);
            check(h.size() == n && std::memcmp(h.data(), again.data(), n) == 0);
        }
        if (f.type == data_frame_type::ack) {
            data_frame view;
            view.type = f.type;
            view.body = f.body;
            auto ack = ringtail::net::parse_ack(view);
            check(ack.has_value());
            std::string a;
            ringtail::net::append_ack_frame(a, *ack);
            // seq is 0 in every ACK frame append_ack_frame writes, and it leaves out trailing
            // 0 words of selective acknowledgement, which a frame from elsewhere may carry.
            const bool trailing_zero = f.body.size() > ringtail::net::data_ack_body_bytes &&
                                       std::all_of(f.body.end() - 8, f.body.end(),
                                                   [](std::byte b) { return b == std::byte{ 0 }; });
            check(f.seq != 0 || trailing_zero ||
                  (a.size() == n && std::memcmp(a.data(), again.data(), n) == 0));
            check(a.size() <= n);
        }
    }
    check(at <= stream.size());
    return 0;
}
