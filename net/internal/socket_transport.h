// SocketTransport: the Transport of a stream socket whose readiness comes
// from the EventLoop (epoll, kqueue, poll(2), or AFD polls through an IOCP on
// Windows): recv into the input buffer, a gathered send (sendmsg, WSASend)
// from the output queue, sendfile(2) for file ranges (on Windows a bounded
// read-and-send step). The socket calls are net/internal/sys_socket.h's.
// Internal: not part of the API; see transport.h for the contract.
//
// Reads go straight into the input buffer's free room with recv(2), so an
// echo or a parser that consumes in place copies nothing. When a read fills
// the room (a pooled block, usually: bulk data, a large message) the next
// ones first grow the buffer to hold a whole read, which moves nothing
// while the buffer is empty; a read that would have fitted ends that. No
// readv(2) into a scratch area (muduo's Buffer::readFd): it copied every
// byte of a large read once and cost the kernel more per call
// (docs/ARCHITECTURE.md has the measurements).
//
// On an io_uring loop the loop's backend receives ahead instead
// (reactor/internal/receive_ahead.h): a multishot receive fills the ring's
// provided buffers, a report means the bytes are there, and Read copies
// them into the input buffer with no system call. Every read then goes
// through the backend, so bytes keep their order.
//
// Thread-safety: as transport.h says; the transport adds no lock of its
// own (registration_ is written by Start and Release, which the
// connection's state machine orders: SetInterest is never called after
// Release). Ownership: owns the socket; lives inside its connection.
#ifndef MILL_IO_NET_INTERNAL_SOCKET_TRANSPORT_H_
#define MILL_IO_NET_INTERNAL_SOCKET_TRANSPORT_H_

#include "net/internal/transport.h"
#include "net/tcp_stream.h"
#include "reactor/event_handler.h"
#include "reactor/event_loop.h"

namespace mill {
namespace net_internal {

// Not final: a layered transport (TLS) derives from it to reuse the
// registration, the connect and the descriptor, and replaces the byte
// moving (Read, Write, SendFile, ...) and the report (HandleEvent).
class SocketTransport : public Transport, public RegisteredHandler {
 public:
  // `conn` is the connection this transport lives in.
  SocketTransport(Connection* conn, TcpStream stream);

  absl::Status Start(Interest interest) override;
  void SetInterest(Interest interest) override;
  void Release(absl::AnyInvocable<void()> on_released) override;
  void CloseNow() override;
  absl::Status FinishConnect(bool* in_progress, CloseReason* reason) override;
  absl::Status TakeError(CloseReason* reason) override;
  IoResult Read(ByteBuffer& input, size_t max, size_t* copied) override;
  IoResult Write(absl::Span<const absl::string_view> pieces) override;
  IoResult SendFile(int fd, uint64_t offset, size_t length) override;
  absl::Status ShutdownWrite() override;
  absl::Status Probe() const override;
  absl::StatusOr<SocketAddress> LocalAddress() const override;

  int descriptor() const override { return stream_.fd(); }

  int fd() const { return stream_.fd(); }

 protected:
  // EventHandler: the loop's report, passed on to the connection. (A
  // RegisteredHandler: the loop's state for the registration lives in the
  // connection's own allocation.)
  void HandleEvent(const Event& event) override;
  // Whether the loop may receive this socket's bytes ahead (Read and Probe
  // then take them from it). A transport that reads the socket itself
  // (TLS, through OpenSSL) says no.
  virtual bool MayReceiveAhead() const { return true; }

  Connection* connection() const { return conn_; }
  const TcpStream& stream() const { return stream_; }

 private:
  // Read on a receive-ahead socket, and the room it gives an empty input
  // buffer.
  IoResult ReadAhead(ByteBuffer& input, size_t max, size_t* copied);
  static constexpr size_t kAheadRoom = size_t{16} * 1024;

  Connection* const conn_;
  // no_unique_address: reads_fill_room_ lives in the stream's tail padding,
  // so the flag costs no byte per connection.
  [[no_unique_address]] TcpStream stream_;
  // The last read filled the input buffer's room: grow the room before the
  // next one. Read path only (the connection's serial context).
  bool reads_fill_room_ = false;
  // The loop's backend receives ahead for this socket: set by Start before
  // the registration exists, so every Read sees it.
  bool receives_ahead_ = false;
  // A connecting socket that receives ahead once connected (FinishConnect).
  bool ahead_once_connected_ = false;
  Registration registration_;  // valid between Start and Release
};

// What a failed socket call's error code (errno; a WSA code on Windows)
// means for the connection: ECONNRESET and friends are kReset (the peer
// went away abruptly), the rest kError.
CloseReason ReasonForErrno(int err);

}  // namespace net_internal
}  // namespace mill

#endif  // MILL_IO_NET_INTERNAL_SOCKET_TRANSPORT_H_
