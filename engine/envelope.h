// The unit a ring carries: a data message for one node (stage) and partition, or an in-band token
// (watermark, barrier) that travels in order with the data around it.
#pragma once

#include <cstdint>

#include "engine/value_box.h"

namespace ringtail {

enum class envelope_kind : std::uint8_t {
    data = 0,
    watermark = 1, // token: event-time progress
    barrier = 2,   // token: checkpoint / stop-the-world / rotation barrier
};

struct envelope {
    std::uint32_t node = 0;      // the stage that processes it (data); the token's origin shard
    std::uint32_t partition = 0; // the key's partition for keyed stages, else 0
    std::uint64_t ingest_ns = 0; // when its source admitted the original message (data); token id
    envelope_kind kind = envelope_kind::data;
    std::uint16_t pipeline = 0; // the pipeline whose source admitted it (start-to-end metrics)
    value_box value;
};

} // namespace ringtail
