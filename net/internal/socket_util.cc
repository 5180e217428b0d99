#include "net/internal/socket_util.h"

#include <fcntl.h>
#include <sys/stat.h>
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

absl::StatusOr<int> SocketDomain(int fd) {
  int domain = 0;
  absl::Status status = GetIntOption(fd, SOL_SOCKET, SO_DOMAIN, &domain);
  if (!status.ok()) return status;
  return domain;
}

absl::Status CheckStreamSocket(int fd, bool listening, absl::string_view what) {
  struct stat st;
  if (fd < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": bad descriptor ", fd));
  }
  if (fstat(fd, &st) != 0) {
    return ErrnoStatus(errno, absl::StrCat(what, ": descriptor ", fd));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": descriptor ", fd, " is not a socket"));
  }
  int type = 0;
  absl::Status status = GetIntOption(fd, SOL_SOCKET, SO_TYPE, &type);
  if (!status.ok()) return status;
  if (type != SOCK_STREAM) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": descriptor ", fd, " is not a stream socket (SO_TYPE ",
        type == SOCK_DGRAM ? "SOCK_DGRAM" : absl::StrCat(type), ")"));
  }
  absl::StatusOr<int> domain = SocketDomain(fd);
  if (!domain.ok()) return domain.status();
  if (*domain != AF_INET && *domain != AF_INET6 && *domain != AF_UNIX) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": descriptor ", fd, " is of address family ",
                     *domain, " (want AF_INET, AF_INET6 or AF_UNIX)"));
  }
  int accepting = 0;
  status = GetIntOption(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting);
  if (!status.ok()) return status;
  if (listening && accepting == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": descriptor ", fd, " is not listening"));
  }
  if (!listening && accepting != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": descriptor ", fd, " is a listening socket, not a connection"));
  }
  return absl::OkStatus();
}

absl::Status SetCloseOnExec(int fd) {
  const int flags = fcntl(fd, F_GETFD, 0);
  if (flags < 0) return ErrnoStatus(errno, "fcntl(F_GETFD)");
  if ((flags & FD_CLOEXEC) == 0 &&
      fcntl(fd, F_SETFD, flags | FD_CLOEXEC) != 0) {
    return ErrnoStatus(errno, "fcntl(F_SETFD, FD_CLOEXEC)");
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
