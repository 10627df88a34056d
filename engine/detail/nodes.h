// The stages an application is built from, as the shards run them: one node class per verb of
// engine/application.h (source, to, to_many, key_by, to_state, to_sink), each holding the app's
// callable and its types behind node's virtual calls (engine/node.h). App writers never see these;
// the builder makes them.
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <ranges>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/codec.h"
#include "engine/detail/stage_traits.h"
#include "engine/node.h"
#include "engine/output.h"
#include "engine/partition.h"
#include "engine/value_box.h"

namespace ringtail::detail {

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

// application::source: decodes a payload into a T and runs the pipeline on it.
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

// pipeline::to: one output (or none, for an empty optional) per input.
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

// pipeline::to_many: any number of outputs per input, pushed or returned as a range.
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

// keyed_pipeline's router, placed before its to_state: sends each message to the shard that owns
// its key's partition.
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

// keyed_pipeline::to_state: runs on the partition's owner with the key's state.
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

// pipeline::to_sink: encodes each message straight into the sink's buffer.
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

} // namespace ringtail::detail
