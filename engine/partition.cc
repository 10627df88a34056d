// Key hashing and the partition map.
#include "engine/partition.h"

#include <xxhash.h>

namespace ringtail {

namespace {
// Fixed forever: changing it would move every key to another partition and break recovery files.
constexpr std::uint64_t key_hash_seed = 0x52696e677461696cULL; // "Ringtail"
} // namespace

std::uint64_t key_hash(std::string_view key_bytes) {
    return XXH64(key_bytes.data(), key_bytes.size(), key_hash_seed);
}

void partition_map::set_layout(std::vector<std::uint32_t> shards_per_worker, std::uint32_t self) {
    _shards_of_worker = std::move(shards_per_worker);
    _first_of_worker.clear();
    _worker_of_shard.clear();
    _self = self;
    for (std::uint32_t w = 0; w < _shards_of_worker.size(); ++w) {
        _first_of_worker.push_back(static_cast<std::uint32_t>(_worker_of_shard.size()));
        _worker_of_shard.insert(_worker_of_shard.end(), _shards_of_worker[w], w);
    }
    _first_local = _first_of_worker.at(self);
    _local_count = _shards_of_worker.at(self);
}

void partition_map::assign_round_robin(std::uint32_t node, std::uint32_t partitions) {
    if (_owners.size() <= node) {
        _owners.resize(node + 1);
    }
    auto& owners = _owners[node];
    owners.resize(partitions);
    const auto shards = total_shards();
    for (std::uint32_t p = 0; p < partitions; ++p) {
        owners[p] = p % shards;
    }
}

} // namespace ringtail
