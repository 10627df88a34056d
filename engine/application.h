// The application API: what an app writer calls. An application is pipelines of named stages,
// built with Wallaroo's vocabulary; each stage is a plain callable whose signature says what it is.
//
//     ringtail::application app{"word_count"};
//     app.source("Split and Count", [](std::span<const std::byte> p) {  // payload -> T
//            return std::string(ringtail::as_text(p));
//        })
//        .to_many<std::string>("split into words", split_words)  // T -> 0..N outputs
//        .key_by([](const std::string& w) -> const std::string& { return w; })
//        .to_state<word_total>("count word", count_word)         // (const T&, S&) -> U
//        .to_sink("Counts", encode_count);                        // U -> bytes
//
// The verbs, on the builder that offers each:
//   application         source<T>(name, decoder)    decoder(std::span<const std::byte>) -> T
//                                                   or std::optional<T> (nullopt: rejected)
//   pipeline<T>         to<U>(name, f)              f(T&&) -> U or std::optional<U> (nullopt:
//                                                   filtered)
//                       to_many<U>(name, f)         f(T&, output<U>&) pushing, or f(T&) -> range
//                       key_by(k[, partitions])     k(const T&) -> string-like or integer key
//                       collect()                   one key for the whole stream
//                       merge(other)                two pipelines of the same T become one
//                       to_sink(name, encoder)      encoder(const T&) -> bytes, or
//                                                   encoder(const T&, std::string& out) appending
//                       to_sinks(sink<T>(name, encoder), ...)
//   keyed_pipeline<T>   to_state<S>(name, f)        f(const T&, S& state) -> U or optional<U>;
//                       to_state<U, S>(name, f)     one S per key, made on the key's first message
// Decoders and encoders use engine/payload.h: as_text(payload) reads a payload as text;
// append_frame(out, ...) writes a `[u32 N][N bytes]` frame without a length written by hand.
//
// A stage whose signature does not fit its verb fails to compile, with a static_assert naming
// the verb. A mistake in how the pipelines fit together (two sources or sinks of one name, a
// branch, a bad partition count) throws app_error while building, and validate() refuses a
// pipeline without a sink before the worker starts. The stages' implementations, which the
// shards run, are in engine/detail/nodes.h.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <ranges>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "engine/codec.h"
#include "engine/detail/nodes.h"
#include "engine/detail/stage_traits.h"
#include "engine/node.h"
#include "engine/output.h"
#include "engine/partition.h"
#include "engine/payload.h"
#include "engine/result.h"

namespace ringtail {

template<typename T>
class pipeline;
template<typename T, typename K>
class keyed_pipeline;
template<typename T, typename F>
struct sink_spec;
struct pipeline_end;

// A mistake in how an application builds its pipelines, found at start-up (before any data
// flows); the worker prints its message and exits 70.
class app_error : public std::logic_error {
public:
    using std::logic_error::logic_error;
};

class application {
public:
    explicit application(std::string name);

    // Starts a pipeline at a named source. `decoder` turns one payload (the bytes of one
    // `[u32 N][N bytes]` frame) into a T, or returns std::nullopt to reject it (dropped and
    // counted; so is a payload the decoder throws on). T may be given explicitly or deduced from
    // the decoder's result.
    template<typename T = void, typename F>
    auto source(std::string name, F decoder);

    const std::string& name() const { return _name; }

    // Checks the whole graph: every pipeline ends in a sink. Called by the worker before
    // anything starts.
    status validate() const;

    // For the engine: the graph built so far.
    const std::vector<std::unique_ptr<node>>& nodes() const { return _nodes; }
    const std::vector<std::string>& source_names() const { return _source_names; }
    const std::vector<std::string>& sink_names() const { return _sink_names; }
    const std::vector<std::uint32_t>& source_nodes() const { return _source_nodes; }
    const std::vector<std::string>& pipeline_names() const { return _pipeline_names; }

    // For the builders.
    std::uint32_t add_node(std::unique_ptr<node> n, node_kind kind, std::string name,
                           const std::vector<std::uint32_t>& previous);
    std::uint32_t add_sink_name(const std::string& name);

private:
    std::string _name;
    std::vector<std::unique_ptr<node>> _nodes;
    std::vector<std::string> _source_names;
    std::vector<std::uint32_t> _source_nodes;
    std::vector<std::string> _sink_names;
    std::vector<std::string> _pipeline_names;
};

// A pipeline whose last stage outputs T, not keyed. Stages added here run fused on the shard the
// message is on.
template<typename T>
class pipeline {
public:
    // A stateless stage: `f(T&&)` returns a U (one output) or std::optional<U> (nullopt = filter).
    template<typename U = void, typename F>
    auto to(std::string name, F f);

    // A stateless 1→N stage. Either `f(T&, output<U>&)` pushing any number of outputs (U must be
    // named: to_many<U>), or `f(T&)` returning a range of U (zero elements = filter).
    template<typename U = void, typename F>
    auto to_many(std::string name, F f);

    // Routes each message by key: `k(const T&)` returns a string-like key or an integer. The next
    // stage must be a to_state, which then runs on the shard that owns the key's partition.
    // `partitions` is a power of two.
    template<typename K>
    keyed_pipeline<T, K> key_by(K k, std::uint32_t partitions = default_partition_count);

    // Sends every message to one partition (one state object for the whole stream).
    auto collect();

    // Joins another pipeline of the same type: the stages added after merge see both streams.
    pipeline<T> merge(const pipeline<T>& other) const;

    // Ends the pipeline at a named sink. `encoder` is `std::string (const T&)` (or another
    // contiguous byte container) or `void (const T&, std::string& out)` appending to `out`.
    template<typename F>
    pipeline_end to_sink(std::string name, F encoder);

    // Ends the pipeline at several sinks; every message goes to each (T must be copyable).
    template<typename... F>
    pipeline_end to_sinks(sink_spec<T, F>... sinks);

    pipeline(application& app, std::vector<std::uint32_t> tails)
      : _app(&app)
      , _tails(std::move(tails)) {}

private:
    template<typename F>
    void add_sink(std::string name, F encoder);

    application* _app;
    std::vector<std::uint32_t> _tails;
};

// A pipeline after key_by: the only stage it offers is to_state, run on the key's owner.
template<typename T, typename K>
class keyed_pipeline {
public:
    // A stateful stage: `f(const T&, S& state)` returns a U or std::optional<U> (nullopt: no
    // output). One S per key, value-initialised on the key's first message, owned by the
    // partition's shard. Name the state type (`to_state<S>`) or both (`to_state<U, S>`).
    template<typename S, typename F>
    auto to_state(std::string name, F f) {
        return add<void, S>(std::move(name), std::move(f));
    }
    template<typename U, typename S, typename F>
    auto to_state(std::string name, F f) {
        return add<U, S>(std::move(name), std::move(f));
    }

    // Throws app_error when `partitions` is not a power of two.
    keyed_pipeline(application& app, std::vector<std::uint32_t> tails, K k,
                   std::uint32_t partitions);

private:
    template<typename U, typename S, typename F>
    auto add(std::string name, F f);

    application* _app;
    std::vector<std::uint32_t> _tails;
    K _key;
    std::uint32_t _partitions;
};

// A sink and its encoder, for to_sinks: `sink<T>(name, encoder)`, the encoder as for to_sink.
template<typename T, typename F>
struct sink_spec {
    std::string name;
    F encoder;
};
template<typename T, typename F>
sink_spec<T, F> sink(std::string name, F encoder) {
    return sink_spec<T, F>{ std::move(name), std::move(encoder) };
}

// What to_sink returns: a finished pipeline. It has no stage methods, so a stage after a sink
// does not compile.
struct pipeline_end {};

// ---- How the verbs build the graph -------------------------------------------------------------

template<typename T, typename F>
auto application::source(std::string name, F decoder) {
    static_assert(detail::decoder<F>,
                  "source: the decoder must be callable as f(std::span<const std::byte>) and "
                  "return a T or a std::optional<T> (nullopt: the payload is rejected)");
    if constexpr (detail::decoder<F>) {
        using R = std::invoke_result_t<const F&, std::span<const std::byte>>;
        using Out = std::conditional_t<std::is_void_v<T>, detail::unwrap_optional_t<R>, T>;
        static_assert(std::is_same_v<Out, detail::unwrap_optional_t<R>>,
                      "source<T>: the decoder's result type differs from T");
        for (const auto& existing : _source_names) {
            if (existing == name) {
                throw app_error("two sources are named '" + name + "'");
            }
        }
        auto index = static_cast<std::uint32_t>(_source_names.size());
        _source_names.push_back(name);
        _pipeline_names.push_back(name);
        auto id = add_node(std::make_unique<detail::source_node<Out, F>>(std::move(decoder)),
                           node_kind::source, name, {});
        _nodes[id]->index = index;
        _nodes[id]->pipeline = index;
        _source_nodes.push_back(id);
        return pipeline<Out>(*this, { id });
    } else {
        return pipeline_end{}; // not reached: the static_assert above failed
    }
}

template<typename T>
template<typename U, typename F>
auto pipeline<T>::to(std::string name, F f) {
    static_assert(std::is_invocable_v<const F&, T&&>,
                  "to: the stage must be callable as f(T&&) (or f(T), f(const T&)), T being the "
                  "type the pipeline carries");
    static_assert(detail::stateless_stage<F, T> || !std::is_invocable_v<const F&, T&&>,
                  "to: the stage must return a value or a std::optional (nullopt: filtered)");
    if constexpr (detail::stateless_stage<F, T>) {
        using Out = detail::unwrap_optional_t<std::invoke_result_t<const F&, T&&>>;
        static_assert(std::is_void_v<U> || std::is_same_v<U, Out>,
                      "to<U>: the stage's result type differs from U");
        auto id = _app->add_node(std::make_unique<detail::stateless_node<T, F>>(std::move(f)),
                                 node_kind::stateless, std::move(name), _tails);
        return pipeline<Out>(*_app, { id });
    } else {
        return pipeline_end{}; // not reached: a static_assert above failed
    }
}

template<typename T>
template<typename U, typename F>
auto pipeline<T>::to_many(std::string name, F f) {
    if constexpr (detail::pushing_stage<F, T, U>) {
        auto id = _app->add_node(std::make_unique<detail::many_node<T, U, F>>(std::move(f)),
                                 node_kind::stateless, std::move(name), _tails);
        return pipeline<U>(*_app, { id });
    } else {
        static_assert(detail::range_stage<F, T>,
                      "to_many: the stage must take (T&, output<U>&), naming U (to_many<U>), or "
                      "take (T&) and return a range");
        if constexpr (detail::range_stage<F, T>) {
            using R = std::invoke_result_t<const F&, T&>;
            using Out = std::conditional_t<std::is_void_v<U>, std::ranges::range_value_t<R>, U>;
            auto id = _app->add_node(std::make_unique<detail::many_node<T, Out, F>>(std::move(f)),
                                     node_kind::stateless, std::move(name), _tails);
            return pipeline<Out>(*_app, { id });
        } else {
            return pipeline_end{}; // not reached: the static_assert above failed
        }
    }
}

template<typename T>
template<typename K>
keyed_pipeline<T, K> pipeline<T>::key_by(K k, std::uint32_t partitions) {
    return keyed_pipeline<T, K>(*_app, _tails, std::move(k), partitions);
}

template<typename T>
auto pipeline<T>::collect() {
    auto k = [](const T&) { return std::string_view{}; };
    return keyed_pipeline<T, decltype(k)>(*_app, _tails, k, 1);
}

template<typename T>
pipeline<T> pipeline<T>::merge(const pipeline<T>& other) const {
    std::vector<std::uint32_t> tails = _tails;
    tails.insert(tails.end(), other._tails.begin(), other._tails.end());
    return pipeline<T>(*_app, std::move(tails));
}

template<typename T>
template<typename F>
pipeline_end pipeline<T>::to_sink(std::string name, F encoder) {
    add_sink(std::move(name), std::move(encoder));
    return {};
}

template<typename T>
template<typename... F>
pipeline_end pipeline<T>::to_sinks(sink_spec<T, F>... sinks) {
    static_assert(sizeof...(F) >= 1, "to_sinks needs at least one sink");
    static_assert(sizeof...(F) == 1 || std::is_copy_constructible_v<T>,
                  "to_sinks with several sinks copies each message: T must be copyable");
    (add_sink(std::move(sinks.name), std::move(sinks.encoder)), ...);
    return {};
}

template<typename T>
template<typename F>
void pipeline<T>::add_sink(std::string name, F encoder) {
    static_assert(detail::sink_encoder<F, T>,
                  "to_sink: the encoder takes (const T&) and returns bytes, or takes "
                  "(const T&, std::string& out) and appends to out");
    auto sink_index = _app->add_sink_name(name);
    auto id = _app->add_node(std::make_unique<detail::sink_node<T, F>>(std::move(encoder)),
                             node_kind::sink, std::move(name), _tails);
    _app->nodes()[id]->index = sink_index;
}

template<typename T, typename K>
keyed_pipeline<T, K>::keyed_pipeline(application& app, std::vector<std::uint32_t> tails, K k,
                                     std::uint32_t partitions)
  : _app(&app)
  , _tails(std::move(tails))
  , _key(std::move(k))
  , _partitions(partitions) {
    if (partitions == 0 || (partitions & (partitions - 1)) != 0) {
        throw app_error("key_by: the partition count must be a power of two");
    }
}

template<typename T, typename K>
template<typename U, typename S, typename F>
auto keyed_pipeline<T, K>::add(std::string name, F f) {
    static_assert(std::is_default_constructible_v<S>,
                  "to_state<S>: the state type S must be default-constructible (one S is made "
                  "per key, on the key's first message)");
    static_assert(std::is_invocable_v<const F&, T&, S&>,
                  "to_state<S>: the stage must be callable as f(const T&, S&), T being the type "
                  "the keyed pipeline carries and S the state type named in to_state");
    static_assert(
      detail::returns_value<F, T&, S&> || !std::is_invocable_v<const F&, T&, S&>,
      "to_state: the stage must return a value or a std::optional (nullopt: no output)");
    if constexpr (detail::state_stage<F, T, S>) {
        using Out = detail::unwrap_optional_t<std::invoke_result_t<const F&, T&, S&>>;
        static_assert(std::is_void_v<U> || std::is_same_v<U, Out>,
                      "to_state<U, S>: the stage's result type differs from U");
        auto router = std::make_unique<detail::key_by_node<T, K>>(_key);
        router->partitions = _partitions;
        auto router_id =
          _app->add_node(std::move(router), node_kind::key_by, name + " (key_by)", _tails);
        auto id =
          _app->add_node(std::make_unique<detail::stateful_node<T, S, K, F>>(_key, std::move(f)),
                         node_kind::stateful, std::move(name), { router_id });
        _app->nodes()[id]->partitions = _partitions;
        return pipeline<Out>(*_app, { id });
    } else {
        return pipeline_end{}; // not reached: a static_assert above failed
    }
}

} // namespace ringtail
