// A transport_events for data-channel tests whose messages are u64 numbers: records them in
// order, the losses reported, and what is owed back as credit.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "engine/big_endian.h"
#include "engine/transport.h"

namespace ringtail::net::test_support {

struct u64_recorder final : transport_events {
    std::vector<std::uint64_t> values;
    std::vector<std::pair<peer_id, std::string>> lost;
    std::uint64_t pending_grant = 0;
    void on_messages(peer_id, std::span<const std::byte> body, std::uint32_t count) override {
        ASSERT_EQ(body.size(), 8u * count);
        for (std::uint32_t i = 0; i < count; ++i) {
            values.push_back(be::read<std::uint64_t>(body.data() + 8 * i));
        }
        pending_grant += count;
    }
    void on_peer_lost(peer_id peer, const std::string& reason) override {
        lost.emplace_back(peer, reason);
    }
};

} // namespace ringtail::net::test_support
