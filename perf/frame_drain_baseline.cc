// frame_drain_baseline: the kernel's limit for a TCP source on this machine: it accepts one
// connection, reads [u32 N][payload] frames with 256 KiB reads, walks their headers as a worker's
// source does, discards them, and prints one JSON line at EOF.
#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <netinet/in.h>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include "engine/clock.h"
#include "net/io/host_port.h"

namespace {

constexpr std::size_t read_chunk = 256 * 1024;

[[noreturn]] void die(int code, const std::string& line) {
    std::fprintf(stderr, "frame_drain_baseline: %s\n", line.c_str());
    std::exit(code);
}

std::uint64_t now_ns() {
    return ringtail::clock::monotonic_ns();
}

// Header walker that survives frames and headers cut by read boundaries; counts whole frames.
struct frame_walker {
    std::uint64_t frames = 0;
    std::uint64_t payload_left = 0; // bytes of the current payload not yet seen
    std::uint32_t header = 0;       // header bytes gathered so far, big-endian
    int header_have = 0;
    bool in_payload = false;

    void walk(const char* p, std::size_t n) {
        const char* end = p + n;
        while (p < end) {
            if (in_payload) {
                auto skip = static_cast<std::size_t>(
                  std::min<std::uint64_t>(payload_left, static_cast<std::uint64_t>(end - p)));
                p += skip;
                payload_left -= skip;
                if (payload_left == 0) {
                    in_payload = false;
                    ++frames;
                }
                continue;
            }
            if (header_have == 0 && end - p >= 4) {
                std::uint32_t be;
                std::memcpy(&be, p, 4);
                p += 4;
                start_payload(ntohl(be));
                continue;
            }
            header = (header << 8) | static_cast<unsigned char>(*p++);
            if (++header_have == 4) {
                start_payload(header);
                header = 0;
                header_have = 0;
            }
        }
    }

    void start_payload(std::uint32_t n) {
        if (n == 0) {
            ++frames;
            return;
        }
        payload_left = n;
        in_payload = true;
    }
};

} // namespace

int main(int argc, char** argv) {
    std::string address;
    std::string ready_file;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg == "--ready-file" && i + 1 < argc) {
            ready_file = argv[++i];
        } else if (address.empty() && !arg.starts_with("-")) {
            address = arg;
        } else {
            die(64, "usage: frame_drain_baseline host:port [--ready-file PATH]");
        }
    }
    if (address.empty()) {
        die(64, "usage: frame_drain_baseline host:port [--ready-file PATH]");
    }
    auto hp = ringtail::net::parse_host_port(address, /*allow_port_zero=*/true);
    if (!hp) {
        die(64, hp.err().message);
    }
    auto ip = ringtail::net::resolve_ipv4(hp->host);
    if (!ip) {
        die(64, ip.err().message);
    }

    int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(hp->port);
    sa.sin_addr.s_addr = ip.value();
    if (::bind(lfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(lfd, 1) != 0) {
        die(69, "cannot listen on " + address + ": " + std::strerror(errno));
    }
    socklen_t len = sizeof sa;
    ::getsockname(lfd, reinterpret_cast<sockaddr*>(&sa), &len);
    if (!ready_file.empty()) {
        // Renamed into place so that a poller never reads a half-written port.
        std::string tmp = ready_file + ".tmp";
        FILE* f = std::fopen(tmp.c_str(), "w");
        if (f == nullptr || std::fprintf(f, "%u\n", ntohs(sa.sin_port)) < 0 ||
            std::fclose(f) != 0 || std::rename(tmp.c_str(), ready_file.c_str()) != 0) {
            die(73, "cannot write " + ready_file + ": " + std::strerror(errno));
        }
    }

    int fd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
        die(69, std::string("accept: ") + std::strerror(errno));
    }
    std::vector<char> buf(read_chunk);
    frame_walker walker;
    std::uint64_t bytes = 0;
    std::uint64_t first_ns = 0;
    std::uint64_t last_ns = 0;
    while (true) {
        ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            die(74, std::string("read: ") + std::strerror(errno));
        }
        if (n == 0) {
            break;
        }
        last_ns = now_ns();
        if (bytes == 0) {
            first_ns = last_ns;
        }
        bytes += static_cast<std::uint64_t>(n);
        walker.walk(buf.data(), static_cast<std::size_t>(n));
    }
    // Timed from the first to the last byte: connection set-up and the sender's start-up are
    // not the kernel's cost.
    double seconds = static_cast<double>(last_ns - first_ns) / 1e9;
    std::printf("{\"frames\":%llu,\"bytes\":%llu,\"seconds\":%.6f,\"frames_per_s\":%.0f}\n",
                static_cast<unsigned long long>(walker.frames),
                static_cast<unsigned long long>(bytes), seconds,
                seconds > 0 ? static_cast<double>(walker.frames) / seconds : 0.0);
    return 0;
}
