// The fault-config parser and the decisions of the simulated faulty link.
#include "net/fault/fault_injector.h"

#include <charconv>
#include <cmath>
#include <utility>

#include <fmt/format.h>

namespace ringtail::net {
namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return s;
}

error usage(std::string_view item, std::string_view what) {
    return { errc::usage, fmt::format("fault config: '{}': {}", item, what) };
}

constexpr std::string_view known_keys =
  "loss, dup, reorder, corrupt, delay_us, jitter_us, reorder_max_us, max_held, seed";

} // namespace

result<fault_config> parse_fault_config(std::string_view text) {
    fault_config config;
    if (trim(text).empty()) {
        return config;
    }
    while (true) {
        std::size_t comma = text.find(',');
        std::string_view item = trim(text.substr(0, comma));
        if (item.empty()) {
            return error{ errc::usage, "fault config: empty item (two commas, or one at an end)" };
        }
        std::size_t eq = item.find('=');
        if (eq == std::string_view::npos) {
            return usage(item, "expected key=value");
        }
        std::string_view key = trim(item.substr(0, eq));
        std::string_view value = trim(item.substr(eq + 1));
        const char* end = value.data() + value.size();

        double* probability = key == "loss"                        ? &config.loss
                              : key == "dup" || key == "duplicate" ? &config.duplicate
                              : key == "reorder"                   ? &config.reorder
                              : key == "corrupt"                   ? &config.corrupt
                                                                   : nullptr;
        std::uint64_t* micros = key == "delay_us"         ? &config.delay_ns
                                : key == "jitter_us"      ? &config.jitter_ns
                                : key == "reorder_max_us" ? &config.reorder_max_ns
                                                          : nullptr;
        if (probability != nullptr) {
            double v = 0;
            auto [at, ec] = std::from_chars(value.data(), end, v);
            if (ec != std::errc{} || at != end || value.empty()) {
                return usage(item, "not a number");
            }
            if (!(v >= 0.0 && v <= 1.0)) {
                return usage(item, "a probability must be within [0, 1]");
            }
            *probability = v;
        } else if (micros != nullptr || key == "max_held" || key == "seed") {
            std::uint64_t v = 0;
            auto [at, ec] = std::from_chars(value.data(), end, v);
            if (ec != std::errc{} || at != end || value.empty()) {
                return usage(item, "not a non-negative integer");
            }
            if (micros != nullptr) {
                if (v > std::numeric_limits<std::uint64_t>::max() / 1000) {
                    return usage(item, "too large");
                }
                *micros = v * 1000;
            } else if (key == "max_held") {
                if (v == 0) {
                    return usage(item, "max_held must be at least 1");
                }
                config.max_held = static_cast<std::size_t>(v);
            } else {
                config.seed = v;
            }
        } else {
            return usage(item, fmt::format("unknown key (known: {})", known_keys));
        }
        if (comma == std::string_view::npos) {
            return config;
        }
        text.remove_prefix(comma + 1);
    }
}

fault_injector::fault_injector(fault_config config)
  : _config(config)
  , _rng(config.seed) {}

bool fault_injector::chance(double p) {
    // 53 random bits as a double in [0, 1): the same on every standard library.
    double u = static_cast<double>(_rng() >> 11) * 0x1.0p-53;
    return u < p;
}

std::uint64_t fault_injector::below(std::uint64_t n) {
    // The modulo bias is below 2^-40 for the small n used here.
    return n == 0 ? 0 : _rng() % n;
}

void fault_injector::submit(std::string frame, std::uint64_t now_ns) {
    ++_submitted;
    if (chance(_config.loss)) {
        ++_dropped;
        return;
    }
    int copies = 1;
    if (chance(_config.duplicate)) {
        ++_duplicated;
        copies = 2;
    }
    for (int i = 0; i < copies; ++i) {
        if (held() >= _config.max_held) {
            ++_overflowed;
            continue;
        }
        std::string copy = i + 1 < copies ? frame : std::move(frame);
        if (!copy.empty() && chance(_config.corrupt)) {
            std::uint64_t bit = below(copy.size() * 8);
            copy[bit / 8] = static_cast<char>(copy[bit / 8] ^ (1 << (bit % 8)));
            ++_corrupted;
        }
        std::uint64_t due_ns = now_ns + _config.delay_ns + below(_config.jitter_ns + 1);
        if (chance(_config.reorder)) {
            ++_reordered;
            auto overtakes = static_cast<std::uint32_t>(1 + below(3));
            _held_back.push_back({ overtakes, due_ns + _config.reorder_max_ns, std::move(copy) });
            continue;
        }
        enqueue(std::move(copy), due_ns);
    }
}

void fault_injector::enqueue(std::string frame, std::uint64_t due_ns) {
    _queue.push_back({ due_ns, _order++, std::move(frame) });
    std::push_heap(_queue.begin(), _queue.end(), later{});
    // A frame went in ahead of every held-back one; those it was the last to overtake follow it
    // at the same time, after it in order.
    for (std::size_t i = 0; i < _held_back.size();) {
        if (--_held_back[i].overtakes_left == 0) {
            _queue.push_back({ due_ns, _order++, std::move(_held_back[i].frame) });
            std::push_heap(_queue.begin(), _queue.end(), later{});
            _held_back.erase(_held_back.begin() + static_cast<std::ptrdiff_t>(i));
        } else {
            ++i;
        }
    }
}

void fault_injector::release_held_back(std::uint64_t now_ns) {
    for (std::size_t i = 0; i < _held_back.size();) {
        if (_held_back[i].deadline_ns <= now_ns) {
            _queue.push_back(
              { _held_back[i].deadline_ns, _order++, std::move(_held_back[i].frame) });
            std::push_heap(_queue.begin(), _queue.end(), later{});
            _held_back.erase(_held_back.begin() + static_cast<std::ptrdiff_t>(i));
        } else {
            ++i;
        }
    }
}

std::uint64_t fault_injector::next_due_ns() const {
    std::uint64_t due = _queue.empty() ? no_due : _queue.front().due_ns;
    for (const held_back& h : _held_back) {
        due = std::min(due, h.deadline_ns);
    }
    return due;
}

} // namespace ringtail::net
