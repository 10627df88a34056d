// Envelopes waiting for room in a ring: a shard's outbox for each destination, and the exchange's
// queues between the transport and the rings. Appended at the back; taken from the front in
// bursts by moving `head`, so that a burst goes to a ring as one contiguous span.
//
// The part before `head` is given back when the queue empties, and also whenever it is at least
// as long as what still waits (and at least compact_min envelopes): a queue whose ring is always
// full never empties, and it would otherwise grow by every envelope that ever passed through it
// while what waits stays within the in-flight budget. So it did, under any load that never let
// up: one word_count worker on two threads grew by some 100 MB a second through the outbox from
// one shard to the other, and a worker dropping the messages for a lost one by 200 MB a second
// through its outbox to the exchange. Each envelope is moved by a compaction at most once per
// envelope taken before it, so taking stays O(1) amortized, and the storage stays within about
// twice what waits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/envelope.h"

namespace ringtail::detail {

struct envelope_queue {
    // A compaction moves what waits; below this many taken, it waits for the queue to empty.
    static constexpr std::size_t compact_min = 1024;

    std::vector<envelope> items;
    // The exchange's inbound queue only: the peer each envelope came from, for its credit; kept
    // in step with items.
    std::vector<std::uint32_t> from;
    std::size_t head = 0;

    bool empty() const { return head == items.size(); }
    std::size_t waiting() const { return items.size() - head; }
    void clear() {
        items.clear();
        from.clear();
        head = 0;
    }
    // Takes `n` envelopes (moved out already, or handed on) from the front.
    void pop(std::size_t n) {
        head += n;
        if (head == items.size()) {
            clear();
        } else if (head >= compact_min && head >= waiting()) {
            items.erase(items.begin(), items.begin() + static_cast<std::ptrdiff_t>(head));
            if (!from.empty()) {
                from.erase(from.begin(), from.begin() + static_cast<std::ptrdiff_t>(head));
            }
            head = 0;
        }
    }
};

} // namespace ringtail::detail
