// unique_fd: a move-only owner of a file descriptor, and the only place in the tree that closes
// one (`git grep '::close('` finds this file alone), so that no early return can leak an fd and no
// fd is closed twice. In engine/, the library every other depends on, so that the engine's own
// epoll and eventfd, the files of resilience/ and the sockets of net/ all use it.
#pragma once

#include <unistd.h>
#include <utility>

namespace ringtail {

// Owns one file descriptor (or none: -1) and closes it when destroyed or reset. Not thread-safe:
// one owner at a time, like the fd itself. get() lends the fd without giving up ownership;
// release() gives it up (the caller closes it, or hands it to another unique_fd).
class unique_fd {
public:
    unique_fd() = default;
    explicit unique_fd(int fd)
      : _fd(fd) {}
    ~unique_fd() { reset(); }
    unique_fd(unique_fd&& other) noexcept
      : _fd(other.release()) {}
    unique_fd& operator=(unique_fd&& other) noexcept {
        if (this != &other) {
            reset(other.release());
        }
        return *this;
    }
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;

    int get() const { return _fd; }
    bool valid() const { return _fd >= 0; }
    explicit operator bool() const { return valid(); }

    // Closes the fd held (if any) and holds `fd` instead. close(2)'s error is ignored: on Linux
    // the fd is gone either way, and retrying could close an fd another thread just opened.
    void reset(int fd = -1) {
        const int old = std::exchange(_fd, fd);
        if (old >= 0) {
            ::close(old);
        }
    }
    [[nodiscard]] int release() { return std::exchange(_fd, -1); }
    // Closes the fd held (if any) now and says whether close(2) succeeded, for a file whose last
    // writes it may report (NFS, a full disk); errno tells why not. Holds none afterwards.
    [[nodiscard]] bool close() {
        const int old = std::exchange(_fd, -1);
        return old < 0 || ::close(old) == 0;
    }

private:
    int _fd = -1;
};

} // namespace ringtail
