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

void partition_map::assign_round_robin(std::uint32_t node, std::uint32_t partitions,
                                       std::uint32_t shards) {
    if (_owners.size() <= node) {
        _owners.resize(node + 1);
    }
    auto& owners = _owners[node];
    owners.resize(partitions);
    for (std::uint32_t p = 0; p < partitions; ++p) {
        owners[p] = p % shards;
    }
}

} // namespace ringtail
