// ringtail-check: the judge of the sequence tests. It reads what a receiver got from the
// `sequence` app (records `[u64 value][key]`, WIRE.md §6) and, optionally, what was sent, and
// counts per key and in total the lost, duplicated and out-of-order values (and, with --input,
// the values that were never sent). Exit 0 only when every count is zero.
//
// This is a judge, not a hot path: it reads whole files into memory and uses plain vectors, maps
// and sets, so that each count is visibly what its definition (in --help, below) says. Keep it
// that way: a clever judge is one more thing to doubt.
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <boost/program_options.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/tools/tool_support.h"

namespace {

namespace po = boost::program_options;

// Exit codes: 0 all good, 1 a problem found, then sysexits (CLI.md).
constexpr int exit_ok = 0;
constexpr int exit_problems = 1;
using ringtail::tools::exit_data_error;
using ringtail::tools::exit_no_input;
using ringtail::tools::exit_usage;

constexpr std::size_t value_size = 8;

constexpr const char* usage_text =
  R"(usage: ringtail-check --output FILE [--output FILE...] [--input FILE...]
                      [--format frames|lines] [--json] [--max-report N]

Judges the output of the `sequence` app: records [u64 value][key] (value big-endian). For each key,
in order of appearance in the output:
  expected      with --input: the values sent for that key, in send order (read from the files
                given, which are framed records [u32 8+k][u64 value][key], e.g. what
                `ringtail-send -y -f FILE` sends; a value sent twice for one key is an error).
                Without --input: every value from the smallest to the largest seen, each once, in
                increasing order, which is what `ringtail-send -u -p KEY -v START -m N` sends
                (one key per sender). Values lost before a key's first or after its last value
                seen, and keys never seen at all, are then invisible: use --input to catch those.
  lost          expected values never seen.
  duplicated    extra copies: every record whose value was already seen for its key.
  out of order  first copies of a value seen after a value that comes later in the expected
                order (without --input: after a larger value). Each one counts.
  unexpected    (--input only) records whose value was never sent for that key.
Each output record is counted once at most: unexpected, else duplicated, else out of order.

Output formats (--format, for the --output files; --input is always frames):
  frames (default)  [u32 8+k][u64 value][key]..., the raw bytes that `ringtail-recv --out FILE`
                    writes without --framed. Only correct for ONE sink connection (a worker with
                    --threads 1): ringtail-recv writes the bytes of several connections
                    interleaved as they arrive, cutting frames; and a connection closed inside a
                    frame leaves half a frame. Or capture each connection to its own file and
                    give every file (--output A --output B ...).
  lines             [u64 value][key]'\n'..., what `ringtail-recv --framed --out FILE` writes: it
                    cuts frames per connection, so this is correct for any number of sink
                    connections and across worker restarts. The value is 8 bytes whatever they
                    are, the key runs to the next '\n': keys must not contain '\n'.
Several --output (or --input) files are read in the order given, as if concatenated; a key owned
by one shard arrives on one connection, so per-key order is that of its file.

Report: one line per key with a problem (at most --max-report, default 20), then
  checked N records, K keys: L lost, D duplicated, O out of order[, U unexpected (with --input)]
or one JSON object with --json. An output without any record fails unless --input says that
nothing was sent.
Exit: 0 no problem, 1 a problem, 64 bad flags, 65 malformed file (the byte offset is named),
66 a file that cannot be read.
)";

using ringtail::tools::usage_error;

// A file that cannot be read (66) or that is not what it should be (65).
struct file_error {
    int code;
    std::string message;
};

struct options {
    std::vector<std::string> outputs;
    std::vector<std::string> inputs;
    bool lines = false;
    bool json = false;
    std::uint64_t max_report = 20;
};

struct record {
    std::uint64_t value;
    std::string key;
    std::size_t offset; // of the record in its file, for error messages
};

// ---- reading ------------------------------------------------------------------------------------

std::string read_file(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) {
        throw file_error{ exit_no_input,
                          fmt::format("cannot read {}: {}", path, std::strerror(errno)) };
    }
    std::string data;
    char buf[1 << 16];
    std::size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
        data.append(buf, n);
    }
    const bool failed = std::ferror(f) != 0;
    std::fclose(f);
    if (failed) {
        throw file_error{ exit_no_input, fmt::format("cannot read {}: read error", path) };
    }
    return data;
}

std::uint64_t load_be64(const char* p) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < value_size; ++i) {
        v = (v << 8) | static_cast<unsigned char>(p[i]);
    }
    return v;
}

// [u32 N][u64 value][N-8 bytes key]...
std::vector<record> parse_frames(const std::string& data, const std::string& path) {
    std::vector<record> out;
    std::size_t at = 0;
    while (at < data.size()) {
        const std::size_t left = data.size() - at;
        if (left < 4) {
            throw file_error{ exit_data_error,
                              fmt::format("{}: truncated frame at byte offset {}: {} bytes left, "
                                          "under a 4-byte header",
                                          path, at, left) };
        }
        std::uint64_t n = 0;
        for (std::size_t i = 0; i < 4; ++i) {
            n = (n << 8) | static_cast<unsigned char>(data[at + i]);
        }
        if (n > left - 4) {
            throw file_error{ exit_data_error,
                              fmt::format("{}: truncated frame at byte offset {}: its header says "
                                          "{} bytes, {} are left",
                                          path, at, n, left - 4) };
        }
        if (n < value_size) {
            throw file_error{ exit_data_error,
                              fmt::format("{}: frame at byte offset {} has {} bytes, under the "
                                          "8-byte value",
                                          path, at, n) };
        }
        out.push_back(record{ load_be64(data.data() + at + 4),
                              data.substr(at + 4 + value_size, n - value_size), at });
        at += 4 + n;
    }
    return out;
}

// [u64 value][key]'\n'... (ringtail-recv --framed): 8 bytes, then the key up to the next '\n'.
std::vector<record> parse_lines(const std::string& data, const std::string& path) {
    std::vector<record> out;
    std::size_t at = 0;
    while (at < data.size()) {
        if (data.size() - at < value_size + 1) {
            throw file_error{ exit_data_error,
                              fmt::format("{}: truncated record at byte offset {}: {} bytes left, "
                                          "under a value and a newline",
                                          path, at, data.size() - at) };
        }
        const std::size_t newline = data.find('\n', at + value_size);
        if (newline == std::string::npos) {
            throw file_error{ exit_data_error,
                              fmt::format("{}: truncated record at byte offset {}: no newline "
                                          "after it",
                                          path, at) };
        }
        out.push_back(record{ load_be64(data.data() + at),
                              data.substr(at + value_size, newline - at - value_size), at });
        at = newline + 1;
    }
    return out;
}

// The key as printable ASCII: bytes outside 0x20..0x7e, '"' and '\' escaped (\xHH, \", \\).
std::string show_key(const std::string& key) {
    std::string s;
    for (char c : key) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            s += '\\';
            s += c;
        } else if (u < 0x20 || u > 0x7e) {
            s += fmt::format("\\x{:02x}", u);
        } else {
            s += c;
        }
    }
    return s;
}

// ---- judging ------------------------------------------------------------------------------------

struct key_result {
    std::string key;
    std::uint64_t records = 0;
    std::uint64_t lost = 0;
    std::uint64_t duplicated = 0;
    std::uint64_t out_of_order = 0;
    std::uint64_t unexpected = 0;
    // One example of each problem, for the report.
    std::optional<std::uint64_t> first_lost, first_duplicated, first_out_of_order, first_unexpected;

    bool ok() const { return lost == 0 && duplicated == 0 && out_of_order == 0 && unexpected == 0; }
};

void note(std::uint64_t& count, std::optional<std::uint64_t>& example, std::uint64_t value) {
    ++count;
    if (!example) {
        example = value;
    }
}

// One key. `seen`: its values in output order. `expected`: its values in send order (--input),
// or nullptr for "smallest..largest seen, each once, increasing" (then `seen` is not empty).
key_result judge_key(const std::string& key, const std::vector<std::uint64_t>& seen,
                     const std::vector<std::uint64_t>* expected) {
    key_result r;
    r.key = key;
    r.records = seen.size();

    // position[v]: where v stands in the expected order. Without --input that is v itself, and
    // every value between the smallest and the largest seen is expected.
    std::map<std::uint64_t, std::uint64_t> position;
    if (expected != nullptr) {
        for (std::uint64_t i = 0; i < expected->size(); ++i) {
            position[(*expected)[i]] = i;
        }
    }
    const auto [lo, hi] = seen.empty() ? std::pair<std::uint64_t, std::uint64_t>{ 0, 0 }
                                       : std::pair{ *std::min_element(seen.begin(), seen.end()),
                                                    *std::max_element(seen.begin(), seen.end()) };

    std::set<std::uint64_t> got;
    bool any = false;
    std::uint64_t furthest = 0; // the latest expected position seen so far
    for (std::uint64_t v : seen) {
        std::uint64_t pos = v;
        if (expected != nullptr) {
            auto it = position.find(v);
            if (it == position.end()) {
                note(r.unexpected, r.first_unexpected, v);
                continue;
            }
            pos = it->second;
        }
        if (!got.insert(v).second) {
            note(r.duplicated, r.first_duplicated, v);
            continue;
        }
        if (any && pos < furthest) {
            note(r.out_of_order, r.first_out_of_order, v);
            continue;
        }
        any = true;
        furthest = pos;
    }

    if (expected != nullptr) {
        for (std::uint64_t v : *expected) {
            if (got.count(v) == 0) {
                note(r.lost, r.first_lost, v);
            }
        }
    } else if (!got.empty()) {
        // hi - lo + 1 values expected, got.size() seen (written so that 0..2^64-1 cannot
        // overflow); the first lost one is just after the first gap in the sorted values.
        r.lost = (hi - lo) - (got.size() - 1);
        std::uint64_t previous = lo;
        for (std::uint64_t v : got) {
            if (v > previous + 1) {
                r.first_lost = previous + 1;
                break;
            }
            previous = v;
        }
    }
    return r;
}

// ---- options and report -------------------------------------------------------------------------

std::optional<options> parse_options(int argc, char** argv) {
    po::options_description desc("options");
    desc.add_options()("help", "print this help and exit")(
      "output", po::value<std::vector<std::string>>(), "what the receiver wrote (repeatable)")(
      "input", po::value<std::vector<std::string>>(), "what was sent, framed (repeatable)")(
      "format", po::value<std::string>(), "of the --output files: frames (default) or lines")(
      "json", po::bool_switch(), "report as one JSON object")(
      "max-report", po::value<std::string>(), "at most this many per-key lines (default 20)");
    const po::variables_map vm = ringtail::tools::parse_command_line(argc, argv, desc);
    if (vm.count("help")) {
        fmt::print("{}\n{}", usage_text, ringtail::tools::options_text(desc));
        return std::nullopt;
    }
    options o;
    if (!vm.count("output")) {
        throw usage_error{ "--output FILE is required" };
    }
    o.outputs = vm["output"].as<std::vector<std::string>>();
    if (vm.count("input")) {
        o.inputs = vm["input"].as<std::vector<std::string>>();
    }
    if (vm.count("format")) {
        const std::string f = vm["format"].as<std::string>();
        if (f == "lines") {
            o.lines = true;
        } else if (f != "frames") {
            throw usage_error{ "bad value '" + f + "' for --format: frames or lines" };
        }
    }
    o.json = vm["json"].as<bool>();
    if (vm.count("max-report")) {
        const std::string t = vm["max-report"].as<std::string>();
        auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), o.max_report);
        if (t.empty() || ec != std::errc{} || p != t.data() + t.size()) {
            throw usage_error{ "bad value for --max-report: expected a non-negative integer" };
        }
    }
    return o;
}

std::string describe(const key_result& r, bool with_input) {
    auto part = [](std::uint64_t n, std::string_view what, std::optional<std::uint64_t> first) {
        return first ? fmt::format("{} {} (first {})", n, what, *first)
                     : fmt::format("{} {}", n, what);
    };
    std::string s = fmt::format("key \"{}\": {} records: {}, {}, {}", show_key(r.key), r.records,
                                part(r.lost, "lost", r.first_lost),
                                part(r.duplicated, "duplicated", r.first_duplicated),
                                part(r.out_of_order, "out of order", r.first_out_of_order));
    if (with_input) {
        s += ", " + part(r.unexpected, "unexpected", r.first_unexpected);
    }
    return s;
}

nlohmann::json to_json(const key_result& r) {
    auto example = [](std::optional<std::uint64_t> v) {
        return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
    };
    return nlohmann::json{ { "key", show_key(r.key) },
                           { "records", r.records },
                           { "lost", r.lost },
                           { "duplicated", r.duplicated },
                           { "out_of_order", r.out_of_order },
                           { "unexpected", r.unexpected },
                           { "first_lost", example(r.first_lost) },
                           { "first_duplicated", example(r.first_duplicated) },
                           { "first_out_of_order", example(r.first_out_of_order) },
                           { "first_unexpected", example(r.first_unexpected) } };
}

int run(const options& o) {
    // What came out: values per key in output order; keys in order of first appearance.
    std::vector<std::string> key_order;
    std::map<std::string, std::vector<std::uint64_t>> seen;
    std::uint64_t records = 0;
    for (const auto& path : o.outputs) {
        const std::string data = read_file(path);
        for (const record& r : o.lines ? parse_lines(data, path) : parse_frames(data, path)) {
            auto [it, fresh] = seen.try_emplace(r.key);
            if (fresh) {
                key_order.push_back(r.key);
            }
            it->second.push_back(r.value);
            ++records;
        }
    }

    // What went in (--input): values per key in send order, each (key, value) sent once.
    const bool with_input = !o.inputs.empty();
    std::map<std::string, std::vector<std::uint64_t>> sent;
    std::set<std::pair<std::string, std::uint64_t>> sent_once;
    for (const auto& path : o.inputs) {
        for (const record& r : parse_frames(read_file(path), path)) {
            if (!sent_once.insert({ r.key, r.value }).second) {
                throw file_error{ exit_data_error,
                                  fmt::format("{}: the record at byte offset {} sends value {} "
                                              "for key \"{}\" again: values per key must be "
                                              "unique",
                                              path, r.offset, r.value, show_key(r.key)) };
            }
            auto [it, fresh] = sent.try_emplace(r.key);
            if (fresh && seen.count(r.key) == 0) {
                key_order.push_back(r.key); // sent, never seen: after the output's keys
            }
            it->second.push_back(r.value);
        }
    }

    key_result total;
    std::vector<key_result> problems;
    for (const auto& key : key_order) {
        static const std::vector<std::uint64_t> none;
        auto s = seen.find(key);
        const std::vector<std::uint64_t>& values = s == seen.end() ? none : s->second;
        const std::vector<std::uint64_t>* expected = nullptr;
        if (with_input) {
            auto e = sent.find(key);
            expected = e == sent.end() ? &none : &e->second;
        }
        key_result r = judge_key(key, values, expected);
        total.lost += r.lost;
        total.duplicated += r.duplicated;
        total.out_of_order += r.out_of_order;
        total.unexpected += r.unexpected;
        if (!r.ok()) {
            problems.push_back(std::move(r));
        }
    }
    // Without --input an empty output proves nothing (everything may be lost): it fails.
    const bool nothing_to_check = records == 0 && !with_input;
    const bool ok = total.ok() && !nothing_to_check;
    const std::size_t shown = std::min<std::uint64_t>(problems.size(), o.max_report);

    if (o.json) {
        nlohmann::json keys = nlohmann::json::array();
        for (std::size_t i = 0; i < shown; ++i) {
            keys.push_back(to_json(problems[i]));
        }
        nlohmann::json j{ { "records", records },
                          { "keys", key_order.size() },
                          { "lost", total.lost },
                          { "duplicated", total.duplicated },
                          { "out_of_order", total.out_of_order },
                          { "unexpected", total.unexpected },
                          { "expected", with_input ? "input" : "range" },
                          { "keys_with_problems", problems.size() },
                          { "problem_keys", keys },
                          { "ok", ok } };
        fmt::print("{}\n", j.dump());
    } else {
        for (std::size_t i = 0; i < shown; ++i) {
            fmt::print("{}\n", describe(problems[i], with_input));
        }
        if (problems.size() > shown) {
            fmt::print("... and {} more keys with problems\n", problems.size() - shown);
        }
        std::string line =
          fmt::format("checked {} records, {} keys: {} lost, {} duplicated, {} out of order",
                      records, key_order.size(), total.lost, total.duplicated, total.out_of_order);
        if (with_input) {
            line += fmt::format(", {} unexpected", total.unexpected);
        }
        fmt::print("{}\n", line);
    }
    if (nothing_to_check) {
        fmt::print(stderr, "ringtail-check: no record in the output: nothing to judge\n");
    }
    return ok ? exit_ok : exit_problems;
}

} // namespace

int main(int argc, char** argv) {
    try {
        std::optional<options> o = parse_options(argc, argv);
        return o ? run(*o) : exit_ok;
    } catch (const usage_error& e) {
        fmt::print(stderr, "ringtail-check: {} (see --help)\n", e.message);
        return exit_usage;
    } catch (const file_error& e) {
        fmt::print(stderr, "ringtail-check: {}\n", e.message);
        return e.code;
    }
}
