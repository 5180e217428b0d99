// TcpListener: an owned, non-blocking listening socket: TCP (IPv4, IPv6) or
// Unix-domain (stream).
//
// Bind() creates, configures (SO_REUSEADDR, SO_REUSEPORT, backlog), binds and
// listens in one step; Accept() takes one pending connection without
// blocking. TcpServer builds on it; use it directly to drive accept yourself.
// Adopt() takes over a socket that is already listening (one a service
// manager passed, see net/socket_activation.h).
//
// Unix socket files (the stale-file policy): binding a path that exists
// fails with EADDRINUSE unless the file is a socket nobody listens on (a
// connect to it is refused: its server died without removing it); that
// stale file is removed and the bind retried. A file that is not a socket
// is never removed (FailedPrecondition), nor is a live server's socket taken
// over (AlreadyExists; the probe's connect shows up at that server as a
// connection closed at once). The file stays when the listener closes (as with
// most servers: the next Bind removes it); unlink it yourself to clean up.
// The listen options' reuse_address/reuse_port/ipv6_only do not apply to
// Unix sockets and are skipped there.
//
// Thread-safety: thread-compatible; Accept() may be called from several
// threads at once (the kernel serializes accept).
// Ownership: owns its descriptor (RAII, move-only); closes it on destruction.
// Deregister it from any EventLoop first.
#ifndef MILL_IO_NET_TCP_LISTENER_H_
#define MILL_IO_NET_TCP_LISTENER_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "net/socket_address.h"
#include "net/tcp_stream.h"

namespace mill {

struct TcpListenerOptions {
  // SO_REUSEADDR: rebind right after a restart (TIME_WAIT). On by default.
  bool reuse_address = true;
  // SO_REUSEPORT: several listeners (processes) share the port.
  bool reuse_port = false;
  // listen(2) backlog (the kernel caps it at net.core.somaxconn).
  int backlog = 1024;
  // IPV6_V6ONLY for IPv6 addresses (false: also accept IPv4-mapped).
  bool ipv6_only = false;
};

// A bound, listening socket.
//
//   absl::StatusOr<mill::TcpListener> l =
//       mill::TcpListener::Bind(mill::SocketAddress::LoopbackIPv4(0));
//   uint16_t port = l->local_address()->port();   // the kernel's pick
//   absl::StatusOr<mill::TcpStream> s = l->Accept();  // Unavailable: none
class TcpListener {
 public:
  TcpListener() = default;  // empty (fd() == -1)

  static absl::StatusOr<TcpListener> Bind(
      const SocketAddress& address, const TcpListenerOptions& options = {});

  // Takes over `fd`, a listening stream socket (AF_INET, AF_INET6 or
  // AF_UNIX); makes it non-blocking and close-on-exec. InvalidArgument for
  // a descriptor that is not a socket, not a stream socket, of another
  // family or not listening; the caller keeps `fd` on failure.
  static absl::StatusOr<TcpListener> Adopt(int fd);

  TcpListener(TcpListener&& other) noexcept;
  TcpListener& operator=(TcpListener&& other) noexcept;
  TcpListener(const TcpListener&) = delete;
  TcpListener& operator=(const TcpListener&) = delete;
  ~TcpListener();

  int fd() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

  // The bound address, with the real port after binding port 0.
  absl::StatusOr<SocketAddress> local_address() const;

  // Accepts one connection (non-blocking, close-on-exec) with `options`
  // applied. errno-derived errors: Unavailable (EAGAIN: nothing pending),
  // ResourceExhausted (EMFILE/ENFILE/ENOBUFS), ... `peer` gets the address.
  absl::StatusOr<TcpStream> Accept(const TcpStreamOptions& options = {},
                                   SocketAddress* peer = nullptr);

  int Release();
  void Close();

 private:
  explicit TcpListener(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace mill

#endif  // MILL_IO_NET_TCP_LISTENER_H_
