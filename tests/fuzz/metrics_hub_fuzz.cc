// libFuzzer target for the monitoring-hub decoder: arbitrary bytes must decode without UB, and
// whatever decodes must encode back to exactly the same bytes (the format has one encoding).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "net/metrics/metrics_hub_codec.h"

namespace {

void check(bool condition) {
    if (!condition) {
        std::abort();
    }
}

// Decodes `bytes` and checks what the decoder claims about it.
void decode_and_check(std::span<const std::byte> bytes) {
    using namespace ringtail::net;
    const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
    const std::size_t size = bytes.size();
    // The stream helper must agree with the decoder about where a frame ends.
    const std::size_t length = hub_frame_length(bytes);
    check(size < 4 ? length == 0 : length >= 4);

    auto frame = decode_hub_frame(bytes);
    if (!frame.ok()) {
        check(!frame.err().message.empty());
        return;
    }
    check(length == size);
    std::string again;
    if (const auto* join = std::get_if<hub_join>(&*frame)) {
        append_hub_join(again, join->topic, join->worker);
    } else if (const auto* payload = std::get_if<hub_payload>(&*frame)) {
        if (payload->event != "metrics") {
            return; // the encoder always writes "metrics"
        }
        append_hub_payload(again, payload->topic, payload->metric);
        (void)payload->metric.count();
        (void)hub_bins_value_at_percentile(payload->metric.bins, payload->metric.max, 99.9);
    } else {
        append_hub_connect(again);
    }
    check(again.size() == size);
    check(std::equal(again.begin(), again.end(), reinterpret_cast<const char*>(data)));
}

void put_u32(std::vector<std::byte>& b, std::size_t at, std::size_t value) {
    for (int i = 0; i < 4; ++i) {
        b[at + i] = static_cast<std::byte>((value >> (24 - 8 * i)) & 0xff);
    }
}

std::size_t get_u32(const std::vector<std::byte>& b, std::size_t at) {
    return (std::to_integer<std::size_t>(b[at]) << 24) |
           (std::to_integer<std::size_t>(b[at + 1]) << 16) |
           (std::to_integer<std::size_t>(b[at + 2]) << 8) | std::to_integer<std::size_t>(b[at + 3]);
}

} // namespace

// The input as is, then a copy with its length fields repaired (size; for a PAYLOAD also
// data_size and header), so the fuzzer reaches the metric data without guessing three lengths.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
    decode_and_check(bytes);
    if (size < 5) {
        return 0;
    }
    std::vector<std::byte> fixed(bytes.begin(), bytes.end());
    put_u32(fixed, 0, size - 4);
    if (std::to_integer<int>(fixed[4]) == 3) {
        std::size_t at = 5;
        for (int s = 0; s < 2 && at + 4 <= size; ++s) {
            at += 4 + get_u32(fixed, at);
        }
        if (at + 8 <= size) {
            put_u32(fixed, at, size - at - 4);
            put_u32(fixed, at + 4, size - at - 8);
        }
    }
    decode_and_check(fixed);
    return 0;
}
