// How a value crosses to another worker: `ringtail::codec<T>` turns a T into bytes and back.
// Only the input of a keyed stage ever crosses (a key_by routes it to the worker that owns its
// partition), so only those types need one. Built in: std::string, and trivially copyable types
// (copied as their bytes: every worker of a cluster runs the same build, which formation checks).
// For any other type, specialise ringtail::codec<T> in the application:
//
//     template<> struct ringtail::codec<record> {
//         static void encode(const record& r, std::string& out);
//         static std::optional<record> decode(std::span<const std::byte> bytes);
//     };
//
// decode returns std::nullopt for bytes it does not accept; such a message is dropped and
// counted, never delivered.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <type_traits>

namespace ringtail {

template<typename T, typename Enable = void>
struct codec {}; // no codec: the type cannot cross workers

template<typename T>
struct codec<T, std::enable_if_t<std::is_trivially_copyable_v<T> && !std::is_pointer_v<T>>> {
    static void encode(const T& v, std::string& out) {
        out.append(reinterpret_cast<const char*>(&v), sizeof v);
    }
    static std::optional<T> decode(std::span<const std::byte> bytes) {
        if (bytes.size() != sizeof(T)) {
            return std::nullopt;
        }
        T v;
        std::memcpy(&v, bytes.data(), sizeof v);
        return v;
    }
};

template<>
struct codec<std::string> {
    static void encode(const std::string& v, std::string& out) { out.append(v); }
    static std::optional<std::string> decode(std::span<const std::byte> bytes) {
        return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    }
};

// Whether T has a codec, built in or specialised by the application.
template<typename T>
concept has_codec = requires(const T& v, std::string& out, std::span<const std::byte> in) {
    codec<T>::encode(v, out);
    { codec<T>::decode(in) } -> std::same_as<std::optional<T>>;
};

} // namespace ringtail
