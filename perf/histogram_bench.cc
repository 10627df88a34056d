// Measures what ringtail::histogram costs: ns per record() on the shard's hot path (random
// latencies, so slots and cache lines vary as in production), and the metrics thread's per-period
// work (merge, reset, percentiles, Wallaroo bins, the text output).
#include "engine/histogram.h"

#include <benchmark/benchmark.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace {

using ringtail::histogram;

// Log-normal latencies around 100 us, spread over many buckets; the count is a power of two so
// the index wraps with a mask. 64 Ki values (512 KiB) keep the input out of the way of the counts.
std::vector<std::uint64_t> latencies(std::size_t n, double sigma) {
    std::mt19937_64 rng(42);
    std::lognormal_distribution<double> d(std::log(100'000.0), sigma);
    std::vector<std::uint64_t> values(n);
    for (auto& v : values) {
        v = static_cast<std::uint64_t>(d(rng));
    }
    return values;
}

void record_values(benchmark::State& state, double sigma) {
    const auto values = latencies(std::size_t{ 1 } << 16, sigma);
    const std::size_t mask = values.size() - 1;
    histogram h;
    std::size_t i = 0;
    for (auto _ : state) {
        h.record(values[i & mask]);
        ++i;
    }
    benchmark::DoNotOptimize(h.total_count());
    benchmark::ClobberMemory();
    state.SetItemsProcessed(state.iterations());
}

// Wide spread: slots all over the 272 KiB array.
void bm_record_random_wide(benchmark::State& state) {
    record_values(state, 2.0);
}
BENCHMARK(bm_record_random_wide);

// Narrow spread (a steady stage): few hot slots.
void bm_record_random_narrow(benchmark::State& state) {
    record_values(state, 0.1);
}
BENCHMARK(bm_record_random_narrow);

// The same value every time: the floor, one dependent increment of one slot.
void bm_record_constant(benchmark::State& state) {
    histogram h;
    std::uint64_t v = 123'456;
    for (auto _ : state) {
        benchmark::DoNotOptimize(v);
        h.record(v);
    }
    benchmark::DoNotOptimize(h.total_count());
    benchmark::ClobberMemory();
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(bm_record_constant);

// Once per period per shard and metric: add 34816 counts.
void bm_merge(benchmark::State& state) {
    histogram into;
    histogram from;
    for (std::uint64_t v : latencies(std::size_t{ 1 } << 16, 2.0)) {
        from.record(v);
    }
    for (auto _ : state) {
        into.merge(from);
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(from.memory_bytes()));
}
BENCHMARK(bm_merge);

void bm_reset(benchmark::State& state) {
    histogram h;
    for (auto _ : state) {
        h.reset();
        benchmark::ClobberMemory();
    }
}
BENCHMARK(bm_reset);

void bm_value_at_percentile_99_99(benchmark::State& state) {
    histogram h;
    for (std::uint64_t v : latencies(std::size_t{ 1 } << 16, 2.0)) {
        h.record(v);
    }
    for (auto _ : state) {
        benchmark::DoNotOptimize(h.value_at_percentile(99.99));
    }
}
BENCHMARK(bm_value_at_percentile_99_99);

void bm_power_of_two_bins(benchmark::State& state) {
    histogram h;
    for (std::uint64_t v : latencies(std::size_t{ 1 } << 16, 2.0)) {
        h.record(v);
    }
    for (auto _ : state) {
        benchmark::DoNotOptimize(h.power_of_two_bins());
    }
}
BENCHMARK(bm_power_of_two_bins);

void bm_percentile_distribution(benchmark::State& state) {
    histogram h;
    for (std::uint64_t v : latencies(std::size_t{ 1 } << 16, 2.0)) {
        h.record(v);
    }
    for (auto _ : state) {
        benchmark::DoNotOptimize(h.percentile_distribution());
    }
}
BENCHMARK(bm_percentile_distribution);

} // namespace

BENCHMARK_MAIN();
