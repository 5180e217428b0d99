// TcpStream: an owned, non-blocking TCP connection socket.
//
// The //net layer's connection descriptor: TcpServer adopts accepted sockets
// as TcpStreams, and clients create them with Connect(). Reads and writes are
// thin wrappers over recv(2)/send(2) that never block, never raise SIGPIPE
// (MSG_NOSIGNAL) and retry EINTR; they return the system call's result and
// leave errno set, so the hot path allocates nothing.
//
// Thread-safety: thread-compatible. Distinct streams may be used from
// different threads; one stream's const getters may run concurrently.
// Ownership: a TcpStream owns its descriptor (RAII, move-only) and closes it
// on destruction unless Release()d. Deregister it from any EventLoop before
// the stream is destroyed.
#ifndef MILL_IO_NET_TCP_STREAM_H_
#define MILL_IO_NET_TCP_STREAM_H_

#include <sys/types.h>

#include <cstddef>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "net/socket_address.h"

namespace mill {

// Per-socket options of a connection. TCP-only: skipped (not an error) on
// Unix-domain sockets.
struct TcpStreamOptions {
  // TCP_NODELAY: disable Nagle's algorithm (small writes go out at once).
  bool no_delay = false;
  // SO_KEEPALIVE: let the kernel probe idle peers.
  bool keep_alive = false;
};

// A connected (or connecting) non-blocking TCP socket.
//
//   absl::StatusOr<mill::TcpStream> s = mill::TcpStream::ConnectAndWait(
//       mill::SocketAddress::LoopbackIPv4(port), absl::Seconds(5));
//   if (!s.ok()) return s.status();
//   ssize_t n = s->Write(data.data(), data.size());  // -1 + errno EAGAIN...
//
// Read/Write follow recv/send: -1 with errno on failure (EAGAIN when the
// socket is not ready), 0 from Read at end of stream. On Windows errno gets
// the meaning of the Winsock error (WSAGetLastError() keeps the code).
class TcpStream {
 public:
  // An empty stream (fd() == -1).
  TcpStream() = default;
  // Adopts `fd` (made non-blocking). InvalidArgument for a negative fd. No
  // other check: TcpClient::Adopt checks that it is a connected socket.
  static absl::StatusOr<TcpStream> Adopt(int fd,
                                         const TcpStreamOptions& options = {});

  // Starts a non-blocking connect. Returns the stream at once; the connect
  // may still be in progress (connect_pending() is then true): wait until it
  // is writable and call FinishConnect(). Errors other than EINPROGRESS fail.
  static absl::StatusOr<TcpStream> Connect(
      const SocketAddress& address, const TcpStreamOptions& options = {});

  // Connect() and wait (with poll(2)) up to `timeout` for it to complete.
  // For clients, tools and tests; the stream stays non-blocking.
  static absl::StatusOr<TcpStream> ConnectAndWait(
      const SocketAddress& address, absl::Duration timeout,
      const TcpStreamOptions& options = {});

  TcpStream(TcpStream&& other) noexcept;
  TcpStream& operator=(TcpStream&& other) noexcept;
  TcpStream(const TcpStream&) = delete;
  TcpStream& operator=(const TcpStream&) = delete;
  ~TcpStream();

  int fd() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  bool connect_pending() const { return connect_pending_; }

  // Completes a pending connect: the socket's SO_ERROR as a status (then
  // connect_pending() is false), or FailedPrecondition while the connect is
  // still in progress (a spurious readiness report; wait again).
  absl::Status FinishConnect();

  // recv(2) / send(2) with MSG_NOSIGNAL; EINTR retried.
  ssize_t Read(void* data, size_t size);
  ssize_t Write(const void* data, size_t size);

  // shutdown(2): SHUT_RD, SHUT_WR or SHUT_RDWR.
  absl::Status Shutdown(int how);

  absl::Status SetNoDelay(bool on);
  absl::Status SetKeepAlive(bool on);
  // SO_LINGER {on, 0}: close() then sends RST instead of FIN (abort).
  absl::Status SetLingerZero();

  absl::StatusOr<SocketAddress> local_address() const;
  absl::StatusOr<SocketAddress> peer_address() const;

  // Gives up ownership: returns the descriptor and leaves the stream empty.
  int Release();
  // Closes now (idempotent).
  void Close();

 private:
  explicit TcpStream(int fd) : fd_(fd) {}
  absl::Status Apply(const TcpStreamOptions& options);

  int fd_ = -1;
  bool connect_pending_ = false;
};

}  // namespace mill

#endif  // MILL_IO_NET_TCP_STREAM_H_
