// The data-channel frame between workers (DESIGN.md §4): versioned, checksummed, the same bytes
// over TCP (net/channel/socket_transport.h) and inside UDP datagrams
// (net/channel/datagram_transport.h: the DPDK back end, and the socket back end when a test injects
// faults).
//
// Layout, big-endian:
//   [u32 len = bytes after this field][u8 magic 0xD7][u8 version 2][u8 type][u8 flags]
//   [u32 crc32c of every byte of the frame but these four][u64 seq][u32 count][body]
// Types: HELLO (body: u64 cluster_token, u32 sender worker index, u32 worker count), DATA (count
// messages encoded back to back in the body), CREDIT (count messages granted, no body), BYE (the
// sender leaves cleanly, no body), ACK (datagram back ends only; body: u64 cumulative ack of DATA
// seqs, u64 credit limit = messages the sender may have sent in all, u64 echo of a sender clock,
// then 0 to 4 u64 words of selective acknowledgement: bit i, counting from the least significant
// bit of the first word, says the DATA frame with seq cumulative ack + 2 + i arrived after a gap
// and is held by the receiver; words left out are 0, and the encoder leaves out trailing 0 words).
// Over TCP seq counts the frames of one direction of one connection from 0; over datagrams it
// numbers DATA frames for go-back-N (net/channel/go_back_n.h) and is 0 on the others.
//
// Flags, on DATA frames over datagrams only (a TCP connection has no use for them, and its reader
// refuses them):
//   ACK  (0x01): the body ends with a 16-byte trailer [u64 cumulative ack][u64 credit limit], the
//                first two fields of an ACK frame, piggybacked on traffic the other way; the
//                trailer is not part of the messages.
//   MORE (0x02): the body is a fragment of one larger body that the next DATA frames continue;
//                the last fragment has MORE clear and carries the count of the whole. A fragment
//                with MORE set has count 0.
//
// The checksum covers every byte but its own field: len, magic, version, type and flags included,
// so a flipped flag or type byte cannot turn a frame into another well-formed one. Each type's
// frame must also have its shape: HELLO has count 0 and a 16-byte body, DATA a body and a count
// above 0 (exactly 0 with MORE), CREDIT a count above 0 and no body, BYE count 0 and no body, ACK
// count 0 and a body of 24, 32, 40, 48 or 56 bytes; flags other than the two above, or on another
// type, are refused.
//
// Version 2 made the checksum cover the header and defined the flags; version 1 frames are
// refused with "bad version" (both ends of a cluster run the same build: formation checks it).
// The selective acknowledgement came later, within version 2: ACK frames pass only between the
// workers of one cluster, which run one build.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ringtail::net {

inline constexpr std::uint8_t data_frame_magic = 0xD7;
inline constexpr std::uint8_t data_frame_version = 2;
// Every byte of a frame but the body: len, magic, version, type, flags, crc, seq, count.
inline constexpr std::size_t data_frame_header_bytes = 24;
// The smallest len field: a frame with an empty body.
inline constexpr std::uint32_t data_frame_min_len = data_frame_header_bytes - 4;
inline constexpr std::size_t default_max_data_frame_bytes = 1024 * 1024;
inline constexpr std::size_t data_hello_body_bytes = 16;
inline constexpr std::size_t data_hello_frame_bytes =
  data_frame_header_bytes + data_hello_body_bytes;

enum class data_frame_type : std::uint8_t { hello = 1, data = 2, credit = 3, bye = 4, ack = 5 };
// The ACK body without selective acknowledgement, and the most words of it that may follow.
inline constexpr std::size_t data_ack_body_bytes = 24;
inline constexpr std::size_t data_ack_selective_words = 4;

// The flags of a DATA frame over datagrams (see the top of the file).
inline constexpr std::uint8_t data_flag_ack = 0x01;
inline constexpr std::uint8_t data_flag_more = 0x02;
// The piggybacked acknowledgement at the end of a DATA frame's body with data_flag_ack.
inline constexpr std::size_t data_ack_trailer_bytes = 16;

std::string_view to_string(data_frame_type type);

// One decoded frame. `body` points into the decoder's input or its buffer and is valid only
// during the callback that receives it.
struct data_frame {
    data_frame_type type = data_frame_type::data;
    std::uint8_t flags = 0;
    std::uint64_t seq = 0;
    std::uint32_t count = 0;
    std::span<const std::byte> body; // without the ACK trailer
    // The piggybacked acknowledgement, when flags has data_flag_ack.
    std::uint64_t ack = 0;
    std::uint64_t credit_limit = 0;

    bool has_ack() const { return (flags & data_flag_ack) != 0; }
    bool more() const { return (flags & data_flag_more) != 0; }
};

// The body of a HELLO frame: who is speaking, in which cluster.
struct data_hello {
    std::uint64_t cluster_token = 0;
    std::uint32_t worker_index = 0;
    std::uint32_t worker_count = 0;
    friend bool operator==(const data_hello&, const data_hello&) = default;
};

// Appends one whole frame to `out`. The body must follow its type's rules (see the top of the
// file); a frame that breaks them is a programmer error and aborts.
void append_data_frame(std::string& out, data_frame_type type, std::uint64_t seq,
                       std::uint32_t count, std::span<const std::byte> body = {});

// Fills the header (len, magic, version, type, flags, seq, count, crc) of the frame that is all
// of `frame`, whose body (with its ACK trailer when `flags` has data_flag_ack) is already in
// place after data_frame_header_bytes. For building frames in memory that is not a std::string
// (an mbuf). The same rules as append_data_frame, enforced the same way.
void seal_data_frame(std::span<std::byte> frame, data_frame_type type, std::uint8_t flags,
                     std::uint64_t seq, std::uint32_t count);
// Writes the ACK trailer of a DATA frame with data_flag_ack.
void write_ack_trailer(std::span<std::byte, data_ack_trailer_bytes> out, std::uint64_t ack,
                       std::uint64_t credit_limit);

// Building a frame in place: begin_data_frame appends a header to fill in later and returns
// where the frame starts; the caller appends the body to `out`; finish_data_frame fills the
// header (len, crc and the rest) of the frame starting at `start`, whose body is everything
// after the header up to the end of `out`.
std::size_t begin_data_frame(std::string& out);
void finish_data_frame(std::string& out, std::size_t start, data_frame_type type, std::uint64_t seq,
                       std::uint32_t count, std::uint8_t flags = 0);

void append_hello_frame(std::string& out, std::uint64_t seq, const data_hello& hello);

// The body of an ACK frame (datagram back ends): cumulative, so a lost ACK is made good by the
// next one.
struct data_ack {
    std::uint64_t ack = 0;          // every DATA frame up to this seq arrived in order
    std::uint64_t credit_limit = 0; // messages the peer may have sent in all, from the start
    std::uint64_t echo_ns = 0;      // free for round-trip measurement; 0 when unused
    // Selective acknowledgement: bit i (bit i % 64 of word i / 64) set when the DATA frame with
    // seq ack + 2 + i arrived after a gap and is held (net/channel/go_back_n.h, selective_ack).
    std::array<std::uint64_t, data_ack_selective_words> selective{};
    friend bool operator==(const data_ack&, const data_ack&) = default;
};
void append_ack_frame(std::string& out, const data_ack& ack);
std::optional<data_ack> parse_ack(const data_frame& frame);
// The HELLO carried by `frame`; nullopt if it is not a well-formed HELLO.
std::optional<data_hello> parse_hello(const data_frame& frame);

enum class data_decode_error : std::uint8_t {
    none,
    bad_magic,     // not a data-channel frame at all
    bad_version,   // a data-channel frame of a version this build does not speak
    bad_checksum,  // the crc does not match the bytes
    unknown_type,  // a type byte this version does not define
    malformed,     // flags its type does not allow, or a count or body its type does not allow
    oversized,     // len announces more than max_frame_bytes
    short_header,  // len is smaller than the header after it
    not_one_frame, // decode_data_datagram: the datagram is not exactly one frame
};

std::string_view to_string(data_decode_error error);

// Checks that `datagram` is exactly one whole frame, as every datagram of the datagram back ends
// carries, and fills `frame` (its body points into `datagram`). Returns none, or what is wrong:
// the decoder's checks in its order (without its message), and not_one_frame for a datagram
// shorter or longer than the frame it starts with. It accepts exactly what a fresh
// data_frame_decoder fed `datagram` alone delivers as one frame with nothing left over, at a
// fraction of the cost (no decoder to build, and nothing formatted for a datagram dropped).
data_decode_error decode_data_datagram(std::span<const std::byte> datagram, data_frame& frame,
                                       std::size_t max_frame_bytes = default_max_data_frame_bytes);

// Splits a byte stream into data-channel frames, checking each. Owned and used by one thread.
// Memory is bounded: at most max_frame_bytes of an unfinished frame are held. The first error
// kills the decoder: the stream cannot be trusted after it, so every later feed returns it again.
// The decoder does not check seq; the reader knows whether gaps are allowed (TCP: never).
class data_frame_decoder {
public:
    explicit data_frame_decoder(std::size_t max_frame_bytes = default_max_data_frame_bytes);

    // Calls `on_frame(const data_frame&)` for every frame completed by `data`, in order, and
    // returns none, or the error that stopped decoding (frames before it were delivered). A frame
    // lying whole inside `data` is passed without a copy; only an unfinished tail is buffered.
    // `on_frame` must not call feed() on the same decoder.
    template<typename Callback>
    data_decode_error feed(std::span<const std::byte> data, Callback&& on_frame);

    data_decode_error error() const { return _error; }
    // One line saying what was wrong, e.g. "bad checksum"; empty while error() is none.
    const std::string& error_message() const { return _error_message; }
    bool dead() const { return _error != data_decode_error::none; }
    // True while bytes of an unfinished frame are held.
    bool mid_frame() const { return !_buf.empty(); }
    std::size_t max_frame_bytes() const { return _max_frame_bytes; }

    // The bytes checked before the rest of a frame is awaited: len, magic, version, type, flags.
    // Garbage is recognised from them, without waiting for a length's worth of bytes.
    static constexpr std::size_t prefix_bytes = 8;

private:
    // A buffer grown past this by one large frame is released afterwards, so that an idle
    // connection does not keep a large allocation.
    static constexpr std::size_t keep_capacity = 64 * 1024;

    // Checks the first prefix_bytes of a frame; sets `frame_bytes` (the whole frame) or fails.
    bool check_prefix(const std::byte* prefix, std::size_t& frame_bytes);
    // Checks a whole frame (its prefix already checked) and fills `frame`, or fails.
    bool check_frame(std::span<const std::byte> bytes, data_frame& frame);
    void fail(data_decode_error error, std::string message);
    void reset_frame();

    std::size_t _max_frame_bytes;
    data_decode_error _error = data_decode_error::none;
    std::string _error_message;
    // An unfinished frame; once it holds prefix_bytes, _frame_bytes is its whole size.
    std::vector<std::byte> _buf;
    std::size_t _frame_bytes = 0;
};

template<typename Callback>
data_decode_error data_frame_decoder::feed(std::span<const std::byte> data, Callback&& on_frame) {
    if (dead()) {
        return _error;
    }
    data_frame frame;
    while (!data.empty()) {
        if (_buf.empty()) {
            // Between frames: the fast path, where whole frames are passed straight from `data`.
            if (data.size() >= prefix_bytes) {
                std::size_t frame_bytes = 0;
                if (!check_prefix(data.data(), frame_bytes)) {
                    return _error;
                }
                if (data.size() >= frame_bytes) {
                    if (!check_frame(data.first(frame_bytes), frame)) {
                        return _error;
                    }
                    on_frame(static_cast<const data_frame&>(frame));
                    data = data.subspan(frame_bytes);
                    continue;
                }
                // reserve() is bounded by max_frame_bytes, which check_prefix enforced.
                _frame_bytes = frame_bytes;
                _buf.reserve(frame_bytes);
            }
            _buf.assign(data.begin(), data.end());
            return data_decode_error::none;
        }
        if (_buf.size() < prefix_bytes) {
            std::size_t take = std::min(prefix_bytes - _buf.size(), data.size());
            _buf.insert(_buf.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(take));
            data = data.subspan(take);
            if (_buf.size() < prefix_bytes) {
                return data_decode_error::none;
            }
            if (!check_prefix(_buf.data(), _frame_bytes)) {
                return _error;
            }
            _buf.reserve(_frame_bytes);
        }
        std::size_t take = std::min(_frame_bytes - _buf.size(), data.size());
        _buf.insert(_buf.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(take));
        data = data.subspan(take);
        if (_buf.size() == _frame_bytes) {
            if (!check_frame(_buf, frame)) {
                return _error;
            }
            on_frame(static_cast<const data_frame&>(frame));
            reset_frame();
        }
    }
    return data_decode_error::none;
}

} // namespace ringtail::net
