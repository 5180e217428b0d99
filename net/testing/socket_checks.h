// Portable socket checks and helpers for the //net tests, implemented per
// platform (socket_checks_posix.cc, socket_checks_win.cc), so that the same
// test cases run on Linux and on Windows. Test-only.
//
// Thread-safety: the functions are thread-safe.
#ifndef MILL_IO_NET_TESTING_SOCKET_CHECKS_H_
#define MILL_IO_NET_TESTING_SOCKET_CHECKS_H_

#include <optional>

namespace mill {
namespace net_testing {

// getsockopt of an int-valued option; -1 and a test failure if it fails.
int GetSocketOptionInt(int fd, int level, int name);

// Whether `fd` is an open descriptor (socket).
bool IsDescriptorOpen(int fd);

// Whether the socket is in non-blocking mode; nullopt where the platform
// cannot tell (Windows has no way to read FIONBIO back).
std::optional<bool> IsNonBlocking(int fd);

// Whether child processes would not inherit it (FD_CLOEXEC; on Windows the
// handle's HANDLE_FLAG_INHERIT is clear).
bool IsCloseOnExec(int fd);

// Waits up to `timeout_ms` for `fd` to be readable: 1, 0 on timeout, -1 on
// error (poll(2), WSAPoll).
int WaitReadable(int fd, int timeout_ms);

// Whether TcpListener applies SO_REUSEADDR (Linux), or it is nothing to
// apply (Windows: see net/internal/sys_socket.h); and whether reuse_port
// exists (not on Windows, where Bind says Unimplemented).
bool ListenerSetsReuseAddress();
bool PlatformHasReusePort();
// SO_REUSEADDR / SO_REUSEPORT as set on the socket (false where the option
// does not exist).
bool ReuseAddressSet(int fd);
bool ReusePortSet(int fd);

// A connected pair of stream sockets, each close-on-exec (blocking):
// socketpair(AF_UNIX) on POSIX, a loopback TCP connection on Windows.
// False and a test failure if it cannot be made.
bool MakeStreamPair(int fds[2]);

// Closes a descriptor from the functions above.
void CloseDescriptor(int fd);

// Replaces the open socket `fd` with a descriptor that is no socket under
// the same number (dup2 of /dev/null), so that a poller's registration of
// it goes stale. False where the platform cannot (Windows: see
// CanReplaceWithNonSocket).
bool ReplaceWithNonSocket(int fd);
bool CanReplaceWithNonSocket();

}  // namespace net_testing
}  // namespace mill

#endif  // MILL_IO_NET_TESTING_SOCKET_CHECKS_H_
