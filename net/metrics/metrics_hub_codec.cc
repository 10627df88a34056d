// The monitoring-hub frames of WIRE.md §5, byte for byte, and a bounds-checked decoder for them.
#include "net/metrics/metrics_hub_codec.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/big_endian.h"

namespace ringtail::net {
namespace {

// Bytes of data after its `header` field that do not depend on the strings:
// 4 str32 length fields, u16 id, 65 bins, min, max, period_ns, period_end_ns.
constexpr std::size_t metric_fixed_bytes = 4 * 4 + 2 + hub_bin_count * 8 + 4 * 8;

void append_str32(std::string& out, std::string_view s) {
    be::append<std::uint32_t>(out, static_cast<std::uint32_t>(s.size()));
    out.append(s);
}

// Patches the u32 at `at` with the number of bytes from `at + 4` to the end of `out`.
void patch_size(std::string& out, std::size_t at) {
    const auto size = static_cast<std::uint32_t>(out.size() - at - 4);
    std::string field;
    be::append<std::uint32_t>(field, size);
    out.replace(at, 4, field);
}

error bad_frame(const std::string& what) {
    return error{ errc::data_error, "malformed monitoring-hub frame: " + what };
}

// Reads fields front to back; every read checks that the bytes are there first.
class reader {
public:
    explicit reader(std::span<const std::byte> bytes)
      : _bytes(bytes) {}

    std::size_t left() const { return _bytes.size() - _at; }

    template<typename T>
    bool read(T& out) {
        if (left() < sizeof(T)) {
            return false;
        }
        out = be::read<T>(_bytes.data() + _at);
        _at += sizeof(T);
        return true;
    }

    bool read_str32(std::string& out) {
        std::uint32_t n = 0;
        if (!read(n) || left() < n) {
            return false;
        }
        out.assign(reinterpret_cast<const char*>(_bytes.data() + _at), n);
        _at += n;
        return true;
    }

private:
    std::span<const std::byte> _bytes;
    std::size_t _at = 0;
};

result<hub_frame> decode_metric(reader& in, hub_payload payload) {
    std::uint32_t data_size = 0;
    if (!in.read(data_size)) {
        return bad_frame("PAYLOAD truncated before data_size");
    }
    if (data_size != in.left()) {
        return bad_frame("PAYLOAD data_size " + std::to_string(data_size) + " but " +
                         std::to_string(in.left()) + " bytes follow");
    }
    std::uint32_t header = 0;
    if (!in.read(header)) {
        return bad_frame("PAYLOAD data truncated before its header");
    }
    if (header != in.left()) {
        return bad_frame("PAYLOAD data header " + std::to_string(header) + " but " +
                         std::to_string(in.left()) + " bytes follow");
    }
    hub_metric& m = payload.metric;
    if (!in.read_str32(m.name) || !in.read_str32(m.category) || !in.read_str32(m.worker) ||
        !in.read_str32(m.pipeline) || !in.read(m.id)) {
        return bad_frame("PAYLOAD data truncated in its names");
    }
    for (auto& bin : m.bins) {
        if (!in.read(bin)) {
            return bad_frame("PAYLOAD data truncated in its bins");
        }
    }
    if (!in.read(m.min) || !in.read(m.max) || !in.read(m.period_ns) || !in.read(m.period_end_ns)) {
        return bad_frame("PAYLOAD data truncated after its bins");
    }
    if (in.left() != 0) {
        return bad_frame(std::to_string(in.left()) + " bytes after the end of PAYLOAD data");
    }
    return hub_frame{ std::move(payload) };
}

} // namespace

std::uint64_t hub_metric::count() const {
    std::uint64_t n = 0;
    for (auto b : bins) {
        n += b;
    }
    return n;
}

std::string hub_topic(std::string_view app_name) {
    return "metrics:" + std::string(app_name);
}

void append_hub_connect(std::string& out) {
    be::append<std::uint32_t>(out, 1);
    be::append<std::uint8_t>(out, static_cast<std::uint8_t>(hub_frame_type::connect));
}

void append_hub_join(std::string& out, std::string_view topic, std::string_view worker) {
    const std::size_t start = out.size();
    be::append<std::uint32_t>(out, 0);
    be::append<std::uint8_t>(out, static_cast<std::uint8_t>(hub_frame_type::join));
    append_str32(out, topic);
    append_str32(out, worker);
    patch_size(out, start);
}

void append_hub_payload(std::string& out, std::string_view topic, const hub_metric& m) {
    const std::size_t start = out.size();
    be::append<std::uint32_t>(out, 0);
    be::append<std::uint8_t>(out, static_cast<std::uint8_t>(hub_frame_type::payload));
    append_str32(out, "metrics");
    append_str32(out, topic);
    const std::size_t data_size_at = out.size();
    be::append<std::uint32_t>(out, 0);
    // `header` is the byte length of the rest of data after the header field itself (so
    // data_size = header + 4): the name, category, worker and pipeline strings with their length
    // fields, the id, the bins, min, max, period_ns and period_end_ns.
    const std::size_t header_at = out.size();
    be::append<std::uint32_t>(out, 0);
    append_str32(out, m.name);
    append_str32(out, m.category);
    append_str32(out, m.worker);
    append_str32(out, m.pipeline);
    be::append<std::uint16_t>(out, m.id);
    for (auto bin : m.bins) {
        be::append<std::uint64_t>(out, bin);
    }
    be::append<std::uint64_t>(out, m.min);
    be::append<std::uint64_t>(out, m.max);
    be::append<std::uint64_t>(out, m.period_ns);
    be::append<std::uint64_t>(out, m.period_end_ns);
    patch_size(out, header_at);
    patch_size(out, data_size_at);
    patch_size(out, start);
}

std::size_t append_hub_snapshot(std::string& out, const metrics_snapshot& snapshot,
                                std::string_view topic, std::string_view worker) {
    if (snapshot.catalog == nullptr) {
        return 0;
    }
    const auto& keys = snapshot.catalog->keys();
    hub_metric m;
    m.worker = worker;
    m.period_ns = snapshot.period_ns;
    m.period_end_ns = snapshot.period_end_ns;
    std::size_t n = 0;
    for (std::size_t i = 0; i < keys.size(); ++i) {
        const metric_key& key = keys[i];
        m.name = key.name;
        m.category = to_string(key.category);
        m.pipeline = key.pipeline;
        m.id = key.id;
        m.bins.fill(0);
        m.min = 0;
        m.max = 0;
        if (key.category == metric_category::pipeline_ingestion) {
            // A count without latency: all of it in bin 0, as Wallaroo recorded counts as
            // histogram entries.
            m.bins[0] = i < snapshot.counts.size() ? snapshot.counts[i] : 0;
        } else if (i < snapshot.latency.size()) {
            const histogram& h = snapshot.latency[i];
            const auto bins = h.power_of_two_bins();
            for (std::size_t b = 0; b < hub_bin_count && b < bins.size(); ++b) {
                m.bins[b] = bins[b];
            }
            m.min = h.min();
            m.max = h.max();
        }
        // Metric data is at most a few hundred bytes plus names; exceeding the frame limit would
        // mean names of a megabyte, which the catalog does not allow to reach here unnoticed.
        append_hub_payload(out, topic, m);
        ++n;
    }
    return n;
}

std::size_t hub_frame_length(std::span<const std::byte> bytes) {
    if (bytes.size() < 4) {
        return 0;
    }
    return std::size_t{ be::read<std::uint32_t>(bytes.data()) } + 4;
}

result<hub_frame> decode_hub_frame(std::span<const std::byte> bytes) {
    reader in(bytes);
    std::uint32_t size = 0;
    if (!in.read(size)) {
        return bad_frame("fewer than 4 bytes");
    }
    if (size > max_hub_frame_size) {
        return bad_frame("size " + std::to_string(size) + " above the limit of " +
                         std::to_string(max_hub_frame_size));
    }
    if (size != in.left()) {
        return bad_frame("size " + std::to_string(size) + " but " + std::to_string(in.left()) +
                         " bytes follow");
    }
    std::uint8_t type = 0;
    if (!in.read(type)) {
        return bad_frame("empty frame");
    }
    switch (static_cast<hub_frame_type>(type)) {
        case hub_frame_type::connect:
            if (in.left() != 0) {
                return bad_frame("CONNECT with " + std::to_string(in.left()) + " extra bytes");
            }
            return hub_frame{ hub_connect{} };
        case hub_frame_type::join: {
            hub_join join;
            if (!in.read_str32(join.topic) || !in.read_str32(join.worker)) {
                return bad_frame("JOIN truncated");
            }
            if (in.left() != 0) {
                return bad_frame(std::to_string(in.left()) + " bytes after the end of JOIN");
            }
            return hub_frame{ std::move(join) };
        }
        case hub_frame_type::payload: {
            hub_payload payload;
            if (!in.read_str32(payload.event) || !in.read_str32(payload.topic)) {
                return bad_frame("PAYLOAD truncated in event or topic");
            }
            if (in.left() < 4 + 4 + metric_fixed_bytes) {
                return bad_frame("PAYLOAD too short for its metric data");
            }
            return decode_metric(in, std::move(payload));
        }
    }
    return bad_frame("unknown frame type " + std::to_string(type));
}

std::uint64_t hub_bins_value_at_percentile(const std::array<std::uint64_t, hub_bin_count>& bins,
                                           std::uint64_t max, double p) {
    std::uint64_t total = 0;
    for (auto b : bins) {
        // Saturate rather than wrap on hostile counts.
        total = b > std::numeric_limits<std::uint64_t>::max() - total
                  ? std::numeric_limits<std::uint64_t>::max()
                  : total + b;
    }
    if (total == 0) {
        return 0;
    }
    p = std::isnan(p) ? 100.0 : std::clamp(p, 0.0, 100.0);
    const double wanted = std::ceil(p / 100.0 * static_cast<double>(total));
    const std::uint64_t rank =
      wanted < 1.0
        ? 1
        : (wanted >= static_cast<double>(total) ? total : static_cast<std::uint64_t>(wanted));
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < hub_bin_count; ++i) {
        seen = bins[i] > std::numeric_limits<std::uint64_t>::max() - seen
                 ? std::numeric_limits<std::uint64_t>::max()
                 : seen + bins[i];
        if (seen >= rank) {
            // Bin 0 holds 0; bin i's largest value is 2^i - 1 (bin 64: 2^64 - 1).
            const std::uint64_t upper =
              i == 0 ? 0 : (i >= 64 ? ~std::uint64_t{ 0 } : (std::uint64_t{ 1 } << i) - 1);
            return upper < max ? upper : max;
        }
    }
    return max;
}

} // namespace ringtail::net
