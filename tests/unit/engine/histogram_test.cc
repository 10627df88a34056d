// Tests of ringtail::histogram: the slot layout, percentiles against exact sorted samples on random
// and adversarial data, merge, reset, mean, no allocation while recording, HdrHistogram's text
// output and the Wallaroo power-of-two bins.
#include "engine/histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <random>
#include <sstream>
#include <string>
#include <vector>

// Counts the allocations of the calling thread, so a test can assert that a loop made none. Every
// other test in this executable allocates through these too; they only forward to malloc/free.
namespace {
thread_local std::uint64_t t_allocations = 0;
} // namespace

// GCC inlines these into delete-expressions and then takes free() of an operator new[] pointer
// for a mismatch; here every form ends in malloc/free, so the pairing is right.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t size) {
    ++t_allocations;
    if (void* p = std::malloc(size == 0 ? 1 : size)) {
        return p;
    }
    throw std::bad_alloc();
}
void* operator new[](std::size_t size) {
    return ::operator new(size);
}
void operator delete(void* p) noexcept {
    std::free(p);
}
void operator delete[](void* p) noexcept {
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
    std::free(p);
}
#pragma GCC diagnostic pop

namespace ringtail {
namespace {

constexpr std::uint64_t top = histogram::highest_trackable_value;

// Percentiles checked, with p in millionths so the exact rank is integer arithmetic.
struct percentile_case {
    double p;
    std::uint64_t p_millionths;
};
constexpr percentile_case percentile_cases[] = {
    { 0, 0 },          { 50, 500'000 },    { 90, 900'000 },    { 99, 990'000 },
    { 99.9, 999'000 }, { 99.99, 999'900 }, { 100, 1'000'000 },
};

// Random tests print their seed; RINGTAIL_TEST_SEED=<seed> replays one.
std::uint64_t test_seed() {
    const char* s = std::getenv("RINGTAIL_TEST_SEED");
    const std::uint64_t seed =
      s != nullptr ? std::strtoull(s, nullptr, 10) : std::random_device{}();
    std::printf("histogram test seed %llu\n", static_cast<unsigned long long>(seed));
    return seed;
}

// HdrHistogram's convention: the sample at rank max(1, ceil(p/100 * n)).
std::uint64_t exact_percentile(const std::vector<std::uint64_t>& sorted, std::uint64_t millionths) {
    const std::uint64_t n = sorted.size();
    const std::uint64_t rank = std::max<std::uint64_t>(1, (millionths * n + 999'999) / 1'000'000);
    return sorted[rank - 1];
}

histogram histogram_of(const std::vector<std::uint64_t>& values) {
    histogram h;
    for (std::uint64_t v : values) {
        h.record(v);
    }
    return h;
}

// Every checked percentile is at or above the exact one and within 0.1 % of it; min, max and the
// count are exact.
void expect_percentiles(std::vector<std::uint64_t> values) {
    const histogram h = histogram_of(values);
    std::sort(values.begin(), values.end());
    ASSERT_EQ(h.total_count(), values.size());
    EXPECT_EQ(h.min(), values.front());
    EXPECT_EQ(h.max(), values.back());
    for (const auto& c : percentile_cases) {
        const std::uint64_t exact = exact_percentile(values, c.p_millionths);
        const std::uint64_t got = h.value_at_percentile(c.p);
        EXPECT_GE(got, exact) << "p" << c.p;
        EXPECT_LE(static_cast<double>(got - exact), static_cast<double>(exact) * 0.001)
          << "p" << c.p << " got " << got << " exact " << exact;
    }
}

void expect_mean(const std::vector<std::uint64_t>& values) {
    const histogram h = histogram_of(values);
    long double sum = 0;
    for (std::uint64_t v : values) {
        sum += static_cast<long double>(v);
    }
    const double exact = static_cast<double>(sum / static_cast<long double>(values.size()));
    EXPECT_NEAR(h.mean(), exact, exact * 0.001);
}

std::vector<std::uint64_t> bit_length_counts(const std::vector<std::uint64_t>& values) {
    std::vector<std::uint64_t> bins(histogram::power_of_two_bin_count, 0);
    for (std::uint64_t v : values) {
        bins[static_cast<std::size_t>(std::bit_width(v))] += 1;
    }
    return bins;
}

std::uint64_t clamp_top(double v) {
    if (!(v >= 0)) {
        return 0;
    }
    return v >= static_cast<double>(top) ? top : static_cast<std::uint64_t>(v);
}

enum class distribution { uniform, exponential, log_normal };

std::vector<std::uint64_t> random_values(distribution d, std::uint64_t seed, std::size_t n) {
    std::mt19937_64 rng(seed);
    std::vector<std::uint64_t> values(n);
    std::uniform_int_distribution<std::uint64_t> uniform(0, 10'000'000);
    std::exponential_distribution<double> exponential(1.0 / 50'000.0); // mean 50 us
    std::lognormal_distribution<double> log_normal(std::log(100'000.0), 2.0);
    for (auto& v : values) {
        switch (d) {
            case distribution::uniform:
                v = uniform(rng);
                break;
            case distribution::exponential:
                v = clamp_top(exponential(rng));
                break;
            case distribution::log_normal:
                v = clamp_top(log_normal(rng));
                break;
        }
    }
    return values;
}

// Values that sit on the edges of slots, buckets and bins.
std::vector<std::uint64_t> powers_of_two_and_neighbours() {
    std::vector<std::uint64_t> values{ 0, 1 };
    for (unsigned k = 1; k <= 43; ++k) {
        const std::uint64_t p = std::uint64_t{ 1 } << k;
        for (std::uint64_t v : { p - 1, p, p + 1 }) {
            if (v <= top) {
                values.push_back(v);
            }
        }
    }
    return values;
}

TEST(histogram, layout_slots_are_narrow_and_inside_one_power_of_two_bin) {
    EXPECT_GE(histogram::highest_trackable_value, std::uint64_t{ 1 } << 42);
    std::uint64_t expected_lowest = 0;
    for (std::size_t slot = 0; slot < histogram::slot_count; ++slot) {
        const std::uint64_t lowest = histogram::slot_lowest(slot);
        const std::uint64_t highest = histogram::slot_highest(slot);
        ASSERT_EQ(lowest, expected_lowest) << "slots tile the range without gaps, slot " << slot;
        expected_lowest = highest + 1;
        ASSERT_EQ(histogram::slot_of(lowest), slot);
        ASSERT_EQ(histogram::slot_of(highest), slot);
        ASSERT_EQ(std::bit_width(lowest), std::bit_width(highest)) << "slot " << slot;
        // Three significant digits: a slot is at most 1/1024 of its values wide.
        ASSERT_LE(histogram::slot_width(slot) * 1024, std::max<std::uint64_t>(lowest, 1024));
    }
    EXPECT_EQ(expected_lowest - 1, top);
}

TEST(histogram, empty) {
    const histogram h;
    EXPECT_EQ(h.total_count(), 0u);
    EXPECT_EQ(h.min(), 0u);
    EXPECT_EQ(h.max(), 0u);
    EXPECT_EQ(h.mean(), 0.0);
    EXPECT_EQ(h.value_at_percentile(50), 0u);
    const auto bins = h.power_of_two_bins();
    EXPECT_EQ(bins.size(), 65u);
    EXPECT_EQ(std::count(bins.begin(), bins.end(), 0u), 65);
}

TEST(histogram, random_distributions_match_exact_percentiles_and_mean) {
    const std::uint64_t seed = test_seed();
    SCOPED_TRACE("seed " + std::to_string(seed) + " (rerun with RINGTAIL_TEST_SEED)");
    for (auto d : { distribution::uniform, distribution::exponential, distribution::log_normal }) {
        SCOPED_TRACE("distribution " + std::to_string(static_cast<int>(d)));
        for (std::size_t n : { 1, 7, 1000, 1'000'000 }) {
            SCOPED_TRACE("n " + std::to_string(n));
            const auto values = random_values(d, seed + n, n);
            expect_percentiles(values);
            expect_mean(values);
        }
    }
}

TEST(histogram, adversarial_distributions_match_exact_percentiles) {
    {
        SCOPED_TRACE("all equal");
        expect_percentiles(std::vector<std::uint64_t>(10'000, 123'456'789));
        expect_mean(std::vector<std::uint64_t>(10'000, 123'456'789));
    }
    {
        SCOPED_TRACE("two far-apart spikes");
        std::vector<std::uint64_t> values(100'000, 10);
        values.insert(values.end(), 11, 10'000'000'000); // 10 s, just above p99.99
        expect_percentiles(values);
        expect_mean(values);
    }
    {
        SCOPED_TRACE("every power of two and its neighbours");
        const auto values = powers_of_two_and_neighbours();
        expect_percentiles(values);
        std::vector<std::uint64_t> repeated;
        for (int i = 0; i < 100; ++i) {
            repeated.insert(repeated.end(), values.begin(), values.end());
        }
        expect_percentiles(repeated);
    }
    {
        SCOPED_TRACE("near the highest trackable value");
        std::vector<std::uint64_t> values;
        for (std::uint64_t d = 0; d < 5000; ++d) {
            values.push_back(top - d);
        }
        values.push_back(std::uint64_t{ 1 } << 42);
        expect_percentiles(values);
        expect_mean(values);
    }
    {
        SCOPED_TRACE("0 and 1");
        std::vector<std::uint64_t> values(1000, 0);
        values.insert(values.end(), 1000, 1);
        expect_percentiles(values);
        expect_percentiles(std::vector<std::uint64_t>(10, 0));
        expect_percentiles({ 1 });
    }
}

TEST(histogram, values_above_the_top_saturate) {
    histogram h;
    h.record(top);
    h.record(top + 1);
    h.record(~std::uint64_t{ 0 });
    EXPECT_EQ(h.total_count(), 3u);
    EXPECT_EQ(h.saturated_count(), 2u);
    EXPECT_EQ(h.count_at(top), 3u);
    EXPECT_EQ(h.max(), ~std::uint64_t{ 0 });
    EXPECT_EQ(h.min(), top);
    EXPECT_EQ(h.value_at_percentile(100), top);
    EXPECT_EQ(h.power_of_two_bins()[43], 3u);
}

TEST(histogram, record_n_equals_n_records) {
    histogram a;
    histogram b;
    for (std::uint64_t v : powers_of_two_and_neighbours()) {
        a.record_n(v, 3);
        b.record(v);
        b.record(v);
        b.record(v);
    }
    a.record_n(999, 0); // records nothing, moves neither min nor max
    EXPECT_TRUE(a == b);
    histogram c;
    c.record_n(5, 0);
    EXPECT_TRUE(c == histogram{});
}

TEST(histogram, merge_equals_recording_everything_in_one) {
    const std::uint64_t seed = test_seed();
    SCOPED_TRACE("seed " + std::to_string(seed) + " (rerun with RINGTAIL_TEST_SEED)");
    const auto first = random_values(distribution::log_normal, seed, 200'000);
    auto second = random_values(distribution::exponential, seed + 1, 100'000);
    second.push_back(top + 7); // a saturated value travels too
    histogram a = histogram_of(first);
    const histogram b = histogram_of(second);
    histogram all = histogram_of(first);
    for (std::uint64_t v : second) {
        all.record(v);
    }
    a.merge(b);
    EXPECT_TRUE(a == all);
    EXPECT_EQ(a.total_count(), all.total_count());
    EXPECT_EQ(a.saturated_count(), 1u);
    EXPECT_EQ(a.min(), all.min());
    EXPECT_EQ(a.max(), all.max());
    for (const auto& c : percentile_cases) {
        EXPECT_EQ(a.value_at_percentile(c.p), all.value_at_percentile(c.p)) << "p" << c.p;
    }
    EXPECT_EQ(a.percentile_distribution(), all.percentile_distribution());

    // Merging into an empty histogram copies; merging an empty one changes nothing.
    histogram empty;
    empty.merge(all);
    EXPECT_TRUE(empty == all);
    all.merge(histogram{});
    EXPECT_TRUE(empty == all);
}

TEST(histogram, reset_empties_and_keeps_working) {
    histogram h = histogram_of(random_values(distribution::uniform, 1, 10'000));
    h.record(top + 1);
    h.reset();
    EXPECT_TRUE(h == histogram{});
    EXPECT_EQ(h.total_count(), 0u);
    EXPECT_EQ(h.saturated_count(), 0u);
    EXPECT_EQ(h.min(), 0u);
    EXPECT_EQ(h.max(), 0u);
    h.record(42);
    EXPECT_EQ(h.min(), 42u);
    EXPECT_EQ(h.max(), 42u);
    EXPECT_EQ(h.value_at_percentile(50), 42u);
}

TEST(histogram, swap_and_move_hand_over_the_counts) {
    histogram a;
    a.record(1000);
    histogram b;
    a.swap(b);
    EXPECT_EQ(a.total_count(), 0u);
    EXPECT_EQ(b.total_count(), 1u);
    histogram c = std::move(b);
    EXPECT_EQ(c.max(), 1000u);
}

TEST(histogram, recording_merging_and_reading_do_not_allocate) {
    const auto values = random_values(distribution::log_normal, 3, 1'000'000);
    histogram h;
    histogram other;
    other.record(5);
    const std::uint64_t before = t_allocations;
    for (std::uint64_t v : values) {
        h.record(v);
    }
    h.record_n(17, 1000);
    h.record(~std::uint64_t{ 0 });
    h.merge(other);
    const std::uint64_t p99 = h.value_at_percentile(99);
    h.reset();
    const std::uint64_t after = t_allocations;
    EXPECT_EQ(after - before, 0u);
    EXPECT_GT(p99, 0u);
    // The counter works: the constructor allocates its counts once.
    const histogram fresh;
    EXPECT_EQ(t_allocations - after, 1u);
}

TEST(histogram, memory_bytes_is_the_counts_array_and_the_object) {
    const histogram h;
    EXPECT_EQ(h.memory_bytes(), sizeof(histogram) + histogram::slot_count * 8);
    EXPECT_LT(h.memory_bytes(), 300u * 1024);
}

TEST(histogram, power_of_two_bins_match_a_direct_bit_length_count) {
    const std::uint64_t seed = test_seed();
    SCOPED_TRACE("seed " + std::to_string(seed) + " (rerun with RINGTAIL_TEST_SEED)");
    auto values = random_values(distribution::log_normal, seed, 100'000);
    const auto edges = powers_of_two_and_neighbours();
    values.insert(values.end(), edges.begin(), edges.end());
    const histogram h = histogram_of(values);
    const auto bins = h.power_of_two_bins();
    ASSERT_EQ(bins.size(), 65u);
    EXPECT_EQ(bins, bit_length_counts(values));
    std::uint64_t sum = 0;
    for (std::uint64_t b : bins) {
        sum += b;
    }
    EXPECT_EQ(sum, h.total_count());
}

// One row of the percentile distribution; `has_inverse` is false on the 100 % row.
struct distribution_row {
    double value;
    double percentile;
    std::uint64_t total_count;
    bool has_inverse;
};

struct parsed_distribution {
    std::vector<distribution_row> rows;
    std::uint64_t footer_total = 0;
    double footer_max = 0;
    int buckets = 0;
    int sub_buckets = 0;
    bool has_mean = false;
};

parsed_distribution parse_distribution(const std::string& text) {
    parsed_distribution out;
    std::istringstream in(text);
    std::string line;
    std::getline(in, line);
    EXPECT_EQ(line, "       Value     Percentile TotalCount 1/(1-Percentile)");
    std::getline(in, line);
    EXPECT_EQ(line, "");
    while (std::getline(in, line)) {
        if (line.rfind("#[", 0) == 0) {
            double mean = 0;
            double stddev = 0;
            unsigned long long total = 0;
            if (std::sscanf(line.c_str(), "#[Mean    = %lf, StdDeviation   = %lf]", &mean,
                            &stddev) == 2) {
                out.has_mean = true;
            } else if (std::sscanf(line.c_str(), "#[Max     = %lf, Total count    = %llu]",
                                   &out.footer_max, &total) == 2) {
                out.footer_total = total;
            } else {
                EXPECT_EQ(std::sscanf(line.c_str(), "#[Buckets = %d, SubBuckets     = %d]",
                                      &out.buckets, &out.sub_buckets),
                          2)
                  << line;
            }
            continue;
        }
        distribution_row row{};
        unsigned long long total = 0;
        double inverse = 0;
        const int fields = std::sscanf(line.c_str(), "%lf %lf %llu %lf", &row.value,
                                       &row.percentile, &total, &inverse);
        EXPECT_GE(fields, 3) << line;
        row.total_count = total;
        row.has_inverse = fields == 4;
        out.rows.push_back(row);
    }
    return out;
}

TEST(histogram, percentile_distribution_parses_back) {
    const std::uint64_t seed = test_seed();
    SCOPED_TRACE("seed " + std::to_string(seed) + " (rerun with RINGTAIL_TEST_SEED)");
    const histogram h = histogram_of(random_values(distribution::log_normal, seed, 100'000));
    const auto parsed = parse_distribution(h.percentile_distribution());
    ASSERT_GE(parsed.rows.size(), 2u);
    for (std::size_t i = 1; i < parsed.rows.size(); ++i) {
        EXPECT_GE(parsed.rows[i].value, parsed.rows[i - 1].value) << "row " << i;
        EXPECT_GE(parsed.rows[i].percentile, parsed.rows[i - 1].percentile) << "row " << i;
        EXPECT_GE(parsed.rows[i].total_count, parsed.rows[i - 1].total_count) << "row " << i;
    }
    for (std::size_t i = 0; i + 1 < parsed.rows.size(); ++i) {
        EXPECT_TRUE(parsed.rows[i].has_inverse) << "row " << i;
    }
    EXPECT_EQ(parsed.rows.front().percentile, 0.0);
    EXPECT_EQ(parsed.rows.back().percentile, 1.0);
    EXPECT_FALSE(parsed.rows.back().has_inverse);
    EXPECT_EQ(parsed.rows.back().total_count, h.total_count());
    EXPECT_NEAR(parsed.rows.back().value, static_cast<double>(h.max()) / 1000.0, 0.0005);
    EXPECT_TRUE(parsed.has_mean);
    EXPECT_EQ(parsed.footer_total, h.total_count());
    EXPECT_NEAR(parsed.footer_max, static_cast<double>(h.max()) / 1000.0, 0.0005);
    EXPECT_EQ(parsed.buckets, 33);
    EXPECT_EQ(parsed.sub_buckets, 2048);
}

// The values 1..1000 once each: the value at level L is ceil(10 L), and the levels are
// HdrHistogram's well-known sequence (0, 10, ..., 50, 55, ..., 75, 77.5, ..., 87.5, 88.75, ...).
TEST(histogram, percentile_distribution_matches_hdr_histogram_text) {
    histogram h;
    for (std::uint64_t v = 1; v <= 1000; ++v) {
        h.record(v);
    }
    const std::string text = h.percentile_distribution(5, 1.0);
    const std::string head = "       Value     Percentile TotalCount 1/(1-Percentile)\n"
                             "\n"
                             "       1.000 0.000000000000          1           1.00\n"
                             "     100.000 0.100000000000        100           1.11\n"
                             "     200.000 0.200000000000        200           1.25\n"
                             "     300.000 0.300000000000        300           1.43\n"
                             "     400.000 0.400000000000        400           1.67\n"
                             "     500.000 0.500000000000        500           2.00\n"
                             "     550.000 0.550000000000        550           2.22\n";
    EXPECT_EQ(text.substr(0, head.size()), head);
    const double hdr_levels[] = {
        0.0,    0.1,       0.2,      0.3,       0.4,        0.5,     0.55,       0.6,
        0.65,   0.7,       0.75,     0.775,     0.8,        0.825,   0.85,       0.875,
        0.8875, 0.9,       0.9125,   0.925,     0.9375,     0.94375, 0.95,       0.95625,
        0.9625, 0.96875,   0.971875, 0.975,     0.978125,   0.98125, 0.984375,   0.9859375,
        0.9875, 0.9890625, 0.990625, 0.9921875, 0.99296875, 0.99375, 0.99453125, 0.99531250,
    };
    const auto parsed = parse_distribution(text);
    ASSERT_GT(parsed.rows.size(), std::size(hdr_levels));
    for (std::size_t i = 0; i < std::size(hdr_levels); ++i) {
        EXPECT_NEAR(parsed.rows[i].percentile, hdr_levels[i], 1e-12) << "row " << i;
        EXPECT_EQ(parsed.rows[i].value, std::max(1.0, std::ceil(hdr_levels[i] * 1000 - 1e-9)))
          << "row " << i;
    }
    const std::string tail = "    1000.000 1.000000000000       1000\n"
                             "#[Mean    =      500.500, StdDeviation   =      288.675]\n"
                             "#[Max     =     1000.000, Total count    =         1000]\n"
                             "#[Buckets =           33, SubBuckets     =         2048]\n";
    ASSERT_GE(text.size(), tail.size());
    EXPECT_EQ(text.substr(text.size() - tail.size()), tail);
}

} // namespace
} // namespace ringtail
