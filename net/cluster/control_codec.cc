// The control channel's framing: encoder, incremental decoder and typed field reads.
#include "net/cluster/control_codec.h"
#include "engine/assert.h"

#include <cstdio>
#include <cstdlib>
#include <limits>
#include <utility>

#include <fmt/format.h>

#include "engine/big_endian.h"
#include "net/channel/crc32c.h"

namespace ringtail::net {
namespace {

using json = nlohmann::json;

std::uint32_t read_u32(const char* p) {
    return be::read<std::uint32_t>(reinterpret_cast<const std::byte*>(p));
}

// The checksum of a frame: the four bytes magic..flags, then the body.
std::uint32_t frame_crc(std::string_view magic_to_flags, std::string_view body) {
    return crc32c(body, crc32c(magic_to_flags));
}

// How deeply `text` nests arrays and objects, counted without parsing (strings skipped), stopping
// once past `limit`. Exact for valid JSON; for invalid JSON any answer is fine, as parsing fails.
std::size_t nesting_depth(std::string_view text, std::size_t limit) {
    std::size_t depth = 0;
    std::size_t deepest = 0;
    bool in_string = false;
    bool escaped = false;
    for (char c : text) {
        if (in_string) {
            if (escaped) {
                escaped = false;
            } else if (c == '\\') {
                escaped = true;
            } else if (c == '"') {
                in_string = false;
            }
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > deepest) {
                deepest = depth;
                if (deepest > limit) {
                    return deepest;
                }
            }
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return deepest;
}

const char* json_kind(const json& j) {
    switch (j.type()) {
        case json::value_t::null:
            return "null";
        case json::value_t::object:
            return "an object";
        case json::value_t::array:
            return "an array";
        case json::value_t::string:
            return "a string";
        case json::value_t::boolean:
            return "a boolean";
        case json::value_t::number_integer:
        case json::value_t::number_unsigned:
        case json::value_t::number_float:
            return "a number";
        case json::value_t::binary:
            return "binary";
        case json::value_t::discarded:
            return "discarded";
    }
    return "unknown";
}

const json* find(const json& body, const char* key) {
    if (!body.is_object()) {
        return nullptr;
    }
    auto it = body.find(key);
    return it == body.end() ? nullptr : &*it;
}

std::optional<std::uint64_t> as_u64(const json& v) {
    if (v.is_number_unsigned()) {
        return v.get<std::uint64_t>();
    }
    if (v.is_number_integer()) {
        // Signed storage: the parser uses it for negative numbers only, but a locally built body
        // may hold a non-negative int64.
        const auto i = v.get<std::int64_t>();
        if (i >= 0) {
            return static_cast<std::uint64_t>(i);
        }
    }
    return std::nullopt;
}

} // namespace

const char* to_string(control_type type) {
    switch (type) {
        case control_type::hello:
            return "hello";
        case control_type::welcome:
            return "welcome";
        case control_type::reject:
            return "reject";
        case control_type::topology:
            return "topology";
        case control_type::ready:
            return "ready";
        case control_type::start:
            return "start";
        case control_type::heartbeat:
            return "heartbeat";
        case control_type::worker_lost:
            return "worker_lost";
        case control_type::query:
            return "query";
        case control_type::query_reply:
            return "query_reply";
        case control_type::shutdown_request:
            return "shutdown_request";
        case control_type::stop_admitting:
            return "stop_admitting";
        case control_type::drain_status_request:
            return "drain_status_request";
        case control_type::drain_status:
            return "drain_status";
        case control_type::finish:
            return "finish";
        case control_type::leaving:
            return "leaving";
    }
    return "unknown";
}

const char* to_string(control_error error) {
    switch (error) {
        case control_error::none:
            return "none";
        case control_error::bad_magic:
            return "bad_magic";
        case control_error::bad_version:
            return "bad_version";
        case control_error::short_header:
            return "short_header";
        case control_error::oversize:
            return "oversize";
        case control_error::bad_flags:
            return "bad_flags";
        case control_error::bad_checksum:
            return "bad_checksum";
        case control_error::unknown_type:
            return "unknown_type";
        case control_error::bad_json:
            return "bad_json";
        case control_error::not_object:
            return "not_object";
        case control_error::too_deep:
            return "too_deep";
    }
    return "unknown";
}

void append_control(std::string& out, control_type type, const nlohmann::json& body) {
    RINGTAIL_ASSERT(body.is_object(), "a control-message body must be a JSON object");
    const std::size_t start = out.size();
    // The length and checksum are patched in once the body's size and bytes are known.
    be::append<std::uint32_t>(out, 0);
    out.push_back(static_cast<char>(control_magic));
    out.push_back(static_cast<char>(control_version));
    out.push_back(static_cast<char>(type));
    out.push_back(0); // flags
    be::append<std::uint32_t>(out, 0);
    out.append(body.dump(-1, ' ', false, json::error_handler_t::replace));
    const std::size_t length = out.size() - start - 4;
    RINGTAIL_ASSERT(length <= std::numeric_limits<std::uint32_t>::max(),
                    "control-message body of {} bytes too large for its u32 length field", length);
    std::string_view frame(out.data() + start, out.size() - start);
    const std::uint32_t crc = frame_crc(frame.substr(4, 4), frame.substr(control_header_bytes));
    std::string patch;
    be::append<std::uint32_t>(patch, static_cast<std::uint32_t>(length));
    out.replace(start, 4, patch);
    patch.clear();
    be::append<std::uint32_t>(patch, crc);
    out.replace(start + 8, 4, patch);
}

std::string encode_control(control_type type, const nlohmann::json& body) {
    std::string out;
    append_control(out, type, body);
    return out;
}

control_decoder::control_decoder(std::uint32_t max_frame)
  : _max_frame(max_frame) {}

void control_decoder::feed(std::span<const std::byte> data) {
    if (dead() || data.empty()) {
        return;
    }
    if (_offset > 0) {
        // Drop consumed frames; what remains is at most one unfinished frame.
        _buffer.erase(0, _offset);
        _offset = 0;
        if (_buffer.empty() && _buffer.capacity() > 64 * 1024) {
            std::string{}.swap(_buffer); // an idle connection keeps no large buffer
        }
    }
    _buffer.append(reinterpret_cast<const char*>(data.data()), data.size());
}

void control_decoder::fail(control_error error, std::string message) {
    _error = error;
    _error_message = std::move(message);
    std::string{}.swap(_buffer);
    _offset = 0;
}

std::optional<control_msg> control_decoder::next() {
    if (dead()) {
        return std::nullopt;
    }
    std::string_view rest(_buffer.data() + _offset, _buffer.size() - _offset);
    // The fixed fields magic..flags and the length are checked as soon as they are all here, so
    // that a peer speaking another protocol is turned away without waiting for a whole "frame".
    if (rest.size() < 8) {
        return std::nullopt;
    }
    const std::uint32_t length = read_u32(rest.data());
    const auto magic = static_cast<std::uint8_t>(rest[4]);
    const auto version = static_cast<std::uint8_t>(rest[5]);
    const auto type = static_cast<std::uint8_t>(rest[6]);
    const auto flags = static_cast<std::uint8_t>(rest[7]);
    if (magic != control_magic) {
        fail(control_error::bad_magic,
             fmt::format("not a Ringtail control-channel frame (magic byte 0x{:02x}, expected "
                         "0x{:02x})",
                         magic, control_magic));
        return std::nullopt;
    }
    if (version != control_version) {
        fail(control_error::bad_version,
             fmt::format("control-channel version {}, this build speaks {}", version,
                         control_version));
        return std::nullopt;
    }
    if (length < control_min_length) {
        fail(control_error::short_header,
             fmt::format("control-channel frame length {} is shorter than its {}-byte header",
                         length, control_min_length));
        return std::nullopt;
    }
    if (length > _max_frame) {
        fail(control_error::oversize,
             fmt::format("control-channel frame of {} bytes is over the {}-byte limit", length,
                         _max_frame));
        return std::nullopt;
    }
    if (flags != 0) {
        fail(control_error::bad_flags,
             fmt::format("control-channel frame flags 0x{:02x} are unknown to this build", flags));
        return std::nullopt;
    }
    const std::size_t total = 4 + static_cast<std::size_t>(length);
    if (rest.size() < total) {
        return std::nullopt;
    }
    const std::string_view body = rest.substr(control_header_bytes, total - control_header_bytes);
    const std::uint32_t crc = read_u32(rest.data() + 8);
    if (frame_crc(rest.substr(4, 4), body) != crc) {
        fail(control_error::bad_checksum,
             fmt::format("control-channel frame checksum mismatch ({} body bytes): the stream is "
                         "corrupt",
                         body.size()));
        return std::nullopt;
    }
    if (!is_control_type(type)) {
        fail(control_error::unknown_type,
             fmt::format("unknown control-message type {} (this build knows {} to {})", type,
                         control_type_first, control_type_last));
        return std::nullopt;
    }
    const auto t = static_cast<control_type>(type);
    if (nesting_depth(body, control_max_depth) > control_max_depth) {
        fail(control_error::too_deep,
             fmt::format("control-message {} body nests deeper than {} levels", to_string(t),
                         control_max_depth));
        return std::nullopt;
    }
    // A NUL byte is never valid JSON, but nlohmann's lexer reads it as the end of input and would
    // ignore whatever follows it.
    json parsed = body.find('\0') != std::string_view::npos
                    ? json(json::value_t::discarded)
                    : json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded()) {
        fail(control_error::bad_json,
             fmt::format("control-message {} body is not valid JSON", to_string(t)));
        return std::nullopt;
    }
    if (!parsed.is_object()) {
        fail(control_error::not_object,
             fmt::format("control-message {} body is {}, not a JSON object", to_string(t),
                         json_kind(parsed)));
        return std::nullopt;
    }
    _offset += total;
    return control_msg{ t, std::move(parsed) };
}

std::optional<std::string> get_string(const nlohmann::json& body, const char* key) {
    const json* v = find(body, key);
    if (v == nullptr || !v->is_string()) {
        return std::nullopt;
    }
    return v->get<std::string>();
}

std::optional<std::uint64_t> get_u64(const nlohmann::json& body, const char* key) {
    const json* v = find(body, key);
    if (v == nullptr) {
        return std::nullopt;
    }
    return as_u64(*v);
}

std::optional<std::int64_t> get_i64(const nlohmann::json& body, const char* key) {
    const json* v = find(body, key);
    if (v == nullptr) {
        return std::nullopt;
    }
    if (v->is_number_unsigned()) {
        const auto u = v->get<std::uint64_t>();
        if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
            return std::nullopt;
        }
        return static_cast<std::int64_t>(u);
    }
    if (v->is_number_integer()) {
        return v->get<std::int64_t>();
    }
    return std::nullopt;
}

std::optional<bool> get_bool(const nlohmann::json& body, const char* key) {
    const json* v = find(body, key);
    if (v == nullptr || !v->is_boolean()) {
        return std::nullopt;
    }
    return v->get<bool>();
}

std::optional<std::vector<std::string>> get_string_array(const nlohmann::json& body,
                                                         const char* key) {
    const json* v = find(body, key);
    if (v == nullptr || !v->is_array()) {
        return std::nullopt;
    }
    std::vector<std::string> out;
    out.reserve(v->size());
    for (const auto& e : *v) {
        if (!e.is_string()) {
            return std::nullopt;
        }
        out.push_back(e.get<std::string>());
    }
    return out;
}

std::optional<std::vector<std::uint64_t>> get_u64_array(const nlohmann::json& body,
                                                        const char* key) {
    const json* v = find(body, key);
    if (v == nullptr || !v->is_array()) {
        return std::nullopt;
    }
    std::vector<std::uint64_t> out;
    out.reserve(v->size());
    for (const auto& e : *v) {
        auto u = as_u64(e);
        if (!u) {
            return std::nullopt;
        }
        out.push_back(*u);
    }
    return out;
}

const nlohmann::json* get_object(const nlohmann::json& body, const char* key) {
    const json* v = find(body, key);
    return v != nullptr && v->is_object() ? v : nullptr;
}

const nlohmann::json* get_array(const nlohmann::json& body, const char* key) {
    const json* v = find(body, key);
    return v != nullptr && v->is_array() ? v : nullptr;
}

} // namespace ringtail::net
