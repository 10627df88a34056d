// The application API: pipelines of named stages built with Wallaroo's vocabulary (source, to,
// key_by, to_state, collect, merge, to_sink). App writers see only this header; the engine turns
// what it builds into type-erased nodes (engine/node.h) that shards run.
#pragma once

#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <ranges>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/codec.h"
#include "engine/node.h"
#include "engine/partition.h"
#include "engine/result.h"
#include "engine/value_box.h"

namespace ringtail {

// A mistake in how an application builds its pipelines, found at start-up (before any data
// flows); the worker prints its message and exits 70.
class app_error : public std::logic_error {
public:
    using std::logic_error::logic_error;
};

namespace detail {

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

// Calls a stage's user function, emitting its result unless it is an empty optional.
template<typename R, typename Emit>
void emit_result(exec_context& ctx, R&& r, Emit&& emit) {
    if constexpr (optional_traits<std::remove_cvref_t<R>>::is_optional) {
        if (r.has_value()) {
            emit(value_box(std::move(*r)));
        } else {
            ctx.count_filtered();
        }
    } else {
        emit(value_box(std::forward<R>(r)));
    }
}

// State of one keyed stage within one partition: one S per key, made on first use. The key bytes
// are kept so queries can list keys.
template<typename S>
class typed_state_table final : public state_table {
public:
    S& get_or_create(std::string_view key) {
        auto it = _states.find(key);
        if (it == _states.end()) {
            it = _states.emplace(std::string(key), S{}).first;
        }
        return it->second;
    }
    std::size_t size() const override { return _states.size(); }
    std::vector<std::string> keys() const override {
        std::vector<std::string> out;
        out.reserve(_states.size());
        for (const auto& kv : _states) {
            out.push_back(kv.first);
        }
        return out;
    }
    const S* find(std::string_view key) const {
        auto it = _states.find(key);
        return it == _states.end() ? nullptr : &it->second;
    }

private:
    struct string_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const {
            return std::hash<std::string_view>{}(s);
        }
    };
    std::unordered_map<std::string, S, string_hash, std::equal_to<>> _states;
};

template<typename T, typename F>
class source_node final : public node {
public:
    explicit source_node(F f)
      : _decode(std::move(f)) {}
    void process(exec_context&, value_box&&, std::uint32_t) const override {}
    void ingest(exec_context& ctx, std::span<const std::byte> payload) const override {
        // A decoder that throws is treated like one that rejects: the payload is dropped and
        // counted, the worker keeps running.
        try {
            auto r = _decode(payload);
            if constexpr (optional_traits<decltype(r)>::is_optional) {
                if (!r.has_value()) {
                    ctx.count_decode_error(index);
                    return;
                }
                emit(ctx, value_box(std::move(*r)));
            } else {
                emit(ctx, value_box(std::move(r)));
            }
        } catch (const std::exception&) {
            ctx.count_decode_error(index);
        }
    }

private:
    F _decode;
};

template<typename T, typename F>
class stateless_node final : public node {
public:
    explicit stateless_node(F f)
      : _f(std::move(f)) {}
    void process(exec_context& ctx, value_box&& v, std::uint32_t) const override {
        emit_result(ctx, timed_call(ctx, id, [&] { return _f(std::move(v.template get<T>())); }),
                    [&](value_box&& out) { emit(ctx, std::move(out)); });
    }

private:
    F _f;
};

} // namespace detail

// Where a 1→N stage puts its outputs: each push runs the rest of the pipeline on it at once.
template<typename U>
class output {
public:
    output(const node& stage, exec_context& ctx)
      : _stage(stage)
      , _ctx(ctx) {}
    void push(U value) {
        if (_ctx.stage_histogram(_stage.id) == nullptr) {
            _stage.emit(_ctx, value_box(std::move(value)));
            return;
        }
        const std::uint64_t t0 = clock::now_ns();
        _stage.emit(_ctx, value_box(std::move(value)));
        _ctx.nested_ns += clock::now_ns() - t0;
    }

private:
    const node& _stage;
    exec_context& _ctx;
};

namespace detail {

template<typename T, typename U, typename F>
class many_node final : public node {
public:
    explicit many_node(F f)
      : _f(std::move(f)) {}
    void process(exec_context& ctx, value_box&& v, std::uint32_t) const override {
        T& in = v.template get<T>();
        if constexpr (std::is_invocable_v<const F&, T&, output<U>&>) {
            output<U> out(*this, ctx);
            timed_call(ctx, id, [&] { _f(in, out); });
        } else {
            auto outs = timed_call(ctx, id, [&] { return _f(in); });
            if (std::ranges::empty(outs)) {
                ctx.count_filtered();
            }
            for (auto& o : outs) {
                emit(ctx, value_box(U(std::move(o))));
            }
        }
    }

private:
    F _f;
};

} // namespace detail

namespace detail {

template<typename T, typename K>
class key_by_node final : public node {
public:
    explicit key_by_node(K k)
      : _key(std::move(k)) {}
    void process(exec_context& ctx, value_box&& v, std::uint32_t) const override {
        std::string scratch;
        const auto& key = _key(v.template get<T>());
        std::string_view bytes = key_bytes(key, scratch);
        ctx.route(next[0], partition_of(bytes, partitions), std::move(v));
    }
    std::uint32_t partitions = default_partition_count;

private:
    K _key;
};

template<typename T, typename S, typename K, typename F>
class stateful_node final : public node {
public:
    stateful_node(K k, F f)
      : _key(std::move(k))
      , _f(std::move(f)) {}
    void process(exec_context& ctx, value_box&& v, std::uint32_t partition) const override {
        T& in = v.template get<T>();
        std::string scratch;
        const auto& key = _key(in);
        std::string_view bytes = key_bytes(key, scratch);
        auto& table = static_cast<typed_state_table<S>&>(ctx.table(id, partition));
        S& state = table.get_or_create(bytes);
        emit_result(ctx, timed_call(ctx, id, [&] { return _f(in, state); }),
                    [&](value_box&& out) { emit(ctx, std::move(out)); });
    }
    std::unique_ptr<state_table> make_table() const override {
        return std::make_unique<typed_state_table<S>>();
    }
    bool input_crosses_workers() const override { return has_codec<T>; }
    void encode_input(const value_box& v, std::string& out) const override {
        if constexpr (has_codec<T>) {
            codec<T>::encode(v.template get<T>(), out);
        }
    }
    bool decode_input(std::span<const std::byte> bytes, value_box& out) const override {
        if constexpr (has_codec<T>) {
            auto decoded = codec<T>::decode(bytes);
            if (!decoded) {
                return false;
            }
            out = value_box(std::move(*decoded));
            return true;
        } else {
            return false;
        }
    }
    std::string input_type_name() const override { return typeid(T).name(); }

private:
    K _key;
    F _f;
};

template<typename T, typename F>
class sink_node final : public node {
public:
    explicit sink_node(F f)
      : _encode(std::move(f)) {}
    void process(exec_context& ctx, value_box&& v, std::uint32_t) const override {
        const T& in = v.template get<T>();
        ctx.record_sink();
        std::string& out = ctx.sink_begin(index);
        const std::size_t before = out.size();
        if constexpr (std::is_invocable_v<const F&, const T&, std::string&>) {
            _encode(in, out);
        } else {
            const auto& bytes = _encode(in);
            out.append(reinterpret_cast<const char*>(std::data(bytes)),
                       std::size(bytes) * sizeof(*std::data(bytes)));
        }
        ctx.sink_end(index, before);
    }

private:
    F _encode;
};

} // namespace detail

class application;
template<typename T>
class pipeline;
template<typename T, typename K>
class keyed_pipeline;

// A sink and its encoder, for to_sinks(). The encoder is `std::string (const T&)` (or any
// contiguous byte container) or `void (const T&, std::string& out)` appending to `out`.
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

class application {
public:
    explicit application(std::string name);

    // Starts a pipeline at a named source. `decoder` turns one payload (the bytes of one
    // `[u32 N][N bytes]` frame) into a T, or returns std::nullopt to reject it (dropped and
    // counted). T may be given explicitly or deduced from the decoder's result.
    template<typename T = void, typename F>
    auto source(std::string name, F decoder);

    const std::string& name() const { return _name; }
    const std::vector<std::unique_ptr<node>>& nodes() const { return _nodes; }
    const std::vector<std::string>& source_names() const { return _source_names; }
    const std::vector<std::string>& sink_names() const { return _sink_names; }
    const std::vector<std::uint32_t>& source_nodes() const { return _source_nodes; }
    const std::vector<std::string>& pipeline_names() const { return _pipeline_names; }

    // Checks the whole graph: every pipeline ends in a sink, names are unique. Called by the
    // worker before anything starts.
    status validate() const;

    // Used by the builders.
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
    pipeline(application& app, std::vector<std::uint32_t> tails)
      : _app(&app)
      , _tails(std::move(tails)) {}

    // A stateless stage: `f(T&&)` returns a U (one output) or std::optional<U> (nullopt = filter).
    template<typename U = void, typename F>
    auto to(std::string name, F f) {
        using R = std::invoke_result_t<const F&, T&&>;
        static_assert(!std::is_void_v<R>,
                      "a stage passed to to() must return a value or a std::optional");
        using Out = detail::unwrap_optional_t<R>;
        static_assert(std::is_void_v<U> || std::is_same_v<U, Out>,
                      "the stage's result type differs from the type named in to<U>()");
        auto id = _app->add_node(std::make_unique<detail::stateless_node<T, F>>(std::move(f)),
                                 node_kind::stateless, std::move(name), _tails);
        return pipeline<Out>(*_app, { id });
    }

    // A stateless 1→N stage. Either `f(T&, output<U>&)` pushing any number of outputs (U must be
    // named: to_many<U>), or `f(T&)` returning a range of U (zero elements = filter).
    template<typename U = void, typename F>
    auto to_many(std::string name, F f) {
        // conjunction: output<void> must not be instantiated when U is left to deduction.
        if constexpr (std::conjunction_v<std::negation<std::is_void<U>>,
                                         std::is_invocable<const F&, T&, output<U>&>>) {
            auto id = _app->add_node(std::make_unique<detail::many_node<T, U, F>>(std::move(f)),
                                     node_kind::stateless, std::move(name), _tails);
            return pipeline<U>(*_app, { id });
        } else {
            using R = std::invoke_result_t<const F&, T&>;
            static_assert(std::ranges::range<R>,
                          "to_many: the stage must take (T&, output<U>&) or return a range");
            using Out = std::conditional_t<std::is_void_v<U>, std::ranges::range_value_t<R>, U>;
            auto id = _app->add_node(std::make_unique<detail::many_node<T, Out, F>>(std::move(f)),
                                     node_kind::stateless, std::move(name), _tails);
            return pipeline<Out>(*_app, { id });
        }
    }

    // Routes each message by key: `k(const T&)` returns a string-like key or an integer. The next
    // stage must be a to_state, which then runs on the shard that owns the key's partition.
    template<typename K>
    keyed_pipeline<T, K> key_by(K k, std::uint32_t partitions = default_partition_count) {
        return keyed_pipeline<T, K>(*_app, _tails, std::move(k), partitions);
    }

    // Sends every message to one partition (one state object for the whole stream).
    auto collect() {
        auto k = [](const T&) { return std::string_view{}; };
        return keyed_pipeline<T, decltype(k)>(*_app, _tails, k, 1);
    }

    // Joins another pipeline of the same type: the stages added after merge see both streams.
    pipeline<T> merge(const pipeline<T>& other) {
        std::vector<std::uint32_t> tails = _tails;
        tails.insert(tails.end(), other._tails.begin(), other._tails.end());
        return pipeline<T>(*_app, std::move(tails));
    }

    // Ends the pipeline at a named sink. `encoder` is `std::string (const T&)` (or another
    // contiguous byte container) or `void (const T&, std::string& out)`.
    template<typename F>
    pipeline_end to_sink(std::string name, F encoder) {
        add_sink(_tails, std::move(name), std::move(encoder));
        return {};
    }

    // Ends the pipeline at several sinks; every message goes to each (T must be copyable).
    template<typename... F>
    pipeline_end to_sinks(sink_spec<T, F>... sinks) {
        static_assert(sizeof...(F) >= 1, "to_sinks needs at least one sink");
        static_assert(sizeof...(F) == 1 || std::is_copy_constructible_v<T>,
                      "to_sinks with several sinks copies each message: T must be copyable");
        (add_sink(_tails, std::move(sinks.name), std::move(sinks.encoder)), ...);
        return {};
    }

private:
    template<typename, typename>
    friend class keyed_pipeline;
    template<typename F>
    void add_sink(const std::vector<std::uint32_t>& tails, std::string name, F encoder) {
        static_assert(std::is_invocable_v<const F&, const T&, std::string&> ||
                        std::is_invocable_v<const F&, const T&>,
                      "a sink encoder takes (const T&) or (const T&, std::string&)");
        auto sink_index = _app->add_sink_name(name);
        auto id = _app->add_node(std::make_unique<detail::sink_node<T, F>>(std::move(encoder)),
                                 node_kind::sink, std::move(name), tails);
        _app->nodes()[id]->index = sink_index;
    }

    application* _app;
    std::vector<std::uint32_t> _tails;
};

// A pipeline after key_by: the only stage it offers is to_state, run on the key's owner.
template<typename T, typename K>
class keyed_pipeline {
public:
    keyed_pipeline(application& app, std::vector<std::uint32_t> tails, K k,
                   std::uint32_t partitions)
      : _app(&app)
      , _tails(std::move(tails))
      , _key(std::move(k))
      , _partitions(partitions) {
        if (partitions == 0 || (partitions & (partitions - 1)) != 0) {
            throw app_error("key_by: the partition count must be a power of two");
        }
    }

    // A stateful stage: `f(const T&, S& state)` returns a U or std::optional<U>. One S per key,
    // value-initialised on the key's first message, owned by the partition's shard. Name the
    // state type (`to_state<S>`) or both (`to_state<U, S>`).
    template<typename S, typename F>
    requires std::is_invocable_v<const F&, T&, S&>
    auto to_state(std::string name, F f) { return add<S>(std::move(name), std::move(f)); }
    template<typename U, typename S, typename F>
    requires std::is_invocable_v<const F&, T&, S&>
    auto to_state(std::string name, F f) {
        using Out = detail::unwrap_optional_t<std::invoke_result_t<const F&, T&, S&>>;
        static_assert(std::is_same_v<U, Out>,
                      "the state stage's result type differs from the type named in to_state");
        return add<S>(std::move(name), std::move(f));
    }

private:
    template<typename S, typename F>
    auto add(std::string name, F f) {
        using R = std::invoke_result_t<const F&, T&, S&>;
        static_assert(!std::is_void_v<R>,
                      "a to_state stage must return a value or a std::optional");
        static_assert(std::is_default_constructible_v<S>, "state types are made on first use");
        using Out = detail::unwrap_optional_t<R>;
        auto router = std::make_unique<detail::key_by_node<T, K>>(_key);
        router->partitions = _partitions;
        auto router_id =
          _app->add_node(std::move(router), node_kind::key_by, name + " (key_by)", _tails);
        auto id =
          _app->add_node(std::make_unique<detail::stateful_node<T, S, K, F>>(_key, std::move(f)),
                         node_kind::stateful, std::move(name), { router_id });
        _app->nodes()[id]->partitions = _partitions;
        return pipeline<Out>(*_app, { id });
    }

    application* _app;
    std::vector<std::uint32_t> _tails;
    K _key;
    std::uint32_t _partitions;
};

template<typename T, typename F>
auto application::source(std::string name, F decoder) {
    using R = std::invoke_result_t<const F&, std::span<const std::byte>>;
    using Out = std::conditional_t<std::is_void_v<T>, detail::unwrap_optional_t<R>, T>;
    static_assert(std::is_same_v<Out, detail::unwrap_optional_t<R>>,
                  "the decoder's result type differs from the type named in source<T>()");
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
}

} // namespace ringtail
