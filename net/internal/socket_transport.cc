#include "net/internal/socket_transport.h"

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/sendfile.h>
#endif

#include <algorithm>
#include <cerrno>
#include <memory>
#include <utility>

#include "base/errno_status.h"
#include "net/internal/connection_config.h"
#include "net/internal/socket_util.h"

namespace mill {
namespace net_internal {
namespace {

// Most pieces gathered into one sendmsg(2).
constexpr size_t kMaxIov = 64;

IoResult FailedWith(int err, const char* what) {
  return IoResult::Failed(ReasonForErrno(err), ErrnoStatus(err, what));
}

bool WouldBlock(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

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
  switch (err) {
    case ECONNRESET:
    case EPIPE:
    case ECONNABORTED:
    case ETIMEDOUT:
    case EHOSTUNREACH:
    case ENETUNREACH:
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
  absl::StatusOr<Registration> reg =
      conn_->loop()->Register(stream_.fd(), interest, handler);
  if (!reg.ok()) return reg.status();
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
  return status;
}

absl::Status SocketTransport::TakeError(CloseReason* reason) {
  int err = 0;
  (void)GetIntOption(stream_.fd(), SOL_SOCKET, SO_ERROR, &err);
  if (err == 0) return absl::OkStatus();
  *reason = ReasonForErrno(err);
  return ErrnoStatus(err, "socket error");
}

IoResult SocketTransport::Read(ByteBuffer& input, size_t max, size_t* copied) {
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
  ssize_t n;
  do {
    n = ::recv(stream_.fd(), room.data(), want, 0);
  } while (n < 0 && errno == EINTR);
  if (n == 0) return IoResult::Eof();
  if (n < 0) {
    if (WouldBlock(errno)) return IoResult::WouldBlock();
    return FailedWith(errno, "recv");
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

IoResult SocketTransport::Write(absl::Span<const absl::string_view> pieces) {
  ssize_t n;
  if (pieces.size() == 1) {
    n = stream_.Write(pieces[0].data(), pieces[0].size());
  } else {
    iovec iov[kMaxIov];
    const size_t count = std::min(pieces.size(), kMaxIov);
    for (size_t i = 0; i < count; ++i) {
      iov[i] = {const_cast<char*>(pieces[i].data()), pieces[i].size()};
    }
    msghdr msg = {};
    msg.msg_iov = iov;
    msg.msg_iovlen = count;
    do {
      n = ::sendmsg(stream_.fd(), &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
  }
  if (n > 0) return IoResult::Progress(static_cast<size_t>(n));
  if (n < 0 && WouldBlock(errno)) return IoResult::WouldBlock();
  return FailedWith(n < 0 ? errno : EIO, "send");
}

IoResult SocketTransport::SendFile(int fd, uint64_t offset, size_t length) {
#ifdef __linux__
  off_t off = static_cast<off_t>(offset);
  ssize_t n;
  do {
    n = ::sendfile(stream_.fd(), fd, &off, length);
  } while (n < 0 && errno == EINTR);
#else
  // No sendfile: a bounded read-and-write step (what the socket refuses is
  // read again next time, so nothing is kept in memory between calls).
  char buffer[16 * 1024];
  ssize_t n = ::pread(fd, buffer, std::min(length, sizeof(buffer)),
                      static_cast<off_t>(offset));
  if (n > 0) n = stream_.Write(buffer, static_cast<size_t>(n));
#endif
  if (n > 0) return IoResult::Progress(static_cast<size_t>(n));
  if (n == 0) return IoResult::Eof();  // the file ended early
  if (WouldBlock(errno)) return IoResult::WouldBlock();
  return FailedWith(errno, "sendfile");
}

absl::Status SocketTransport::ShutdownWrite() {
  return stream_.Shutdown(SHUT_WR);
}

absl::Status SocketTransport::Probe() const {
  char byte;
  ssize_t n;
  do {
    n = ::recv(stream_.fd(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n == 0) {
    return absl::UnavailableError("the peer closed the connection (EOF)");
  }
  if (n > 0) {
    return absl::FailedPreconditionError("unexpected input is waiting");
  }
  if (WouldBlock(errno)) return absl::OkStatus();
  return ErrnoStatus(errno, "recv(MSG_PEEK)");
}

absl::StatusOr<SocketAddress> SocketTransport::LocalAddress() const {
  if (!stream_.valid()) {
    return absl::FailedPreconditionError("the socket is closed");
  }
  return stream_.local_address();
}

}  // namespace net_internal
}  // namespace mill
