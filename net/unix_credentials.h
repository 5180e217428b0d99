// Peer credentials of a Unix-domain connection: the process id, user id and
// group id of the peer as the kernel recorded them when it connected
// (SO_PEERCRED), e.g. to let only one user talk to a local control socket.
//
// Thread-safety: call from the connection's own callbacks (on_connect,
// on_data...), where its socket is certain to be open; from elsewhere the
// connection may close (and its descriptor number be reused) meanwhile.
// Ownership: borrows the connection; holds nothing.
// Platforms: Linux (SO_PEERCRED). On Windows, which records no peer
// credentials on its AF_UNIX sockets, GetPeerCredentials is Unimplemented.
#ifndef MILL_IO_NET_UNIX_CREDENTIALS_H_
#define MILL_IO_NET_UNIX_CREDENTIALS_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "net/connection.h"

namespace mill {

// The peer process as it was when the connection was made (a peer that
// exits leaves its pid to be reused: check the uid, not the pid, for access).
// (The types are Linux's pid_t, uid_t and gid_t, spelled portably.)
struct PeerCredentials {
  int32_t pid = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
};

// The credentials of `conn`'s peer. FailedPrecondition when `conn` is not a
// Unix-domain connection or is closed; the errno status if getsockopt fails.
//
//   cb.on_connect = [](const mill::ConnectionPtr& c) {
//     absl::StatusOr<mill::PeerCredentials> who = mill::GetPeerCredentials(*c);
//     if (!who.ok() || who->uid != getuid()) c->Close();
//   };
absl::StatusOr<PeerCredentials> GetPeerCredentials(const Connection& conn);

}  // namespace mill

#endif  // MILL_IO_NET_UNIX_CREDENTIALS_H_
