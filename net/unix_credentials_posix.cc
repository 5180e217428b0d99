#include <sys/socket.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "base/errno_status.h"
#include "net/internal/connection_config.h"
#include "net/internal/socket_util.h"
#include "net/internal/transport.h"
#include "net/unix_credentials.h"

namespace mill {

absl::StatusOr<PeerCredentials> GetPeerCredentials(const Connection& conn) {
  const net_internal::Transport* transport =
      net_internal::ConnectionAccess::TransportOf(conn);
  const int fd = transport == nullptr ? -1 : transport->descriptor();
  if (fd < 0) {
    return absl::FailedPreconditionError(
        "GetPeerCredentials: the connection has no open socket");
  }
  // The family of the socket itself: an adopted socketpair's peer address
  // says AF_UNIX too, but asking the socket is exact.
  absl::StatusOr<int> domain = net_internal::SocketDomain(fd);
  if (!domain.ok()) return domain.status();
  if (*domain != AF_UNIX) {
    return absl::FailedPreconditionError(
        absl::StrCat("GetPeerCredentials: not a Unix-domain connection (peer ",
                     conn.peer_address().ToString(), ")"));
  }
  ucred cred = {};
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return ErrnoStatus(errno, "getsockopt(SO_PEERCRED)");
  }
  return PeerCredentials{cred.pid, cred.uid, cred.gid};
}

}  // namespace mill
