// The metric catalog of a worker and metric sets.
#include "engine/metrics.h"

#include "engine/application.h"

namespace ringtail {

const char* to_string(metric_category c) {
    switch (c) {
        case metric_category::computation:
            return "computation";
        case metric_category::start_to_end:
            return "start-to-end";
        case metric_category::node_ingress_egress:
            return "node-ingress-egress";
        case metric_category::pipeline_ingestion:
            return "pipeline-ingestion";
    }
    return "?";
}

metric_catalog::metric_catalog(const application& app, const std::string& worker_name)
  : _app_name(app.name())
  , _worker_name(worker_name) {
    auto add = [&](std::string name, metric_category c, std::string pipeline) {
        auto id = static_cast<std::uint16_t>(_keys.size());
        _keys.push_back(metric_key{ std::move(name), c, std::move(pipeline), id });
        return static_cast<std::size_t>(id);
    };
    const auto& pipelines = app.pipeline_names();
    _of_node.assign(app.nodes().size(), npos);
    for (const auto& n : app.nodes()) {
        if (n->kind == node_kind::stateless || n->kind == node_kind::stateful) {
            _of_node[n->id] = add(n->name, metric_category::computation, pipelines[n->pipeline]);
        }
    }
    for (const auto& p : pipelines) {
        _pipeline_latency.push_back(add(p, metric_category::start_to_end, p));
    }
    for (const auto& p : pipelines) {
        _pipeline_ingestion.push_back(add(p, metric_category::pipeline_ingestion, p));
    }
    _worker = add(worker_name, metric_category::node_ingress_egress, worker_name);
}

void metric_set::reset() {
    for (auto& h : latency) {
        h.reset();
    }
    std::fill(counts.begin(), counts.end(), 0);
    period_end_ns = 0;
}

} // namespace ringtail
