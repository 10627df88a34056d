// Tests of the simulated faulty link: each fault at its rate, the same faults for the same seed,
// one flipped bit per corruption, real reordering, delays kept, a bound on what is held, and the
// parser's one-line errors.
#include "net/fault/fault_injector.h"

#include <bit>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "engine/big_endian.h"

namespace ringtail::net {
namespace {

std::uint64_t test_seed() {
    if (const char* s = std::getenv("RINGTAIL_TEST_SEED")) {
        return std::strtoull(s, nullptr, 10);
    }
    return std::random_device{}();
}

// Frame i: its index as 8 big-endian bytes, then 24 bytes of filler.
std::string numbered(std::uint64_t i) {
    std::string f;
    be::append<std::uint64_t>(f, i);
    f.append(24, 'x');
    return f;
}

std::uint64_t number_of(const std::string& f) {
    return be::read<std::uint64_t>(reinterpret_cast<const std::byte*>(f.data()));
}

// Submits `n` numbered frames, one per ns, and delivers everything; returns what came out.
std::vector<std::string> run(fault_injector& link, std::uint64_t n) {
    std::vector<std::string> out;
    for (std::uint64_t i = 0; i < n; ++i) {
        link.submit(numbered(i), i);
        link.deliver_due(i, [&](std::string&& f) { out.push_back(std::move(f)); });
    }
    link.deliver_due(fault_injector::no_due - 1, [&](std::string&& f) { out.push_back(f); });
    EXPECT_EQ(link.held(), 0u);
    return out;
}

TEST(fault_injector, no_faults_passes_everything_in_order) {
    fault_injector link;
    auto out = run(link, 1000);
    ASSERT_EQ(out.size(), 1000u);
    for (std::uint64_t i = 0; i < out.size(); ++i) {
        EXPECT_EQ(out[i], numbered(i));
    }
    EXPECT_EQ(link.submitted(), 1000u);
    EXPECT_EQ(link.delivered(), 1000u);
    EXPECT_EQ(link.dropped() + link.duplicated() + link.corrupted() + link.reordered(), 0u);
}

TEST(fault_injector, each_rate_within_tolerance) {
    std::uint64_t seed = test_seed();
    SCOPED_TRACE("RINGTAIL_TEST_SEED=" + std::to_string(seed));
    fault_config c;
    c.loss = 0.05;
    c.duplicate = 0.02;
    c.reorder = 0.1;
    c.corrupt = 0.01;
    c.seed = seed;
    fault_injector link(c);
    constexpr std::uint64_t n = 100'000;
    auto out = run(link, n);
    double kept = static_cast<double>(n - link.dropped());
    double copies = kept + static_cast<double>(link.duplicated());
    // Tolerances are about 5 standard deviations.
    EXPECT_NEAR(static_cast<double>(link.dropped()) / n, 0.05, 0.0035);
    EXPECT_NEAR(static_cast<double>(link.duplicated()) / kept, 0.02, 0.0025);
    EXPECT_NEAR(static_cast<double>(link.reordered()) / copies, 0.1, 0.005);
    EXPECT_NEAR(static_cast<double>(link.corrupted()) / copies, 0.01, 0.0016);
    EXPECT_EQ(out.size(), static_cast<std::size_t>(copies));
    EXPECT_EQ(link.delivered(), out.size());
    EXPECT_EQ(link.submitted(), n);
}

TEST(fault_injector, same_seed_same_faults) {
    fault_config c;
    c.loss = 0.1;
    c.duplicate = 0.1;
    c.reorder = 0.2;
    c.corrupt = 0.05;
    c.jitter_ns = 5;
    c.seed = 42;
    fault_injector a(c);
    fault_injector b(c);
    auto out_a = run(a, 5000);
    EXPECT_EQ(out_a, run(b, 5000));
    c.seed = 43;
    fault_injector other(c);
    EXPECT_NE(out_a, run(other, 5000));
}

TEST(fault_injector, corruption_flips_exactly_one_bit) {
    fault_config c;
    c.corrupt = 1;
    c.seed = test_seed();
    SCOPED_TRACE("RINGTAIL_TEST_SEED=" + std::to_string(c.seed));
    fault_injector link(c);
    auto out = run(link, 2000);
    ASSERT_EQ(out.size(), 2000u);
    EXPECT_EQ(link.corrupted(), 2000u);
    std::vector<int> bits_hit(32 * 8);
    for (std::uint64_t i = 0; i < out.size(); ++i) {
        std::string want = numbered(i);
        ASSERT_EQ(out[i].size(), want.size());
        int flipped = 0;
        for (std::size_t j = 0; j < want.size(); ++j) {
            auto diff = static_cast<unsigned char>(out[i][j] ^ want[j]);
            flipped += std::popcount(diff);
            for (int b = 0; b < 8; ++b) {
                if ((diff >> b) & 1) {
                    ++bits_hit[j * 8 + b];
                }
            }
        }
        EXPECT_EQ(flipped, 1) << "frame " << i;
    }
    // Any bit may be hit: over 2000 frames of 256 bits, nearly all are.
    EXPECT_GT(std::count_if(bits_hit.begin(), bits_hit.end(), [](int n) { return n > 0; }), 240);
}

TEST(fault_injector, reordering_changes_the_order_and_loses_nothing) {
    fault_config c;
    c.reorder = 0.2;
    c.seed = test_seed();
    SCOPED_TRACE("RINGTAIL_TEST_SEED=" + std::to_string(c.seed));
    fault_injector link(c);
    auto out = run(link, 10'000);
    ASSERT_EQ(out.size(), 10'000u);
    std::size_t inversions = 0;
    std::vector<bool> seen(out.size());
    for (std::size_t i = 0; i < out.size(); ++i) {
        std::uint64_t n = number_of(out[i]);
        ASSERT_LT(n, seen.size());
        EXPECT_FALSE(seen[n]);
        seen[n] = true;
        if (i > 0 && number_of(out[i - 1]) > n) {
            ++inversions;
        }
        // Overtaken by 1..3 frames, or by what else was held back at the same time: never far.
        EXPECT_LE(n, i + 3 + 16) << "frame " << n << " delivered early";
        EXPECT_LE(i, n + 3 + 16) << "frame " << n << " held back too long";
    }
    EXPECT_GT(inversions, 1000u);
    EXPECT_NEAR(static_cast<double>(link.reordered()), 2000.0, 250.0);
}

TEST(fault_injector, reordered_frame_is_released_by_its_deadline_without_followers) {
    fault_config c;
    c.reorder = 1;
    c.delay_ns = 100;
    c.reorder_max_ns = 1000;
    fault_injector link(c);
    link.submit("only", 0);
    EXPECT_EQ(link.next_due_ns(), 1100u);
    std::vector<std::string> out;
    EXPECT_EQ(link.deliver_due(1099, [&](std::string&& f) { out.push_back(f); }), 0u);
    EXPECT_EQ(link.deliver_due(1100, [&](std::string&& f) { out.push_back(f); }), 1u);
    EXPECT_EQ(out, std::vector<std::string>{ "only" });
}

TEST(fault_injector, delay_and_jitter_respected) {
    fault_config c;
    c.delay_ns = 1000;
    c.jitter_ns = 500;
    c.seed = test_seed();
    SCOPED_TRACE("RINGTAIL_TEST_SEED=" + std::to_string(c.seed));
    fault_injector link(c);
    for (std::uint64_t i = 0; i < 1000; ++i) {
        link.submit(numbered(i), i * 10);
    }
    EXPECT_GE(link.next_due_ns(), 1000u);
    std::uint64_t min_lat = ~std::uint64_t{ 0 };
    std::uint64_t max_lat = 0;
    std::uint64_t delivered = 0;
    for (std::uint64_t now = 0; now <= 20'000; ++now) {
        link.deliver_due(now, [&](std::string&& f) {
            std::uint64_t lat = now - number_of(f) * 10;
            min_lat = std::min(min_lat, lat);
            max_lat = std::max(max_lat, lat);
            ++delivered;
        });
    }
    EXPECT_EQ(delivered, 1000u);
    EXPECT_GE(min_lat, 1000u);
    EXPECT_LE(max_lat, 1500u);
    // The jitter is used, across its range (1000 draws from 501 values).
    EXPECT_LT(min_lat, 1010u);
    EXPECT_GT(max_lat, 1490u);
    EXPECT_EQ(link.next_due_ns(), fault_injector::no_due);
}

TEST(fault_injector, frames_submitted_while_delivering_wait_for_the_next_call) {
    fault_injector link; // no delay: a frame is due the moment it is submitted
    link.submit("a", 0);
    int calls = 0;
    link.deliver_due(0, [&](std::string&& f) {
        ++calls;
        link.submit(f + "a", 0); // an echo, as a peer on a loopback would send
    });
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(link.held(), 1u);
}

TEST(fault_injector, held_frames_are_bounded) {
    fault_config c;
    c.delay_ns = 1'000'000;
    c.max_held = 100;
    fault_injector link(c);
    for (int i = 0; i < 250; ++i) {
        link.submit("f", 0);
    }
    EXPECT_EQ(link.held(), 100u);
    EXPECT_EQ(link.overflowed(), 150u);
    EXPECT_EQ(link.deliver_due(1'000'000, [](std::string&&) {}), 100u);
}

TEST(fault_injector, parses_a_full_config) {
    auto r = parse_fault_config(
      "loss=0.05,dup=0.01,reorder=0.1,corrupt=0.001,delay_us=100,jitter_us=50,seed=7");
    ASSERT_TRUE(r.ok()) << r.err().message;
    EXPECT_DOUBLE_EQ(r->loss, 0.05);
    EXPECT_DOUBLE_EQ(r->duplicate, 0.01);
    EXPECT_DOUBLE_EQ(r->reorder, 0.1);
    EXPECT_DOUBLE_EQ(r->corrupt, 0.001);
    EXPECT_EQ(r->delay_ns, 100'000u);
    EXPECT_EQ(r->jitter_ns, 50'000u);
    EXPECT_EQ(r->seed, 7u);

    auto more = parse_fault_config(" loss = 1 , reorder_max_us=3, max_held=10, duplicate=0 ");
    ASSERT_TRUE(more.ok()) << more.err().message;
    EXPECT_DOUBLE_EQ(more->loss, 1.0);
    EXPECT_EQ(more->reorder_max_ns, 3000u);
    EXPECT_EQ(more->max_held, 10u);

    auto none = parse_fault_config("");
    ASSERT_TRUE(none.ok());
    EXPECT_EQ(none->loss, 0.0);
    EXPECT_EQ(none->delay_ns, 0u);
}

TEST(fault_injector, parse_errors_name_the_item) {
    struct bad {
        const char* text;
        const char* says;
    };
    for (const bad& b : {
           bad{ "lose=0.1", "'lose=0.1': unknown key" },
           bad{ "loss=abc", "'loss=abc': not a number" },
           bad{ "loss=", "'loss=': not a number" },
           bad{ "loss=0.1x", "'loss=0.1x': not a number" },
           bad{ "loss=1.5", "'loss=1.5': a probability must be within [0, 1]" },
           bad{ "dup=-0.1", "'dup=-0.1': a probability must be within [0, 1]" },
           bad{ "corrupt=nan", "'corrupt=nan': a probability must be within [0, 1]" },
           bad{ "delay_us=-5", "'delay_us=-5': not a non-negative integer" },
           bad{ "delay_us=99999999999999999999", "not a non-negative integer" },
           bad{ "jitter_us=18446744073709552", "'jitter_us=18446744073709552': too large" },
           bad{ "max_held=0", "at least 1" },
           bad{ "loss", "'loss': expected key=value" },
           bad{ "loss=0.1,", "empty item" },
           bad{ "loss=0.1,,dup=0", "empty item" },
         }) {
        auto r = parse_fault_config(b.text);
        ASSERT_FALSE(r.ok()) << b.text;
        EXPECT_EQ(r.err().code, errc::usage) << b.text;
        EXPECT_NE(r.err().message.find(b.says), std::string::npos)
          << b.text << " -> " << r.err().message;
        EXPECT_EQ(r.err().message.find('\n'), std::string::npos);
    }
}

} // namespace
} // namespace ringtail::net
