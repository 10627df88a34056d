// libFuzzer target for the source frame decoder: arbitrary bytes, cut into chunks whose sizes come
// from the input, must decode without UB, within max_size, and exactly as the uncut stream does.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "net/edge/frame_decoder.h"

namespace {

void check(bool condition) {
    if (!condition) {
        std::abort();
    }
}

struct decoded {
    std::vector<std::vector<std::byte>> frames;
    ringtail::net::frame_status status = ringtail::net::frame_status::ok;
    bool mid_frame = false;
    std::uint32_t oversized_length = 0;
};

} // namespace

// Input layout: byte 0 picks max_size (0..63, small so that both accepted and oversized frames
// are common); byte 1 picks how many chunk-size bytes follow (0..15); those bytes are the chunk
// sizes used in turn (0: an empty feed, then one byte); the rest is the stream.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) {
        return 0;
    }
    const std::uint32_t max_size = data[0] % 64;
    const std::size_t table_size = std::min<std::size_t>(data[1] % 16, size - 2);
    const std::uint8_t* table = data + 2;
    std::span<const std::byte> stream(reinterpret_cast<const std::byte*>(data + 2 + table_size),
                                      size - 2 - table_size);

    auto run = [&](bool chunked) {
        decoded out;
        ringtail::net::frame_decoder decoder(max_size);
        auto on_frame = [&](std::span<const std::byte> payload) {
            check(payload.size() <= max_size);
            out.frames.emplace_back(payload.begin(), payload.end());
        };
        std::span<const std::byte> rest = stream;
        std::size_t turn = 0;
        while (!rest.empty()) {
            std::size_t n = rest.size();
            if (chunked && table_size > 0) {
                std::size_t want = table[turn++ % table_size];
                if (want == 0) {
                    // An empty feed changes nothing; then take one byte so the loop progresses.
                    check(decoder.feed({}, on_frame) == ringtail::net::frame_status::ok);
                    want = 1;
                }
                n = std::min(want, rest.size());
            }
            auto status = decoder.feed(rest.first(n), on_frame);
            rest = rest.subspan(n);
            if (status == ringtail::net::frame_status::oversized) {
                out.status = status;
                // Dead for good, whatever comes next.
                check(decoder.feed(rest, on_frame) == status);
                break;
            }
        }
        out.mid_frame = decoder.mid_frame();
        out.oversized_length = decoder.last_oversized_length();
        return out;
    };

    decoded whole = run(false);
    decoded cut = run(true);

    std::size_t total = 0;
    for (const auto& f : cut.frames) {
        total += f.size();
    }
    check(total <= stream.size());
    // Every frame costs at least its 4-byte header.
    check(cut.frames.size() * 4 + total <= stream.size());
    check(cut.frames == whole.frames);
    check(cut.status == whole.status);
    check(cut.mid_frame == whole.mid_frame || cut.status != ringtail::net::frame_status::ok);
    check(cut.oversized_length == whole.oversized_length);
    if (cut.status == ringtail::net::frame_status::oversized) {
        check(cut.oversized_length > max_size);
    }
    return 0;
}
