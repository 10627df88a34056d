// The go-back-N receiver and the assertion of the sender template (net/channel/go_back_n.h).
#include "net/channel/go_back_n.h"

#include <cstdlib>

#include "engine/log.h"

namespace ringtail::net {

gbn_receiver::gbn_receiver(gbn_config config)
  : _config(config) {}

gbn_receiver::verdict gbn_receiver::received(std::uint64_t seq, std::uint64_t now_ns) {
    if (seq == _expected) {
        ++_expected;
        ++_delivered;
        if (!_ack_owed) {
            _ack_owed = true;
            _owed_since_ns = now_ns;
        }
        ++_unacked_deliveries;
        return verdict::deliver;
    }
    // Either way the sender is acting on old news: tell it where we are at once.
    _ack_owed = true;
    _ack_now = true;
    if (seq < _expected) {
        ++_duplicates;
        return verdict::duplicate;
    }
    ++_out_of_order;
    return verdict::out_of_order;
}

bool gbn_receiver::ack_due(std::uint64_t now_ns) const {
    if (!_ack_owed) {
        return false;
    }
    return _ack_now || _unacked_deliveries >= (_config.window_frames + 1) / 2 ||
           now_ns - _owed_since_ns >= _config.ack_delay_ns;
}

std::uint64_t gbn_receiver::next_ack_deadline_ns() const {
    if (!_ack_owed) {
        return gbn_no_deadline;
    }
    if (_ack_now || _unacked_deliveries >= (_config.window_frames + 1) / 2) {
        return 0;
    }
    return _owed_since_ns + _config.ack_delay_ns;
}

void gbn_receiver::ack_sent() {
    _ack_owed = false;
    _ack_now = false;
    _unacked_deliveries = 0;
}

} // namespace ringtail::net
