// Transport: how a Connection's bytes move. Internal: not part of the API.
//
// A Connection keeps what the user sees (state, callbacks, the input buffer,
// the output queue and its water marks, the idle timer, rate limits, the
// serial execution of callbacks); its Transport moves bytes: it reads into
// the input buffer, writes from the output queue, sends file ranges, shuts
// down, and tells the connection when it can make progress. Today's one
// implementation is SocketTransport (a POSIX socket, readiness from the
// EventLoop); docs/ARCHITECTURE.md ("The transport seam") shows how TLS (a
// transport layered on another), io_uring (completions instead of
// readiness) and Winsock fit the same interface.
//
// The contract, seen from the connection:
//  - Start() begins reporting; from then on the transport calls
//    ConnectionAccess::OnTransportEvent(conn, event) whenever the connection
//    may make progress (readable, writable, error, hang-up), always
//    excluded from other reports for that connection, never after the
//    on_released callback of Release() ran.
//  - SetInterest() says what the connection wants reported; Interest::None
//    pauses reporting. The connection calls it only when the interest
//    changes. Reports are level-triggered: a condition that still
//    holds is reported again, so the connection may stop early (a budget)
//    without losing anything.
//  - Read() fills the input buffer, Write()/SendFile() drain the output;
//    each either makes progress, or says it would block (a report follows
//    when it can go on), or ends (EOF, an error).
//
// Threading: Read() and FinishConnect() are called from the connection's
// serial context only (its handler, or a task excluded from it); Start(),
// Write(), SendFile(), ShutdownWrite(), SetInterest(), Probe() and
// CloseNow() under the connection's lock, from any thread; Release() once,
// from any thread, without the lock, after which SetInterest() is never
// called again (the connection's state machine orders them). Read and Write may
// therefore run at the same time on two threads: a transport whose two
// directions share state (TLS) serialises them itself.
//
// Ownership: the transport lives inside its connection's allocation (see
// ConnectionWithTransport in connection_config.h) and owns the descriptor;
// it closes it only after Release() has run on_released.
#ifndef MILL_IO_NET_INTERNAL_TRANSPORT_H_
#define MILL_IO_NET_INTERNAL_TRANSPORT_H_

#include <cstddef>
#include <cstdint>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "net/byte_buffer.h"
#include "net/connection.h"
#include "net/socket_address.h"
#include "poll/interest.h"

namespace mill {
namespace net_internal {

// The outcome of one Read, Write or SendFile.
struct IoResult {
  enum class Kind : uint8_t {
    kProgress,    // `bytes` (> 0) moved
    kWouldBlock,  // nothing now; a report follows when it can go on
    kEof,         // Read: the peer shut down its write side
    kFailed,      // `reason` (kReset or kError) and `error`
  };

  static IoResult Progress(size_t bytes) {
    return IoResult{Kind::kProgress, bytes, CloseReason::kError, {}};
  }
  static IoResult WouldBlock() {
    return IoResult{Kind::kWouldBlock, 0, CloseReason::kError, {}};
  }
  static IoResult Eof() {
    return IoResult{Kind::kEof, 0, CloseReason::kError, {}};
  }
  static IoResult Failed(CloseReason reason, absl::Status error) {
    return IoResult{Kind::kFailed, 0, reason, std::move(error)};
  }

  Kind kind;
  size_t bytes;
  CloseReason reason;
  absl::Status error;
};

class Transport {
 public:
  virtual ~Transport() = default;

  // Begins reporting with `interest`. An error leaves nothing registered.
  virtual absl::Status Start(Interest interest) = 0;
  // Changes what is reported (see the file comment).
  virtual void SetInterest(Interest interest) = 0;
  // Stops reporting and runs `on_released` exactly once, as soon as no
  // report is running or can start: inline, or on the thread of the report
  // in flight when it returns. Also when nothing was started. Then the
  // descriptor may be closed (CloseNow).
  virtual void Release(absl::AnyInvocable<void()> on_released) = 0;
  // Closes the descriptor (after Release ran on_released). Idempotent.
  virtual void CloseNow() = 0;
  // The connection is closing cleanly (Close() flushed, the peer ended,
  // idle timeout, its owner stopped; nothing dropped): a protocol with an
  // end-of-stream message of its own (TLS close_notify) sends it now, best
  // effort and without blocking or waiting for the peer's. Under the
  // connection's lock, before Release; plain sockets need nothing (close(2)
  // sends the FIN).
  virtual void CloseNotify() {}

  // For a kConnecting connection (outbound, or one with a handshake): at
  // each report, goes on with the connect and the transport's handshake:
  // OK once both are done, or the error (and *reason: kError for the
  // connect, kHandshakeFailed for a handshake); *in_progress is set while
  // either is still going on (a report follows).
  virtual absl::Status FinishConnect(bool* in_progress,
                                     CloseReason* reason) = 0;
  // The pending error of a report flagged as an error (OK if none).
  virtual absl::Status TakeError(CloseReason* reason) = 0;

  // Appends at most `max` (> 0) bytes to `input`, read into its free room
  // (no copy); `*copied` counts the bytes copied along the way (held bytes
  // that growing or compacting the buffer moved, bytes read elsewhere
  // first).
  virtual IoResult Read(ByteBuffer& input, size_t max, size_t* copied) = 0;
  // Writes a prefix of the concatenation of `pieces` (gathered).
  virtual IoResult Write(absl::Span<const absl::string_view> pieces) = 0;
  // Writes up to `length` bytes of file `fd` from `offset`. kEof when the
  // file ends before.
  virtual IoResult SendFile(int fd, uint64_t offset, size_t length) = 0;
  // Half-close: the peer reads EOF once what was written arrives.
  virtual absl::Status ShutdownWrite() = 0;

  // Input the transport holds that no readiness report will announce
  // (TLS: decrypted bytes, or the peer's close_notify, read along with
  // earlier data). Read() returns it. From the connection's serial context.
  virtual bool HasPendingInput() const { return false; }

  // Without reading: OK if nothing is waiting to be read, Unavailable if
  // the peer closed or reset, FailedPrecondition if input is waiting.
  virtual absl::Status Probe() const = 0;
  virtual absl::StatusOr<SocketAddress> LocalAddress() const = 0;
  // The socket's descriptor (-1 once closed, or without one), for queries
  // such as SO_PEERCRED (net/unix_credentials.h).
  virtual int descriptor() const { return -1; }
};

}  // namespace net_internal
}  // namespace mill

#endif  // MILL_IO_NET_INTERNAL_TRANSPORT_H_
