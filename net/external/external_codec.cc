// The external channel's framing: encoder and incremental decoder (WIRE.md §3).
#include "net/external/external_codec.h"
#include "engine/assert.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "engine/big_endian.h"

namespace ringtail::net {
namespace {

std::uint32_t read_u32(const char* p) {
    return be::read<std::uint32_t>(reinterpret_cast<const std::byte*>(p));
}
std::uint16_t read_u16(const char* p) {
    return be::read<std::uint16_t>(reinterpret_cast<const std::byte*>(p));
}

} // namespace

void append_external_frame(std::string& out, std::uint16_t id, std::string_view body) {
    // No reply this worker builds comes near 4 GiB.
    RINGTAIL_ASSERT(body.size() <= std::numeric_limits<std::uint32_t>::max() - 2,
                    "external frame body of {} bytes too large for its u32 length field",
                    body.size());
    const auto length = static_cast<std::uint32_t>(body.size() + 2);
    const char header[external_header_bytes] = {
        static_cast<char>(length >> 24), static_cast<char>(length >> 16),
        static_cast<char>(length >> 8),  static_cast<char>(length),
        static_cast<char>(id >> 8),      static_cast<char>(id),
    };
    out.append(header, sizeof header);
    out.append(body);
}

std::string encode_external_frame(std::uint16_t id, std::string_view body) {
    std::string out;
    out.reserve(external_header_bytes + body.size());
    append_external_frame(out, id, body);
    return out;
}

external_decode_status external_decoder::feed(std::span<const std::byte> bytes,
                                              std::vector<external_frame>& out) {
    if (_dead) {
        return external_decode_status::malformed;
    }
    std::string_view data(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    while (!data.empty()) {
        // Complete the length field first (it lies in _pending or at the front of data).
        if (_pending.size() < 4) {
            const std::size_t take = std::min(4 - _pending.size(), data.size());
            _pending.append(data.substr(0, take));
            data.remove_prefix(take);
            if (_pending.size() < 4) {
                break;
            }
            const std::uint32_t length = read_u32(_pending.data());
            if (length < 2 || length > _max_frame) {
                _dead = true;
                _bad_length = length;
                _pending.clear();
                return external_decode_status::malformed;
            }
            // Bounded by max_frame, checked just above.
            _pending.reserve(4 + static_cast<std::size_t>(length));
        }
        const std::size_t total = 4 + static_cast<std::size_t>(read_u32(_pending.data()));
        const std::size_t take = std::min(total - _pending.size(), data.size());
        _pending.append(data.substr(0, take));
        data.remove_prefix(take);
        if (_pending.size() == total) {
            external_frame f;
            f.id = read_u16(_pending.data() + 4);
            f.body.assign(_pending, external_header_bytes);
            out.push_back(std::move(f));
            _pending.clear();
            if (_pending.capacity() > 64 * 1024) {
                std::string{}.swap(_pending); // an idle connection keeps no large buffer
            }
        }
    }
    return external_decode_status::ok;
}

} // namespace ringtail::net
