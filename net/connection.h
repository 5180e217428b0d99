// Connection: one TCP connection on an EventLoop, the same type whether a
// TcpServer accepted it or a TcpClient opened it. It does the non-blocking
// I/O and runs the callbacks its creator was given (ConnectionCallbacks) with
// the creator's options (ConnectionOptions).
//
// Input stays in the connection until the user consumes it: on_data gets the
// connection's input ByteBuffer; the protocol code consumes the bytes it
// handled and leaves a partial message there for the next call, so it keeps
// no copy of its own. Reads land straight in that buffer (its storage is a
// block from the loop's BufferPool, given back whenever the buffer is empty,
// so an idle connection holds no input memory). The buffer holds at most
// max_input_bytes: reading stops there, and if on_data returns leaving it
// full (a message larger than the bound, or a parser that cannot go on) the
// connection closes with kInputOverflow: a full buffer nobody drains is an
// error the user sees, never a silent stall. To keep input on purpose (to
// consume it later from a Dispatch task, say), PauseReading() first.
//
// Output is buffered with backpressure, and batches itself:
//  - Sends to a connection from inside its own callbacks or Dispatch/Post
//    tasks are gathered and go out in one writev when that callback or
//    task returns, or at once when they reach kSendBatchBytes (or the
//    high-water mark, if lower). So the obvious code (one Send per reply in
//    on_data) costs one system call per callback, not one per Send.
//    Gathered bytes wait for the callback to return: do not block inside a
//    callback after sending to its own connection.
//  - Sends from anywhere else (another connection's callback, another
//    thread, a timer, a RunInLoop task) go out at once: a direct write when
//    nothing is queued (also pushing out what a callback gathered).
//  - What the socket refuses is queued, and writable readiness is
//    requested only while output is queued. SendFile() queues a file range
//    (sent with sendfile(2), never read into memory).
// Send(std::string&&) and Send(ByteBuffer&&) hand large payloads over
// without copying them; SendPieces() sends several pieces as one Send. When
// the queue reaches high_water_mark, on_high_water runs (and by default
// reading pauses) until it drains to low_water_mark (on_low_water);
// on_write_complete runs when queued output has all been written.
//
// Lifecycle: one state, plus the reasons reading is paused.
//
//   kConnecting --connect done--> kOpen --Close()--> kClosing --flushed--+
//        |                          |                    |              |
//        +-- connect failed         +--------------------+--------------+-->
//        kClosed
//            (a client's only)        error, reset, peer EOF (flushed),
//                                     idle timeout, input overflow,
//                                     Abort(), owner Stop()
//
//   kConnecting: a client's socket is connecting; not yet given to the user.
//   kOpen:       reading (unless paused) and writing.
//   kClosing:    Close() was called: no more reading, pending output is
//                written, then the connection closes (kClosedLocally).
//   kClosed:     closing is decided or done: the socket is closed or about
//                to be (no more callbacks but the pending on_close).
//                is_closed() is true from here on.
// Half-closes are facts beside the state: the peer's EOF (input_ended())
// and Shutdown(), after which our side sends FIN once output is flushed.
// Pause reasons (any set pauses reading; see PauseReason) are independent of
// the state and are cleared by what set them.
//
// Threading: callbacks of one connection never overlap and come in order:
// on_connect first, then on_data / on_peer_shutdown / on_low_water, on_close
// last and exactly once (for a connection that reached kOpen). They run where
// the loop runs handlers (a worker in pool mode, the loop thread in direct
// mode), and never inside the caller's Send (on_high_water,
// on_low_water and on_write_complete are posted to the connection's serial
// context, see Post). Dispatch(fn) and Post(fn) run fn excluded from them
// likewise.
//
// Thread-safety: every member function may be called from any thread at any
// time, including from other connections' callbacks and after the
// connection closed (Send then fails, Close does nothing) — except input(),
// which only the connection's own callbacks and Dispatch tasks may touch.
// Sends from one thread reach the peer in call order; each Send is atomic
// (never interleaved with another's bytes).
//
// Ownership: a Connection owns its socket (through its transport, see
// net/internal/transport.h) and closes it after the loop has released the
// registration. The loop's registration keeps it alive while it is open;
// user code may hold a ConnectionPtr as long as it likes (the object then
// outlives the socket).
#ifndef MILL_IO_NET_CONNECTION_H_
#define MILL_IO_NET_CONNECTION_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "base/compact_mutex.h"
#include "net/byte_buffer.h"
#include "net/internal/idle_tracker.h"
#include "net/internal/output_queue.h"
#include "net/internal/small_queue.h"
#include "net/socket_address.h"
#include "net/tcp_stream.h"
#include "poll/event.h"
#include "poll/interest.h"
#include "ratelimit/token_bucket.h"
#include "reactor/event_loop.h"

namespace mill {

class Connection;
using ConnectionPtr = std::shared_ptr<Connection>;

namespace net_internal {
struct ConnectionConfig;
class ConnectionOwner;
struct ConnectionAccess;
class Transport;
class WriteBatch;
struct ReadLimit;
struct IoResult;
}  // namespace net_internal

// Why a connection closed (on_close, stats).
enum class CloseReason : uint8_t {
  kPeerClosed,       // the peer shut down (EOF); our pending output was flushed
  kReset,            // ECONNRESET / EPIPE: the peer reset the connection
  kError,            // another socket error (the status says which)
  kIdleTimeout,      // no traffic for ConnectionOptions::idle_timeout
  kClosedLocally,    // Connection::Close() or Abort()
  kStopped,          // its TcpServer or TcpClient stopped (or was destroyed)
  kRefused,          // over max_connections or out of descriptors; stats only:
                     // refused connections never reach the callbacks
  kInputOverflow,    // on_data left max_input_bytes unconsumed (see
                     // ConnectionOptions::max_input_bytes)
  kHandshakeFailed,  // a layer's handshake (TLS) failed or timed out; stats
                     // and connect errors only: the connection never opened
  kTruncated,        // the peer closed without its protocol's end-of-stream
                     // (TLS close_notify): input may be cut short
  kProtocolError,    // the peer broke the protocol (a framing error, a frame
                     // over its limit): AbortForProtocolError()
};
inline constexpr int kCloseReasonCount = 11;

// "peer_closed", "reset", ...
absl::string_view CloseReasonName(CloseReason reason);
std::ostream& operator<<(std::ostream& os, CloseReason reason);

enum class ConnectionState : uint8_t { kConnecting, kOpen, kClosing, kClosed };
absl::string_view ConnectionStateName(ConnectionState state);

// Why reading is paused; a bit set (Connection::pause_reasons()).
enum PauseReason : uint32_t {
  kPausedOutputFull = 1,  // output at the high-water mark (until low water)
  kPausedRateLimit = 2,   // read rate limit: resumes when tokens are back
  kPausedInputFull = 4,   // input holds max_input_bytes (while paused by
                          // the user, until consumed)
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
  // `pending` is the queue size in bytes when it crossed. Runs where the
  // other callbacks run, after the Send that crossed the mark returned
  // (never inside it, so it cannot re-enter the sender's locks).
  std::function<void(const ConnectionPtr&, size_t pending)> on_high_water;
  // Pending output drained to low_water_mark after a high-water crossing.
  std::function<void(const ConnectionPtr&)> on_low_water;
  // Everything sent so far has been written to the socket (the output
  // queue is empty): the moment to produce more output (muduo's
  // WriteCompleteCallback). Runs after the write, never inside Send; one
  // call may cover several writes. Costs nothing when unset.
  std::function<void(const ConnectionPtr&)> on_write_complete;
  // The connection is closed (socket closed, registration released);
  // `status` carries the error for kReset, kError, kInputOverflow and
  // kProtocolError, OK otherwise.
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
  // Most unconsumed input held (at least 1). Reading stops at the bound; if
  // on_data returns leaving the buffer full, the connection closes with
  // kInputOverflow (ResourceExhausted), unless the user paused reading
  // (PauseReading: the input is then kept until consumed, e.g. from a
  // Dispatch task, and ResumeReading).
  size_t max_input_bytes = 1 << 20;
  // Closes for a full buffer even while paused by the user.
  bool close_on_input_overflow = false;
  // Read-rate limit per connection in bytes per second (0: none), with
  // bursts of up to read_burst bytes (0: the loop's read_budget).
  double read_rate = 0;
  uint64_t read_burst = 0;
  // A read limit shared with other connections (null: none).
  std::shared_ptr<TokenBucket> shared_read_limit;
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
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  // Only //net makes one (see net/internal/connection_config.h).
  class PassKey {
   private:
    friend struct net_internal::ConnectionAccess;
    PassKey() = default;
  };
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // Unique among the connections of its TcpServer or TcpClient, from 1.
  uint64_t id() const { return id_; }
  // True for a connection a TcpClient opened, false for an accepted one.
  bool is_outbound() const { return outbound_; }
  const SocketAddress& peer_address() const { return peer_; }
  // Our end's address (getsockname; the default address once closed).
  SocketAddress local_address() const ABSL_LOCKS_EXCLUDED(mu_);
  EventLoop* loop() const;

  ConnectionState state() const;
  // Closing was decided (error, reset, Abort, idle timeout, owner Stop, a
  // flushed Close) or done: no callback but the pending on_close follows.
  bool is_closed() const {
    return phase_.load(std::memory_order_acquire) >= Phase::kClosePending;
  }
  // True in kOpen (and kConnecting) before Close/Shutdown/Abort.
  bool can_send() const ABSL_LOCKS_EXCLUDED(mu_);
  // The peer sent EOF.
  bool input_ended() const ABSL_LOCKS_EXCLUDED(mu_);
  // PauseReason bits currently set; reading_paused() is "any".
  uint32_t pause_reasons() const ABSL_LOCKS_EXCLUDED(mu_);
  bool reading_paused() const { return pause_reasons() != 0; }

  // Gathered bytes written at once when they reach this (see the file
  // comment).
  static constexpr size_t kSendBatchBytes = 64 << 10;

  // Sends `data` to the peer: gathered when called inside this
  // connection's callbacks or tasks, else written at once (see the file
  // comment); what the
  // socket refuses is queued. FailedPrecondition once Close(), Shutdown()
  // or Abort() was called or the connection closed; an errno status if the
  // socket failed (the connection is then closing with reason kReset or
  // kError).
  absl::Status Send(absl::string_view data) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Send(const char* data) { return Send(absl::string_view(data)); }
  // As Send(string_view), taking the bytes over: a large payload is queued
  // as it is, never copied (a small one is copied into the queue's tail,
  // which costs less than a separate piece to gather).
  absl::Status Send(std::string&& data) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Send(ByteBuffer&& data) ABSL_LOCKS_EXCLUDED(mu_);
  // Sends the concatenation of `pieces` as one Send (atomic, gathered into
  // one writev, e.g. a header and a body without joining them).
  absl::Status SendPieces(absl::Span<const absl::string_view> pieces)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Queues `length` bytes of file `fd` from `offset`, in order with Send()'s
  // bytes, sent with sendfile(2) (a bounded read-and-write loop where the
  // platform has none); the file is never read into memory. Its bytes count
  // as pending output for backpressure. `fd` must stay open until `release`
  // runs: exactly once, when the range was sent or dropped (the connection
  // closed), on whichever thread that happened, never under the
  // connection's lock (it may call the connection); it must not block. A
  // file shorter than offset + length closes the connection (kError).
  // FailedPrecondition like Send (then `release` is destroyed unrun: the
  // caller still owns the file).
  absl::Status SendFile(int fd, uint64_t offset, uint64_t length,
                        absl::AnyInvocable<void()> release = nullptr)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Stops reading after pending output is written, then closes (reason
  // kClosedLocally). Idempotent.
  void Close() ABSL_LOCKS_EXCLUDED(mu_);
  // Closes now, dropping pending output (reason kClosedLocally).
  void Abort() ABSL_LOCKS_EXCLUDED(mu_);
  // Closes now, dropping pending output, because the peer broke the
  // protocol: reason kProtocolError, `error` reaches on_close (and the
  // stats count it apart from local closes). See net/framing_close.h.
  void AbortForProtocolError(absl::Status error) ABSL_LOCKS_EXCLUDED(mu_);
  // Half-close: once pending output is written, shuts down our write side
  // (the peer reads EOF); reading continues until the peer closes too.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

  // Pauses / resumes reading at the user's request (kPausedByUser), e.g. a
  // proxy whose other side cannot take more. Resuming with unconsumed input
  // calls on_data again (as if bytes had arrived), so a parser that stopped
  // early picks up where it left off.
  void PauseReading() ABSL_LOCKS_EXCLUDED(mu_);
  void ResumeReading() ABSL_LOCKS_EXCLUDED(mu_);

  // The input buffer. Only from this connection's callbacks and Dispatch
  // tasks (which never overlap).
  ByteBuffer& input() { return input_; }

  // Runs `fn` excluded from this connection's callbacks: at once on this
  // thread when none of them runs, otherwise right after the running one
  // returns, on its thread. Tasks run in the order dispatched; a task may
  // use input() and call Close() (carried out when it returns). After the
  // connection closed, tasks still run (is_closed() is then true). While a
  // task runs on a thread other than the loop's, the connection's readiness
  // is not reported (it is reported again, if it still holds, when the task
  // returns), so a long task costs the loop nothing.
  void Dispatch(absl::AnyInvocable<void(const ConnectionPtr&)> fn)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Runs `fn` in this connection's serial context, like Dispatch, but never
  // inline: after the running callback or task returns when one runs,
  // otherwise soon on the loop (where handlers run). For work finished
  // elsewhere (a compute-pool task) whose reply must be sent in order with
  // the connection's own callbacks, and for callbacks that must not run
  // inside the caller. Tasks run in the order posted, also after the
  // connection closed (is_closed() is then true). FailedPrecondition (and
  // `fn` destroyed unrun) when the loop has stopped.
  absl::Status Post(absl::AnyInvocable<void(const ConnectionPtr&)> fn)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Bytes queued and not yet written (file ranges included).
  size_t pending_output_bytes() const ABSL_LOCKS_EXCLUDED(mu_);

  // Checks, without blocking or reading, that an idle connection can be
  // reused (a connection pool's check before handing it out): OK if it is
  // open, the peer has not sent EOF, and nothing is waiting to be read
  // (peeked at on the socket). Unavailable when the peer closed or reset
  // it (or it is closing), FailedPrecondition when input is waiting
  // (unexpected for an idle connection). Does not close it.
  absl::Status Probe() const ABSL_LOCKS_EXCLUDED(mu_);

  uint64_t bytes_received() const {
    return bytes_in_.load(std::memory_order_relaxed);
  }
  uint64_t bytes_sent() const {
    return bytes_out_.load(std::memory_order_relaxed);
  }

  // User context: any object, shared. Thread-safe. The previous context is
  // released after the connection's lock, so its destructor may call back.
  void SetContext(std::shared_ptr<void> context) ABSL_LOCKS_EXCLUDED(mu_);
  template <typename T>
  std::shared_ptr<T> GetContext() const {
    return std::static_pointer_cast<T>(GetContextVoid());
  }

 protected:
  // `transport` lives in the same allocation (ConnectionWithTransport).
  // An accepted connection whose transport has a handshake (TLS) starts
  // kConnecting too, and opens when the handshake completes.
  Connection(PassKey, std::shared_ptr<net_internal::ConnectionOwner> owner,
             uint64_t id, bool outbound, SocketAddress peer,
             net_internal::Transport* transport, bool handshake = false);

 private:
  friend struct net_internal::ConnectionAccess;
  friend class net_internal::WriteBatch;

  // The lifecycle. kClosePending and later read as ConnectionState::kClosed.
  enum class Phase : uint8_t {
    kConnecting,    // a client's connect is in progress
    kOpen,          // reading (unless paused) and writing
    kClosing,       // Close() (or the peer's EOF): flushing, then closing
    kClosePending,  // closing decided (close_reason_); Teardown carries it out
    kReleasing,     // Teardown ran: the transport releases the registration
    kClosed,        // FinishClose ran: the socket is closed
  };
  // Our half-close.
  enum class WriteSide : uint8_t { kOpen, kShutdownRequested, kShut };

  std::shared_ptr<void> GetContextVoid() const ABSL_LOCKS_EXCLUDED(mu_);
  const net_internal::ConnectionConfig& config() const;
  Phase phase() const { return phase_.load(std::memory_order_relaxed); }
  void SetPhaseLocked(Phase phase) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    phase_.store(phase, std::memory_order_release);
  }
  bool CanSendLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  WriteSide write_side() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return static_cast<WriteSide>(write_side_);
  }
  void set_write_side(WriteSide side) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    write_side_ = static_cast<uint8_t>(side);
  }

  // --- Starting (connection_input.cc) --------------------------------------
  // Called by the owner once, on the thread that created the connection:
  // kOpen connections run on_connect and start the transport; kConnecting
  // ones start it for the connect's completion and report to the owner when
  // done. A connection closed before Start (its owner stopped, a cancel)
  // does neither.
  void Start() ABSL_LOCKS_EXCLUDED(mu_);
  void StartOpen() ABSL_LOCKS_EXCLUDED(mu_);
  void FinishConnect() ABSL_LOCKS_EXCLUDED(mu_);

  // --- The transport's reports and the read path (connection_input.cc) ----
  void OnTransportEvent(const Event& event) ABSL_LOCKS_EXCLUDED(mu_);
  void HandleEventExcluded(const Event& event) ABSL_LOCKS_EXCLUDED(mu_);
  // Reads up to the budget, delivering after each read.
  void ReadSome() ABSL_LOCKS_EXCLUDED(mu_);
  void DeliverInput() ABSL_LOCKS_EXCLUDED(mu_);
  void OnPeerEof() ABSL_LOCKS_EXCLUDED(mu_);
  void PauseForRate(size_t wanted) ABSL_LOCKS_EXCLUDED(mu_);
  // Input-size bookkeeping after a callback consumed (or not).
  void CheckInputLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // --- Output (connection_output.cc) ---------------------------------------
  // One Send's bytes: `pieces` (total `size`), of which an owned string or
  // buffer (if set, pieces is its view) is taken over instead of copied.
  struct Outgoing {
    absl::Span<const absl::string_view> pieces;
    size_t size = 0;
    std::string* owned = nullptr;
    ByteBuffer* buffer = nullptr;
  };
  // The write path of every Send.
  absl::Status SendOutgoing(Outgoing out, const char* caller)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Queues out's bytes from `skip` on.
  void QueueOutgoingLocked(Outgoing& out, size_t skip)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes `pieces` directly; returns what the transport took, or the
  // failure.
  net_internal::IoResult WriteNowLocked(
      absl::Span<const absl::string_view> pieces, size_t size)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The outermost callback on this thread returned: writes what was
  // gathered (see BatchScope in net/internal/write_batch.h).
  void FlushGathered() ABSL_LOCKS_EXCLUDED(mu_);
  // Runs on_low_water / on_write_complete (and nothing after on_close).
  void PostLowWater() ABSL_LOCKS_EXCLUDED(mu_);
  void PostWriteComplete() ABSL_LOCKS_EXCLUDED(mu_);
  void CountWritten(size_t written);
  void CountWriteCall();
  // Writes pending output until the transport would block. Returns a failed
  // status (and its close reason) or OK. Sets *below_low_water when the
  // queue drained past the low-water mark; file ranges sent or dropped
  // leave their release callbacks in *released (run them unlocked).
  // Sets *drained (when given) if it emptied the queue.
  absl::Status FlushLocked(bool* below_low_water, CloseReason* reason,
                           std::vector<absl::AnyInvocable<void()>>* released,
                           bool* drained = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Flushes from the handler: runs the releases, on_low_water, and closes
  // on failure.
  void FlushFromHandler() ABSL_LOCKS_EXCLUDED(mu_);
  // After queueing: true when the queue crossed the high-water mark.
  bool CrossedHighWaterLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Posts on_high_water (see Post).
  void NotifyHighWater(size_t pending) ABSL_LOCKS_EXCLUDED(mu_);

  // --- Interest --------------------------------------------------------------
  Interest ComputeInterestLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateInterestLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Tells the transport `interest` unless it knows it already.
  void TellInterestLocked(Interest interest) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool WantsReadLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetPauseLocked(uint32_t reason, bool on)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // --- Closing (connection_close.cc) ---------------------------------------
  // Decides to close with `reason`; true if that is new (then
  // ScheduleClose()). The first decision wins.
  bool MarkCloseLocked(CloseReason reason, absl::Status status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Carries out a decided close: in the callback epilogue when called from
  // inside this connection's callbacks, else on the loop.
  void ScheduleClose() ABSL_LOCKS_EXCLUDED(mu_);
  void RunPendingClose() ABSL_LOCKS_EXCLUDED(mu_);
  // Closes now (idempotent; an earlier decision's reason is overridden):
  // drops pending output, releases the registration and, once the loop is
  // done with it, closes the socket and runs on_close (FinishClose).
  void Teardown(CloseReason reason, absl::Status status)
      ABSL_LOCKS_EXCLUDED(mu_);
  void FinishClose() ABSL_LOCKS_EXCLUDED(mu_);
  void ArmIdleTimerLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnIdleExpired() ABSL_LOCKS_EXCLUDED(mu_);
  void Touch();

  // --- The serial executor (connection_executor.cc) ------------------------
  // Callbacks, Dispatch tasks and event handling never overlap: whoever
  // finds the executor free runs, others queue behind it.
  bool EnterCallbacks() ABSL_LOCKS_EXCLUDED(mu_);
  void LeaveCallbacks() ABSL_LOCKS_EXCLUDED(mu_);
  void RunExcluded(absl::AnyInvocable<void(const ConnectionPtr&)> fn)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Ordered by size, so that padding does not grow every connection.
  // The owner keeps the config alive.
  const std::shared_ptr<net_internal::ConnectionOwner> owner_;
  net_internal::Transport* const transport_;
  const uint64_t id_;
  // Read-rate limits; null without them. Immutable after construction.
  const std::unique_ptr<net_internal::ReadLimit> read_limit_;

  net_internal::OutputQueue out_ ABSL_GUARDED_BY(mu_);
  // Why the connection closes (kClosing: once flushed; later phases: the
  // decided reason) and the error of kReset / kError.
  absl::Status close_status_ ABSL_GUARDED_BY(mu_);
  net_internal::IdleTracker::Node idle_node_;  // guarded by the tracker
  std::shared_ptr<void> context_ ABSL_GUARDED_BY(mu_);
  // Tasks waiting for the executor (see EnterCallbacks).
  net_internal::SmallQueue<absl::AnyInvocable<void(const ConnectionPtr&)>>
      exec_queue_ ABSL_GUARDED_BY(mu_);
  ByteBuffer input_;  // the executor's only
  std::atomic<int64_t> last_activity_ns_{0};
  std::atomic<uint64_t> bytes_in_{0};
  std::atomic<uint64_t> bytes_out_{0};

  const SocketAddress peer_;
  // 4 bytes, not std::mutex's 40: every idle connection pays for it.
  mutable CompactMutex mu_;
  std::atomic<Phase> phase_;                // written under mu_
  uint8_t pause_ ABSL_GUARDED_BY(mu_) = 0;  // PauseReason bits
  CloseReason close_reason_ ABSL_GUARDED_BY(mu_) = CloseReason::kClosedLocally;
  const bool outbound_;
  // What the transport was last told to report (a change costs it a
  // system call; the same interest again costs nothing).
  Interest told_ ABSL_GUARDED_BY(mu_) = Interest::None();
  // Flags in one byte (every idle connection pays for each byte).
  uint8_t write_side_ : 2 ABSL_GUARDED_BY(mu_);  // a WriteSide
  bool input_ended_ : 1 ABSL_GUARDED_BY(mu_);
  bool on_close_owed_ : 1 ABSL_GUARDED_BY(mu_);  // on_connect ran
  bool redeliver_ : 1 ABSL_GUARDED_BY(mu_);      // input pending on resume
  // Output crossed high_water_mark and has not drained to low water yet.
  bool above_high_water_ : 1 ABSL_GUARDED_BY(mu_);
  bool exec_busy_ : 1 ABSL_GUARDED_BY(mu_);  // the executor is taken
  // Reports muted while a task runs elsewhere (see Dispatch).
  bool reports_muted_ : 1 ABSL_GUARDED_BY(mu_);
  // Output is being gathered by a thread's batch (writable readiness is
  // not requested meanwhile: the batch's end writes it).
  bool gathering_ : 1 ABSL_GUARDED_BY(mu_);
  // An on_write_complete is posted and has not started yet.
  bool write_complete_posted_ : 1 ABSL_GUARDED_BY(mu_);

  // Links in its owner's list of open connections (net/internal/
  // connection_list.h); guarded by the owner's lock.
  Connection* list_prev_ = nullptr;
  Connection* list_next_ = nullptr;
};

}  // namespace mill

#endif  // MILL_IO_NET_CONNECTION_H_
