// Operating errors on the control plane: an error code plus a message, turned into one clear line
// and a sysexits code at the edge (cli). The data plane never carries these.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <sysexits.h>
#include <utility>
#include <variant>

namespace ringtail {

// The sysexits.h codes of CLI.md; each operating error names the one it maps to. The one place
// that defines the process's exit codes: the worker and the tools exit with exit_code(errc::...).
enum class errc : int {
    usage = EX_USAGE,             // 64: bad option or argument
    data_error = EX_DATAERR,      // 65: bad input data file
    no_input = EX_NOINPUT,        // 66: an input file cannot be opened
    unavailable = EX_UNAVAILABLE, // 69: port in use, DPDK unusable, peer unreachable
    internal = EX_SOFTWARE,       // 70: a bug, or an app built wrong
    cant_create = EX_CANTCREAT,   // 73: an output file cannot be created
    io_error = EX_IOERR,          // 74: a read or write failed
    config = EX_CONFIG,           // 78: bad configuration
};

// The process exit code of `c`.
constexpr int exit_code(errc c) {
    return static_cast<int>(c);
}

// Why an operation failed, where a caller acts on it (not only prints it): tested by value, never
// by comparing messages. Most errors are `none`: their code and message say all there is.
enum class reason : std::uint8_t {
    none,
    // SIGINT/SIGTERM came before the cluster formed: a clean stop, not a failure.
    formation_interrupted,
};

// The name of `r`, for test output and logs.
constexpr std::string_view to_string(reason r) {
    switch (r) {
        case reason::none:
            return "none";
        case reason::formation_interrupted:
            return "formation_interrupted";
    }
    return "unknown";
}

struct error {
    errc code;
    std::string message; // one line: what is wrong and what to do
    reason why = reason::none;
};

// Either a value or an error. Deliberately tiny: std::expected is C++23. [[nodiscard]]: an
// operating error is handled or passed on, never dropped by accident.
template<typename T>
class [[nodiscard]] result {
public:
    result(T value)
      : _v(std::move(value)) {}
    result(error e)
      : _v(std::move(e)) {}
    bool ok() const { return _v.index() == 0; }
    explicit operator bool() const { return ok(); }
    T& value() { return std::get<0>(_v); }
    const T& value() const { return std::get<0>(_v); }
    T& operator*() { return value(); }
    T* operator->() { return &value(); }
    const error& err() const { return std::get<1>(_v); }

private:
    std::variant<T, error> _v;
};

struct ok_t {};
using status = result<ok_t>;
inline status ok_status() {
    return ok_t{};
}

} // namespace ringtail
