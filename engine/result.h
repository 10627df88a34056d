// Operating errors on the control plane: an error code plus a message, turned into one clear line
// and a sysexits code at the edge (cli). The data plane never carries these.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace ringtail {

// The sysexits.h codes of CLI.md; each operating error names the one it maps to.
enum class errc : int {
    usage = 64,       // EX_USAGE: bad option or argument
    data_error = 65,  // EX_DATAERR: bad input data file
    unavailable = 69, // EX_UNAVAILABLE: port in use, DPDK unusable, peer unreachable
    internal = 70,    // EX_SOFTWARE
    cant_create = 73, // EX_CANTCREAT
    io_error = 74,    // EX_IOERR
    config = 78,      // EX_CONFIG
};

struct error {
    errc code;
    std::string message; // one line: what is wrong and what to do
};

// Either a value or an error. Deliberately tiny: std::expected is C++23.
template<typename T>
class result {
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
