// What the application builder asks of a stage's callable, as traits: the builder's verbs check
// them with a static_assert that names the verb, and the unit tests check them directly.
#pragma once

#include <optional>
#include <ranges>
#include <span>
#include <string>
#include <type_traits>

#include "engine/output.h"

namespace ringtail::detail {

template<typename T>
struct optional_traits {
    static constexpr bool is_optional = false;
    using value_type = T;
};
template<typename T>
struct optional_traits<std::optional<T>> {
    static constexpr bool is_optional = true;
    using value_type = T;
};
// The output type of a stage that returns U or std::optional<U> (nullopt filters the message).
template<typename R>
using unwrap_optional_t = typename optional_traits<std::remove_cvref_t<R>>::value_type;

// Whether `const F` is callable with Args and returns something (a stage's output or an
// optional of it). Never forms the result type of a call that is not possible.
template<typename F, typename... Args>
concept returns_value = std::is_invocable_v<const F&, Args...> &&
  !std::is_void_v<std::invoke_result_t<const F&, Args...>>;

// A source's decoder: `decoder(std::span<const std::byte>)` returns a T or std::optional<T>.
template<typename F>
concept decoder = returns_value<F, std::span<const std::byte>>;

// A stateless stage (to): `f(T&&)` returns a U or std::optional<U>.
template<typename F, typename T>
concept stateless_stage = returns_value<F, T&&>;

// A 1→N stage (to_many) that pushes: `f(T&, output<U>&)`, U named by the app. U is checked first
// so that output<void> is never formed.
template<typename F, typename T, typename U>
concept pushing_stage = !std::is_void_v<U> && std::is_invocable_v<const F&, T&, output<U>&>;

// A 1→N stage (to_many) that returns its outputs: `f(T&)` returns a range of them.
template<typename F, typename T>
concept range_stage =
  std::is_invocable_v<const F&, T&> && std::ranges::range<std::invoke_result_t<const F&, T&>>;

// A stateful stage (to_state): S is made on a key's first message, so it is default-constructible;
// `f(const T&, S&)` (or `f(T&, S&)`) returns a U or std::optional<U>.
template<typename F, typename T, typename S>
concept state_stage = std::is_default_constructible_v<S> && returns_value<F, T&, S&>;

// A sink's encoder: `encoder(const T&, std::string& out)` appends to `out`, or `encoder(const T&)`
// returns a contiguous byte container.
template<typename F, typename T>
concept sink_encoder =
  std::is_invocable_v<const F&, const T&, std::string&> || std::is_invocable_v<const F&, const T&>;

} // namespace ringtail::detail
