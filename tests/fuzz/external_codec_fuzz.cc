// libFuzzer target for the external channel's decoder: arbitrary bytes, cut into chunks whose
// sizes come from the input, must decode without UB, within max_frame, exactly as the uncut stream
// does, and every frame must re-encode to the bytes it came from.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "net/external/external_codec.h"

namespace {

using ringtail::net::external_decode_status;

void check(bool condition) {
    if (!condition) {
        std::abort();
    }
}

struct decoded {
    std::vector<ringtail::net::external_frame> frames;
    external_decode_status status = external_decode_status::ok;
    bool mid_frame = false;
    std::uint32_t bad_length = 0;
};

} // namespace

// Input layout: byte 0 picks max_frame (0..63, small so that both accepted and rejected lengths are
// common); byte 1 picks how many chunk-size bytes follow (0..15); those bytes are the chunk sizes
// used in turn (0: an empty feed, then one byte); the rest is the stream.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) {
        return 0;
    }
    const std::uint32_t max_frame = data[0] % 64;
    const std::size_t table_size = std::min<std::size_t>(data[1] % 16, size - 2);
    const std::uint8_t* table = data + 2;
    std::span<const std::byte> stream(reinterpret_cast<const std::byte*>(data + 2 + table_size),
                                      size - 2 - table_size);

    auto run = [&](bool chunked) {
        decoded out;
        ringtail::net::external_decoder decoder(max_frame);
        std::span<const std::byte> rest = stream;
        std::size_t turn = 0;
        while (!rest.empty()) {
            std::size_t n = rest.size();
            if (chunked && table_size > 0) {
                std::size_t want = table[turn++ % table_size];
                if (want == 0) {
                    check(decoder.feed(std::span<const std::byte>{}, out.frames) ==
                          external_decode_status::ok);
                    want = 1;
                }
                n = std::min(want, rest.size());
            }
            auto status = decoder.feed(rest.first(n), out.frames);
            rest = rest.subspan(n);
            if (status == external_decode_status::malformed) {
                out.status = status;
                // Dead for good, whatever comes next.
                check(decoder.feed(rest, out.frames) == status);
                break;
            }
        }
        out.mid_frame = decoder.mid_frame();
        out.bad_length = decoder.bad_length();
        return out;
    };

    decoded whole = run(false);
    decoded cut = run(true);

    check(cut.frames == whole.frames);
    check(cut.status == whole.status);
    check(cut.bad_length == whole.bad_length);
    check(cut.mid_frame == whole.mid_frame || cut.status != external_decode_status::ok);
    if (cut.status == external_decode_status::malformed) {
        check(cut.bad_length < 2 || cut.bad_length > max_frame);
    }
    // The frames are a prefix of the stream, byte for byte.
    std::string again;
    for (const auto& f : cut.frames) {
        check(f.body.size() + 2 <= max_frame);
        ringtail::net::append_external_frame(again, f.id, f.body);
    }
    check(again.size() <= stream.size());
    check(std::equal(again.begin(), again.end(), reinterpret_cast<const char*>(stream.data())));
    return 0;
}
