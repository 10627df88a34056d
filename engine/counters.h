// The worker's counters, each named once: the Prometheus text and /status (net/metrics), the
// metrics thread's totals and the stop summary (cli) are all generated from worker_counter_specs.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace ringtail {

// Counters of the whole worker at a point in time (totals since start), summed over its shards
// and data-channel lanes; each shard writes its own, readers see a recent value.
struct worker_counters {
    std::uint64_t ingested = 0;
    std::uint64_t decode_errors = 0;
    std::uint64_t protocol_errors = 0;
    std::uint64_t filtered = 0;
    std::uint64_t ring_messages = 0;
    std::uint64_t sink_writes = 0;
    std::uint64_t sink_bytes = 0;
    std::uint64_t tokens_aligned = 0;
    std::uint64_t remote_sent = 0;
    std::uint64_t remote_received = 0;
    std::uint64_t remote_dropped = 0;
    std::uint64_t remote_oversize = 0;
};

// Which line of the stop summary shows a counter.
enum class summary_line : std::uint8_t { none, stopped, data_channel };

struct counter_spec {
    std::uint64_t worker_counters::*field;
    std::string_view name;   // its key in /status "totals"
    std::string_view metric; // Prometheus: ringtail_<metric>_total ("" = not exported)
    std::string_view help;   // Prometheus HELP: what it counts
    bool rate;               // also in /status "rates" as <name>_per_s
    summary_line line;
    std::string_view phrase; // its part of that line, "{}" standing for the value
};

// clang-format off
inline constexpr std::array worker_counter_specs = {
    counter_spec{ &worker_counters::ingested, "ingested", "messages_ingested",
        "Messages admitted at the sources since start.",
        true, summary_line::stopped, "{} messages in" },
    counter_spec{ &worker_counters::sink_writes, "sink_writes", "sink_writes",
        "Messages written to sinks since start.",
        true, summary_line::stopped, ", {} out" },
    counter_spec{ &worker_counters::sink_bytes, "sink_bytes", "sink_bytes",
        "Bytes written to sinks since start.",
        true, summary_line::stopped, " ({} bytes)" },
    counter_spec{ &worker_counters::decode_errors, "decode_errors", "decode_errors",
        "Payloads a source decoder rejected since start.",
        true, summary_line::stopped, ", {} rejected by decoders" },
    counter_spec{ &worker_counters::protocol_errors, "protocol_errors", "protocol_errors",
        "Source connections closed for a framing error since start.",
        false, summary_line::stopped, ", {} connections closed for bad framing" },
    counter_spec{ &worker_counters::filtered, "filtered", "filtered",
        "Messages a stage filtered out since start.",
        false, summary_line::stopped, ", {} filtered" },
    counter_spec{ &worker_counters::ring_messages, "ring_messages", "ring_messages",
        "Messages passed between shards since start.",
        false, summary_line::none, "" },
    counter_spec{ &worker_counters::tokens_aligned, "tokens_aligned", "",
        "Barrier tokens seen from every shard, summed over shards.",
        false, summary_line::none, "" },
    counter_spec{ &worker_counters::remote_sent, "remote_sent", "remote_sent",
        "Messages sent to other workers over the data channel since start.",
        false, summary_line::data_channel, "{} messages sent to other workers" },
    counter_spec{ &worker_counters::remote_received, "remote_received", "remote_received",
        "Messages received from other workers over the data channel since start.",
        false, summary_line::data_channel, ", {} received" },
    counter_spec{ &worker_counters::remote_dropped, "remote_dropped", "remote_dropped",
        "Data-channel messages dropped (lost worker, undecodable, or arrived while leaving) "
        "since start.",
        false, summary_line::data_channel,
        ", {} dropped (lost workers, undecodable, or arrived while leaving)" },
    counter_spec{ &worker_counters::remote_oversize, "remote_oversize", "remote_oversize",
        "Messages too large for one data-channel frame, dropped before sending, since start.",
        false, summary_line::data_channel, ", {} too large for one frame and dropped" },
};
// clang-format on

// The stop summary's `line`: the phrases of its counters, in the table's order.
std::string summary_text(const worker_counters& c, summary_line line);

} // namespace ringtail
