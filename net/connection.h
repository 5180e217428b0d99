// Connection: one accepted TCP connection of a TcpServer, shared between the
// server, its event-loop registration and user code (ConnectionPtr).
//
// Output is buffered per connection with backpressure: Send() writes straight
// to the socket when nothing is queued and keeps the rest; the server asks
// the loop for writable readiness only while output is pending, and calls
// TcpServerCallbacks::on_high_water when the queue grows past
// TcpServerOptions::high_water_mark (by default it also stops reading from
// the connection until the queue drains to low_water_mark).
//
// Thread-safety: every member function may be called from any thread at any
// time, including from another connection's callbacks or a compute task, and
// after the connection closed (Send then fails, Close does nothing). Sends
// from one thread reach the peer in call order; sends from different threads
// are serialized (each Send is atomic: its bytes are never interleaved with
// another Send's).
//
// Ownership: a Connection owns its socket. The server keeps it alive while it
// is open; user code may hold a ConnectionPtr for as long as it likes (the
// object then outlives the socket, which the server closes). The descriptor
// is deregistered from the loop before it is closed.
#ifndef MILL_IO_NET_CONNECTION_H_
#define MILL_IO_NET_CONNECTION_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "net/socket_address.h"
#include "net/tcp_stream.h"
#include "poll/event.h"
#include "poll/interest.h"
#include "poll/token.h"
#include "ratelimit/rate_limit_group.h"
#include "reactor/event_loop.h"

namespace mill {

namespace net_internal {
struct ServerCore;
class ConnectionHandler;
class HandlerScope;
}  // namespace net_internal

// Why a connection was closed (TcpServerCallbacks::on_close, stats).
enum class CloseReason {
  kPeerClosed,     // the peer shut down (EOF); our pending output was flushed
  kReset,          // ECONNRESET / EPIPE: the peer reset the connection
  kError,          // another socket error (the status says which)
  kIdleTimeout,    // no traffic for TcpServerOptions::idle_timeout
  kClosedLocally,  // Connection::Close() or Abort()
  kServerStopped,  // TcpServer::Stop() or the server's destructor
  kRefused,        // over max_connections or out of descriptors; stats only:
                   // refused connections never reach the callbacks
};
inline constexpr int kCloseReasonCount = 7;

// "peer_closed", "reset", ...
absl::string_view CloseReasonName(CloseReason reason);
std::ostream& operator<<(std::ostream& os, CloseReason reason);

// A server-side TCP connection. Obtained from TcpServer callbacks (and
// TcpServer::Connections()); never constructed by users.
//
//   callbacks.on_data = [](const mill::ConnectionPtr& c,
//                          absl::string_view bytes) {
//     c->Send(bytes);  // echo; any thread may Send
//   };
//
// Closing: Close() flushes pending output, then closes; Shutdown() flushes,
// then half-closes (SHUT_WR) and keeps reading; Abort() closes at once and
// drops pending output. on_close runs exactly once per connection, after
// its last on_data.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // Unique within its server, from 1.
  uint64_t id() const { return id_; }
  const SocketAddress& peer_address() const { return peer_; }

  // Queues `data` for the peer (a direct write when nothing is pending).
  // FailedPrecondition once Close(), Shutdown() or Abort() was called or the
  // connection closed; an errno status if the socket failed (the connection
  // is then being closed with reason kReset or kError).
  absl::Status Send(absl::string_view data);

  // Closes after all pending output has been written (reason
  // kClosedLocally). Idempotent. Reading stops at once.
  void Close();
  // Closes now, dropping pending output (reason kClosedLocally).
  void Abort();
  // Half-close: after pending output is written, shuts down our write side
  // (the peer reads EOF); reading continues until the peer closes too.
  void Shutdown();

  // Bytes queued and not yet written to the socket.
  size_t pending_output_bytes() const;
  // True until Close/Shutdown/Abort is called or the connection closes.
  bool can_send() const;
  bool is_closed() const { return closed_.load(std::memory_order_acquire); }
  // Reading is paused by backpressure (high-water mark) or the rate limit.
  bool reading_paused() const;
  // The interest currently registered with the loop: WRITABLE only while
  // output is pending; READABLE unless reading is paused or finished.
  // (Interest::Priority() alone stands for "nothing": a registration can
  // not be empty.) For diagnostics and tests.
  Interest interest() const;

  uint64_t bytes_received() const {
    return bytes_in_.load(std::memory_order_relaxed);
  }
  uint64_t bytes_sent() const {
    return bytes_out_.load(std::memory_order_relaxed);
  }

  // User context: any object, shared. Thread-safe.
  void SetContext(std::shared_ptr<void> context);
  template <typename T>
  std::shared_ptr<T> GetContext() const {
    return std::static_pointer_cast<T>(GetContextVoid());
  }

 private:
  friend struct net_internal::ServerCore;
  friend class net_internal::ConnectionHandler;
  friend class net_internal::HandlerScope;

  Connection(std::shared_ptr<net_internal::ServerCore> core, uint64_t id,
             Token token, TcpStream stream, SocketAddress peer,
             RateLimiter limiter);

  std::shared_ptr<void> GetContextVoid() const;

  // Event-loop side (the connection's handler thread).
  void HandleEvent(const Event& event);
  // Returns false when the connection was torn down (stop touching it).
  bool ReadSome(bool ignore_pause);
  void OnPeerEof();
  void PauseForRate(size_t wanted);
  // After on_connect: registers with the loop (or tears down).
  void FinishAccept();

  // Writes pending output until EAGAIN. Returns 0 or the errno that failed.
  // Sets *below_low_water when the queue drained past the low-water mark.
  int FlushLocked(bool* below_low_water);
  Interest ComputeInterestLocked() const;
  void UpdateInterestLocked();
  bool ReadingEnabledLocked() const;
  // Records a teardown request; true if it is new (then call
  // ScheduleTeardown() after unlocking).
  bool MarkTeardownLocked(CloseReason reason, absl::Status status);
  void ScheduleTeardown();
  void RunPendingTeardown();
  // Closes the connection now (idempotent): deregister, close, on_close.
  void Teardown(CloseReason reason, absl::Status status);
  void ArmIdleTimerLocked(absl::Duration delay);
  void OnIdleTimer();
  void Touch();

  const std::shared_ptr<net_internal::ServerCore> core_;
  EventLoop* const loop_;
  const uint64_t id_;
  const Token token_;
  const SocketAddress peer_;
  RateLimiter limiter_;  // immutable after construction
  // Smallest grant worth a read: min(4 KiB, smallest burst).
  size_t min_grant_ = 4096;

  mutable std::mutex mu_;
  TcpStream stream_;  // fd used without mu_ only by the handler
  std::string out_;   // pending output is out_[out_pos_, size)
  size_t out_pos_ = 0;
  Interest interest_ = Interest::Readable();
  bool registered_ = false;
  bool close_requested_ = false;  // close after flush
  CloseReason close_reason_ = CloseReason::kClosedLocally;
  bool shutdown_requested_ = false;
  bool write_shut_ = false;
  bool read_eof_ = false;
  bool above_high_water_ = false;
  bool hw_paused_ = false;
  bool rate_paused_ = false;
  bool teardown_pending_ = false;
  CloseReason pending_reason_ = CloseReason::kClosedLocally;
  absl::Status pending_status_;
  EventLoop::TimerId idle_timer_;
  EventLoop::TimerId resume_timer_;
  std::shared_ptr<void> context_;

  std::atomic<bool> closed_{false};
  std::atomic<std::thread::id> handler_thread_{};
  std::atomic<int64_t> last_activity_ns_{0};
  std::atomic<uint64_t> bytes_in_{0};
  std::atomic<uint64_t> bytes_out_{0};
};

using ConnectionPtr = std::shared_ptr<Connection>;

}  // namespace mill

#endif  // MILL_IO_NET_CONNECTION_H_
