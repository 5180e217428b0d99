#include "net/internal/socket_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/errno_status.h"

namespace mill {
namespace net_internal {

absl::Status SetIntOption(int fd, int level, int name, int value,
                          absl::string_view what) {
  if (setsockopt(fd, level, name, &value, sizeof(value)) != 0) {
    return ErrnoStatus(errno, what);
  }
  return absl::OkStatus();
}

absl::Status DeepCopy(const absl::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(status.code(), std::string(status.message()));
}

absl::Status GetIntOption(int fd, int level, int name, int* value) {
  socklen_t len = sizeof(*value);
  if (getsockopt(fd, level, name, value, &len) != 0) {
    return ErrnoStatus(errno, "getsockopt");
  }
  return absl::OkStatus();
}

absl::Status SetNonBlocking(int fd) {
  const int flags = fcntl(fd, F_GETFL, 0);
  if (flags < 0) return ErrnoStatus(errno, "fcntl(F_GETFL)");
  if ((flags & O_NONBLOCK) == 0 &&
      fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    return ErrnoStatus(errno, "fcntl(F_SETFL, O_NONBLOCK)");
  }
  return absl::OkStatus();
}

void CloseFd(int fd) {
  if (fd < 0) return;
  const int saved = errno;
  (void)::close(fd);
  errno = saved;
}

}  // namespace net_internal
}  // namespace mill
