// A sequence-like application shared by the tests of routing across workers: input
// `[u64 value][key]`, keyed by the key, state = the last value per key, output one line
// "key value previous\n" per record, so a test can check order and exactly-once per key.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "engine/application.h"
#include "engine/big_endian.h"

namespace ringtail::testing {

struct record {
    std::uint64_t value;
    std::string key;
};

struct last_value {
    std::uint64_t value = 0;
};

} // namespace ringtail::testing

// A record crosses workers as its input bytes.
template<>
struct ringtail::codec<ringtail::testing::record> {
    static void encode(const ringtail::testing::record& r, std::string& out) {
        ringtail::be::append<std::uint64_t>(out, r.value);
        out.append(r.key);
    }
    static std::optional<ringtail::testing::record> decode(std::span<const std::byte> b) {
        if (b.size() < 8) {
            return std::nullopt;
        }
        return ringtail::testing::record{ ringtail::be::read<std::uint64_t>(b.data()),
                                          std::string(reinterpret_cast<const char*>(b.data()) + 8,
                                                      b.size() - 8) };
    }
};

namespace ringtail::testing {

inline application make_sequence_app() {
    application app{ "seq" };
    app
      .source("in",
              [](std::span<const std::byte> p) -> std::optional<record> {
                  return codec<record>::decode(p);
              })
      .key_by([](const record& r) -> const std::string& { return r.key; })
      .to_state<last_value>("last",
                            [](const record& r, last_value& s) {
                                std::string out = r.key + " " + std::to_string(r.value) + " " +
                                                  std::to_string(s.value) + "\n";
                                s.value = r.value;
                                return out;
                            })
      .to_sink("out", [](const std::string& s) { return s; });
    return app;
}

inline std::string encode_record(std::uint64_t value, const std::string& key) {
    std::string s;
    codec<record>::encode(record{ value, key }, s);
    return s;
}

} // namespace ringtail::testing
