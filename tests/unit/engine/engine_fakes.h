// Fakes shared by the engine's unit tests: a source feeding prepared payloads and a sink
// collecting what it is given.
#pragma once

#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "engine/shard_io.h"

namespace ringtail::testing {

inline std::span<const std::byte> as_bytes(const std::string& s) {
    return std::as_bytes(std::span(s.data(), s.size()));
}

// Feeds prepared payloads into source 0 while the shard admits them.
class fake_source final : public io_handler {
public:
    fake_source(std::vector<std::string> payloads, std::uint32_t source = 0)
      : _payloads(std::move(payloads))
      , _source(source) {}
    std::size_t poll(shard_context& shard) override {
        std::size_t n = 0;
        while (_next < _payloads.size() && shard.can_admit() && n < 32) {
            shard.ingest(_source, as_bytes(_payloads[_next++]));
            ++n;
        }
        return n;
    }
    bool finished() const override { return _next == _payloads.size(); }
    bool needs_poll() const override { return !finished(); }

private:
    std::vector<std::string> _payloads;
    std::uint32_t _source;
    std::size_t _next = 0;
};

// Collects what one shard writes to one sink; read after the runtime stopped.
struct collected {
    std::mutex mu;
    std::vector<std::string> writes;
};

class fake_sink final : public sink_output {
public:
    explicit fake_sink(collected& out)
      : _out(out) {}
    void write(std::span<const std::byte> bytes) override {
        std::lock_guard lock(_out.mu);
        _out.writes.emplace_back(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    }
    std::size_t pending_bytes() const override { return 0; }
    void request_close() override { _closed = true; }
    std::size_t poll(shard_context&) override { return 0; }
    bool finished() const override { return _closed; }

private:
    collected& _out;
    bool _closed = false;
};

} // namespace ringtail::testing
