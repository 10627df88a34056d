// Encoding and the out-of-line checks of the data-channel frame.
#include "net/channel/data_codec.h"
#include "engine/assert.h"

#include <array>
#include <cstdlib>
#include <cstring>
#include <limits>

#include <fmt/format.h>

#include "engine/big_endian.h"
#include "engine/log.h"
#include "net/channel/crc32c.h"

namespace ringtail::net {
namespace {

// Offsets in a frame.
constexpr std::size_t magic_at = 4;
constexpr std::size_t version_at = 5;
constexpr std::size_t type_at = 6;
constexpr std::size_t flags_at = 7;
constexpr std::size_t crc_at = 8;
constexpr std::size_t seq_at = 12;
constexpr std::size_t count_at = 20;
// The checksum covers every byte but its own four. It is taken in parts that begin where the
// fields written last do (see crc32c_parts): the header's first word, seq and count, the body,
// and the last 16 bytes, where an ACK trailer's two words are.
std::uint32_t frame_crc(std::span<const std::byte> frame) {
    const auto rest = frame.subspan(data_frame_header_bytes);
    const std::size_t trailer = rest.size() >= data_ack_trailer_bytes ? data_ack_trailer_bytes : 0;
    const std::array<std::span<const std::byte>, 4> parts{
        frame.first(crc_at), frame.subspan(seq_at, data_frame_header_bytes - seq_at),
        rest.first(rest.size() - trailer), rest.last(trailer)
    };
    return crc32c_parts(parts);
}

bool flags_allowed(std::uint8_t type, std::uint8_t flags) {
    constexpr std::uint8_t known = data_flag_ack | data_flag_more;
    return flags == 0 ||
           (type == static_cast<std::uint8_t>(data_frame_type::data) && (flags & ~known) == 0);
}

// An ACK body: 24 bytes, then 0 to data_ack_selective_words words of selective acknowledgement.
bool ack_body_size_ok(std::size_t bytes) {
    return bytes >= data_ack_body_bytes &&
           bytes <= data_ack_body_bytes + 8 * data_ack_selective_words && bytes % 8 == 0;
}

bool known_type(std::uint8_t type) {
    return type >= static_cast<std::uint8_t>(data_frame_type::hello) &&
           type <= static_cast<std::uint8_t>(data_frame_type::ack);
}

// What is wrong with a frame of this type, flags, count and body size (without an ACK trailer),
// or nullptr if nothing. No two types accept the same (count is 0, body is empty) pair.
const char* shape_problem(data_frame_type type, std::uint8_t flags, std::uint32_t count,
                          std::size_t body_bytes) {
    switch (type) {
        case data_frame_type::hello:
            if (count != 0 || body_bytes != data_hello_body_bytes) {
                return "a HELLO frame has count 0 and a 16-byte body";
            }
            return nullptr;
        case data_frame_type::data:
            if ((flags & data_flag_more) != 0) {
                if (count != 0 || body_bytes == 0) {
                    return "a DATA fragment with MORE set has count 0 and a body";
                }
                return nullptr;
            }
            if (count == 0 || body_bytes == 0) {
                return "a DATA frame carries at least one message";
            }
            return nullptr;
        case data_frame_type::credit:
            if (count == 0 || body_bytes != 0) {
                return "a CREDIT frame grants at least one message and has no body";
            }
            return nullptr;
        case data_frame_type::bye:
            if (count != 0 || body_bytes != 0) {
                return "a BYE frame has count 0 and no body";
            }
            return nullptr;
        case data_frame_type::ack:
            if (count != 0 || !ack_body_size_ok(body_bytes)) {
                return "an ACK frame has count 0 and a body of 24 bytes plus 0 to 4 words";
            }
            return nullptr;
    }
    return "unknown frame type";
}

} // namespace

std::string_view to_string(data_frame_type type) {
    switch (type) {
        case data_frame_type::hello:
            return "HELLO";
        case data_frame_type::data:
            return "DATA";
        case data_frame_type::credit:
            return "CREDIT";
        case data_frame_type::bye:
            return "BYE";
        case data_frame_type::ack:
            return "ACK";
    }
    return "?";
}

std::string_view to_string(data_decode_error error) {
    switch (error) {
        case data_decode_error::none:
            return "none";
        case data_decode_error::bad_magic:
            return "bad magic";
        case data_decode_error::bad_version:
            return "bad version";
        case data_decode_error::bad_checksum:
            return "bad checksum";
        case data_decode_error::unknown_type:
            return "unknown type";
        case data_decode_error::malformed:
            return "malformed";
        case data_decode_error::oversized:
            return "oversized";
        case data_decode_error::short_header:
            return "short header";
        case data_decode_error::not_one_frame:
            return "not one frame";
    }
    return "?";
}

std::size_t begin_data_frame(std::string& out) {
    std::size_t start = out.size();
    out.append(data_frame_header_bytes, '\0');
    return start;
}

void seal_data_frame(std::span<std::byte> frame, data_frame_type type, std::uint8_t flags,
                     std::uint64_t seq, std::uint32_t count) {
    const std::size_t frame_bytes = frame.size();
    RINGTAIL_ASSERT(frame_bytes >= data_frame_header_bytes, "a frame shorter than its header");
    RINGTAIL_ASSERT(frame_bytes - 4 <= std::numeric_limits<std::uint32_t>::max(),
                    "frame too large");
    RINGTAIL_ASSERT(flags_allowed(static_cast<std::uint8_t>(type), flags),
                    "flags its type does not allow");
    std::size_t body_bytes = frame_bytes - data_frame_header_bytes;
    if ((flags & data_flag_ack) != 0) {
        RINGTAIL_ASSERT(body_bytes >= data_ack_trailer_bytes, "the ACK flag without its trailer");
        body_bytes -= data_ack_trailer_bytes;
    }
    RINGTAIL_ASSERT(shape_problem(type, flags, count, body_bytes) == nullptr,
                    "a frame that breaks its type's rules (count or body)");
    std::byte* at = frame.data();
    // The first eight bytes (length, magic, version, type, flags) in one store: the checksum
    // reads them back at once as one word, and a word assembled from five smaller stores still
    // in flight waits for all of them to reach the cache (some 8 % of sending a small frame).
    std::array<std::byte, 8> head;
    be::write<std::uint32_t>(head.data(), static_cast<std::uint32_t>(frame_bytes - 4));
    head[magic_at] = std::byte{ data_frame_magic };
    head[version_at] = std::byte{ data_frame_version };
    head[type_at] = static_cast<std::byte>(type);
    head[flags_at] = std::byte{ flags };
    std::uint64_t word;
    std::memcpy(&word, head.data(), sizeof word);
    std::memcpy(at, &word, sizeof word);
    be::write<std::uint64_t>(at + seq_at, seq);
    be::write<std::uint32_t>(at + count_at, count);
    be::write<std::uint32_t>(at + crc_at, frame_crc(frame));
}

void write_ack_trailer(std::span<std::byte, data_ack_trailer_bytes> out, std::uint64_t ack,
                       std::uint64_t credit_limit) {
    be::write<std::uint64_t>(out.data(), ack);
    be::write<std::uint64_t>(out.data() + 8, credit_limit);
}

void finish_data_frame(std::string& out, std::size_t start, data_frame_type type, std::uint64_t seq,
                       std::uint32_t count, std::uint8_t flags) {
    RINGTAIL_ASSERT(start <= out.size() && out.size() - start >= data_frame_header_bytes,
                    "finish_data_frame without begin_data_frame");
    seal_data_frame(std::as_writable_bytes(std::span(out.data() + start, out.size() - start)), type,
                    flags, seq, count);
}

void append_data_frame(std::string& out, data_frame_type type, std::uint64_t seq,
                       std::uint32_t count, std::span<const std::byte> body) {
    std::size_t start = begin_data_frame(out);
    out.append(reinterpret_cast<const char*>(body.data()), body.size());
    finish_data_frame(out, start, type, seq, count);
}

void append_hello_frame(std::string& out, std::uint64_t seq, const data_hello& hello) {
    std::size_t start = begin_data_frame(out);
    be::append<std::uint64_t>(out, hello.cluster_token);
    be::append<std::uint32_t>(out, hello.worker_index);
    be::append<std::uint32_t>(out, hello.worker_count);
    finish_data_frame(out, start, data_frame_type::hello, seq, 0);
}

std::optional<data_hello> parse_hello(const data_frame& frame) {
    if (frame.type != data_frame_type::hello || frame.body.size() != data_hello_body_bytes) {
        return std::nullopt;
    }
    data_hello hello;
    hello.cluster_token = be::read<std::uint64_t>(frame.body.data());
    hello.worker_index = be::read<std::uint32_t>(frame.body.data() + 8);
    hello.worker_count = be::read<std::uint32_t>(frame.body.data() + 12);
    return hello;
}

void append_ack_frame(std::string& out, const data_ack& ack) {
    std::size_t start = begin_data_frame(out);
    be::append<std::uint64_t>(out, ack.ack);
    be::append<std::uint64_t>(out, ack.credit_limit);
    be::append<std::uint64_t>(out, ack.echo_ns);
    std::size_t words = ack.selective.size();
    while (words > 0 && ack.selective[words - 1] == 0) {
        --words;
    }
    for (std::size_t w = 0; w < words; ++w) {
        be::append<std::uint64_t>(out, ack.selective[w]);
    }
    finish_data_frame(out, start, data_frame_type::ack, 0, 0);
}

std::optional<data_ack> parse_ack(const data_frame& frame) {
    const std::size_t size = frame.body.size();
    if (frame.type != data_frame_type::ack || !ack_body_size_ok(size)) {
        return std::nullopt;
    }
    const std::byte* at = frame.body.data();
    data_ack a{ be::read<std::uint64_t>(at), be::read<std::uint64_t>(at + 8),
                be::read<std::uint64_t>(at + 16) };
    for (std::size_t w = 0; w < (size - data_ack_body_bytes) / 8; ++w) {
        a.selective[w] = be::read<std::uint64_t>(at + data_ack_body_bytes + 8 * w);
    }
    return a;
}

namespace {

// The checks of a frame's first prefix bytes (len, magic, version, type, flags), in the order the
// decoder reports them; sets `frame_bytes` (the whole frame) when they pass. No message: the
// datagram path only counts what it drops, and the decoder words its own (prefix_message).
data_decode_error prefix_error(const std::byte* prefix, std::size_t max_frame_bytes,
                               std::size_t& frame_bytes) {
    const auto type = static_cast<std::uint8_t>(prefix[type_at]);
    const std::uint32_t len = be::read<std::uint32_t>(prefix);
    // Magic and version first: what follows them may mean something else in another format.
    if (static_cast<std::uint8_t>(prefix[magic_at]) != data_frame_magic) {
        return data_decode_error::bad_magic;
    }
    if (static_cast<std::uint8_t>(prefix[version_at]) != data_frame_version) {
        return data_decode_error::bad_version;
    }
    if (len < data_frame_min_len) {
        return data_decode_error::short_header;
    }
    if (std::size_t{ len } + 4 > max_frame_bytes) {
        return data_decode_error::oversized;
    }
    if (!known_type(type)) {
        return data_decode_error::unknown_type;
    }
    if (!flags_allowed(type, static_cast<std::uint8_t>(prefix[flags_at]))) {
        return data_decode_error::malformed;
    }
    frame_bytes = std::size_t{ len } + 4;
    return data_decode_error::none;
}

std::string prefix_message(data_decode_error error, const std::byte* prefix,
                           std::size_t max_frame_bytes) {
    const auto magic = static_cast<std::uint8_t>(prefix[magic_at]);
    const auto version = static_cast<std::uint8_t>(prefix[version_at]);
    const auto type = static_cast<std::uint8_t>(prefix[type_at]);
    const auto flags = static_cast<std::uint8_t>(prefix[flags_at]);
    const std::uint32_t len = be::read<std::uint32_t>(prefix);
    switch (error) {
        case data_decode_error::bad_magic:
            return fmt::format(
              "not a Ringtail data-channel frame (magic byte 0x{:02x}, expected 0x{:02x})", magic,
              data_frame_magic);
        case data_decode_error::bad_version:
            return fmt::format("data-channel version {}, this build speaks {}", version,
                               data_frame_version);
        case data_decode_error::short_header:
            return fmt::format("frame length {} is shorter than the {}-byte header after it", len,
                               data_frame_min_len);
        case data_decode_error::oversized:
            return fmt::format("frame of {} bytes is larger than the limit of {}",
                               std::size_t{ len } + 4, max_frame_bytes);
        case data_decode_error::unknown_type:
            return fmt::format("unknown frame type {}", type);
        default:
            return fmt::format("flags 0x{:02x} on a {} frame", flags,
                               to_string(static_cast<data_frame_type>(type)));
    }
}

// frame_error's problem for a DATA frame with the ACK flag and a body too short for the trailer.
constexpr const char* short_ack_trailer = "no room for the ACK trailer";

// The checks of a whole frame whose prefix passed: its checksum, then its shape; fills `frame`.
// On bad_checksum `crc` is the one computed; on malformed `problem` says what is wrong.
data_decode_error frame_error(std::span<const std::byte> bytes, data_frame& frame,
                              std::uint32_t& crc, const char*& problem) {
    crc = frame_crc(bytes);
    if (be::read<std::uint32_t>(bytes.data() + crc_at) != crc) {
        return data_decode_error::bad_checksum;
    }
    frame.type = static_cast<data_frame_type>(bytes[type_at]);
    frame.flags = static_cast<std::uint8_t>(bytes[flags_at]);
    frame.seq = be::read<std::uint64_t>(bytes.data() + seq_at);
    frame.count = be::read<std::uint32_t>(bytes.data() + count_at);
    frame.body = bytes.subspan(data_frame_header_bytes);
    frame.ack = 0;
    frame.credit_limit = 0;
    if (frame.has_ack()) {
        if (frame.body.size() < data_ack_trailer_bytes) {
            problem = short_ack_trailer;
            return data_decode_error::malformed;
        }
        auto trailer = frame.body.last(data_ack_trailer_bytes);
        frame.ack = be::read<std::uint64_t>(trailer.data());
        frame.credit_limit = be::read<std::uint64_t>(trailer.data() + 8);
        frame.body = frame.body.first(frame.body.size() - data_ack_trailer_bytes);
    }
    problem = shape_problem(frame.type, frame.flags, frame.count, frame.body.size());
    return problem == nullptr ? data_decode_error::none : data_decode_error::malformed;
}

} // namespace

data_decode_error decode_data_datagram(std::span<const std::byte> datagram, data_frame& frame,
                                       std::size_t max_frame_bytes) {
    if (datagram.size() < data_frame_decoder::prefix_bytes) {
        return data_decode_error::not_one_frame;
    }
    std::size_t frame_bytes = 0;
    if (auto e = prefix_error(datagram.data(), max_frame_bytes, frame_bytes);
        e != data_decode_error::none) {
        return e;
    }
    if (frame_bytes != datagram.size()) {
        return data_decode_error::not_one_frame;
    }
    std::uint32_t crc = 0;
    const char* problem = nullptr;
    return frame_error(datagram, frame, crc, problem);
}

data_frame_decoder::data_frame_decoder(std::size_t max_frame_bytes)
  : _max_frame_bytes(max_frame_bytes) {
    RINGTAIL_ASSERT(max_frame_bytes >= data_frame_header_bytes,
                    "max_frame_bytes must hold at least a frame header");
}

bool data_frame_decoder::check_prefix(const std::byte* prefix, std::size_t& frame_bytes) {
    const data_decode_error e = prefix_error(prefix, _max_frame_bytes, frame_bytes);
    if (e != data_decode_error::none) {
        fail(e, prefix_message(e, prefix, _max_frame_bytes));
        return false;
    }
    return true;
}

bool data_frame_decoder::check_frame(std::span<const std::byte> bytes, data_frame& frame) {
    std::uint32_t crc = 0;
    const char* problem = nullptr;
    const data_decode_error e = frame_error(bytes, frame, crc, problem);
    if (e == data_decode_error::bad_checksum) {
        fail(e, fmt::format("bad checksum (0x{:08x}, computed 0x{:08x})",
                            be::read<std::uint32_t>(bytes.data() + crc_at), crc));
        return false;
    }
    if (problem == short_ack_trailer) {
        fail(e,
             fmt::format("DATA frame with the ACK flag and only {} body bytes", frame.body.size()));
        return false;
    }
    if (e != data_decode_error::none) {
        fail(e, fmt::format("{} frame with count {} and {} body bytes: {}", to_string(frame.type),
                            frame.count, frame.body.size(), problem));
        return false;
    }
    return true;
}

void data_frame_decoder::fail(data_decode_error error, std::string message) {
    _error = error;
    _error_message = std::move(message);
    // Nothing after an error is decoded, so the held bytes can go.
    std::vector<std::byte>{}.swap(_buf);
}

void data_frame_decoder::reset_frame() {
    _frame_bytes = 0;
    if (_buf.capacity() > keep_capacity) {
        std::vector<std::byte>{}.swap(_buf);
    } else {
        _buf.clear();
    }
}

} // namespace ringtail::net
