// Connection: one TCP connection on an EventLoop, the same type whether a
// TcpServer accepted it or a TcpClient opened it. It does the non-blocking
// I/O and runs the callbacks its creator was given (ConnectionCallbacks) with
// the creator's options (ConnectionOptions).
//
// Input stays in the connection until the user consumes it: on_data gets the
// connection's input ByteBuffer; the protocol code consumes the bytes it
// handled and leaves a partial message there for the next call, so it keeps
// no copy of its own. The buffer holds at most max_input_bytes: above that
// the connection stops reading until the user consumes (or, if asked, closes
// with kInputOverflow).
//
// Output is buffered with backpressure: Send() writes straight to the socket
// when nothing is queued and keeps the rest; SendFile() queues a file range
// (sent with sendfile(2), never read into memory). Writable readiness is
// requested only while output is pending. When the queue reaches
// high_water_mark, on_high_water runs (and by default reading pauses) until
// it drains to low_water_mark (on_low_water).
//
// Lifecycle: one state, plus the reasons reading is paused.
//
//   kConnecting --connect done--> kOpen --Close()--> kClosing --flushed--+
//        |                          |                    |              |
//        +-- connect failed         +--------------------+--------------+-->
//        kClosed
//            (a client's only)        error, reset, peer EOF (flushed),
//                                     idle timeout, Abort(), owner Stop()
//
//   kConnecting: a client's socket is connecting; not yet given to the user.
//   kOpen:       reading (unless paused) and writing.
//   kClosing:    Close() was called: no more reading, pending output is
//                written, then the connection closes (kClosedLocally).
//   kClosed:     the socket is closed or about to be (no more callbacks but
//                the pending on_close).
// Half-closes are facts beside the state: the peer's EOF (input_ended())
// and Shutdown(), after which our side sends FIN once output is flushed.
// Pause reasons (any set pauses reading; see PauseReason) are independent of
// the state and are cleared by what set them.
//
// Threading: callbacks of one connection never overlap and come in order:
// on_connect first, then on_data / on_peer_shutdown / on_low_water, on_close
// last and exactly once (for a connection that reached kOpen). They run where
// the loop runs handlers (a worker in pool mode, the loop thread in direct
// mode), except on_high_water, which runs on the thread whose Send crossed
// the mark. Dispatch(fn) runs fn excluded from them likewise.
//
// Thread-safety: every member function may be called from any thread at any
// time, including from other connections' callbacks and after the
// connection closed (Send then fails, Close does nothing) — except input(),
// which only the connection's own callbacks and Dispatch tasks may touch.
// Sends from one thread reach the peer in call order; each Send is atomic
// (never interleaved with another's bytes).
//
// Ownership: a Connection owns its socket and closes it after the loop has
// released the registration. Its creator keeps it alive while it is open;
// user code may hold a ConnectionPtr as long as it likes (the object then
// outlives the socket).
#ifndef MILL_IO_NET_CONNECTION_H_
#define MILL_IO_NET_CONNECTION_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <ostream>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "net/byte_buffer.h"
#include "net/internal/idle_tracker.h"
#include "net/internal/small_queue.h"
#include "net/socket_address.h"
#include "net/tcp_stream.h"
#include "poll/event.h"
#include "poll/interest.h"
#include "ratelimit/clock.h"
#include "ratelimit/rate_limit_group.h"
#include "ratelimit/token_bucket.h"
#include "reactor/event_handler.h"
#include "reactor/event_loop.h"

namespace mill {

class Connection;
using ConnectionPtr = std::shared_ptr<Connection>;

namespace net_internal {
struct ConnectionConfig;
class ConnectionOwner;
struct ConnectionAccess;
}  // namespace net_internal

// Why a connection closed (on_close, stats).
enum class CloseReason : uint8_t {
  kPeerClosed,     // the peer shut down (EOF); our pending output was flushed
  kReset,          // ECONNRESET / EPIPE: the peer reset the connection
  kError,          // another socket error (the status says which)
  kIdleTimeout,    // no traffic for ConnectionOptions::idle_timeout
  kClosedLocally,  // Connection::Close() or Abort()
  kStopped,        // its TcpServer or TcpClient stopped (or was destroyed)
  kRefused,        // over max_connections or out of descriptors; stats only:
                   // refused connections never reach the callbacks
  kInputOverflow,  // input reached max_input_bytes with
                   // close_on_input_overflow set
};
inline constexpr int kCloseReasonCount = 8;

// "peer_closed", "reset", ...
absl::string_view CloseReasonName(CloseReason reason);
std::ostream& operator<<(std::ostream& os, CloseReason reason);

enum class ConnectionState : uint8_t { kConnecting, kOpen, kClosing, kClosed };
absl::string_view ConnectionStateName(ConnectionState state);

// Why reading is paused; a bit set (Connection::pause_reasons()).
enum PauseReason : uint32_t {
  kPausedOutputFull = 1,  // output at the high-water mark (until low water)
  kPausedRateLimit = 2,   // read rate limit: resumes when tokens are back
  kPausedInputFull = 4,   // input holds max_input_bytes (until consumed)
  kPausedByUser = 8,      // PauseReading() (until ResumeReading())
};

// What a connection calls. Every callback is optional.
struct ConnectionCallbacks {
  // The connection is open (accepted, or a client's connect completed);
  // before any other callback of it.
  std::function<void(const ConnectionPtr&)> on_connect;
  // New bytes were appended to `input` (the connection's input buffer, also
  // conn->input()). Consume what you handled; the rest stays for next time.
  std::function<void(const ConnectionPtr&, ByteBuffer& input)> on_data;
  // The peer shut down its write side (EOF); every byte it sent is in the
  // input buffer. When set, the connection stays open for our replies: call
  // Close() (or Shutdown()) when done. When unset, the connection closes
  // after flushing pending output (kPeerClosed).
  std::function<void(const ConnectionPtr&)> on_peer_shutdown;
  // Pending output grew to high_water_mark or more (once per crossing);
  // `pending` is the queue size in bytes. Runs on the sending thread.
  std::function<void(const ConnectionPtr&, size_t pending)> on_high_water;
  // Pending output drained to low_water_mark after a high-water crossing.
  std::function<void(const ConnectionPtr&)> on_low_water;
  // The connection is closed (socket closed, registration released);
  // `status` carries the error for kReset and kError, OK otherwise.
  std::function<void(const ConnectionPtr&, CloseReason, const absl::Status&)>
      on_close;
};

// Per-connection options, the same for accepted and outbound connections.
struct ConnectionOptions {
  // TCP_NODELAY, SO_KEEPALIVE.
  TcpStreamOptions socket;
  // Closes the connection after this long without traffic (bytes read or
  // written). Zero: never.
  absl::Duration idle_timeout = absl::ZeroDuration();
  // Output backpressure. 0 disables the high-water mark.
  size_t high_water_mark = 1 << 20;
  size_t low_water_mark = 256 << 10;
  // Stop reading while output is above high_water_mark, until it drains to
  // low_water_mark (so a peer that does not read cannot make us buffer
  // without bound by sending requests).
  bool pause_reading_above_high_water = true;
  // Most unconsumed input held (at least 1). Above it reading pauses until
  // the user consumes, or the connection closes (kInputOverflow) when
  // close_on_input_overflow is set.
  size_t max_input_bytes = 1 << 20;
  bool close_on_input_overflow = false;
  // Read-rate limit per connection in bytes per second (0: none), with
  // bursts of up to read_burst bytes (0: the loop's read_budget).
  double read_rate = 0;
  uint64_t read_burst = 0;
  // A read limit shared with other connections (null: none).
  std::shared_ptr<TokenBucket> shared_read_limit;
  // Clock of the per-connection bucket (tests); null: steady clock.
  const MonotonicClock* rate_limit_clock = nullptr;
};

// A TCP connection. Obtained from TcpServer and TcpClient callbacks; never
// constructed by users.
//
//   callbacks.on_data = [](const mill::ConnectionPtr& c,
//                          mill::ByteBuffer& input) {
//     c->Send(input.view());  // echo; any thread may Send
//     input.Consume(input.size());
//   };
//
// Closing: Close() flushes pending output, then closes; Shutdown() flushes,
// then half-closes (SHUT_WR) and keeps reading; Abort() closes at once and
// drops pending output.
class Connection : public std::enable_shared_from_this<Connection>,
                   private EventHandler {
 public:
  // Only TcpServer and TcpClient can make one (the constructor is public
  // for std::make_shared: one allocation for object and control block).
  class PassKey {
   private:
    friend struct net_internal::ConnectionAccess;
    PassKey() = default;
  };
  Connection(PassKey, std::shared_ptr<net_internal::ConnectionOwner> owner,
             uint64_t id, bool outbound, TcpStream stream, SocketAddress peer);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // Unique among the connections of its TcpServer or TcpClient, from 1.
  uint64_t id() const { return id_; }
  // True for a connection a TcpClient opened, false for an accepted one.
  bool is_outbound() const { return outbound_; }
  const SocketAddress& peer_address() const { return peer_; }
  // Our end's address (getsockname; the default address once closed).
  SocketAddress local_address() const;
  EventLoop* loop() const { return loop_; }

  ConnectionState state() const;
  bool is_closed() const { return closed_.load(std::memory_order_acquire); }
  // True in kOpen (and kConnecting) before Close/Shutdown/Abort.
  bool can_send() const;
  // The peer sent EOF.
  bool input_ended() const;
  // PauseReason bits currently set; reading_paused() is "any".
  uint32_t pause_reasons() const;
  bool reading_paused() const { return pause_reasons() != 0; }
  // The interest currently registered with the loop: WRITABLE while output
  // is pending (or a connect is in progress), READABLE while reading is
  // wanted and not paused, Interest::None() when neither. For tests.
  Interest interest() const;

  // Queues `data` for the peer (a direct write when nothing is pending).
  // FailedPrecondition once Close(), Shutdown() or Abort() was called or
  // the connection closed; an errno status if the socket failed (the
  // connection is then closing with reason kReset or kError).
  absl::Status Send(absl::string_view data);

  // Queues `length` bytes of file `fd` from `offset`, in order with Send()'s
  // bytes, sent with sendfile(2) (a bounded read-and-write loop where the
  // platform has none); the file is never read into memory. Its bytes count
  // as pending output for backpressure. `fd` must stay open until `release`
  // runs: exactly once, when the range was sent or dropped (the connection
  // closed), on whichever thread that happened; it must not block. A file
  // shorter than offset + length closes the connection (kError).
  // FailedPrecondition like Send.
  absl::Status SendFile(int fd, uint64_t offset, uint64_t length,
                        absl::AnyInvocable<void()> release = nullptr);

  // Stops reading after pending output is written, then closes (reason
  // kClosedLocally). Idempotent.
  void Close();
  // Closes now, dropping pending output (reason kClosedLocally).
  void Abort();
  // Half-close: once pending output is written, shuts down our write side
  // (the peer reads EOF); reading continues until the peer closes too.
  void Shutdown();

  // Pauses / resumes reading at the user's request (kPausedByUser), e.g. a
  // proxy whose other side cannot take more. Resuming with unconsumed input
  // calls on_data again (as if bytes had arrived), so a parser that stopped
  // early picks up where it left off.
  void PauseReading();
  void ResumeReading();

  // The input buffer. Only from this connection's callbacks and Dispatch
  // tasks (which never overlap).
  ByteBuffer& input() { return input_; }

  // Runs `fn` excluded from this connection's callbacks: at once on this
  // thread when none of them runs, otherwise right after the running one
  // returns, on its thread. Tasks run in the order dispatched; a task may
  // use input() and call Close() (carried out when it returns). After the
  // connection closed, tasks still run (is_closed() is then true).
  void Dispatch(absl::AnyInvocable<void(const ConnectionPtr&)> fn);

  // Bytes queued and not yet written (file ranges included).
  size_t pending_output_bytes() const;

  // Checks, without blocking or reading, that an idle connection can be
  // reused (a connection pool's check before handing it out): OK if it is
  // open, the peer has not sent EOF, and nothing is waiting to be read
  // (peeked at on the socket). Unavailable when the peer closed or reset
  // it (or it is closing), FailedPrecondition when input is waiting
  // (unexpected for an idle connection). Does not close it.
  absl::Status Probe() const;

  uint64_t bytes_received() const {
    return bytes_in_.load(std::memory_order_relaxed);
  }
  uint64_t bytes_sent() const {
    return bytes_out_.load(std::memory_order_relaxed);
  }

  // User context: any object, shared. Thread-safe. The previous context is
  // released after the connection's lock, so its destructor may call back.
  void SetContext(std::shared_ptr<void> context);
  template <typename T>
  std::shared_ptr<T> GetContext() const {
    return std::static_pointer_cast<T>(GetContextVoid());
  }

 private:
  friend struct net_internal::ConnectionAccess;

  // A queued output piece: bytes, or a file range.
  struct OutputPiece {
    ByteBuffer bytes;
    int fd = -1;  // >= 0: a file range
    uint64_t offset = 0;
    uint64_t remaining = 0;
    absl::AnyInvocable<void()> release;
  };

  std::shared_ptr<void> GetContextVoid() const;

  // Called by the owner once, on the thread that created the connection:
  // kOpen connections run on_connect and register; kConnecting ones
  // register for writability and report to the owner when done.
  void Start();
  void StartOpen();

  // Event-loop side (EventHandler): runs on the connection's handler
  // thread.
  void HandleEvent(const Event& event) override;
  std::shared_ptr<EventHandler> AsHandler();
  void FinishConnect(const Event& event);
  // Reads up to the budget; false when the connection was torn down.
  bool ReadSome();
  void HandleEventExcluded(const Event& event);
  void DeliverInput();
  void OnPeerEof();
  void PauseForRate(size_t wanted);

  // The one write loop: writes `data` until done or EAGAIN; returns the
  // bytes written and sets *error to the errno of a failure.
  size_t WriteBytesLocked(absl::string_view data, int* error);
  void CountWrittenLocked(size_t written);
  // Writes pending output until EAGAIN. Returns 0 or the errno that failed.
  // Sets *below_low_water when the queue drained past the low-water mark.
  int FlushLocked(bool* below_low_water,
                  std::vector<absl::AnyInvocable<void()>>* released);
  // Appends to the output queue; true when it crossed the high-water mark.
  bool QueueLocked(OutputPiece piece);
  size_t PendingLocked() const { return pending_bytes_; }
  Interest ComputeInterestLocked() const;
  void UpdateInterestLocked();
  bool WantsReadLocked() const;
  void SetPauseLocked(uint32_t reason, bool on);
  // Input-size bookkeeping after a callback consumed (or not).
  void CheckInputLocked();

  // Records a close request; true if it is new (then ScheduleTeardown()).
  bool MarkTeardownLocked(CloseReason reason, absl::Status status);
  void ScheduleTeardown();
  void RunPendingTeardown();
  // Closes the connection (idempotent): releases the registration and,
  // once the loop is done with it, closes the socket and runs on_close.
  void Teardown(CloseReason reason, absl::Status status);
  void FinishClose(CloseReason reason, absl::Status status);
  void ArmIdleTimerLocked();
  void OnIdleExpired();
  void Touch();

  // The serial executor of callbacks (Dispatch and HandleEvent).
  bool EnterCallbacks();
  void LeaveCallbacks();
  void RunExcluded(absl::AnyInvocable<void(const ConnectionPtr&)> fn);

  // Ordered by size, so that padding does not grow every connection.
  // The owner keeps the config alive.
  const std::shared_ptr<net_internal::ConnectionOwner> owner_;
  const net_internal::ConnectionConfig* const config_;
  EventLoop* const loop_;
  const uint64_t id_;
  // Null without read-rate limits; immutable after construction.
  std::unique_ptr<RateLimiter> limiter_;

  mutable std::mutex mu_;
  net_internal::SmallQueue<OutputPiece> out_;
  size_t pending_bytes_ = 0;
  Registration registration_;
  absl::Status pending_status_;
  net_internal::IdleTracker::Node idle_node_;  // guarded by the tracker
  EventLoop::TimerId resume_timer_;
  std::shared_ptr<void> context_;
  // Callback exclusion (see EnterCallbacks), guarded by mu_.
  net_internal::SmallQueue<absl::AnyInvocable<void(const ConnectionPtr&)>>
      exec_queue_;
  ByteBuffer input_;  // callbacks only
  std::atomic<std::thread::id> handler_thread_{};
  std::atomic<int64_t> last_activity_ns_{0};
  std::atomic<uint64_t> bytes_in_{0};
  std::atomic<uint64_t> bytes_out_{0};

  const SocketAddress peer_;
  TcpStream stream_;  // fd used without mu_ only by the handler
  // Smallest grant worth a read: min(4 KiB, smallest burst).
  uint32_t min_grant_ = 4096;
  uint32_t pause_ = 0;  // PauseReason bits
  ConnectionState state_;
  CloseReason close_reason_ = CloseReason::kClosedLocally;  // for kClosing
  CloseReason pending_reason_ = CloseReason::kClosedLocally;
  Interest interest_ = Interest::None();
  const bool outbound_;
  bool input_ended_ = false;
  bool shutdown_requested_ = false;  // SHUT_WR once flushed
  bool write_shut_ = false;
  bool above_high_water_ = false;
  bool opened_ = false;  // on_connect ran: on_close is owed
  bool registered_ = false;
  bool teardown_pending_ = false;
  bool redeliver_ = false;  // ResumeReading with input pending
  bool exec_busy_ = false;
  std::atomic<bool> closed_{false};
};

}  // namespace mill

#endif  // MILL_IO_NET_CONNECTION_H_
