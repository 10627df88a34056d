// Where a 1→N stage (pipeline::to_many) puts its outputs: `out.push(u)` runs the rest of the
// pipeline on u at once, on the stage's shard. Valid only during the stage's call.
#pragma once

#include <cstdint>
#include <utility>

#include "engine/clock.h"
#include "engine/node.h"
#include "engine/value_box.h"

namespace ringtail {

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
        // Time spent downstream is not the stage's own (see timed_call in engine/node.h).
        const std::uint64_t t0 = clock::now_ns();
        _stage.emit(_ctx, value_box(std::move(value)));
        _ctx.nested_ns += clock::now_ns() - t0;
    }

private:
    const node& _stage;
    exec_context& _ctx;
};

} // namespace ringtail
