// The bytes a connection has yet to send, out[offset..], settled after each send(): a buffer
// that never empties (a peer that reads about as fast as it is written to) must not grow by
// every byte that ever passed through it. Shared by the socket data channel, the sinks, the
// control channel and the external channel.
#pragma once

#include <cstddef>
#include <string>

namespace ringtail::net {

// All sent (returns true): cleared, and its memory given back if it grew beyond keep_capacity.
// Otherwise the sent front is dropped once it is at least compact_min bytes and at least as long
// as what is left, so that each copy of the rest is shorter than what was sent since the last.
inline bool settle_sent(std::string& out, std::size_t& offset, std::size_t keep_capacity,
                        std::size_t compact_min) {
    if (offset == out.size()) {
        offset = 0;
        if (out.capacity() > keep_capacity) {
            std::string{}.swap(out);
        } else {
            out.clear();
        }
        return true;
    }
    if (offset >= compact_min && offset * 2 >= out.size()) {
        out.erase(0, offset);
        offset = 0;
    }
    return false;
}

} // namespace ringtail::net
