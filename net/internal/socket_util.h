// Small socket helpers shared by the //net implementation, over the
// per-platform calls of sys_socket.h (which it includes: SetNonBlocking,
// SetCloseOnExec, SocketDomain...). Internal: not part of the API.
#ifndef MILL_IO_NET_INTERNAL_SOCKET_UTIL_H_
#define MILL_IO_NET_INTERNAL_SOCKET_UTIL_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "net/internal/sys_socket.h"

namespace mill {
namespace net_internal {

// A copy of `status` that shares no storage with it. Debian's Abseil is not
// built with ThreadSanitizer, so the reference count of a Status payload
// shared between threads looks like a race to TSan; statuses handed to
// another thread's callback are deep-copied instead.
absl::Status DeepCopy(const absl::Status& status);

// Sets an int-valued socket option; the system's text on failure.
absl::Status SetIntOption(int fd, int level, int name, int value,
                          absl::string_view what);

// Reads an int-valued socket option (tests and diagnostics).
absl::Status GetIntOption(int fd, int level, int name, int* value);

// Checks that `fd` is an open stream socket (SOCK_STREAM) of family
// AF_INET, AF_INET6 or AF_UNIX that is listening (`listening`) or not;
// InvalidArgument naming what it is instead ("descriptor 7 is not a
// socket", "... is a datagram socket", "... is not listening"), or the
// system's status (EBADF: not open). `what` prefixes the message.
absl::Status CheckStreamSocket(int fd, bool listening, absl::string_view what);

// Closes a socket (CloseSocket in sys_socket.h): keeps the error code
// intact; a negative fd is ignored.
inline void CloseFd(int fd) { CloseSocket(fd); }

}  // namespace net_internal
}  // namespace mill

#endif  // MILL_IO_NET_INTERNAL_SOCKET_UTIL_H_
