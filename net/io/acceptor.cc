// Accepting the sources' connections: one net::listener per listening fd, on an event loop.
#include "net/io/acceptor.h"

#include <utility>

namespace ringtail::net {

acceptor::acceptor(event_loop& loop, std::vector<int> listen_fds, accept_callback on_accept)
  : _loop(loop)
  , _on_accept(std::move(on_accept)) {
    for (int fd : listen_fds) {
        _listen_fds.emplace_back(fd);
    }
}

acceptor::acceptor(std::vector<int> listen_fds, accept_callback on_accept)
  : _own_loop(std::make_unique<event_loop_thread>())
  , _loop(_own_loop->loop())
  , _on_accept(std::move(on_accept)) {
    for (int fd : listen_fds) {
        _listen_fds.emplace_back(fd);
    }
}

acceptor::~acceptor() {
    stop();
    _listen_fds.clear();
    _own_loop.reset();
}

void acceptor::start() {
    _loop.call([this] {
        if (!_listeners.empty() || _listen_fds.empty()) {
            return;
        }
        for (std::size_t i = 0; i < _listen_fds.size(); ++i) {
            _listeners.push_back(
              std::make_unique<listener>(_loop, std::move(_listen_fds[i]), "source listener", 0,
                                         [this, i](unique_fd fd, std::string peer) {
                                             _accepted.fetch_add(1, std::memory_order_relaxed);
                                             _on_accept(i, fd.release(), std::move(peer));
                                         }));
        }
    });
}

void acceptor::stop() {
    _loop.call([this] {
        // The listeners give their fds back: accepting stops, the sockets stay open.
        for (std::size_t i = 0; i < _listeners.size(); ++i) {
            _listen_fds[i] = _listeners[i]->release();
        }
        _listeners.clear();
    });
}

} // namespace ringtail::net
