// Messages to and from other workers.
#include "engine/remote_codec.h"

#include "engine/big_endian.h"

namespace ringtail::remote {

void append_message(std::string& out, const node& n, const envelope& e, std::uint64_t now_ns) {
    be::append<std::uint32_t>(out, e.node);
    be::append<std::uint32_t>(out, e.partition);
    be::append<std::uint64_t>(out, now_ns > e.ingest_ns ? now_ns - e.ingest_ns : 0);
    be::append<std::uint16_t>(out, e.pipeline);
    const std::size_t len_at = out.size();
    be::append<std::uint32_t>(out, 0);
    n.encode_input(e.value, out);
    const auto len = static_cast<std::uint32_t>(out.size() - len_at - 4);
    be::write<std::uint32_t>(reinterpret_cast<std::byte*>(out.data() + len_at), len);
}

bool read_message(std::span<const std::byte> bytes, std::size_t& offset, message_view& out) {
    if (bytes.size() < offset || bytes.size() - offset < message_header_size) {
        return false;
    }
    const std::byte* p = bytes.data() + offset;
    out.node = be::read<std::uint32_t>(p);
    out.partition = be::read<std::uint32_t>(p + 4);
    out.age_ns = be::read<std::uint64_t>(p + 8);
    out.pipeline = be::read<std::uint16_t>(p + 16);
    const auto len = be::read<std::uint32_t>(p + 18);
    if (bytes.size() - offset - message_header_size < len) {
        return false;
    }
    out.value = bytes.subspan(offset + message_header_size, len);
    offset += message_header_size + len;
    return true;
}

} // namespace ringtail::remote
