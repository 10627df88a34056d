// The application graph: adding nodes and checking the whole graph before a worker starts.
#include "engine/application.h"

namespace ringtail {

const char* to_string(node_kind k) {
    switch (k) {
        case node_kind::source:
            return "source";
        case node_kind::stateless:
            return "stateless";
        case node_kind::key_by:
            return "key_by";
        case node_kind::stateful:
            return "stateful";
        case node_kind::sink:
            return "sink";
    }
    return "?";
}

application::application(std::string name)
  : _name(std::move(name)) {
    if (_name.empty()) {
        throw app_error("an application needs a name");
    }
}

std::uint32_t application::add_node(std::unique_ptr<node> n, node_kind kind, std::string name,
                                    const std::vector<std::uint32_t>& previous) {
    auto id = static_cast<std::uint32_t>(_nodes.size());
    n->id = id;
    n->kind = kind;
    n->name = std::move(name);
    n->previous = previous;
    for (auto p : previous) {
        node& prev = *_nodes.at(p);
        if (prev.kind == node_kind::sink) {
            throw app_error("stage '" + n->name + "' comes after sink '" + prev.name + "'");
        }
        bool fan_out_to_sinks = kind == node_kind::sink;
        for (auto succ : prev.next) {
            fan_out_to_sinks = fan_out_to_sinks && _nodes[succ]->kind == node_kind::sink;
        }
        if (!prev.next.empty() && !fan_out_to_sinks) {
            throw app_error("stage '" + prev.name + "' already feeds stage '" +
                            _nodes[prev.next.front()]->name +
                            "'; a pipeline cannot branch (use "
                            "to_sinks to send one stream to several sinks)");
        }
        prev.next.push_back(id);
        n->pipeline = prev.pipeline;
    }
    _nodes.push_back(std::move(n));
    return id;
}

std::uint32_t application::add_sink_name(const std::string& name) {
    for (const auto& existing : _sink_names) {
        if (existing == name) {
            throw app_error("two sinks are named '" + name + "'");
        }
    }
    _sink_names.push_back(name);
    return static_cast<std::uint32_t>(_sink_names.size() - 1);
}

status application::validate() const {
    if (_source_names.empty()) {
        return error{ errc::internal, "application '" + _name + "' has no source" };
    }
    for (const auto& n : _nodes) {
        if (n->kind != node_kind::sink && n->next.empty()) {
            return error{ errc::internal, "application '" + _name + "': pipeline '" +
                                            _pipeline_names[n->pipeline] + "' ends at " +
                                            to_string(n->kind) + " stage '" + n->name +
                                            "' without a sink; end it with to_sink()" };
        }
    }
    return ok_status();
}

} // namespace ringtail
