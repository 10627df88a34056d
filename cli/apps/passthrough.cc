// passthrough: every `[u32 N][payload]` frame goes out exactly as it came in (WIRE.md §6).
#include <span>
#include <string>

#include "cli/run_worker.h"

int main(int argc, char** argv) {
    return ringtail::cli::run_worker(argc, argv, "passthrough", [](ringtail::application& app) {
        app
          .source("Passthrough",
                  [](std::span<const std::byte> payload) {
                      return std::string(ringtail::as_text(payload));
                  })
          .to_sink("Out", [](const std::string& payload, std::string& out) {
              ringtail::append_frame(out, payload);
          });
    });
}
