// Socket activation on Windows: no service manager passes sockets there by
// descriptor number (sd_listen_fds(3) is a POSIX protocol: inherited
// descriptors 3, 4, ...). With $LISTEN_PID unset, as always on Windows,
// there are no passed sockets (an empty list, as on Linux); when it is set,
// UnimplementedError says that the protocol is not available.
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "net/socket_activation.h"

namespace mill {

absl::StatusOr<std::vector<ListenFd>> NamedListenFdsFromEnvironment() {
  // NOLINTNEXTLINE(concurrency-mt-unsafe): main() only, before threads
  const char* pid = std::getenv("LISTEN_PID");
  const bool present = pid != nullptr;
  // unset=1, as on Linux: children must not see them.
  (void)_putenv("LISTEN_PID=");
  (void)_putenv("LISTEN_FDS=");
  (void)_putenv("LISTEN_FDNAMES=");
  if (!present) return std::vector<ListenFd>();
  return absl::UnimplementedError(
      "LISTEN_PID is set, but socket activation (sockets passed as "
      "descriptors 3, 4, ...) is not available on Windows");
}

absl::StatusOr<std::vector<int>> ListenFdsFromEnvironment() {
  absl::StatusOr<std::vector<ListenFd>> named = NamedListenFdsFromEnvironment();
  if (!named.ok()) return named.status();
  return std::vector<int>();
}

}  // namespace mill
