// libFuzzer target for the messages one worker sends another (engine/remote_codec.h): a DATA
// frame's body from the network, decoded against a real application's stages. Any bytes and any
// claimed count must decode without UB; every delivered message names a keyed stage and a
// partition in range, carries a value its codec accepted, and re-encodes to the bytes it came from.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <span>
#include <string>

#include "engine/application.h"
#include "engine/big_endian.h"
#include "engine/remote_codec.h"

namespace {

void check(bool condition) {
    if (!condition) {
        std::abort();
    }
}

struct counted {
    std::uint64_t n = 0;
};

// Two keyed stages with different input types: std::string (any bytes) and a trivially copyable
// struct (exactly its size).
struct pair_value {
    std::uint32_t a;
    std::uint32_t b;
};

const ringtail::application& app() {
    static ringtail::application* a = [] {
        auto* a = new ringtail::application("fuzz");
        a->source("words",
                  [](std::span<const std::byte> p) {
                      return std::string(reinterpret_cast<const char*>(p.data()), p.size());
                  })
          .key_by([](const std::string& w) -> const std::string& { return w; })
          .to_state<counted>(
            "count", [](const std::string& w, counted& c) { return w + std::to_string(++c.n); })
          .to_sink("out", [](const std::string& s) { return s; });
        a->source("pairs",
                  [](std::span<const std::byte> p) -> std::optional<pair_value> {
                      if (p.size() < 8) {
                          return std::nullopt;
                      }
                      return pair_value{ ringtail::be::read<std::uint32_t>(p.data()),
                                         ringtail::be::read<std::uint32_t>(p.data() + 4) };
                  })
          .key_by([](const pair_value& v) { return v.a; }, 64)
          .to_state<counted>("sum",
                             [](const pair_value& v, counted& c) {
                                 c.n += v.b;
                                 return std::to_string(c.n);
                             })
          .to_sink("out2", [](const std::string& s) { return s; });
        return a;
    }();
    return *a;
}

} // namespace

// Input layout: bytes 0..3 are the count the frame claims (big-endian), the rest is the body.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 4) {
        return 0;
    }
    const auto* bytes = reinterpret_cast<const std::byte*>(data);
    const std::uint32_t count = ringtail::be::read<std::uint32_t>(bytes) % 4096;
    const std::span<const std::byte> body(bytes + 4, size - 4);
    const auto& nodes = app().nodes();
    std::string reencoded;
    auto c =
      ringtail::remote::decode_messages(body, count, nodes, 1'000'000, [&](ringtail::envelope&& e) {
          check(e.node < nodes.size());
          check(nodes[e.node]->kind == ringtail::node_kind::stateful);
          check(e.partition < nodes[e.node]->partitions);
          check(e.value.has_value());
          ringtail::remote::append_message(reencoded, *nodes[e.node], e, 1'000'000);
      });
    check(c.delivered + c.rejected == count);
    // Messages that were all accepted re-encode to the body they came from, except for the age
    // field (clamped at the receiver's clock) which is rewritten as now - ingest.
    if (c.rejected == 0) {
        std::size_t offset = 0, offset2 = 0;
        for (std::uint32_t i = 0; i < c.delivered; ++i) {
            ringtail::remote::message_view a, b;
            check(ringtail::remote::read_message(body, offset, a));
            check(ringtail::remote::read_message(
              std::as_bytes(std::span(reencoded.data(), reencoded.size())), offset2, b));
            check(a.node == b.node && a.partition == b.partition && a.pipeline == b.pipeline);
            check(a.value.size() == b.value.size());
            check(std::equal(a.value.begin(), a.value.end(), b.value.begin()));
            check(b.age_ns == (a.age_ns < 1'000'000 ? a.age_ns : 0) ||
                  b.age_ns == std::min<std::uint64_t>(a.age_ns, 1'000'000));
        }
    }
    return 0;
}
