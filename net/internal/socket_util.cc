#include "net/internal/socket_util.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "net/internal/socket_types.h"

namespace mill {
namespace net_internal {

absl::Status SetIntOption(int fd, int level, int name, int value,
                          absl::string_view what) {
  int err = kNoSocketError;
  if (SetSocketOption(fd, level, name, &value, sizeof(value), &err) != 0) {
    return SocketErrorStatus(err, what);
  }
  return absl::OkStatus();
}

absl::Status DeepCopy(const absl::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(status.code(), std::string(status.message()));
}

absl::Status GetIntOption(int fd, int level, int name, int* value) {
  // Zeroed first: Winsock writes boolean options as one byte.
  *value = 0;
  socklen_t len = sizeof(*value);
  int err = kNoSocketError;
  if (GetSocketOption(fd, level, name, value, &len, &err) != 0) {
    return SocketErrorStatus(err, "getsockopt");
  }
  return absl::OkStatus();
}

absl::Status CheckStreamSocket(int fd, bool listening, absl::string_view what) {
  if (fd < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": bad descriptor ", fd));
  }
  absl::Status status = CheckIsSocket(fd, what);
  if (!status.ok()) return status;
  int type = 0;
  status = GetIntOption(fd, SOL_SOCKET, SO_TYPE, &type);
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

}  // namespace net_internal
}  // namespace mill
