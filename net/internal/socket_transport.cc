#include "net/internal/socket_transport.h"

#include <algorithm>
#include <cerrno>
#include <memory>
#include <utility>

#include "net/internal/connection_config.h"
#include "net/internal/socket_types.h"
#include "net/internal/socket_util.h"
#include "net/internal/sys_socket.h"
#include "reactor/internal/receive_ahead.h"

namespace mill {
namespace net_internal {
namespace {

IoResult FailedWith(int err, const char* what) {
  return IoResult::Failed(ReasonForErrno(err), SocketErrorStatus(err, what));
}

bool WouldBlock(int err) {
  return ClassifySocketError(err) == SocketErrorKind::kWouldBlock;
}

// Runs its callback exactly once: when called, or when destroyed uncalled.
// EventLoop::Deregister destroys on_released without running it only when
// the registration is unknown; this makes the transport's "exactly once"
// hold on that path too, without a second code path that could run twice.
class RunOnce {
 public:
  explicit RunOnce(absl::AnyInvocable<void()> fn) : fn_(std::move(fn)) {}
  RunOnce(RunOnce&& other) noexcept : fn_(std::move(other.fn_)) {
    other.fn_ = nullptr;
  }
  RunOnce& operator=(RunOnce&&) = delete;
  ~RunOnce() { (*this)(); }
  void operator()() {
    absl::AnyInvocable<void()> fn = std::move(fn_);
    fn_ = nullptr;
    if (fn) fn();
  }

 private:
  absl::AnyInvocable<void()> fn_;
};

}  // namespace

CloseReason ReasonForErrno(int err) {
  switch (ClassifySocketError(err)) {
    case SocketErrorKind::kReset:
    case SocketErrorKind::kAborted:
      return CloseReason::kReset;
    default:
      return CloseReason::kError;
  }
}

SocketTransport::SocketTransport(Connection* conn, TcpStream stream)
    : conn_(conn), stream_(std::move(stream)) {}

absl::Status SocketTransport::Start(Interest interest) {
  // Aliases the connection's control block: registering allocates no
  // handler, and the registration keeps the connection alive.
  std::shared_ptr<RegisteredHandler> handler(
      ConnectionAccess::SharedOf(*conn_),
      static_cast<RegisteredHandler*>(this));
  EventLoop& loop = *conn_->loop();
  // Receive-ahead is decided before a report can run Read (Supported: the
  // start below cannot fail for want of support). A connecting socket
  // starts once connected (FinishConnect): a receive now would fail, or
  // take the connect's error from SO_ERROR.
  const bool ahead =
      MayReceiveAhead() && reactor_internal::ReceiveAhead::Supported(loop);
  receives_ahead_ = ahead && !stream_.connect_pending();
  ahead_once_connected_ = ahead && stream_.connect_pending();
  absl::StatusOr<Registration> reg =
      loop.Register(stream_.fd(), interest, handler);
  if (!reg.ok()) return reg.status();
  if (receives_ahead_) {
    absl::Status status = reactor_internal::ReceiveAhead::Start(loop, *this);
    if (!status.ok()) {
      (void)loop.Deregister(*reg, [] {});
      return status;
    }
  }
  registration_ = *reg;
  return absl::OkStatus();
}

void SocketTransport::SetInterest(Interest interest) {
  if (!registration_.valid()) return;
  // NotFound only races with our own Release; nothing to do then.
  (void)conn_->loop()->Reregister(registration_, interest);
}

void SocketTransport::Release(absl::AnyInvocable<void()> on_released) {
  RunOnce once(std::move(on_released));
  const Registration registration = std::exchange(registration_, {});
  if (!registration.valid()) return;  // `once` runs it here
  // Runs it when no handler runs or can start; on a poller error it still
  // runs (the registration is gone either way), and on NotFound, which
  // cannot happen, RunOnce's destructor does.
  (void)conn_->loop()->Deregister(registration, std::move(once));
}

void SocketTransport::CloseNow() { stream_.Close(); }

void SocketTransport::HandleEvent(const Event& event) {
  ConnectionAccess::OnTransportEvent(*conn_, event);
}

absl::Status SocketTransport::FinishConnect(bool* in_progress,
                                            CloseReason* reason) {
  *reason = CloseReason::kError;
  absl::Status status = stream_.FinishConnect();
  *in_progress = !status.ok() && stream_.connect_pending();
  if (status.ok() && ahead_once_connected_) {
    // Connected, nothing read yet: from here on the loop receives ahead.
    // (The serial context: no Read runs meanwhile.)
    ahead_once_connected_ = false;
    status = reactor_internal::ReceiveAhead::Start(*conn_->loop(), *this);
    receives_ahead_ = status.ok();
  }
  return status;
}

absl::Status SocketTransport::TakeError(CloseReason* reason) {
  int err = 0;
  if (receives_ahead_) {
    // The receive took the socket's error (SO_ERROR is clear by now).
    const int r =
        reactor_internal::ReceiveAhead::Peek(*conn_->loop(), *this, &err);
    if (r < 0 && err != EAGAIN && err != ENOTCONN) {
      *reason = ReasonForErrno(err);
      return SocketErrorStatus(err, "socket error");
    }
    err = 0;
  }
  (void)GetIntOption(stream_.fd(), SOL_SOCKET, SO_ERROR, &err);
  if (err == 0) return absl::OkStatus();
  *reason = ReasonForErrno(err);
  return SocketErrorStatus(err, "socket error");
}

IoResult SocketTransport::Read(ByteBuffer& input, size_t max, size_t* copied) {
  if (receives_ahead_) return ReadAhead(input, max, copied);
  // What fits without growing: a pooled block's room, usually.
  const size_t fits = std::min(input.AppendSpace().size(), max);
  const bool bulk = reads_fill_room_ || fits == 0;
  if (bulk) {
    // Bulk: give the read all the room it may fill before it happens, so
    // the bytes land in place. Growing an empty buffer moves nothing.
    const char* before = input.data();
    const size_t held = input.size();
    (void)input.PrepareAppend(max);
    if (input.data() != before) *copied += held;
  }
  const absl::Span<char> room = input.AppendSpace();
  const size_t want = std::min(room.size(), max);
  int err = kNoSocketError;
  const int64_t n = ReceiveSome(stream_.fd(), room.data(), want, &err);
  if (n == 0) return IoResult::Eof();
  if (n < 0) {
    if (WouldBlock(err)) return IoResult::WouldBlock();
    return FailedWith(err, "recv");
  }
  const size_t got = static_cast<size_t>(n);
  input.Commit(got);
  // A read that filled what fitted (and may have left more in the socket)
  // makes the next one bulk; a bulk read that would have fitted ends bulk.
  // A full room with bytes left is reported as a short read: the caller
  // stops, and the level-triggered registration reports the rest at once.
  reads_fill_room_ = fits < max && (bulk ? got > fits : got >= fits);
  return IoResult::Progress(got);
}

IoResult SocketTransport::ReadAhead(ByteBuffer& input, size_t max,
                                    size_t* copied) {
  if (input.AppendSpace().empty()) {
    // The bytes are copied anyway: a block-sized room is enough.
    const char* before = input.data();
    const size_t held = input.size();
    (void)input.PrepareAppend(std::min(max, kAheadRoom));
    if (input.data() != before) *copied += held;
  }
  const absl::Span<char> room = input.AppendSpace();
  int err = 0;
  const int64_t n = reactor_internal::ReceiveAhead::Receive(
      *conn_->loop(), *this, room.data(), std::min(room.size(), max), &err);
  if (n == 0) return IoResult::Eof();
  if (n < 0) {
    // ENOTCONN: the registration is gone (the connection is closing, a
    // report was still running): nothing more to read.
    if (err == EAGAIN || err == ENOTCONN) return IoResult::WouldBlock();
    return FailedWith(err, "recv");
  }
  input.Commit(static_cast<size_t>(n));
  return IoResult::Progress(static_cast<size_t>(n));
}

IoResult SocketTransport::Write(absl::Span<const absl::string_view> pieces) {
  int err = kNoSocketError;
  const int64_t n =
      pieces.size() == 1
          ? SendSome(stream_.fd(), pieces[0].data(), pieces[0].size(), &err)
          : SendPieces(stream_.fd(), pieces.data(), pieces.size(), &err);
  if (n > 0) return IoResult::Progress(static_cast<size_t>(n));
  if (n < 0 && WouldBlock(err)) return IoResult::WouldBlock();
  if (n < 0) return FailedWith(err, "send");
  return IoResult::Failed(CloseReason::kError,
                          absl::InternalError("send: wrote nothing"));
}

IoResult SocketTransport::SendFile(int fd, uint64_t offset, size_t length) {
  int err = kNoSocketError;
  const int64_t n = SendFileSome(stream_.fd(), fd, offset, length, &err);
  if (n > 0) return IoResult::Progress(static_cast<size_t>(n));
  if (n == 0) return IoResult::Eof();  // the file ended early
  if (WouldBlock(err)) return IoResult::WouldBlock();
  return FailedWith(err, "sendfile");
}

absl::Status SocketTransport::ShutdownWrite() {
  int err = kNoSocketError;
  if (ShutdownSocket(stream_.fd(), ShutdownHow::kWrite, &err) != 0) {
    return SocketErrorStatus(err, "shutdown");
  }
  return absl::OkStatus();
}

absl::Status SocketTransport::Probe() const {
  int err = kNoSocketError;
  if (receives_ahead_) {  // registered: the connection is open
    // Bytes, the end or an error the backend received first; else the
    // socket itself tells (peeking takes nothing).
    const int r = reactor_internal::ReceiveAhead::Peek(
        *conn_->loop(), const_cast<SocketTransport&>(*this), &err);
    if (r > 0) {
      return absl::FailedPreconditionError("unexpected input is waiting");
    }
    if (r == 0) {
      return absl::UnavailableError("the peer closed the connection (EOF)");
    }
    if (err != EAGAIN && err != ENOTCONN) {
      return SocketErrorStatus(err, "recv");
    }
    err = kNoSocketError;
  }
  const int64_t n = PeekByte(stream_.fd(), &err);
  if (n == 0) {
    return absl::UnavailableError("the peer closed the connection (EOF)");
  }
  if (n > 0) {
    return absl::FailedPreconditionError("unexpected input is waiting");
  }
  if (WouldBlock(err)) return absl::OkStatus();
  return SocketErrorStatus(err, "recv(MSG_PEEK)");
}

absl::StatusOr<SocketAddress> SocketTransport::LocalAddress() const {
  if (!stream_.valid()) {
    return absl::FailedPreconditionError("the socket is closed");
  }
  return stream_.local_address();
}

}  // namespace net_internal
}  // namespace mill
