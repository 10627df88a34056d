// A datagram link with faults on purpose (tests of the DPDK back end, DESIGN.md §4): every
// datagram this worker sends goes through a seeded fault_injector (loss, duplication, reordering,
// corruption, delay) before the real link. A worker turns it on with the environment variable
// RINGTAIL_TEST_FAULTS ("loss=0.05,dup=0.01,reorder=0.1,corrupt=0.001,seed=7"; see
// net/fault/fault_injector.h); it is a test hook, not an operator option.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "net/channel/datagram_transport.h"
#include "net/fault/fault_injector.h"

namespace ringtail::net {

class faulty_link final : public datagram_link {
public:
    // `inner` outlives this link. One injector per peer, seeded from config.seed and the peer.
    faulty_link(datagram_link& inner, const fault_config& config,
                std::function<std::uint64_t()> clock);
    std::uint32_t peer_count() const override { return _inner.peer_count(); }
    int wait_fd() const override { return _inner.wait_fd(); }
    std::size_t max_datagram_bytes() const override { return _inner.max_datagram_bytes(); }
    void send(peer_id peer, std::span<const std::byte> datagram) override;
    // The inner link's burst goes out as it would without faults.
    void flush() override { _inner.flush(); }
    // Also hands the inner link every delayed datagram that has come due.
    std::size_t receive(
      const std::function<void(peer_id, std::span<const std::byte>)>& on) override;
    // The first delayed or held-back datagram's time to go on to the inner link, or the inner
    // link's own deadline.
    std::uint64_t next_deadline_ns() const override;

    std::uint64_t corrupted() const;
    std::uint64_t dropped() const;

private:
    datagram_link& _inner;
    std::function<std::uint64_t()> _clock;
    std::vector<std::unique_ptr<fault_injector>> _faults; // [peer]
};

} // namespace ringtail::net
