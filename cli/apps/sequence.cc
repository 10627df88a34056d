// sequence: the key test app (WIRE.md §6). In `[u32 8+k][u64 value][k bytes key]`, keyed by the
// key; the state per key is the last value seen; out the same record, byte for byte. What comes
// out is judged by ringtail-check (lost, duplicated, out-of-order values per key).
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "cli/run_worker.h"
#include "engine/big_endian.h"

namespace {

struct record {
    std::uint64_t value;
    std::string key;
};

struct last_value {
    std::uint64_t value = 0;
    bool seen = false;
};

constexpr std::size_t value_size = sizeof(std::uint64_t);

} // namespace

// A record crosses workers (key_by routes it to its key's owner) as its input bytes.
template<>
struct ringtail::codec<record> {
    static void encode(const record& r, std::string& out) {
        ringtail::be::append<std::uint64_t>(out, r.value);
        out.append(r.key);
    }
    static std::optional<record> decode(std::span<const std::byte> p) {
        if (p.size() < value_size) {
            return std::nullopt;
        }
        return record{ ringtail::be::read<std::uint64_t>(p.data()),
                       std::string(ringtail::as_text(p.subspan(value_size))) };
    }
};

int main(int argc, char** argv) {
    namespace be = ringtail::be;
    return ringtail::cli::run_worker(argc, argv, "sequence", [](ringtail::application& app) {
        app
          .source("Sequence",
                  [](std::span<const std::byte> p) -> std::optional<record> {
                      return ringtail::codec<record>::decode(p); // nullopt: dropped and counted
                  })
          .key_by([](const record& r) -> const std::string& { return r.key; })
          .to_state<last_value>("last value",
                                [](const record& r, last_value& last) {
                                    last.value = r.value;
                                    last.seen = true;
                                    return r;
                                })
          .to_sink("Out", [](const record& r, std::string& out) {
              ringtail::append_frame(out, [&](std::string& payload) {
                  be::append<std::uint64_t>(payload, r.value);
                  payload.append(r.key);
              });
          });
    });
}
