// libFuzzer target for the data-channel frame decoder: arbitrary bytes, fed whole and cut at a
// point the input picks, must decode without UB, within the size limit, identically both ways,
// and every frame delivered must encode back to bytes that decode to the same frame.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "engine/big_endian.h"
#include "net/crc32c.h"
#include "net/data_codec.h"

namespace {

using ringtail::net::data_decode_error;
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
    std::uint64_t seq;
    std::uint32_t count;
    std::vector<std::byte> body;
    friend bool operator==(const frame_copy&, const frame_copy&) = default;
};

struct decoded {
    std::vector<frame_copy> frames;
    data_decode_error error = data_decode_error::none;
    bool mid_frame = false;
};

frame_copy copy_of(const data_frame& f) {
    return { f.type, f.seq, f.count, std::vector<std::byte>(f.body.begin(), f.body.end()) };
}

// A checksum is hard to guess, so that the checks after it are reached too, half of the inputs
// get the checksum of every frame the stream's lengths delimit written in.
void repair_checksums(std::vector<std::byte>& s) {
    std::size_t at = 0;
    while (s.size() - at >= 12) {
        std::uint32_t len = ringtail::be::read<std::uint32_t>(s.data() + at);
        if (len < data_frame_header_bytes - 4 || len > s.size() - at - 4) {
            return;
        }
        std::size_t end = at + 4 + len;
        std::uint32_t crc = ringtail::net::crc32c(std::span(s.data() + at + 12, end - at - 12));
        for (int i = 0; i < 4; ++i) {
            s[at + 8 + static_cast<std::size_t>(i)] = static_cast<std::byte>(crc >> (24 - 8 * i));
        }
        at = end;
    }
}

} // namespace

// Input layout: byte 0 picks max_frame_bytes (low 7 bits: 24..1675, small so that both accepted
// and oversized frames are common) and whether checksums are repaired (high bit); bytes 1-2 pick
// the cut (modulo the stream's length + 1); the rest is the stream.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 3) {
        return 0;
    }
    const std::size_t max_frame = data_frame_header_bytes + std::size_t{ data[0] & 0x7Fu } * 13;
    const bool repair = (data[0] & 0x80u) != 0;
    std::vector<std::byte> stream(reinterpret_cast<const std::byte*>(data + 3),
                                  reinterpret_cast<const std::byte*>(data + size));
    if (repair) {
        repair_checksums(stream);
    }
    const std::size_t cut = (std::size_t{ data[1] } << 8 | data[2]) % (stream.size() + 1);

    auto run = [&](bool split) {
        decoded out;
        data_frame_decoder decoder(max_frame);
        auto on_frame = [&](const data_frame& f) {
            check(f.body.size() + data_frame_header_bytes <= max_frame);
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

    std::size_t total = 0;
    for (const auto& f : whole.frames) {
        total += data_frame_header_bytes + f.body.size();
        // Encoding the frame again gives bytes that decode to the same frame.
        std::string again;
        ringtail::net::append_data_frame(again, f.type, f.seq, f.count, f.body);
        check(again.size() == data_frame_header_bytes + f.body.size());
        std::vector<frame_copy> redecoded;
        data_frame_decoder decoder(max_frame);
        auto error = decoder.feed(std::as_bytes(std::span(again.data(), again.size())),
                                  [&](const data_frame& g) { redecoded.push_back(copy_of(g)); });
        check(error == data_decode_error::none);
        check(redecoded.size() == 1 && redecoded[0] == f);
        if (f.type == data_frame_type::hello) {
            data_frame view{ f.type, f.seq, f.count, f.body };
            auto hello = ringtail::net::parse_hello(view);
            check(hello.has_value());
            std::string h;
            ringtail::net::append_hello_frame(h, f.seq, *hello);
            check(h == again);
        }
    }
    check(total <= stream.size());
    return 0;
}
