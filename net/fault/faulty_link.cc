// Faults on purpose between a worker's data channel and its link.
#include "net/fault/faulty_link.h"

#include <algorithm>

namespace ringtail::net {

faulty_link::faulty_link(datagram_link& inner, const fault_config& config,
                         std::function<std::uint64_t()> clock)
  : _inner(inner)
  , _clock(std::move(clock)) {
    for (peer_id p = 0; p < _inner.peer_count(); ++p) {
        fault_config c = config;
        c.seed = config.seed * 1009 + p;
        _faults.push_back(std::make_unique<fault_injector>(c));
    }
}

void faulty_link::send(peer_id peer, std::span<const std::byte> datagram) {
    const std::uint64_t now = _clock();
    _faults[peer]->submit(
      std::string(reinterpret_cast<const char*>(datagram.data()), datagram.size()), now);
    _faults[peer]->deliver_due(now, [&](std::string&& d) {
        _inner.send(peer, std::as_bytes(std::span(d.data(), d.size())));
    });
}

std::size_t faulty_link::receive(
  const std::function<void(peer_id, std::span<const std::byte>)>& on) {
    const std::uint64_t now = _clock();
    std::size_t n = 0;
    for (peer_id p = 0; p < _faults.size(); ++p) {
        n += _faults[p]->deliver_due(now, [&](std::string&& d) {
            _inner.send(p, std::as_bytes(std::span(d.data(), d.size())));
        });
    }
    return n + _inner.receive(on);
}

// An injector holding nothing has no deadline, as the link's contract words it.
static_assert(fault_injector::no_due == gbn_no_deadline);

std::uint64_t faulty_link::next_deadline_ns() const {
    std::uint64_t next = _inner.next_deadline_ns();
    for (const auto& f : _faults) {
        next = std::min(next, f->next_due_ns());
    }
    return next;
}

std::uint64_t faulty_link::corrupted() const {
    std::uint64_t n = 0;
    for (const auto& f : _faults) {
        n += f->corrupted();
    }
    return n;
}

std::uint64_t faulty_link::dropped() const {
    std::uint64_t n = 0;
    for (const auto& f : _faults) {
        n += f->dropped();
    }
    return n;
}

} // namespace ringtail::net
