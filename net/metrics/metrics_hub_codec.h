// Encoding and decoding of Wallaroo's monitoring-hub protocol (WIRE.md §5): CONNECT, JOIN and one
// PAYLOAD frame per metric per period, all integers big-endian, strings as `[u32 length][bytes]`.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "engine/metrics.h"
#include "engine/result.h"

namespace ringtail::net {

// The frame type byte after the size field.
enum class hub_frame_type : std::uint8_t { connect = 1, join = 2, payload = 3 };

inline constexpr std::size_t hub_bin_count = histogram::power_of_two_bin_count; // 65
// A PAYLOAD is about 600 bytes plus its names; anything this large is a broken or hostile stream.
inline constexpr std::uint32_t max_hub_frame_size = 1024 * 1024;

// `[u32 1][u8 1]`
struct hub_connect {
    friend bool operator==(const hub_connect&, const hub_connect&) = default;
};

// `[u32 size][u8 2][str32 topic][str32 worker]`; topic is "metrics:<app_name>".
struct hub_join {
    std::string topic;
    std::string worker;
    friend bool operator==(const hub_join&, const hub_join&) = default;
};

// The data of one PAYLOAD: one metric over one period.
struct hub_metric {
    std::string name;
    std::string category; // "computation", "start-to-end", ... (kept as sent: untrusted)
    std::string worker;
    std::string pipeline;
    std::uint16_t id = 0;
    // Bin 0 counts the value 0, bin i the values of bit length i, [2^(i-1), 2^i) ns.
    // pipeline-ingestion metrics have no latency: their whole count is in bin 0.
    std::array<std::uint64_t, hub_bin_count> bins{};
    std::uint64_t min = 0;
    std::uint64_t max = 0;
    std::uint64_t period_ns = 0;
    std::uint64_t period_end_ns = 0; // wall clock, ns since the epoch

    std::uint64_t count() const;
    friend bool operator==(const hub_metric&, const hub_metric&) = default;
};

// `[u32 size][u8 3][str32 event][str32 topic][u32 data_size][data]`.
struct hub_payload {
    std::string event; // "metrics"
    std::string topic;
    hub_metric metric;
    friend bool operator==(const hub_payload&, const hub_payload&) = default;
};

using hub_frame = std::variant<hub_connect, hub_join, hub_payload>;

// "metrics:<app_name>"
std::string hub_topic(std::string_view app_name);

// Appenders: each appends one whole frame (size field included) to `out`.
void append_hub_connect(std::string& out);
void append_hub_join(std::string& out, std::string_view topic, std::string_view worker);
void append_hub_payload(std::string& out, std::string_view topic, const hub_metric& metric);

// Appends one PAYLOAD per metric of snapshot.catalog (in catalog order, also for metrics with no
// data this period) and returns how many. Name, category, pipeline and id come from the catalog's
// metric_key; `worker` is the worker name sent in every frame. Latency metrics carry
// histogram::power_of_two_bins() and the histogram's exact min and max; pipeline-ingestion metrics
// (a count, no latency) put snapshot.counts[metric] in bin 0, as Wallaroo sent its counts as
// histogram entries, with min = max = 0. Allocates; the metrics thread only.
std::size_t append_hub_snapshot(std::string& out, const metrics_snapshot& snapshot,
                                std::string_view topic, std::string_view worker);

// Decodes exactly one whole frame: `bytes` starts at the u32 size field and ends where the frame
// ends. Untrusted input: every length is checked against what is there; a frame that is truncated,
// has trailing bytes, an unknown type, a size above max_hub_frame_size, a CONNECT whose size is
// not 1, a PAYLOAD whose data_size or header disagree with its length gives errc::data_error with
// a one-line message. Never reads out of bounds.
result<hub_frame> decode_hub_frame(std::span<const std::byte> bytes);

// For stream readers: the whole length (size field included) of the frame that starts `bytes`, 0
// while fewer than 4 bytes are there. Check it against max_hub_frame_size + 4 before buffering.
std::size_t hub_frame_length(std::span<const std::byte> bytes);

// The value at percentile p (0..100) estimated from power-of-two bins: the sample at rank
// max(1, ceil(p/100 * count)) is reported as the upper bound of its bin (2^i - 1), capped at `max`
// (pass ~0 for no cap). 0 when the bins are empty.
std::uint64_t hub_bins_value_at_percentile(const std::array<std::uint64_t, hub_bin_count>& bins,
                                           std::uint64_t max, double p);

} // namespace ringtail::net
