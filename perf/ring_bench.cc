// Compares ringtail::spsc_ring with the packaged SPSC queues (DPDK rte_ring, boost::lockfree's
// spsc_queue, moodycamel's ReaderWriterQueue) between two pinned threads: throughput at batch 1
// and 32 for an 8-byte and a 64-byte element, and ping-pong round-trip latency. All queues hold
// the same number of elements; every consumer checks the sequence it receives.
#include "engine/spsc_ring.h"

#include <benchmark/benchmark.h>

#include <pthread.h>
#include <sched.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <boost/lockfree/spsc_queue.hpp>

#ifdef RINGTAIL_HAVE_DPDK
#include <rte_ring.h>
#include <rte_ring_elem.h>
#endif
#ifdef RINGTAIL_HAVE_RWQ
#include <readerwriterqueue/readerwriterqueue.h>
#endif

namespace {

constexpr std::size_t ring_capacity = 4096;             // elements, for every queue
constexpr std::uint64_t items_per_iteration = 1U << 14; // throughput: items per timed iteration
constexpr double min_time_s = 0.2;

// --- Elements ----------------------------------------------------------------------------------

// Shaped like a ring slot on the hot path (DESIGN.md §3): routing fields, timestamps and a small
// inline value. Only `seq` is checked.
struct envelope64 {
    std::uint64_t seq = 0;
    std::uint32_t node = 0;
    std::uint32_t partition = 0;
    std::uint64_t event_ns = 0;
    std::uint64_t ingest_ns = 0;
    std::array<unsigned char, 32> value{};
};
static_assert(sizeof(envelope64) == 64);

template<typename T>
T make_item(std::uint64_t seq);
template<>
std::uint64_t make_item<std::uint64_t>(std::uint64_t seq) {
    return seq;
}
template<>
envelope64 make_item<envelope64>(std::uint64_t seq) {
    envelope64 e;
    e.seq = seq;
    e.partition = static_cast<std::uint32_t>(seq);
    return e;
}
std::uint64_t seq_of(std::uint64_t v) {
    return v;
}
std::uint64_t seq_of(const envelope64& e) {
    return e.seq;
}

// --- Queue adapters: push/pop one, push/pop a burst (returns how many) ---------------------------

template<typename T>
class ringtail_queue {
public:
    explicit ringtail_queue(std::size_t capacity)
      : _ring(capacity) {}
    bool push(T v) { return _ring.push_sp(std::move(v)); }
    std::size_t push_burst(T* v, std::size_t n) { return _ring.push_burst_sp(v, n); }
    bool pop(T& out) { return _ring.pop_sc(out); }
    std::size_t pop_burst(T* out, std::size_t n) { return _ring.pop_burst_sc(out, n); }

private:
    ringtail::spsc_ring<T> _ring;
};

// Built with the fixed-capacity policy: the capacity is part of the type, storage inline.
template<typename T>
class boost_queue {
public:
    explicit boost_queue(std::size_t /*capacity: ring_capacity, fixed at compile time*/) {}
    bool push(const T& v) { return _q.push(v); }
    std::size_t push_burst(const T* v, std::size_t n) { return _q.push(v, n); }
    bool pop(T& out) { return _q.pop(out); }
    std::size_t pop_burst(T* out, std::size_t n) { return _q.pop(out, n); }

private:
    boost::lockfree::spsc_queue<T, boost::lockfree::capacity<ring_capacity>> _q;
};

#ifdef RINGTAIL_HAVE_DPDK
// rte_ring in single-producer/single-consumer mode, elements stored by value through the _elem
// API (for an 8-byte element this is the code path of rte_ring_sp_enqueue_burst). The ring lives
// in our own aligned memory, initialised with rte_ring_init: no EAL, no hugepages needed.
// RING_F_EXACT_SZ makes its usable capacity exactly ring_capacity (not ring_capacity - 1).
template<typename T>
class dpdk_queue {
    static_assert(sizeof(T) % 4 == 0, "rte_ring element sizes are multiples of 4");
    static constexpr unsigned esize = sizeof(T);

public:
    explicit dpdk_queue(std::size_t capacity) {
        constexpr unsigned flags = RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ;
        const auto count = static_cast<unsigned>(capacity);
        const ssize_t bytes = rte_ring_get_memsize_elem(esize, rte_align32pow2(count + 1));
        if (bytes < 0) {
            throw std::runtime_error("rte_ring_get_memsize_elem failed");
        }
        const std::size_t rounded = (static_cast<std::size_t>(bytes) + RTE_CACHE_LINE_SIZE - 1) /
                                    RTE_CACHE_LINE_SIZE * RTE_CACHE_LINE_SIZE;
        _ring = static_cast<rte_ring*>(std::aligned_alloc(RTE_CACHE_LINE_SIZE, rounded));
        if (_ring == nullptr || rte_ring_init(_ring, "ring_bench", count, flags) != 0) {
            std::free(_ring);
            throw std::runtime_error("rte_ring_init failed");
        }
    }
    dpdk_queue(const dpdk_queue&) = delete;
    dpdk_queue& operator=(const dpdk_queue&) = delete;
    ~dpdk_queue() { std::free(_ring); }

    bool push(const T& v) {
        return rte_ring_sp_enqueue_elem(_ring, const_cast<T*>(&v), esize) == 0;
    }
    std::size_t push_burst(const T* v, std::size_t n) {
        return rte_ring_sp_enqueue_burst_elem(_ring, v, esize, static_cast<unsigned>(n), nullptr);
    }
    bool pop(T& out) { return rte_ring_sc_dequeue_elem(_ring, &out, esize) == 0; }
    std::size_t pop_burst(T* out, std::size_t n) {
        return rte_ring_sc_dequeue_burst_elem(_ring, out, esize, static_cast<unsigned>(n), nullptr);
    }

private:
    rte_ring* _ring = nullptr;
};
#endif

#ifdef RINGTAIL_HAVE_RWQ
// ReaderWriterQueue has no burst API: a burst is a loop of single calls that stops at the first
// failure. try_enqueue never allocates, so the initial capacity is a hard bound.
template<typename T>
class rwq_queue {
public:
    explicit rwq_queue(std::size_t capacity)
      : _q(capacity) {}
    bool push(const T& v) { return _q.try_enqueue(v); }
    std::size_t push_burst(const T* v, std::size_t n) {
        std::size_t i = 0;
        while (i < n && _q.try_enqueue(v[i])) {
            ++i;
        }
        return i;
    }
    bool pop(T& out) { return _q.try_dequeue(out); }
    std::size_t pop_burst(T* out, std::size_t n) {
        std::size_t i = 0;
        while (i < n && _q.try_dequeue(out[i])) {
            ++i;
        }
        return i;
    }

private:
    moodycamel::ReaderWriterQueue<T> _q;
};
#endif

// --- Pinning ------------------------------------------------------------------------------------

// The first two CPUs this process may run on (cores 0 and 1 on a two-core machine); override
// with RINGTAIL_BENCH_CPUS=a,b (e.g. two cores sharing an L3, or two SMT siblings on purpose).
struct cpu_pair {
    int producer = -1;
    int consumer = -1;
    bool valid() const { return producer >= 0 && consumer >= 0; }
};

cpu_pair pick_cpus() {
    cpu_pair cpus;
    if (const char* env = std::getenv("RINGTAIL_BENCH_CPUS")) {
        char* end = nullptr;
        cpus.producer = static_cast<int>(std::strtol(env, &end, 10));
        if (end != nullptr && *end == ',') {
            cpus.consumer = static_cast<int>(std::strtol(end + 1, nullptr, 10));
        }
        return cpus;
    }
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) {
        return cpus;
    }
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
        if (CPU_ISSET(cpu, &allowed)) {
            (cpus.producer < 0 ? cpus.producer : cpus.consumer) = cpu;
            if (cpus.valid()) {
                break;
            }
        }
    }
    return cpus;
}

const cpu_pair& bench_cpus() {
    static const cpu_pair cpus = pick_cpus(); // read before any thread is pinned
    return cpus;
}

bool pin_this_thread(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
}

// Pins the calling (benchmark) thread as the producer; false, with the benchmark skipped, when
// there are not two CPUs: two spinning threads on one CPU measure the scheduler.
bool pin_producer(benchmark::State& state) {
    const cpu_pair& cpus = bench_cpus();
    if (!cpus.valid() || cpus.producer == cpus.consumer || !pin_this_thread(cpus.producer)) {
        state.SkipWithError("needs two distinct CPUs to pin to (see RINGTAIL_BENCH_CPUS)");
        return false;
    }
    return true;
}

// --- Benchmarks ---------------------------------------------------------------------------------

// Producer on the benchmark thread, consumer on its own pinned thread; items/s is the rate of the
// whole transfer (the ring is never drained inside the timed loop, so at most ring_capacity items
// are left in flight when the clock stops, out of millions).
template<template<typename> class Queue, typename T, std::size_t Batch>
void bm_throughput(benchmark::State& state) {
    if (!pin_producer(state)) {
        return;
    }
    auto q = std::make_unique<Queue<T>>(ring_capacity);
    const std::uint64_t total =
      static_cast<std::uint64_t>(state.max_iterations) * items_per_iteration;
    std::uint64_t bad = 0;

    std::thread consumer([&] {
        pin_this_thread(bench_cpus().consumer);
        std::array<T, Batch> buf{};
        std::uint64_t expected = 0;
        std::uint64_t mismatches = 0;
        while (expected < total) {
            std::size_t n = 0;
            if constexpr (Batch == 1) {
                n = q->pop(buf[0]) ? 1 : 0;
            } else {
                n = q->pop_burst(buf.data(), Batch);
            }
            for (std::size_t i = 0; i < n; ++i) {
                mismatches += seq_of(buf[i]) != expected++;
            }
        }
        bad = mismatches;
    });

    std::uint64_t next = 0;
    std::array<T, Batch> buf{};
    for (auto _ : state) {
        for (const std::uint64_t end = next + items_per_iteration; next < end; next += Batch) {
            if constexpr (Batch == 1) {
                while (!q->push(make_item<T>(next))) {
                }
            } else {
                for (std::size_t i = 0; i < Batch; ++i) {
                    buf[i] = make_item<T>(next + i);
                }
                for (std::size_t done = 0; done < Batch;) {
                    done += q->push_burst(buf.data() + done, Batch - done);
                }
            }
        }
    }
    consumer.join();
    if (bad != 0) {
        state.SkipWithError("consumer saw the sequence out of order");
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * items_per_iteration));
}

// Ping-pong: the benchmark thread pushes i on one queue and waits for it to come back on the
// other; the echo thread moves each item across. One iteration is one round trip.
template<template<typename> class Queue>
void bm_round_trip(benchmark::State& state) {
    if (!pin_producer(state)) {
        return;
    }
    auto ping = std::make_unique<Queue<std::uint64_t>>(ring_capacity);
    auto pong = std::make_unique<Queue<std::uint64_t>>(ring_capacity);
    const auto total = static_cast<std::uint64_t>(state.max_iterations);

    std::thread echo([&] {
        pin_this_thread(bench_cpus().consumer);
        for (std::uint64_t i = 0; i < total; ++i) {
            std::uint64_t v = 0;
            while (!ping->pop(v)) {
            }
            while (!pong->push(v)) {
            }
        }
    });

    std::uint64_t i = 0;
    std::uint64_t bad = 0;
    for (auto _ : state) {
        while (!ping->push(i)) {
        }
        std::uint64_t v = 0;
        while (!pong->pop(v)) {
        }
        bad += v != i;
        ++i;
    }
    echo.join();
    if (bad != 0) {
        state.SkipWithError("round trip returned the wrong item");
    }
    // Seconds per iteration, scaled to ns: inverse of (1e-9 * iterations / seconds).
    state.counters["rtt_ns"] = benchmark::Counter(
      1e-9, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

template<template<typename> class Queue>
void register_queue(const std::string& name) {
    auto tune = [](benchmark::internal::Benchmark* b) {
        b->UseRealTime()->MinTime(min_time_s)->Unit(benchmark::kNanosecond);
    };
    tune(benchmark::RegisterBenchmark(("throughput/" + name + "/u64/batch:1").c_str(),
                                      bm_throughput<Queue, std::uint64_t, 1>));
    tune(benchmark::RegisterBenchmark(("throughput/" + name + "/u64/batch:32").c_str(),
                                      bm_throughput<Queue, std::uint64_t, 32>));
    tune(benchmark::RegisterBenchmark(("throughput/" + name + "/env64/batch:1").c_str(),
                                      bm_throughput<Queue, envelope64, 1>));
    tune(benchmark::RegisterBenchmark(("throughput/" + name + "/env64/batch:32").c_str(),
                                      bm_throughput<Queue, envelope64, 32>));
    tune(
      benchmark::RegisterBenchmark(("round_trip/" + name + "/u64").c_str(), bm_round_trip<Queue>));
}

} // namespace

int main(int argc, char** argv) {
    const cpu_pair& cpus = bench_cpus();
    benchmark::AddCustomContext("producer_cpu", std::to_string(cpus.producer));
    benchmark::AddCustomContext("consumer_cpu", std::to_string(cpus.consumer));
    benchmark::AddCustomContext("ring_capacity", std::to_string(ring_capacity));

    register_queue<ringtail_queue>("ringtail");
#ifdef RINGTAIL_HAVE_DPDK
    register_queue<dpdk_queue>("rte_ring");
#endif
    register_queue<boost_queue>("boost_spsc");
#ifdef RINGTAIL_HAVE_RWQ
    register_queue<rwq_queue>("moodycamel_rwq");
#endif

    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
        return 1;
    }
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
