// A seeded, simulated faulty link between two data-channel endpoints: it loses, duplicates,
// corrupts, reorders and delays frames, so that reliable delivery (net/channel/go_back_n.h) can be
// tested under either back end, and on a simulated clock.
//
// Each frame submitted meets, in this order: loss (dropped), duplication (a second copy goes in
// too), then, for each copy on its own, corruption (one random bit flipped), reordering (held back
// until the next 1..3 frames have gone in ahead of it, or reorder_max_ns at most) and delay
// (delay_ns plus a uniform 0..jitter_ns). The random numbers are drawn from a std::mt19937_64
// seeded by the config, and turned into decisions by hand rather than by the <random>
// distributions, whose results differ between standard libraries: a seed gives the same faults
// everywhere.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "engine/result.h"

namespace ringtail::net {

struct fault_config {
    // Probabilities, each within [0, 1].
    double loss = 0;
    double duplicate = 0;
    double reorder = 0;
    double corrupt = 0;
    // Every frame is delivered delay_ns plus a uniform 0..jitter_ns after it was submitted.
    std::uint64_t delay_ns = 0;
    std::uint64_t jitter_ns = 0;
    // The longest a reordered frame waits for the frames that are to overtake it.
    std::uint64_t reorder_max_ns = 1'000'000;
    // Frames held at most; a frame submitted beyond it is dropped (counted in overflowed).
    std::size_t max_held = 65536;
    std::uint64_t seed = 1;
};

// Parses "loss=0.05,dup=0.01,reorder=0.1,corrupt=0.001,delay_us=100,jitter_us=50,seed=7"; also
// reorder_max_us and max_held. Every key is optional; "" means no faults. An unknown key, a bad
// number or a probability outside [0, 1] is errc::usage with one line naming the item.
result<fault_config> parse_fault_config(std::string_view text);

// The faulty link, one direction. Threading: one thread (the test's, or the back end's poll
// loop). Memory: at most max_held frames.
class fault_injector {
public:
    explicit fault_injector(fault_config config = {});

    // Puts `frame` on the link at `now_ns`.
    void submit(std::string frame, std::uint64_t now_ns);
    // Calls `deliver(std::string&&)` for every frame due by `now_ns`, in due order (frames due at
    // the same time in the order they were queued), and returns how many. `deliver` may submit
    // to this injector; frames it submits are not delivered by this call.
    template<typename Deliver>
    std::size_t deliver_due(std::uint64_t now_ns, Deliver&& deliver);
    // When deliver_due() next has work; no_due if nothing is held.
    std::uint64_t next_due_ns() const;
    static constexpr std::uint64_t no_due = std::numeric_limits<std::uint64_t>::max();

    const fault_config& config() const { return _config; }
    // Frames on the link now (waiting for their time, or held back to be overtaken).
    std::size_t held() const { return _queue.size() + _held_back.size(); }

    std::uint64_t submitted() const { return _submitted; }
    std::uint64_t dropped() const { return _dropped; }       // lost on purpose
    std::uint64_t overflowed() const { return _overflowed; } // dropped beyond max_held
    std::uint64_t duplicated() const { return _duplicated; }
    std::uint64_t corrupted() const { return _corrupted; }
    std::uint64_t reordered() const { return _reordered; }
    std::uint64_t delivered() const { return _delivered; }

private:
    struct queued {
        std::uint64_t due_ns;
        std::uint64_t order; // ties on due_ns go by the order frames were queued
        std::string frame;
    };
    struct held_back {
        std::uint32_t overtakes_left; // frames still to be queued ahead of this one
        std::uint64_t deadline_ns;    // queued by then at the latest
        std::string frame;
    };
    // Min-heap order on (due_ns, order).
    struct later {
        bool operator()(const queued& a, const queued& b) const {
            return a.due_ns != b.due_ns ? a.due_ns > b.due_ns : a.order > b.order;
        }
    };

    bool chance(double p);
    std::uint64_t below(std::uint64_t n); // uniform in [0, n)
    void enqueue(std::string frame, std::uint64_t due_ns);
    // Moves held-back frames whose deadline passed by `now_ns` into the queue.
    void release_held_back(std::uint64_t now_ns);

    fault_config _config;
    std::mt19937_64 _rng;
    std::vector<queued> _queue; // a heap, by `later`
    std::vector<held_back> _held_back;
    std::uint64_t _order = 0;
    std::uint64_t _submitted = 0;
    std::uint64_t _dropped = 0;
    std::uint64_t _overflowed = 0;
    std::uint64_t _duplicated = 0;
    std::uint64_t _corrupted = 0;
    std::uint64_t _reordered = 0;
    std::uint64_t _delivered = 0;
};

template<typename Deliver>
std::size_t fault_injector::deliver_due(std::uint64_t now_ns, Deliver&& deliver) {
    release_held_back(now_ns);
    // Frames `deliver` submits are queued with a higher order than any here; stop at the first of
    // them so that one call cannot loop forever on a zero-delay link.
    std::uint64_t order_limit = _order;
    std::size_t n = 0;
    while (!_queue.empty() && _queue.front().due_ns <= now_ns &&
           _queue.front().order < order_limit) {
        std::pop_heap(_queue.begin(), _queue.end(), later{});
        std::string frame = std::move(_queue.back().frame);
        _queue.pop_back();
        ++_delivered;
        ++n;
        deliver(std::move(frame));
    }
    return n;
}

} // namespace ringtail::net
