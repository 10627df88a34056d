// A log-linear latency histogram that a shard fills on its hot path and the metrics thread merges,
// reads percentiles from and folds into Wallaroo's power-of-two bins (WIRE.md §5).
// Written by hand because HdrHistogram_c is not packaged in Debian. It keeps HdrHistogram's bucket
// layout (lowest discernible value 1, 3 significant digits), its percentile convention and its
// percentile-distribution text, so HdrHistogram's plotter and hdr-plot read what we write.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ringtail {

// Counts of uint64 values (nanoseconds in Ringtail) in fixed slots:
// - slots 0..2047 hold the values 0..2047, one value each;
// - bucket b >= 1 holds [1024 * 2^b, 2048 * 2^b) in 1024 slots of width 2^b.
// A slot is therefore at most 1/1024 of its lowest value wide (relative error < 0.1 %, three
// significant digits), and it never straddles a power of two, so the Wallaroo bins are exact sums
// of slots. 33 buckets reach highest_trackable_value = 2^43 - 1 ns (about 2.4 hours); larger values
// are clamped into the top slot and also counted in saturated_count(). min() and max() are the
// exact values recorded, clamped or not.
//
// The counts array (272 KiB) is allocated once, in the constructor. record() and record_n() never
// allocate, lock or branch: a count-leading-zeros, a shift, an add and conditional moves.
//
// Thread contract: not synchronised. Only the owning thread (a shard) records; hand the whole
// histogram over (move or swap) before another thread reads or merges it. A moved-from histogram
// may only be destroyed or assigned to.
class histogram {
public:
    static constexpr unsigned sub_bucket_bits = 11;
    static constexpr std::size_t sub_bucket_count = std::size_t{ 1 } << sub_bucket_bits;
    static constexpr std::size_t bucket_count = 33;
    static constexpr std::uint64_t highest_trackable_value =
      (std::uint64_t{ 1 } << (bucket_count + sub_bucket_bits - 1)) - 1;
    static constexpr std::size_t slot_count = (bucket_count + 1) * (sub_bucket_count / 2);
    // Bins of WIRE.md §5: bin 0 = value 0, bin i = values with bit length i, [2^(i-1), 2^i).
    static constexpr std::size_t power_of_two_bin_count = 65;

    histogram();
    histogram(histogram&&) noexcept = default;
    histogram& operator=(histogram&&) noexcept = default;
    // Copies would be silent 272 KiB allocations; merge() into a fresh histogram instead.
    histogram(const histogram&) = delete;
    histogram& operator=(const histogram&) = delete;
    ~histogram() = default;

    void record(std::uint64_t value) noexcept { record_n(value, 1); }

    // Records `value` n times.
    void record_n(std::uint64_t value, std::uint64_t n) noexcept {
        const bool saturated = value > highest_trackable_value;
        const std::uint64_t clamped = saturated ? highest_trackable_value : value;
        _counts[slot_of(clamped)] += n;
        _total += n;
        _saturated += saturated ? n : 0;
        // With n == 0 the extremes must not move: an empty range stays [max u64, 0].
        const std::uint64_t low = n != 0 ? value : ~std::uint64_t{ 0 };
        const std::uint64_t high = n != 0 ? value : 0;
        _min = low < _min ? low : _min;
        _max = high > _max ? high : _max;
    }

    // Adds every count of `other` (the metrics thread merging a shard's period).
    void merge(const histogram& other) noexcept;
    // Back to empty; keeps the allocation.
    void reset() noexcept;
    void swap(histogram& other) noexcept;

    std::uint64_t total_count() const { return _total; }
    // Values above highest_trackable_value (also counted in the top slot).
    std::uint64_t saturated_count() const { return _saturated; }
    // Exact smallest and largest values recorded; 0 when empty.
    std::uint64_t min() const { return _total == 0 ? 0 : _min; }
    std::uint64_t max() const { return _max; }
    // From each slot's middle value, as HdrHistogram does (within 0.05 % of the exact mean); 0 when
    // empty.
    double mean() const;
    double stddev() const;

    // The value at percentile p (0..100), HdrHistogram's convention: the sample at rank
    // max(1, ceil(p/100 * total)), reported as the highest value its slot holds (so never below the
    // exact sample and at most 0.1 % above it), capped at max(). 0 when empty.
    std::uint64_t value_at_percentile(double p) const;

    // HdrHistogram's percentile-distribution text (as its Java outputPercentileDistribution writes
    // it): header, one row per percentile tick (ticks_per_half_distance ticks in each half of the
    // distance to 100 %), a last row for 100 %, and the Mean/Max/Buckets footer. Values are divided
    // by unit_divisor (1000 turns nanoseconds into microseconds). Allocates; metrics thread only.
    std::string percentile_distribution(double ticks_per_half_distance = 5,
                                        double unit_divisor = 1000.0) const;

    // The 65 Wallaroo bins (WIRE.md §5), exact sums of slots. Saturated values fall in the bin of
    // highest_trackable_value (bin 43).
    std::vector<std::uint64_t> power_of_two_bins() const;

    // Heap and object bytes this histogram holds.
    std::size_t memory_bytes() const { return sizeof(*this) + slot_count * sizeof(std::uint64_t); }

    // Count in the slot that holds `value` (after clamping).
    std::uint64_t count_at(std::uint64_t value) const {
        return _counts[slot_of(value > highest_trackable_value ? highest_trackable_value : value)];
    }

    // Same counts, total, saturated count, min and max.
    friend bool operator==(const histogram& a, const histogram& b);

    // The layout, public so tests and exporters can reason about it.
    // Slot of a value <= highest_trackable_value: its bucket is its bit length above 11 bits, its
    // place in the bucket the value shifted down by the bucket (HdrHistogram's counts index).
    static constexpr std::size_t slot_of(std::uint64_t value) {
        const unsigned bucket =
          static_cast<unsigned>(std::bit_width(value | (sub_bucket_count - 1))) - sub_bucket_bits;
        return (std::size_t{ bucket } << (sub_bucket_bits - 1)) + (value >> bucket);
    }
    static constexpr std::uint64_t slot_lowest(std::size_t slot) {
        if (slot < sub_bucket_count) {
            return slot;
        }
        const unsigned bucket = static_cast<unsigned>(slot >> (sub_bucket_bits - 1)) - 1;
        const std::uint64_t sub = (slot & (sub_bucket_count / 2 - 1)) + sub_bucket_count / 2;
        return sub << bucket;
    }
    static constexpr std::uint64_t slot_width(std::size_t slot) {
        if (slot < sub_bucket_count) {
            return 1;
        }
        return std::uint64_t{ 1 } << ((slot >> (sub_bucket_bits - 1)) - 1);
    }
    static constexpr std::uint64_t slot_highest(std::size_t slot) {
        return slot_lowest(slot) + slot_width(slot) - 1;
    }

private:
    std::uint64_t value_of_slot(std::size_t slot) const {
        const std::uint64_t highest = slot_highest(slot);
        return highest < _max ? highest : _max;
    }

    std::unique_ptr<std::uint64_t[]> _counts;
    std::uint64_t _total = 0;
    std::uint64_t _saturated = 0;
    std::uint64_t _min = ~std::uint64_t{ 0 };
    std::uint64_t _max = 0;
};

static_assert(histogram::highest_trackable_value >= (std::uint64_t{ 1 } << 42),
              "latencies of an hour must fit");
static_assert(histogram::slot_of(histogram::highest_trackable_value) == histogram::slot_count - 1);
static_assert(histogram::slot_highest(histogram::slot_count - 1) ==
              histogram::highest_trackable_value);

} // namespace ringtail
