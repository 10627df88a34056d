// alphabet: sums votes per letter (WIRE.md §6): in `[u32 5][u8 letter][u32 votes]`, out
// `[u32 9][u8 letter][u64 total]` with the letter's new total.
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "cli/run_worker.h"
#include "engine/big_endian.h"

namespace {

struct votes {
    char letter;
    std::uint32_t count;
};
struct letter_total {
    std::uint64_t total = 0;
};
struct total_out {
    char letter;
    std::uint64_t total;
};

} // namespace

int main(int argc, char** argv) {
    namespace be = ringtail::be;
    return ringtail::cli::run_worker(argc, argv, "alphabet", [](ringtail::application& app) {
        app
          .source("Alphabet Votes",
                  [](std::span<const std::byte> p) -> std::optional<votes> {
                      if (p.size() != 5) {
                          return std::nullopt;
                      }
                      return votes{ static_cast<char>(p[0]), be::read<std::uint32_t>(&p[1]) };
                  })
          .key_by([](const votes& v) { return std::string_view(&v.letter, 1); })
          .to_state<letter_total>("add votes",
                                  [](const votes& v, letter_total& t) {
                                      t.total += v.count;
                                      return total_out{ v.letter, t.total };
                                  })
          .to_sink("Totals", [](const total_out& t, std::string& out) {
              ringtail::append_frame(out, [&](std::string& payload) {
                  payload.push_back(t.letter);
                  be::append<std::uint64_t>(payload, t.total);
              });
          });
    });
}
