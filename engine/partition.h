// Keys to partitions: a stable 64-bit hash (xxHash64 with a fixed seed, the same in every process
// and build) masked to the stage's partition count, and the partition map that says which shard
// owns each partition.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace ringtail {

std::uint64_t key_hash(std::string_view key_bytes);

inline std::uint32_t partition_of(std::string_view key_bytes, std::uint32_t partitions) {
    return static_cast<std::uint32_t>(key_hash(key_bytes) & (partitions - 1));
}

// The bytes of a key as the app's key function returned it: string-like keys as they are,
// integers as 8 big-endian bytes (so the hash does not depend on the integer's width or the
// host's byte order). `scratch` holds the bytes of an integer key.
template<typename K>
std::string_view key_bytes(const K& key, std::string& scratch) {
    if constexpr (std::is_convertible_v<const K&, std::string_view>) {
        return std::string_view(key);
    } else if constexpr (std::is_integral_v<K> || std::is_enum_v<K>) {
        std::uint64_t v = static_cast<std::uint64_t>(key);
        if constexpr (std::endian::native == std::endian::little) {
            v = __builtin_bswap64(v);
        }
        scratch.resize(sizeof v);
        std::memcpy(scratch.data(), &v, sizeof v);
        return scratch;
    } else {
        static_assert(sizeof(K) == 0,
                      "a key function must return a string-like value or an integer");
    }
}

// Which shard of the cluster owns each partition of each keyed stage. Shards are numbered across
// the cluster: worker w owns the global shards [first(w), first(w) + shards(w)), in worker order,
// so every worker computes the same map from the same layout. Growing and shrinking will rewrite
// it whole at a barrier; between barriers it is read-only and shared by the shards.
class partition_map {
public:
    partition_map() = default;
    // The cluster's layout: how many shards each worker runs, and which worker this is. The
    // default is one worker.
    void set_layout(std::vector<std::uint32_t> shards_per_worker, std::uint32_t self);
    // Spreads `partitions` partitions of a stage round-robin over every shard of the cluster.
    void assign_round_robin(std::uint32_t node, std::uint32_t partitions);
    // The global shard owning `partition` of keyed stage `node`.
    std::uint32_t owner(std::uint32_t node, std::uint32_t partition) const {
        return _owners[node][partition];
    }
    std::uint32_t partitions(std::uint32_t node) const {
        return node < _owners.size() ? static_cast<std::uint32_t>(_owners[node].size()) : 0;
    }
    std::uint32_t worker_of(std::uint32_t global_shard) const {
        return _worker_of_shard[global_shard];
    }
    // This worker's shards: global ids first_local() .. first_local() + local_count() - 1.
    std::uint32_t first_local() const { return _first_local; }
    std::uint32_t local_count() const { return _local_count; }
    std::uint32_t total_shards() const {
        return static_cast<std::uint32_t>(_worker_of_shard.size());
    }
    std::uint32_t workers() const { return static_cast<std::uint32_t>(_first_of_worker.size()); }
    std::uint32_t self() const { return _self; }
    std::uint32_t first_of(std::uint32_t worker) const { return _first_of_worker[worker]; }
    std::uint32_t shards_of(std::uint32_t worker) const { return _shards_of_worker[worker]; }

private:
    std::vector<std::vector<std::uint32_t>> _owners; // [node][partition] -> global shard
    std::vector<std::uint32_t> _worker_of_shard;     // [global shard] -> worker
    std::vector<std::uint32_t> _first_of_worker;
    std::vector<std::uint32_t> _shards_of_worker;
    std::uint32_t _self = 0;
    std::uint32_t _first_local = 0;
    std::uint32_t _local_count = 0;
};

} // namespace ringtail
