// GetPeerCredentials on Windows: Unimplemented (Windows records no peer
// process credentials on its AF_UNIX sockets; there is no SO_PEERCRED).
#include "absl/status/status.h"
#include "net/unix_credentials.h"

namespace mill {

absl::StatusOr<PeerCredentials> GetPeerCredentials(const Connection& /*conn*/) {
  return absl::UnimplementedError(
      "GetPeerCredentials: Windows has no SO_PEERCRED (peer credentials of "
      "Unix-domain connections are Linux-only)");
}

}  // namespace mill
