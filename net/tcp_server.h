// TcpServer: accepts TCP (or Unix-domain stream) connections on an EventLoop
// and runs user callbacks for connect, data and close, so applications do not
// rewrite connection handling (non-blocking I/O, output buffering and
// backpressure, half-close, resets, idle timeouts, connection limits, read-rate
// limits, descriptor exhaustion).
//
// Threading: callbacks run where the loop runs handlers: on its workers in
// DispatchMode::kPool, on the loop thread in kDirect. For one connection,
// on_connect, on_data, on_peer_shutdown, on_low_water and on_close never
// overlap and come in that order (on_close last, exactly once). on_high_water
// runs on the thread whose Send() crossed the mark. Different connections'
// callbacks run concurrently in pool mode.
//
// Thread-safety: every TcpServer member may be called from any thread.
// Stop() never deadlocks: called from outside any connection callback it
// returns once every connection is closed (on_close ran); from inside one
// it closes everything without waiting for callbacks running elsewhere.
//
// Ownership: the server borrows the EventLoop, which must outlive it; destroy
// the server before the loop (and not from inside its own callbacks). The
// server owns the listening socket and, while they are open, its
// connections. Its registrations are loop-named (EventLoop::Register
// without a token), so they never collide with the user's tokens.
//
// Descriptor exhaustion: the server keeps one spare descriptor (/dev/null).
// When accept fails with EMFILE/ENFILE it closes the spare, accepts and
// immediately closes the pending connection, then reopens the spare (the
// libev/libuv technique): the peer sees a prompt close, the listener does not
// stay readable forever (no busy loop), and accepting resumes by itself once
// descriptors are free. If the spare cannot be reopened, or on ENOBUFS and
// the like, accepting pauses for accept_retry_delay.
#ifndef MILL_IO_NET_TCP_SERVER_H_
#define MILL_IO_NET_TCP_SERVER_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "net/connection.h"
#include "net/connection_layer.h"
#include "net/socket_address.h"
#include "net/tcp_listener.h"
#include "net/tcp_stream.h"
#include "ratelimit/clock.h"
#include "ratelimit/token_bucket.h"
#include "reactor/event_loop.h"

namespace mill {

namespace net_internal {
class ServerCore;
}  // namespace net_internal

// What the server's connections call (see ConnectionCallbacks).
using TcpServerCallbacks = ConnectionCallbacks;

struct TcpServerOptions {
  TcpListenerOptions listener;
  // Applied to every accepted connection (idle timeout, backpressure, input
  // bound, read-rate limits, socket options).
  ConnectionOptions connection;
  // Open connections at most; more are accepted and closed at once
  // (counted in Stats::refused). 0: unlimited.
  size_t max_connections = 0;
  // Connections accepted per readiness event (fairness with other sources).
  int max_accepts_per_event = 64;
  // Pause before accepting again after an accept error that the spare
  // descriptor cannot absorb.
  absl::Duration accept_retry_delay = absl::Milliseconds(100);
  // The protocol accepted connections speak over TCP (null: plain TCP), e.g.
  // a TlsServerContext (//tls). A connection whose handshake fails (or
  // times out) never reaches on_connect: it is counted in
  // Stats::handshakes_failed and closed_by[kHandshakeFailed], and
  // on_handshake_failed hears why. The server keeps serving.
  std::shared_ptr<const ConnectionLayer> layer;
  // Optional; runs where the connection's callbacks would have run.
  std::function<void(const SocketAddress& peer, const absl::Status& error)>
      on_handshake_failed;
};

// Counters, readable at any time (each one is exact; together they are a
// snapshot taken without a global lock).
struct TcpServerStats {
  // Accepted connections: handed to on_connect, or with a layer (TLS) to
  // its handshake first (those that fail it are handshakes_failed).
  uint64_t accepted = 0;
  uint64_t refused = 0;  // closed at once: max_connections reached
  // Accepted through the spare descriptor and closed: EMFILE / ENFILE.
  uint64_t refused_no_descriptor = 0;
  uint64_t accept_errors = 0;  // other accept failures
  uint64_t accept_pauses = 0;  // accepting paused for accept_retry_delay
  // Connections whose layer's handshake (TLS) failed or timed out.
  uint64_t handshakes_failed = 0;
  size_t active = 0;  // open connections
  uint64_t bytes_read = 0;
  uint64_t bytes_written = 0;
  // System calls that wrote output (writev, sendfile): with Sends inside
  // callbacks gathered, about one per callback that sent.
  uint64_t write_calls = 0;
  // Bytes the read path copied after reading them: 0 while every read
  // lands in place in the input buffer (see Connection); reads larger than
  // the buffer's free room copy their overflow.
  uint64_t input_bytes_copied = 0;
  uint64_t high_water_events = 0;
  uint64_t rate_limit_pauses = 0;
  // Closed connections by CloseReason (kRefused counts both refusals).
  std::array<uint64_t, kCloseReasonCount> closed_by{};

  uint64_t closed(CloseReason reason) const {
    return closed_by[static_cast<int>(reason)];
  }
};

// A TCP server on an EventLoop.
//
//   mill::TcpServerCallbacks cb;
//   cb.on_data = [](const mill::ConnectionPtr& c, mill::ByteBuffer& in) {
//     c->Send(in.view());
//     in.Consume(in.size());
//   };
//   absl::StatusOr<std::unique_ptr<mill::TcpServer>> server =
//       mill::TcpServer::Create(loop.get(),
//                               mill::SocketAddress::LoopbackIPv4(0), cb);
//   uint16_t port = (*server)->local_address().port();
//   loop->Run();         // until loop->Stop()
//   (*server)->Stop();   // or let the destructor do it
class TcpServer {
 public:
  // Binds, listens and registers with `loop` (connections are accepted as
  // soon as the loop runs). Errors: InvalidArgument for bad options, errno
  // statuses from socket/bind/listen, the loop's Register error.
  static absl::StatusOr<std::unique_ptr<TcpServer>> Create(
      EventLoop* loop, const SocketAddress& address,
      TcpServerCallbacks callbacks, TcpServerOptions options = {});

  // Serves on `listening_fd`, a socket already bound and listening (one a
  // service manager passed, see ListenFdsFromEnvironment in
  // net/socket_activation.h, or one inherited from a parent): AF_INET,
  // AF_INET6 or AF_UNIX, SOCK_STREAM. The server owns it on success (made
  // non-blocking and close-on-exec); the caller keeps it on failure.
  // options.listener is not used. Errors: InvalidArgument for a descriptor
  // that is not a socket, not a stream socket, of another family or not
  // listening (and as Create for bad options), errno statuses otherwise.
  static absl::StatusOr<std::unique_ptr<TcpServer>> Adopt(
      EventLoop* loop, int listening_fd, TcpServerCallbacks callbacks,
      TcpServerOptions options = {});

  TcpServer(const TcpServer&) = delete;
  TcpServer& operator=(const TcpServer&) = delete;

  // Stop(). Not from inside this server's callbacks.
  ~TcpServer();

  // The bound address (with the real port after binding port 0).
  const SocketAddress& local_address() const { return local_address_; }

  // Stops accepting, closes the listener and every connection (reason
  // kStopped, pending output dropped; on_close runs for each).
  // Idempotent. See the file comment for calls from callbacks.
  void Stop();

  // Sends `data` to every open connection; returns how many accepted it.
  size_t Broadcast(absl::string_view data);

  // The open connections (a snapshot).
  std::vector<ConnectionPtr> Connections() const;
  size_t connection_count() const;

  TcpServerStats stats() const;

 private:
  TcpServer(std::shared_ptr<net_internal::ServerCore> core,
            SocketAddress local_address);
  // Create and Adopt's common end: registers `listener`.
  static absl::StatusOr<std::unique_ptr<TcpServer>> Serve(
      EventLoop* loop, TcpListener listener, TcpServerCallbacks callbacks,
      TcpServerOptions options, bool release_on_error);

  std::shared_ptr<net_internal::ServerCore> core_;
  SocketAddress local_address_;
};

}  // namespace mill

#endif  // MILL_IO_NET_TCP_SERVER_H_
