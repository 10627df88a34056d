// A bounded single-producer/single-consumer ring with batch push and pop: the only
// synchronisation on Ringtail's hot path. Written here rather than taken from a library because we
// need our own batching contract (burst calls that take what fits and return how many, as DPDK's
// rte_ring does) over movable C++ objects with exact lifetimes, which none of the packaged queues
// offers together (rte_ring holds only pointers; boost::lockfree::spsc_queue and moodycamel's
// ReaderWriterQueue have no cached peer indices for bursts). perf/ring_bench.cc compares them.
#pragma once

#include <atomic>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace ringtail {

inline constexpr std::size_t cache_line_size = 64;

// Layout (as in Seastar's and rigtorp's SPSC queues): the producer's index and its cached copy of
// the consumer's index share one cache line, the consumer's pair another, the slots a third
// region, so producer and consumer only exchange a cache line when one needs a fresh view of the
// other's progress.
//
// Thread contract: exactly one producer thread calls the *_sp functions, exactly one consumer
// thread calls the *_sc functions. size_approx() and empty_approx() may be called by either.
template<typename T>
class spsc_ring {
    static_assert(std::is_nothrow_move_constructible_v<T>, "ring elements move without throwing");
    static_assert(std::is_nothrow_destructible_v<T>);
    static_assert(std::is_nothrow_move_assignable_v<T>, "pop_burst_sc move-assigns elements out");

public:
    // capacity is rounded up to a power of two (at least 2).
    explicit spsc_ring(std::size_t capacity)
      : _mask(round_up_pow2(capacity) - 1)
      , _slots(static_cast<slot*>(
          ::operator new[]((_mask + 1) * sizeof(slot), std::align_val_t{ slot_alignment }))) {}

    spsc_ring(const spsc_ring&) = delete;
    spsc_ring& operator=(const spsc_ring&) = delete;

    ~spsc_ring() {
        // Destroy what was pushed and never popped.
        std::size_t head = _consumer.index.load(std::memory_order_relaxed);
        std::size_t tail = _producer.index.load(std::memory_order_relaxed);
        for (; head != tail; ++head) {
            element(head)->~T();
        }
        ::operator delete[](_slots, std::align_val_t{ slot_alignment });
    }

    std::size_t capacity() const { return _mask + 1; }

    // Moves one element in; returns false (and leaves `value` alone) when the ring is full.
    bool push_sp(T&& value) { return push_burst_sp(&value, 1) == 1; }

    // Moves as many of values[0..n) as fit, in order; returns how many. The caller still owns
    // (and must destroy) the moved-from objects and keeps the rest.
    std::size_t push_burst_sp(T* values, std::size_t n) {
        const std::size_t tail = _producer.index.load(std::memory_order_relaxed);
        std::size_t free = capacity() - (tail - _producer.cached_peer);
        if (free < n) {
            // Pairs with the release store of the consumer's index in pop_burst_sc: the slots it
            // has released are no longer read, so we may overwrite them.
            _producer.cached_peer = _consumer.index.load(std::memory_order_acquire);
            free = capacity() - (tail - _producer.cached_peer);
        }
        const std::size_t count = n < free ? n : free;
        for (std::size_t i = 0; i < count; ++i) {
            ::new (static_cast<void*>(_slots[(tail + i) & _mask].bytes)) T(std::move(values[i]));
        }
        if (count != 0) {
            // Pairs with the acquire load of the producer's index in pop_burst_sc: publishes the
            // constructed elements before the consumer can see the new tail.
            _producer.index.store(tail + count, std::memory_order_release);
        }
        return count;
    }

    // Moves up to n elements out by move-assigning them to out[0..n) (live objects, e.g.
    // default-constructed); returns how many.
    std::size_t pop_burst_sc(T* out, std::size_t n) {
        std::size_t i = 0;
        return consume_burst_sc(n, [&](T&& e) { out[i++] = std::move(e); });
    }

    // Pops one element into `out`; false when empty.
    bool pop_sc(T& out) { return pop_burst_sc(&out, 1) == 1; }

    // Visits up to n elements in order with f(T&&), then frees their slots in one index store.
    // Avoids the extra move of pop_burst_sc when the consumer processes elements in place.
    // f must not throw (the data plane carries no exceptions).
    template<typename F>
    std::size_t consume_burst_sc(std::size_t n, F&& f) {
        const std::size_t head = _consumer.index.load(std::memory_order_relaxed);
        std::size_t avail = _consumer.cached_peer - head;
        if (avail < n) {
            // Pairs with the release store in push_burst_sp: every element below the tail we read
            // is fully constructed.
            _consumer.cached_peer = _producer.index.load(std::memory_order_acquire);
            avail = _consumer.cached_peer - head;
        }
        const std::size_t count = n < avail ? n : avail;
        for (std::size_t i = 0; i < count; ++i) {
            T* e = element(head + i);
            f(std::move(*e));
            e->~T();
        }
        if (count != 0) {
            // Pairs with the acquire load of the consumer's index in push_burst_sp: the producer
            // may reuse these slots only after our reads of them are done.
            _consumer.index.store(head + count, std::memory_order_release);
        }
        return count;
    }

    // Approximate: exact only when called by a side while the other side is idle. Safe from a
    // third thread (metrics): the consumer's index is read first, and it never passes the
    // producer's, so the difference cannot wrap.
    std::size_t size_approx() const {
        // Acquire pairs with the consumer's release store; a hint, never used to touch slots.
        const std::size_t head = _consumer.index.load(std::memory_order_acquire);
        const std::size_t tail = _producer.index.load(std::memory_order_acquire);
        return tail - head;
    }
    bool empty_approx() const { return size_approx() == 0; }

    // Consumer-side exact emptiness check (used before sleeping).
    bool empty_sc() const {
        // Pairs with the release store in push_burst_sp.
        return _producer.index.load(std::memory_order_acquire) ==
               _consumer.index.load(std::memory_order_relaxed);
    }

private:
    struct slot {
        alignas(T) unsigned char bytes[sizeof(T)];
    };
    // Slots start on a cache line so an element of a line's size never straddles two.
    static constexpr std::size_t slot_alignment = alignof(T) > cache_line_size ? alignof(T)
                                                                               : cache_line_size;
    struct alignas(cache_line_size) side {
        std::atomic<std::size_t> index{ 0 }; // written only by its own side
        std::size_t cached_peer = 0;         // this side's last view of the other side's index
    };

    static std::size_t round_up_pow2(std::size_t n) {
        std::size_t p = 2;
        while (p < n) {
            p <<= 1;
        }
        return p;
    }
    T* element(std::size_t i) const {
        return std::launder(reinterpret_cast<T*>(_slots[i & _mask].bytes));
    }

    side _producer;
    side _consumer;
    alignas(cache_line_size) const std::size_t _mask;
    slot* const _slots;
};

} // namespace ringtail
