// Incremental decoder of the TCP source framing `[u32 big-endian N][N bytes payload]`, safe on
// untrusted bytes and zero-copy for frames that arrive whole in one read.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "engine/big_endian.h"

namespace ringtail::net {

enum class frame_status { ok, oversized };

// Splits a byte stream into frame payloads. Owned and used by one thread (the shard reading the
// connection). Memory is bounded: at most max_size + 4 bytes of an unfinished frame are held.
class frame_decoder {
public:
    explicit frame_decoder(std::uint32_t max_size)
      : _max_size(max_size) {}

    // Calls `on_frame(std::span<const std::byte> payload)` for every frame completed by `data`, in
    // order. A frame lying whole inside `data` is passed without a copy; only the unfinished tail
    // is buffered. The payload span is valid only during the call, and `on_frame` must not call
    // feed() on the same decoder. A header announcing more than max_size bytes returns oversized
    // (frames before it were delivered) and the decoder stays dead: the stream cannot be
    // resynchronised, so every later feed returns oversized too.
    template<typename Callback>
    frame_status feed(std::span<const std::byte> data, Callback&& on_frame);

    // True while bytes of an unfinished frame (header or payload) are held.
    bool mid_frame() const { return _header_have > 0; }
    // The length announced by the frame that was rejected; 0 before any.
    std::uint32_t last_oversized_length() const { return _last_oversized_length; }
    std::uint32_t max_size() const { return _max_size; }
    bool dead() const { return _dead; }

private:
    static constexpr std::size_t header_size = 4;
    // A body buffer grown past this by one large frame is released afterwards, so that an idle
    // connection does not keep a large allocation.
    static constexpr std::size_t keep_capacity = 64 * 1024;

    // Records a header announcing `length`; returns false (and kills the decoder) if oversized.
    bool accept_length(std::uint32_t length) {
        if (length > _max_size) {
            _dead = true;
            _last_oversized_length = length;
            return false;
        }
        return true;
    }

    void reset_frame() {
        _header_have = 0;
        _length = 0;
        if (_body.capacity() > keep_capacity) {
            std::vector<std::byte>{}.swap(_body);
        } else {
            _body.clear();
        }
    }

    std::uint32_t _max_size;
    std::uint32_t _last_oversized_length = 0;
    bool _dead = false;
    // 0: between frames; 1..3: header partly held in _header; 4: header complete, body in _body.
    std::size_t _header_have = 0;
    std::uint32_t _length = 0;
    std::byte _header[header_size] = {};
    std::vector<std::byte> _body;
};

template<typename Callback>
frame_status frame_decoder::feed(std::span<const std::byte> data, Callback&& on_frame) {
    if (_dead) {
        return frame_status::oversized;
    }
    while (!data.empty()) {
        if (_header_have == 0) {
            // Between frames: the fast path, where whole frames are passed straight from `data`.
            if (data.size() < header_size) {
                std::copy(data.begin(), data.end(), _header);
                _header_have = data.size();
                return frame_status::ok;
            }
            std::uint32_t length = be::read<std::uint32_t>(data.data());
            if (!accept_length(length)) {
                return frame_status::oversized;
            }
            auto rest = data.subspan(header_size);
            if (rest.size() >= length) {
                on_frame(rest.first(length));
                data = rest.subspan(length);
                continue;
            }
            // An unfinished frame: keep what we have. reserve() is bounded by max_size.
            _header_have = header_size;
            _length = length;
            _body.reserve(length);
            _body.assign(rest.begin(), rest.end());
            return frame_status::ok;
        }
        if (_header_have < header_size) {
            std::size_t take = std::min(header_size - _header_have, data.size());
            std::copy(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(take),
                      _header + _header_have);
            _header_have += take;
            data = data.subspan(take);
            if (_header_have < header_size) {
                return frame_status::ok;
            }
            _length = be::read<std::uint32_t>(_header);
            if (!accept_length(_length)) {
                return frame_status::oversized;
            }
            _body.reserve(_length);
        }
        // Header complete: fill the body.
        std::size_t take = std::min<std::size_t>(_length - _body.size(), data.size());
        _body.insert(_body.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(take));
        data = data.subspan(take);
        if (_body.size() == _length) {
            on_frame(std::span<const std::byte>(_body.data(), _body.size()));
            reset_frame();
        }
    }
    return frame_status::ok;
}

} // namespace ringtail::net
