// libFuzzer target for the control channel's decoder: arbitrary bytes, fed whole and cut in two at
// a point the input chooses, must decode without UB to the same messages and the same verdict,
// every message must re-encode and decode to itself, and the typed field reads must hold on every
// body delivered.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/big_endian.h"
#include "net/channel/crc32c.h"
#include "net/cluster/control_codec.h"

namespace {

using ringtail::net::control_decoder;
using ringtail::net::control_error;
using ringtail::net::control_msg;
using json = nlohmann::json;

void check(bool condition) {
    if (!condition) {
        std::abort();
    }
}

struct decoded {
    std::vector<control_msg> messages;
    control_error error = control_error::none;
    std::string error_message;
    bool mid_frame = false;
};

decoded run(std::string_view stream, std::size_t cut, std::uint32_t max_frame) {
    decoded out;
    control_decoder decoder(max_frame);
    auto collect = [&out](control_msg&& m) { out.messages.push_back(std::move(m)); };
    out.error = decoder.feed(std::as_bytes(std::span(stream.data(), cut)), collect);
    out.error =
      decoder.feed(std::as_bytes(std::span(stream.data() + cut, stream.size() - cut)), collect);
    out.error_message = decoder.error_message();
    out.mid_frame = decoder.mid_frame();
    check(decoder.dead() == (out.error != control_error::none));
    check(decoder.dead() == !out.error_message.empty());
    check(!decoder.next().has_value());
    return out;
}

// Rewrites the checksum of every frame whose length field is plausible, walking the stream as the
// decoder would, so that the fuzzer reaches the type and JSON checks without solving CRC-32C.
void fix_checksums(std::string& stream) {
    std::size_t at = 0;
    while (stream.size() - at >= ringtail::net::control_header_bytes) {
        const auto* p = reinterpret_cast<const std::byte*>(stream.data() + at);
        const std::uint32_t length = ringtail::be::read<std::uint32_t>(p);
        if (length < ringtail::net::control_min_length || stream.size() - at - 4 < length) {
            return;
        }
        const std::string_view fixed(stream.data() + at + 4, 4);
        const std::string_view body(stream.data() + at + ringtail::net::control_header_bytes,
                                    length - ringtail::net::control_min_length);
        std::string crc;
        ringtail::be::append<std::uint32_t>(
          crc, ringtail::net::crc32c(body, ringtail::net::crc32c(fixed)));
        stream.replace(at + 8, 4, crc);
        at += 4 + length;
    }
}

// Every typed read of every key, and of keys that are not there: none may throw or crash, and
// each must agree with the value's JSON type.
void read_fields(const json& body) {
    using namespace ringtail::net;
    check(body.is_object());
    for (const auto& [key, value] : body.items()) {
        const char* k = key.c_str();
        if (key.find('\0') != std::string::npos) {
            continue; // a C-string key cannot name it
        }
        check(get_string(body, k).has_value() == value.is_string());
        check(get_bool(body, k).has_value() == value.is_boolean());
        auto u = get_u64(body, k);
        check(!u || value.is_number_integer());
        auto i = get_i64(body, k);
        check(!i || value.is_number_integer());
        auto strings = get_string_array(body, k);
        check(!strings || (value.is_array() && strings->size() == value.size()));
        auto numbers = get_u64_array(body, k);
        check(!numbers || (value.is_array() && numbers->size() == value.size()));
        check((get_object(body, k) != nullptr) == value.is_object());
        check((get_array(body, k) != nullptr) == value.is_array());
        if (const json* nested = get_object(body, k)) {
            (void)get_string(*nested, "");
            (void)get_u64(*nested, "a");
        }
    }
    check(!get_string(body, "\x01no such key").has_value());
    check(!get_u64(body, "\x01no such key").has_value());
}

} // namespace

// Input layout: byte 0 picks the mode (bit 0: rewrite the checksums so that frames pass them) and
// max_frame (bits 1-2: 16, 64, 4096 or the default 1 MiB); bytes 1-2 (big-endian) pick the cut
// point, modulo the stream's size + 1; the rest is the stream.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 3) {
        return 0;
    }
    static constexpr std::uint32_t limits[4] = { 16, 64, 4096,
                                                 ringtail::net::control_default_max_frame };
    const bool fix = (data[0] & 1) != 0;
    const std::uint32_t max_frame = limits[(data[0] >> 1) & 3];
    std::string stream(reinterpret_cast<const char*>(data + 3), size - 3);
    if (fix) {
        fix_checksums(stream);
    }
    const std::size_t cut = ((std::size_t{ data[1] } << 8) | data[2]) % (stream.size() + 1);

    const decoded whole = run(stream, stream.size(), max_frame);
    const decoded split = run(stream, cut, max_frame);
    check(split.messages == whole.messages);
    check(split.error == whole.error);
    check(split.error_message == whole.error_message);
    check(split.mid_frame == whole.mid_frame);

    for (const auto& m : whole.messages) {
        check(ringtail::net::is_control_type(static_cast<std::uint8_t>(m.type)));
        read_fields(m.body);
        // Our own encoding of it decodes to the same message (its size may differ from the
        // original's: number and string spellings are normalised, so no max_frame here).
        const std::string again = ringtail::net::encode_control(m.type, m.body);
        control_decoder decoder(0xFFFFFFFFu);
        std::vector<control_msg> out;
        check(decoder.feed(again, out) == control_error::none);
        check(out.size() == 1 && out[0] == m);
        check(!decoder.mid_frame());
    }
    return 0;
}
