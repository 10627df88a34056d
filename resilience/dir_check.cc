// Start-up check of --resilience-dir.
#include "resilience/dir_check.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/fd.h"

namespace ringtail::resilience {

status check_dir_writable(const std::string& dir) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
        return error{ errc::config, "--resilience-dir '" + dir + "' does not exist (" +
                                      std::strerror(errno) + "): create it or pick another" };
    }
    if (!S_ISDIR(st.st_mode)) {
        return error{ errc::config,
                      "--resilience-dir '" + dir + "' is not a directory: give a directory" };
    }
    std::string probe = dir + "/.ringtail-probe-" + std::to_string(::getpid());
    unique_fd fd(::open(probe.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600));
    if (!fd) {
        return error{ errc::cant_create, "--resilience-dir '" + dir + "' is not writable (" +
                                           std::strerror(errno) +
                                           "): fix its permissions or pick another" };
    }
    fd.reset();
    ::unlink(probe.c_str());
    return ok_status();
}

} // namespace ringtail::resilience
