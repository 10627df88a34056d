// The external channel's framing (WIRE.md §3), in both directions: `[u32 L][u16 msg_id][L-2 bytes
// body]`, big-endian, where L counts the id and the body. Safe on untrusted bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ringtail::net {

// The message ids of WIRE.md §3.
enum class external_msg : std::uint16_t {
    print = 1,
    rotate_log = 2,
    clean_shutdown = 3,
    shrink_request = 4,
    shrink_query_reply = 5,
    shrink_error_reply = 6,
    partition_query = 7,
    partition_query_reply = 8,
    cluster_status_query = 9,
    cluster_status_reply = 10,
    cluster_status_not_initialized = 11,
    partition_count_query = 12,
    partition_count_query_reply = 13,
    source_ids_query = 14,
    source_ids_query_reply = 15,
    report_status = 16,
    state_entity_query = 17,
    state_entity_query_reply = 18,
    stateless_partition_query = 19,
    stateless_partition_query_reply = 20,
    state_entity_count_query = 21,
    state_entity_count_query_reply = 22,
    stateless_partition_count_query = 23,
    stateless_partition_count_query_reply = 24,
    cluster_state_entity_count_query = 25,
    cluster_state_entity_count_query_reply = 26,
};

constexpr std::uint16_t to_id(external_msg m) {
    return static_cast<std::uint16_t>(m);
}

// One decoded frame; the body is text or JSON, kept as raw bytes.
struct external_frame {
    std::uint16_t id = 0;
    std::string body;
    friend bool operator==(const external_frame&, const external_frame&) = default;
};

// Bytes of the length and id fields.
inline constexpr std::size_t external_header_bytes = 6;
// Default bound on L for requests a worker accepts.
inline constexpr std::uint32_t external_default_max_frame = 1u << 20;

// Appends one frame to `out`. The body must be shorter than 4 GiB - 2 (asserted).
void append_external_frame(std::string& out, std::uint16_t id, std::string_view body);
std::string encode_external_frame(std::uint16_t id, std::string_view body);

enum class external_decode_status { ok, malformed };

// Splits a byte stream into frames. Owned and used by one thread. Memory is bounded: it holds at
// most max_frame + 4 bytes of an unfinished frame beyond what one feed() passes in.
class external_decoder {
public:
    explicit external_decoder(std::uint32_t max_frame = external_default_max_frame)
      : _max_frame(max_frame) {}

    // Appends every frame that `data` completes to `out`, in order. A length field below 2 (no
    // room for the id) or above max_frame returns malformed (frames before it were delivered) and
    // the decoder stays dead: the stream cannot be resynchronised, every later feed is malformed.
    external_decode_status feed(std::span<const std::byte> data, std::vector<external_frame>& out);
    external_decode_status feed(std::string_view data, std::vector<external_frame>& out) {
        return feed(std::as_bytes(std::span<const char>(data.data(), data.size())), out);
    }

    // True while bytes of an unfinished frame are held.
    bool mid_frame() const { return !_pending.empty(); }
    bool dead() const { return _dead; }
    // The length field that killed the decoder; 0 before any.
    std::uint32_t bad_length() const { return _bad_length; }
    std::uint32_t max_frame() const { return _max_frame; }

private:
    std::uint32_t _max_frame;
    std::uint32_t _bad_length = 0;
    bool _dead = false;
    std::string _pending; // an unfinished frame, header included
};

} // namespace ringtail::net
