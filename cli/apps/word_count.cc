// word_count: counts words in lines of text and emits each word's new total (WIRE.md §6).
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "cli/run_worker.h"

namespace {

struct word_total {
    std::uint64_t count = 0;
};

bool is_punctuation(char c) {
    return std::string_view(R"(!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~)").find(c) !=
           std::string_view::npos;
}

// Lowercase (ASCII), split on spaces, strip ASCII punctuation from both ends, drop empty words.
void split_words(std::string& line, ringtail::output<std::string>& out) {
    for (char& c : line) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    std::size_t i = 0;
    while (i < line.size()) {
        std::size_t end = line.find(' ', i);
        if (end == std::string::npos) {
            end = line.size();
        }
        std::size_t b = i, e = end;
        while (b < e && is_punctuation(line[b])) {
            ++b;
        }
        while (e > b && is_punctuation(line[e - 1])) {
            --e;
        }
        if (e > b) {
            out.push(line.substr(b, e - b));
        }
        i = end + 1;
    }
}

} // namespace

int main(int argc, char** argv) {
    return ringtail::cli::run_worker(argc, argv, "word_count", [](ringtail::application& app) {
        app
          .source("Split and Count",
                  [](std::span<const std::byte> payload) {
                      return std::string(ringtail::as_text(payload));
                  })
          .to_many<std::string>("split into words", split_words)
          .key_by([](const std::string& word) -> const std::string& { return word; })
          .to_state<word_total>("count word",
                                [](const std::string& word, word_total& total) {
                                    return word + " => " + std::to_string(++total.count) + "\n";
                                })
          .to_sink("Counts", [](const std::string& line) -> const std::string& { return line; });
    });
}
