// The socket calls of //net, one portable function each, implemented per
// platform: sys_socket_posix.cc (BSD sockets, errno) and sys_socket_win.cc
// (Winsock 2, WSAGetLastError). Internal: not part of the API.
//
// Descriptors are ints on every platform (the public API's `int fd`): on
// Windows a SOCKET is kept in an int (kernel handles have 32 significant
// bits) and converted back only inside sys_socket_win.cc.
//
// Calls that can fail return a negative value and set `*err` to the
// platform's error code (an errno value, or a WSA code), which
// ClassifySocketError() sorts into what //net reacts to and
// SocketErrorStatus() turns into an absl::Status with the system's text.
// Interrupted calls (EINTR) are retried inside. No call raises SIGPIPE.
#ifndef MILL_IO_NET_INTERNAL_SYS_SOCKET_H_
#define MILL_IO_NET_INTERNAL_SYS_SOCKET_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "net/socket_address.h"

namespace mill {
namespace net_internal {

// --- Errors

// What //net does differently depending on a failed call's error.
enum class SocketErrorKind : uint8_t {
  kOther,
  kWouldBlock,         // EAGAIN, EWOULDBLOCK, WSAEWOULDBLOCK
  kInterrupted,        // EINTR (a wait; the calls here retry it)
  kInProgress,         // a non-blocking connect goes on (EINPROGRESS)
  kNotConnected,       // ENOTCONN
  kConnectionRefused,  // ECONNREFUSED
  kAddressInUse,       // EADDRINUSE
  kAborted,            // ECONNABORTED: reset, or gone before accept
  kProtocol,           // EPROTO (accept: that connection is gone)
  kDescriptorLimit,    // EMFILE, ENFILE (WSAEMFILE)
  kReset,              // the peer went away abruptly (ECONNRESET, EPIPE...)
};

SocketErrorKind ClassifySocketError(int err);

// "<what>: <the system's text for err>", the code mapped as ErrnoStatus
// maps errno values (//base:errno_status, //base:win32_status).
absl::Status SocketErrorStatus(int err, absl::string_view what);

// Sets errno to `err`'s meaning, for the public calls that promise errno
// (TcpStream::Read/Write): on POSIX `err` is errno already; on Windows the
// Winsock code maps to the errno of the same meaning (WSAEWOULDBLOCK:
// EAGAIN, WSAECONNRESET: ECONNRESET...), EIO when there is none.
void SetErrnoFromSocketError(int err);

// An error code that means "no error" on every platform.
inline constexpr int kNoSocketError = 0;

// --- Sockets

// A non-blocking, close-on-exec (not inherited) socket of `family`: a
// stream socket, or a datagram socket when `datagram`. -1 and *err.
int OpenSocket(int family, bool datagram, int* err);

// accept(2) of a connection as a non-blocking, close-on-exec socket. `addr`
// and `len` may be null. -1 and *err; a connection that went away before it
// was accepted is kAborted.
int AcceptSocket(int listen_fd, sockaddr* addr, socklen_t* len, int* err);

// connect(2); 0 when connected at once, -1 and *err otherwise: a pending
// non-blocking connect is kInProgress on every platform (Winsock says
// WSAEWOULDBLOCK).
int ConnectSocket(int fd, const SocketAddress& to, int* err);

int BindSocket(int fd, const SocketAddress& address, int* err);
int ListenSocket(int fd, int backlog, int* err);

// recv(2) into `data`; the byte count, 0 at end of stream, or -1 and *err.
int64_t ReceiveSome(int fd, void* data, size_t size, int* err);
// Peeks at one byte without blocking: as ReceiveSome.
int64_t PeekByte(int fd, int* err);
// send(2) without SIGPIPE: the byte count, or -1 and *err.
int64_t SendSome(int fd, const void* data, size_t size, int* err);
// A gathered send of `pieces` (at most kMaxSendPieces are taken):
// sendmsg(2) or WSASend.
inline constexpr size_t kMaxSendPieces = 64;
int64_t SendPieces(int fd, const absl::string_view* pieces, size_t count,
                   int* err);

// Up to `length` bytes of file `file_fd` from `offset` to the socket:
// sendfile(2) where the kernel has it, else a bounded read-and-send step
// (what the socket refuses is read again next time, so nothing is kept
// between calls). The byte count, 0 when the file ends at `offset`, or -1
// and *err.
int64_t SendFileSome(int fd, int file_fd, uint64_t offset, size_t length,
                     int* err);

enum class ShutdownHow : uint8_t { kRead, kWrite, kBoth };
// ShutdownHow from shutdown(2)'s SHUT_RD/SHUT_WR/SHUT_RDWR (the public
// TcpStream::Shutdown takes those).
ShutdownHow ShutdownHowFromPosix(int how);
int ShutdownSocket(int fd, ShutdownHow how, int* err);

int SetSocketOption(int fd, int level, int name, const void* value,
                    socklen_t len, int* err);
int GetSocketOption(int fd, int level, int name, void* value, socklen_t* len,
                    int* err);
int GetLocalName(int fd, sockaddr* addr, socklen_t* len, int* err);
int GetPeerName(int fd, sockaddr* addr, socklen_t* len, int* err);

// SO_REUSEADDR for a listener about to bind. On Windows nothing: a
// listener there may rebind a port with connections in TIME_WAIT without
// it, and Winsock's SO_REUSEADDR would let another socket take over a port
// in use.
absl::Status AllowAddressReuse(int fd);
// SO_REUSEPORT (several listeners share a port, the kernel balances);
// Unimplemented where the platform has no equivalent (Windows).
absl::Status AllowPortReuse(int fd);
// SO_LINGER {on, 0}: closing sends RST instead of FIN.
absl::Status SetLingerZero(int fd);

// Waits up to `timeout_ms` for the socket to become writable (or fail):
// 1 when it did, 0 on timeout, -1 and *err.
int WaitWritable(int fd, int timeout_ms, int* err);

// closesocket/close(2); keeps the thread's error code intact; a negative
// fd is ignored.
void CloseSocket(int fd);

// Whether a listening socket has a connection waiting to be accepted, now
// (a poll with no timeout). True when it cannot tell.
bool HasPendingConnection(int listener_fd);

// A descriptor kept in reserve for when the descriptor table is full
// (TcpServer sheds a connection with it): -1 and *err. Freed with
// CloseSocket.
int OpenReserveDescriptor(int* err);

// The stale-file policy of TcpListener::Bind for a Unix path in use: OK
// when the path was a socket nobody listened on and is removed (bind
// again), else the status to return (AlreadyExists: a live server's;
// FailedPrecondition: not a socket).
absl::Status RemoveStaleUnixSocket(const SocketAddress& address,
                                   absl::string_view where);

// Makes the descriptor non-blocking / not inherited by child processes.
absl::Status SetNonBlocking(int fd);
absl::Status SetCloseOnExec(int fd);

// The socket's address family (AF_INET, AF_INET6, AF_UNIX...).
absl::StatusOr<int> SocketDomain(int fd);
// InvalidArgument "<what>: descriptor N is not a socket" unless `fd` is an
// open socket; the system's status when it cannot tell.
absl::Status CheckIsSocket(int fd, absl::string_view what);

// --- Names

// getaddrinfo(host) for stream sockets (AF_UNSPEC), the addresses in the
// order returned (port 0); NotFound for a name without addresses,
// Unavailable for a temporary failure.
absl::StatusOr<std::vector<SocketAddress>> LookUpHost(const std::string& host);

}  // namespace net_internal
}  // namespace mill

#endif  // MILL_IO_NET_INTERNAL_SYS_SOCKET_H_
