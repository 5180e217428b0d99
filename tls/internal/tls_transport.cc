#include "tls/internal/tls_transport.h"

#include <openssl/err.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/errno_status.h"
#include "net/internal/connection_config.h"
#include "tls/internal/openssl_util.h"

namespace mill {
namespace tls_internal {

using net_internal::ConnectionAccess;
using net_internal::IoResult;

namespace {

// Largest plaintext of one TLS record: the size reads grow the input by,
// and the most small pieces are gathered into for one SSL_write.
constexpr size_t kRecordSize = 16 * 1024;

int ClampToInt(size_t n) {
  return static_cast<int>(std::min<size_t>(n, INT_MAX));
}

}  // namespace

TlsTransport::TlsTransport(Connection* conn, TcpStream stream, Params params)
    : SocketTransport(conn, std::move(stream)),
      ssl_(params.ssl),
      context_(std::move(params.context)),
      session_key_(std::move(params.session_key)),
      peer_name_(std::move(params.peer_name)),
      setup_error_(std::move(params.error)),
      handshake_timeout_(params.handshake_timeout),
      server_(params.server),
      // An accepted socket is connected; an outbound one is once the
      // socket's FinishConnect says so.
      tcp_connected_(params.server) {
  if (ssl_ != nullptr) SSL_set_app_data(ssl_, this);
  // The first wait: a server waits for the ClientHello, a client for its
  // connect (writable).
  handshake_needs_ = server_ ? Interest::Readable() : Interest::Writable();
}

TlsTransport::~TlsTransport() {
  if (ssl_ != nullptr) SSL_free(ssl_);
}

TlsTransport* TlsTransport::OfSsl(const SSL* ssl) {
  return static_cast<TlsTransport*>(SSL_get_app_data(ssl));
}

// --- Registration and reports ----------------------------------------------

Interest TlsTransport::EffectiveLocked() const {
  if (wanted_.is_none()) return Interest::None();  // muted or closing
  if (!handshake_done_) return handshake_needs_;
  Interest interest = wanted_;
  if (read_wants_write_ && wanted_.is_readable()) {
    interest |= Interest::Writable();
  }
  if (write_wants_read_ && wanted_.is_writable()) {
    interest |= Interest::Readable();
  }
  return interest;
}

void TlsTransport::ApplyInterestLocked() {
  const Interest effective = EffectiveLocked();
  if (effective == registered_) return;
  registered_ = effective;
  SocketTransport::SetInterest(effective);
}

absl::Status TlsTransport::Start(Interest interest) {
  CompactMutexLock lock(&mu_);
  wanted_ = interest;
  registered_ = EffectiveLocked();
  absl::Status started = SocketTransport::Start(registered_);
  if (!started.ok()) return started;
  if (server_ && !handshake_done_ &&
      handshake_timeout_ > absl::ZeroDuration()) {
    std::weak_ptr<Connection> weak = ConnectionAccess::WeakOf(*connection());
    const absl::Duration timeout = handshake_timeout_;
    handshake_timer_ = connection()->loop()->RunAfter(timeout, [weak, timeout] {
      ConnectionPtr conn = weak.lock();
      if (conn == nullptr) return;
      ConnectionAccess::FailConnect(conn,
                                    absl::DeadlineExceededError(absl::StrCat(
                                        "TLS handshake not finished within ",
                                        absl::FormatDuration(timeout))),
                                    CloseReason::kHandshakeFailed);
    });
  }
  return absl::OkStatus();
}

void TlsTransport::SetInterest(Interest interest) {
  CompactMutexLock lock(&mu_);
  wanted_ = interest;
  ApplyInterestLocked();
  // Plaintext OpenSSL already holds is not in the socket: nothing would
  // announce it to a connection that resumes reading.
  if (interest.is_readable() && handshake_done_ && !fatal_ &&
      (SSL_has_pending(ssl_) || has_pending_end_)) {
    ScheduleReportLocked();
  }
}

void TlsTransport::ScheduleReportLocked() {
  if (report_scheduled_) return;
  std::weak_ptr<Connection> weak = ConnectionAccess::WeakOf(*connection());
  // A zero-delay timer, not RunInLoop: this runs under locks (ours, often
  // the connection's), and RunInLoop would run it inline on the loop thread.
  const EventLoop::TimerId timer =
      connection()->loop()->RunAfter(absl::ZeroDuration(), [weak] {
        ConnectionPtr conn = weak.lock();
        if (conn == nullptr) return;
        auto* self =
            static_cast<TlsTransport*>(ConnectionAccess::TransportOf(*conn));
        {
          CompactMutexLock lock(&self->mu_);
          self->report_scheduled_ = false;
        }
        ConnectionAccess::OnTransportEvent(*conn,
                                           Event(Token(), Event::kReadable));
      });
  report_scheduled_ = timer.valid();
}

void TlsTransport::HandleEvent(const Event& event) {
  uint32_t flags = event.flags();
  {
    CompactMutexLock lock(&mu_);
    if (handshake_done_) {
      // Translate what OpenSSL waited for back into what the connection
      // asked: a read blocked on the socket's write side can go on when it
      // is writable, and the other way round.
      if (read_wants_write_ && event.is_writable()) flags |= Event::kReadable;
      if (write_wants_read_ && event.is_readable()) flags |= Event::kWritable;
    }
  }
  ConnectionAccess::OnTransportEvent(*connection(),
                                     Event(event.token(), flags));
}

// --- Handshake
// ----------------------------------------------------------------

absl::Status TlsTransport::HandshakeErrorLocked(int ssl_error) {
  std::string detail;
  if (ssl_error == SSL_ERROR_SYSCALL) {
    const int err = errno;
    detail = DrainErrors(err != 0 ? std::strerror(err)
                                  : "the peer closed the connection");
  } else {
    detail = DrainErrors();
  }
  const long verify = SSL_get_verify_result(ssl_);
  if (!server_ && verify != X509_V_OK) {
    absl::StrAppend(&detail, " (", X509_verify_cert_error_string(verify), ")");
  }
  return absl::UnavailableError(
      absl::StrCat("TLS handshake with ", peer_name_, " failed: ", detail));
}

absl::Status TlsTransport::FinishConnect(bool* in_progress,
                                         CloseReason* reason) {
  *in_progress = false;
  *reason = CloseReason::kHandshakeFailed;
  bool connected;
  {
    CompactMutexLock lock(&mu_);
    connected = tcp_connected_;
  }
  if (!connected) {
    // Not under mu_: the socket's connect touches no SSL state.
    absl::Status status = SocketTransport::FinishConnect(in_progress, reason);
    if (!status.ok() || *in_progress) return status;
    CompactMutexLock lock(&mu_);
    tcp_connected_ = true;
  }
  if (!setup_error_.ok()) return setup_error_;
  EventLoop::TimerId timer;
  absl::Status result;
  {
    CompactMutexLock lock(&mu_);
    ERR_clear_error();
    errno = 0;
    const int rc = SSL_do_handshake(ssl_);
    if (rc == 1) {
      handshake_done_ = true;
      timer = std::exchange(handshake_timer_, EventLoop::TimerId());
      // The registration stays as the handshake left it: the connection
      // tells its open interest next, always (one epoll_ctl, not two).
      // Application data that came with the handshake's last flight may
      // sit in OpenSSL already, where no readiness announces it (found by
      // the fuzzer: an echo that never came).
      if (SSL_has_pending(ssl_)) ScheduleReportLocked();
    } else {
      const int err = SSL_get_error(ssl_, rc);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        handshake_needs_ = err == SSL_ERROR_WANT_READ ? Interest::Readable()
                                                      : Interest::Writable();
        ApplyInterestLocked();
        *in_progress = true;
        return absl::OkStatus();
      }
      fatal_ = true;
      timer = std::exchange(handshake_timer_, EventLoop::TimerId());
      result = HandshakeErrorLocked(err);
    }
  }
  // Unlocked: Cancel waits for a timer callback in flight, which only
  // queues a task on the connection.
  if (timer.valid()) connection()->loop()->Cancel(timer);
  return result;
}

// --- Bytes
// --------------------------------------------------------------------

IoResult TlsTransport::FailureLocked(int ssl_error, const char* what) {
  fatal_ = true;
  if (ssl_error == SSL_ERROR_ZERO_RETURN) {
    fatal_ = false;  // a clean close_notify: we may still answer ours
    return IoResult::Eof();
  }
  if (ssl_error == SSL_ERROR_SYSCALL) {
    const int err = errno;
    if (ERR_peek_error() == 0 && err != 0) {
      return IoResult::Failed(net_internal::ReasonForErrno(err),
                              ErrnoStatus(err, what));
    }
    if (ERR_peek_error() == 0) {
      return IoResult::Failed(
          CloseReason::kTruncated,
          absl::DataLossError("TLS: the peer closed the connection without "
                              "close_notify (input may be truncated)"));
    }
  }
  const unsigned long code = ERR_peek_error();
  if (ERR_GET_LIB(code) == ERR_LIB_SSL &&
      ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
    ERR_clear_error();
    return IoResult::Failed(
        CloseReason::kTruncated,
        absl::DataLossError("TLS: the peer closed the connection without "
                            "close_notify (input may be truncated)"));
  }
  return IoResult::Failed(
      CloseReason::kError,
      absl::DataLossError(absl::StrCat("TLS ", what, ": ", DrainErrors())));
}

IoResult TlsTransport::Read(ByteBuffer& input, size_t max, size_t* copied) {
  CompactMutexLock lock(&mu_);
  if (has_pending_end_) {
    has_pending_end_ = false;
    return std::move(pending_end_);
  }
  if (!handshake_done_ || fatal_) return IoResult::WouldBlock();
  size_t total = 0;
  while (total < max) {
    const size_t want = max - total;
    absl::Span<char> room = input.AppendSpace();
    if (room.empty()) {
      const char* before = input.data();
      const size_t held = input.size();
      (void)input.PrepareAppend(std::min(want, kRecordSize));
      if (input.data() != before) *copied += held;
      room = input.AppendSpace();
    }
    ERR_clear_error();
    errno = 0;
    const int n =
        SSL_read(ssl_, room.data(), ClampToInt(std::min(room.size(), want)));
    if (n > 0) {
      input.Commit(static_cast<size_t>(n));
      total += static_cast<size_t>(n);
      // OpenSSL reads ahead: what one recv brought is in its buffer. Once
      // that is used up, stop, as a short socket read would: the
      // level-triggered registration reports more, so the recv that would
      // only say EAGAIN is never made.
      if (!SSL_has_pending(ssl_)) break;
      continue;
    }
    const int err = SSL_get_error(ssl_, n);
    const bool wants_write = err == SSL_ERROR_WANT_WRITE;
    if (wants_write != read_wants_write_) {
      read_wants_write_ = wants_write;
      ApplyInterestLocked();
    }
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) break;
    IoResult end = FailureLocked(err, "read");
    if (total == 0) return end;
    // Data first; the end comes with the next Read, which nothing in the
    // socket may announce (a close_notify on an open socket).
    pending_end_ = std::move(end);
    has_pending_end_ = true;
    ScheduleReportLocked();
    return IoResult::Progress(total);
  }
  if (total == 0) return IoResult::WouldBlock();
  // A record larger than `max` left plaintext in OpenSSL: the socket will
  // not announce it, so we do (harmless if the connection reads it first).
  if (SSL_has_pending(ssl_)) ScheduleReportLocked();
  return IoResult::Progress(total);
}

IoResult TlsTransport::Write(absl::Span<const absl::string_view> pieces) {
  CompactMutexLock lock(&mu_);
  if (std::optional<IoResult> refused = WriteRefusalLocked()) return *refused;
  // Small pieces are gathered into one record; a large first piece goes
  // as it is. A retry after WANT_WRITE gathers the same leading bytes (the
  // queue only grows at its end), as OpenSSL requires.
  char gathered[kRecordSize];
  absl::string_view data = pieces.empty() ? absl::string_view() : pieces[0];
  if (pieces.size() > 1 && data.size() < kRecordSize) {
    size_t used = 0;
    for (absl::string_view piece : pieces) {
      const size_t take = std::min(piece.size(), sizeof(gathered) - used);
      std::memcpy(gathered + used, piece.data(), take);
      used += take;
      if (used == sizeof(gathered)) break;
    }
    data = absl::string_view(gathered, used);
  }
  if (data.empty()) return IoResult::WouldBlock();
  ERR_clear_error();
  errno = 0;
  const int n = SSL_write(ssl_, data.data(), ClampToInt(data.size()));
  if (n > 0) {
    if (write_wants_read_) {
      write_wants_read_ = false;
      ApplyInterestLocked();
    }
    return IoResult::Progress(static_cast<size_t>(n));
  }
  return WriteFailureLocked(SSL_get_error(ssl_, n), "write");
}

std::optional<IoResult> TlsTransport::WriteRefusalLocked() const {
  if (!handshake_done_) return IoResult::WouldBlock();
  if (fatal_ || sent_close_notify_) {
    return IoResult::Failed(
        CloseReason::kError,
        absl::FailedPreconditionError("TLS: the session has ended"));
  }
  return std::nullopt;
}

IoResult TlsTransport::WriteFailureLocked(int ssl_error, const char* what) {
  if (ssl_error == SSL_ERROR_WANT_WRITE) return IoResult::WouldBlock();
  if (ssl_error == SSL_ERROR_WANT_READ) {
    write_wants_read_ = true;
    ApplyInterestLocked();
    return IoResult::WouldBlock();
  }
  return FailureLocked(ssl_error, what);
}

IoResult TlsTransport::SendFile(int fd, uint64_t offset, size_t length) {
  CompactMutexLock lock(&mu_);
  if (std::optional<IoResult> refused = WriteRefusalLocked()) return *refused;
  ERR_clear_error();
  errno = 0;
  int err;
  if (BIO_get_ktls_send(SSL_get_wbio(ssl_))) {
    // kTLS: the kernel encrypts; the file never enters user space.
    const ossl_ssize_t n = SSL_sendfile(ssl_, fd, static_cast<off_t>(offset),
                                        std::min<size_t>(length, INT_MAX), 0);
    if (n > 0) return IoResult::Progress(static_cast<size_t>(n));
    if (n == 0) return IoResult::Eof();
    err = SSL_get_error(ssl_, static_cast<int>(n));
  } else {
    // User-space encryption: one record read from the file at a time (a
    // retry reads the same bytes again, so nothing is kept between calls).
    char buffer[kRecordSize];
    ssize_t got;
    do {
      got = ::pread(fd, buffer, std::min(length, sizeof(buffer)),
                    static_cast<off_t>(offset));
    } while (got < 0 && errno == EINTR);
    if (got == 0) return IoResult::Eof();  // the file ended early
    if (got < 0) {
      return IoResult::Failed(CloseReason::kError, ErrnoStatus(errno, "pread"));
    }
    const int n = SSL_write(ssl_, buffer, static_cast<int>(got));
    if (n > 0) return IoResult::Progress(static_cast<size_t>(n));
    err = SSL_get_error(ssl_, n);
  }
  return WriteFailureLocked(err, "sendfile");
}

// --- Ending
// -------------------------------------------------------------------

void TlsTransport::CloseNotify() {
  CompactMutexLock lock(&mu_);
  if (!handshake_done_ || fatal_ || sent_close_notify_) return;
  sent_close_notify_ = true;
  // One non-blocking attempt: the alert goes out if the socket takes it;
  // we never wait for the peer's (bounded by construction).
  ERR_clear_error();
  (void)SSL_shutdown(ssl_);
  ERR_clear_error();
  // Input left unread when the socket closes makes the kernel send a reset
  // instead of a FIN, and a reset may destroy our close_notify (and the
  // last data before it) in the peer's receive queue. A session ticket that
  // arrived after the last read is the usual such input: discard what is
  // waiting (bounded; the connection reads no more anyway).
  char discard[kRecordSize];
  for (int i = 0; i < 4; ++i) {
    const ssize_t n =
        ::recv(stream().fd(), discard, sizeof(discard), MSG_DONTWAIT);
    if (n <= 0) break;
  }
}

absl::Status TlsTransport::ShutdownWrite() {
  {
    CompactMutexLock lock(&mu_);
    if (handshake_done_ && !fatal_ && !sent_close_notify_) {
      sent_close_notify_ = true;
      ERR_clear_error();
      (void)SSL_shutdown(ssl_);
      ERR_clear_error();
    }
  }
  return SocketTransport::ShutdownWrite();
}

bool TlsTransport::HasPendingInput() const {
  CompactMutexLock lock(&mu_);
  return has_pending_end_ ||
         (handshake_done_ && !fatal_ && SSL_has_pending(ssl_) == 1);
}

absl::Status TlsTransport::Probe() const {
  absl::Status socket = SocketTransport::Probe();
  CompactMutexLock lock(&mu_);
  if (!handshake_done_ || fatal_) {
    return absl::UnavailableError("TLS: the session is not usable");
  }
  if (has_pending_end_) {
    return absl::UnavailableError("TLS: the peer ended the session");
  }
  if (SSL_pending(ssl_) > 0) {
    return absl::FailedPreconditionError("unexpected input is waiting");
  }
  if (!absl::IsFailedPrecondition(socket)) return socket;
  // Bytes are waiting: a session ticket or a close_notify needs no caller,
  // application data does. SSL_peek tells them apart without consuming
  // application data.
  ERR_clear_error();
  char byte;
  const int n = SSL_peek(ssl_, &byte, 1);
  if (n > 0) return socket;
  const int err = SSL_get_error(ssl_, n);
  ERR_clear_error();
  if (err == SSL_ERROR_WANT_READ) return absl::OkStatus();
  return absl::UnavailableError("TLS: the peer ended the session");
}

TlsInfo TlsTransport::Info() const {
  CompactMutexLock lock(&mu_);
  TlsInfo info;
  info.handshake_done = handshake_done_;
  if (ssl_ == nullptr) return info;
  info.version = SSL_get_version(ssl_);
  if (const char* cipher = SSL_get_cipher_name(ssl_)) info.cipher = cipher;
  const unsigned char* alpn = nullptr;
  unsigned int alpn_len = 0;
  SSL_get0_alpn_selected(ssl_, &alpn, &alpn_len);
  if (alpn != nullptr) {
    info.alpn.assign(reinterpret_cast<const char*>(alpn), alpn_len);
  }
  if (const char* name = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name)) {
    info.server_name = name;
  }
  info.resumed = SSL_session_reused(ssl_) == 1;
  info.kernel_tls_send = BIO_get_ktls_send(SSL_get_wbio(ssl_)) != 0;
  info.kernel_tls_receive = BIO_get_ktls_recv(SSL_get_rbio(ssl_)) != 0;
  return info;
}

}  // namespace tls_internal

absl::StatusOr<TlsInfo> TlsInfoOf(const Connection& conn) {
  auto* transport = dynamic_cast<tls_internal::TlsTransport*>(
      net_internal::ConnectionAccess::TransportOf(conn));
  if (transport == nullptr) {
    return absl::NotFoundError("not a TLS connection");
  }
  return transport->Info();
}

}  // namespace mill
