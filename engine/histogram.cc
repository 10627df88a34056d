// The cold side of ringtail::histogram: merging, percentiles, HdrHistogram's text output and the
// Wallaroo power-of-two bins, all run by the metrics thread.
#include "engine/histogram.h"
#include "engine/assert.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <limits>

namespace ringtail {
namespace {

// The next percentile level after `level`, as HdrHistogram's PercentileIterator steps: the
// distance to 100 % is halved again and again, and each half gets ticks_per_half_distance ticks of
// equal size, so the rows are round numbers a human can scan (50, 55, ..., 75, 77.5, ...).
double next_percentile_level(double level, double ticks_per_half_distance) {
    const double remaining = 100.0 - level;
    if (!(remaining > 0.0)) {
        // Rounding reached 100 before the last count: only the final 100 % row is left.
        return std::numeric_limits<double>::infinity();
    }
    const auto halvings = static_cast<std::int64_t>(std::log(100.0 / remaining) / std::log(2.0));
    const double half_distance = std::pow(2.0, static_cast<double>(halvings + 1));
    return level + 100.0 / (ticks_per_half_distance * half_distance);
}

} // namespace

histogram::histogram()
  : _counts(new std::uint64_t[slot_count]()) {}

void histogram::merge(const histogram& other) noexcept {
    std::uint64_t* const counts = _counts.get();
    const std::uint64_t* const theirs = other._counts.get();
    for (std::size_t i = 0; i < slot_count; ++i) {
        counts[i] += theirs[i];
    }
    _total += other._total;
    _saturated += other._saturated;
    _min = std::min(_min, other._min);
    _max = std::max(_max, other._max);
}

void histogram::reset() noexcept {
    std::memset(_counts.get(), 0, slot_count * sizeof(std::uint64_t));
    _total = 0;
    _saturated = 0;
    _min = ~std::uint64_t{ 0 };
    _max = 0;
}

void histogram::swap(histogram& other) noexcept {
    std::swap(_counts, other._counts);
    std::swap(_total, other._total);
    std::swap(_saturated, other._saturated);
    std::swap(_min, other._min);
    std::swap(_max, other._max);
}

bool operator==(const histogram& a, const histogram& b) {
    return a._total == b._total && a._saturated == b._saturated && a._min == b._min &&
           a._max == b._max &&
           std::equal(a._counts.get(), a._counts.get() + histogram::slot_count, b._counts.get());
}

double histogram::mean() const {
    if (_total == 0) {
        return 0.0;
    }
    double sum = 0.0;
    for (std::size_t i = 0; i < slot_count; ++i) {
        if (_counts[i] != 0) {
            const double middle = static_cast<double>(slot_lowest(i) + slot_width(i) / 2);
            sum += middle * static_cast<double>(_counts[i]);
        }
    }
    return sum / static_cast<double>(_total);
}

double histogram::stddev() const {
    if (_total == 0) {
        return 0.0;
    }
    const double average = mean();
    double sum_of_squares = 0.0;
    for (std::size_t i = 0; i < slot_count; ++i) {
        if (_counts[i] != 0) {
            const double deviation =
              static_cast<double>(slot_lowest(i) + slot_width(i) / 2) - average;
            sum_of_squares += deviation * deviation * static_cast<double>(_counts[i]);
        }
    }
    return std::sqrt(sum_of_squares / static_cast<double>(_total));
}

std::uint64_t histogram::value_at_percentile(double p) const {
    if (_total == 0) {
        return 0;
    }
    // As HdrHistogram: step p down by one ulp first, so that a p written in decimal (99.9, whose
    // double is slightly above 99.9) does not round the rank up past an exact integer.
    const double requested = std::clamp(std::nextafter(p, -1.0), 0.0, 100.0);
    auto rank =
      static_cast<std::uint64_t>(std::ceil(requested * static_cast<double>(_total) / 100.0));
    rank = std::clamp<std::uint64_t>(rank, 1, _total);
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < slot_count; ++i) {
        cumulative += _counts[i];
        if (cumulative >= rank) {
            return value_of_slot(i);
        }
    }
    return _max; // unreachable while the counts add up to _total
}

std::string histogram::percentile_distribution(double ticks_per_half_distance,
                                               double unit_divisor) const {
    RINGTAIL_ASSERT(ticks_per_half_distance >= 1.0,
                    "percentile_distribution needs at least one tick");
    RINGTAIL_ASSERT(unit_divisor > 0.0, "percentile_distribution needs a positive unit divisor");
    std::string out;
    auto to = std::back_inserter(out);
    fmt::format_to(to, "{:>12} {:>14} {:>10} {:>14}\n\n", "Value", "Percentile", "TotalCount",
                   "1/(1-Percentile)");
    if (_total != 0) {
        // HdrHistogram's PercentileIterator: walk the slots; at each non-empty slot emit a row for
        // every level its cumulative percentile reaches (the row shows the level, not the slot's
        // exact percentile); stop at the slot that completes the count; then one row for 100 %.
        const double total = static_cast<double>(_total);
        double level = 0.0;
        std::uint64_t cumulative = 0;
        std::size_t slot = 0;
        for (; slot < slot_count; ++slot) {
            if (_counts[slot] == 0) {
                continue;
            }
            cumulative += _counts[slot];
            const double reached = 100.0 * static_cast<double>(cumulative) / total;
            const bool last = cumulative == _total;
            while (reached >= level) {
                const double fraction = level / 100.0;
                fmt::format_to(to, "{:12.3f} {:14.12f} {:10d} {:14.2f}\n",
                               static_cast<double>(value_of_slot(slot)) / unit_divisor, fraction,
                               cumulative, 1.0 / (1.0 - fraction));
                level = next_percentile_level(level, ticks_per_half_distance);
                if (last) {
                    break;
                }
            }
            if (last) {
                break;
            }
        }
        // HdrHistogram writes the 100 % row without the infinite 1/(1-Percentile).
        fmt::format_to(to, "{:12.3f} {:14.12f} {:10d}\n",
                       static_cast<double>(value_of_slot(slot)) / unit_divisor, 1.0, cumulative);
    }
    fmt::format_to(to, "#[Mean    = {:12.3f}, StdDeviation   = {:12.3f}]\n", mean() / unit_divisor,
                   stddev() / unit_divisor);
    fmt::format_to(to, "#[Max     = {:12.3f}, Total count    = {:12d}]\n",
                   static_cast<double>(_max) / unit_divisor, _total);
    fmt::format_to(to, "#[Buckets = {:12d}, SubBuckets     = {:12d}]\n", bucket_count,
                   sub_bucket_count);
    return out;
}

std::vector<std::uint64_t> histogram::power_of_two_bins() const {
    std::vector<std::uint64_t> bins(power_of_two_bin_count, 0);
    // No slot straddles a power of two (see the layout), so bin k is the sum of the contiguous
    // slots from the one holding 2^(k-1) to the one holding 2^k - 1.
    const std::uint64_t* const counts = _counts.get();
    bins[0] = counts[0];
    for (unsigned k = 1; k <= std::bit_width(highest_trackable_value); ++k) {
        const std::size_t first = slot_of(std::uint64_t{ 1 } << (k - 1));
        const std::size_t last = slot_of((std::uint64_t{ 1 } << k) - 1);
        for (std::size_t i = first; i <= last; ++i) {
            bins[k] += counts[i];
        }
    }
    return bins;
}

} // namespace ringtail
