// The control channel's framing and message types: JSON bodies in checksummed, versioned frames,
// decoded incrementally and safely from untrusted bytes.
//
// Frame, big-endian: `[u32 len][u8 magic 0xC7][u8 version 1][u8 type][u8 flags 0][u32 crc][body]`
// where len counts every byte after itself and body is one UTF-8 JSON object. The CRC-32C covers
// the four bytes magic..flags and then the body, so that a corrupted type byte cannot turn one
// message into another; the length field needs no cover (a wrong length misplaces the body, which
// then fails the check, or leaves the frame unfinished).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace ringtail::net {

enum class control_type : std::uint8_t {
    hello = 1,
    welcome = 2,
    reject = 3,
    topology = 4,
    ready = 5,
    start = 6,
    heartbeat = 7,
    worker_lost = 8,
    query = 9,
    query_reply = 10,
    shutdown_request = 11,
    stop_admitting = 12,
    drain_status_request = 13,
    drain_status = 14,
    finish = 15,
    leaving = 16,
};

inline constexpr std::uint8_t control_type_first = 1;
inline constexpr std::uint8_t control_type_last = 16;

// The name of a type ("hello", "worker_lost"); "unknown" for a value outside the enum.
const char* to_string(control_type type);
// True for the values the enum names.
constexpr bool is_control_type(std::uint8_t value) {
    return value >= control_type_first && value <= control_type_last;
}

struct control_msg {
    control_type type = control_type::hello;
    nlohmann::json body = nlohmann::json::object();
    friend bool operator==(const control_msg&, const control_msg&) = default;
};

inline constexpr std::uint8_t control_magic = 0xC7;
inline constexpr std::uint8_t control_version = 1;
// Bytes from the start of a frame to its body: len, magic, version, type, flags, crc.
inline constexpr std::size_t control_header_bytes = 12;
// The smallest legal len: magic, version, type, flags and crc, with an empty body.
inline constexpr std::uint32_t control_min_length = 8;
// Default bound on len, and the bound every worker's decoder uses: a sender must keep its frames
// within it (a larger one makes the peer close the connection).
inline constexpr std::uint32_t control_default_max_frame = 1u << 20;
// Bodies nesting arrays and objects deeper than this are rejected before parsing: nlohmann's
// dump, copy and comparison recurse, and the messages we send nest a few levels at most.
inline constexpr std::size_t control_max_depth = 64;

// Appends one frame carrying `body` (which must be a JSON object; asserted). Strings that are not
// valid UTF-8 are written with U+FFFD in place of the bad bytes rather than throwing.
void append_control(std::string& out, control_type type, const nlohmann::json& body);
std::string encode_control(control_type type, const nlohmann::json& body);

// Why a decoder stopped. Every error kills the decoder: the stream cannot be resynchronised.
enum class control_error : std::uint8_t {
    none,
    bad_magic,    // not a Ringtail control-channel frame (another protocol, or lost framing)
    bad_version,  // a Ringtail peer speaking another control-channel version
    short_header, // len too small to hold the rest of the header
    oversize,     // len above max_frame
    bad_flags,    // flags other than 0
    bad_checksum, // CRC-32C mismatch
    unknown_type, // a type byte this build does not know
    bad_json,     // the body is not JSON (invalid syntax or UTF-8)
    not_object,   // valid JSON, but not an object
    too_deep,     // nesting deeper than control_max_depth
};

// The error's name ("bad_checksum").
const char* to_string(control_error error);

// Splits a byte stream into control messages. Owned and used by one thread. Memory is bounded by
// max_frame + 4 bytes of an unfinished frame plus what one feed() passes in, provided the caller
// drains next() after each feed (the callback and vector forms of feed do).
class control_decoder {
public:
    explicit control_decoder(std::uint32_t max_frame = control_default_max_frame);

    // Buffers `data`; does nothing once dead.
    void feed(std::span<const std::byte> data);
    void feed(std::string_view data) {
        feed(std::as_bytes(std::span<const char>(data.data(), data.size())));
    }

    // The next complete message, or nullopt when more bytes are needed or the decoder is dead
    // (error() tells which). Checks run in a fixed order (header, then checksum, then type, then
    // JSON), so the same bytes give the same outcome however they were cut into feeds.
    std::optional<control_msg> next();

    // Feeds `data` and passes every message it completes to `on_message(control_msg&&)`, in order.
    // The callback must not feed this decoder. Returns error() afterwards.
    template<typename Callback>
    control_error feed(std::span<const std::byte> data, Callback&& on_message) {
        feed(data);
        while (auto msg = next()) {
            on_message(std::move(*msg));
        }
        return _error;
    }
    control_error feed(std::span<const std::byte> data, std::vector<control_msg>& out) {
        return feed(data, [&out](control_msg&& m) { out.push_back(std::move(m)); });
    }
    control_error feed(std::string_view data, std::vector<control_msg>& out) {
        return feed(std::as_bytes(std::span<const char>(data.data(), data.size())), out);
    }

    bool dead() const { return _error != control_error::none; }
    control_error error() const { return _error; }
    // One line saying what was wrong, for logs and close reasons; empty while not dead.
    const std::string& error_message() const { return _error_message; }
    // True while bytes of an unfinished frame are held.
    bool mid_frame() const { return _buffer.size() > _offset; }
    std::uint32_t max_frame() const { return _max_frame; }

private:
    void fail(control_error error, std::string message);

    std::uint32_t _max_frame;
    control_error _error = control_error::none;
    std::string _error_message;
    // Fed bytes; [0, _offset) are consumed and dropped on the next feed.
    std::string _buffer;
    std::size_t _offset = 0;
};

// Typed reads of one field of an untrusted body. Each returns nullopt (never throws) when `body`
// is not an object, the key is missing, or the value has another type.
std::optional<std::string> get_string(const nlohmann::json& body, const char* key);
// A non-negative integer; floats (even 1.0) and negative numbers are refused.
std::optional<std::uint64_t> get_u64(const nlohmann::json& body, const char* key);
std::optional<std::int64_t> get_i64(const nlohmann::json& body, const char* key);
std::optional<bool> get_bool(const nlohmann::json& body, const char* key);
// An array whose every element is a string.
std::optional<std::vector<std::string>> get_string_array(const nlohmann::json& body,
                                                         const char* key);
// An array whose every element is a non-negative integer.
std::optional<std::vector<std::uint64_t>> get_u64_array(const nlohmann::json& body,
                                                        const char* key);
// The nested object or array at `key`, or nullptr; valid while `body` is unchanged.
const nlohmann::json* get_object(const nlohmann::json& body, const char* key);
const nlohmann::json* get_array(const nlohmann::json& body, const char* key);

} // namespace ringtail::net
