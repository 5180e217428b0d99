// Socket activation: the listening sockets a service manager (systemd,
// s6, a test harness) opened and passed to this process, per
// sd_listen_fds(3): descriptors 3, 4, ... counted by $LISTEN_FDS, meant for
// the process $LISTEN_PID, named by $LISTEN_FDNAMES (colon-separated).
// Serve one with TcpServer::Adopt(loop, fd, callbacks).
//
//   absl::StatusOr<std::vector<int>> fds = mill::ListenFdsFromEnvironment();
//   if (!fds.ok()) return fds.status();
//   for (int fd : *fds) servers.push_back(*mill::TcpServer::Adopt(loop, fd,
//   cb));
//
// Thread-safety: reads and unsets environment variables: call from main()
// before starting threads (getenv/unsetenv are not thread-safe).
// Ownership: the descriptors returned are the caller's (to adopt or close).
// Platforms: POSIX. On Windows (no descriptor passing by number) the list
// is empty while $LISTEN_PID is unset, and Unimplemented when it is set.
#ifndef MILL_IO_NET_SOCKET_ACTIVATION_H_
#define MILL_IO_NET_SOCKET_ACTIVATION_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace mill {

// One passed descriptor and its name ("unknown" when $LISTEN_FDNAMES does
// not name it, as sd_listen_fds_with_names(3) says).
struct ListenFd {
  int fd = -1;
  std::string name;
};

// The passed descriptors, each set close-on-exec (so that they do not leak
// into children). Empty when $LISTEN_PID is unset or names another process
// (the variables were inherited, not meant for us). Like
// sd_listen_fds(unset=1), it unsets LISTEN_PID, LISTEN_FDS and
// LISTEN_FDNAMES in every case, so children do not see them.
// InvalidArgument for a malformed $LISTEN_PID or $LISTEN_FDS, or
// $LISTEN_FDNAMES with a different count; the errno status (EBADF) when a
// descriptor it announces is not open. The descriptors are not checked to
// be listening sockets: TcpServer::Adopt does that.
absl::StatusOr<std::vector<ListenFd>> NamedListenFdsFromEnvironment();

// As above, the descriptors only.
absl::StatusOr<std::vector<int>> ListenFdsFromEnvironment();

}  // namespace mill

#endif  // MILL_IO_NET_SOCKET_ACTIVATION_H_
