// The encoding of a message sent to another worker: the body of a data-channel DATA frame is such
// messages back to back (the frame around them, with its version and checksum, is the
// transport's). Decoding is safe on untrusted bytes: a message that names no keyed stage, a
// partition out of range or a value the stage's codec rejects is dropped and counted.
//
//   [u32 node][u32 partition][u64 age_ns][u16 pipeline][u32 value_len][value_len bytes]
//
// big-endian. `age_ns` is how long ago the message's source admitted it, as seen by the sender;
// the receiver turns it back into an ingest time on its own clock, so start-to-end latency stays
// meaningful between hosts whose clocks differ (it leaves out the time on the wire).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/envelope.h"
#include "engine/node.h"

namespace ringtail::remote {

inline constexpr std::size_t message_header_size = 4 + 4 + 8 + 2 + 4;

// Appends data envelope `e` (for keyed stage `n`, whose input has a codec) to `out`.
void append_message(std::string& out, const node& n, const envelope& e, std::uint64_t now_ns);

struct decode_counts {
    std::uint32_t delivered = 0;
    std::uint32_t rejected = 0; // messages dropped (bad node, partition or value, or truncated)
};

// Decodes the `count` messages of a DATA frame body, calling `on_message(envelope&&)` for each one
// that is good, in order. `nodes` is the application's node table.
template<typename F>
decode_counts decode_messages(std::span<const std::byte> body, std::uint32_t count,
                              const std::vector<std::unique_ptr<node>>& nodes, std::uint64_t now_ns,
                              F&& on_message);

// One message: its fields, or false when the bytes at `p` do not hold a whole one.
struct message_view {
    std::uint32_t node = 0;
    std::uint32_t partition = 0;
    std::uint64_t age_ns = 0;
    std::uint16_t pipeline = 0;
    std::span<const std::byte> value;
};
bool read_message(std::span<const std::byte> bytes, std::size_t& offset, message_view& out);

template<typename F>
decode_counts decode_messages(std::span<const std::byte> body, std::uint32_t count,
                              const std::vector<std::unique_ptr<node>>& nodes, std::uint64_t now_ns,
                              F&& on_message) {
    decode_counts c;
    std::size_t offset = 0;
    for (std::uint32_t i = 0; i < count; ++i) {
        message_view m;
        if (!read_message(body, offset, m)) {
            c.rejected += count - i; // the rest of the body cannot be found
            break;
        }
        if (m.node >= nodes.size() || nodes[m.node]->kind != node_kind::stateful ||
            m.partition >= nodes[m.node]->partitions) {
            ++c.rejected;
            continue;
        }
        envelope e;
        if (!nodes[m.node]->decode_input(m.value, e.value)) {
            ++c.rejected;
            continue;
        }
        e.node = m.node;
        e.partition = m.partition;
        e.ingest_ns = now_ns > m.age_ns ? now_ns - m.age_ns : 0;
        e.pipeline = m.pipeline;
        e.kind = envelope_kind::data;
        ++c.delivered;
        on_message(std::move(e));
    }
    return c;
}

} // namespace ringtail::remote
