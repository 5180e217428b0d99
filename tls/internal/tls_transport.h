// TlsTransport: a Connection's bytes through OpenSSL, over the connection's
// socket. Internal: not part of the API; see net/internal/transport.h for
// the contract and docs/ARCHITECTURE.md ("TLS on the transport seam").
//
// It is a SocketTransport (the registration, the connect and the descriptor
// are the socket's) whose Read, Write and SendFile run SSL_read, SSL_write
// and SSL_sendfile / a bounded pread + SSL_write on its descriptor:
//  - The handshake is part of connecting: the connection stays kConnecting
//    (accepted ones too) and FinishConnect drives SSL_do_handshake at each
//    report, registering what OpenSSL waits for; on_connect runs once it
//    completed. A server's handshake must finish within its timeout.
//  - The registration is what the connection asked for plus what OpenSSL
//    needs (a read waiting for the socket to take a write, say); reports
//    are translated back, so the connection only ever sees "you can read" /
//    "you can write".
//  - Plaintext that OpenSSL holds after a read (a record larger than the
//    room) is not announced by the socket: the transport reports it itself.
//  - A clean close sends close_notify (CloseNotify); the peer's close_notify
//    is EOF; the peer closing without one is kTruncated.
//
// Thread-safety: OpenSSL's SSL is not thread-safe and Read (the serial
// context) may run beside Write (under the connection's lock): every use of
// the SSL is under mu_, taken after the connection's lock, never before it.
// Ownership: owns the SSL (and, through SocketTransport, the socket); holds
// the layer's context alive for the SSL's callbacks.
#ifndef MILL_IO_TLS_INTERNAL_TLS_TRANSPORT_H_
#define MILL_IO_TLS_INTERNAL_TLS_TRANSPORT_H_

#include <openssl/ssl.h>

#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "base/compact_mutex.h"
#include "net/internal/socket_transport.h"
#include "reactor/event_loop.h"
#include "tls/tls_info.h"

namespace mill {
namespace tls_internal {

class TlsTransport final : public net_internal::SocketTransport {
 public:
  struct Params {
    SSL* ssl = nullptr;  // owned; null when SSL_new failed (see error)
    absl::Status error;  // why ssl is null
    bool server = false;
    // Server: the handshake's bound (zero: none).
    absl::Duration handshake_timeout;
    // Keeps the context that configured `ssl` alive (its callbacks use it).
    std::shared_ptr<const void> context;
    // Client: the key its session is cached under (empty: no caching).
    std::string session_key;
    // For messages: the server name or peer.
    std::string peer_name;
  };

  TlsTransport(Connection* conn, TcpStream stream, Params params);
  ~TlsTransport() override;

  absl::Status Start(Interest interest) override;
  void SetInterest(Interest interest) override;
  void CloseNotify() override;
  absl::Status FinishConnect(bool* in_progress, CloseReason* reason) override;
  net_internal::IoResult Read(ByteBuffer& input, size_t max,
                              size_t* copied) override;
  net_internal::IoResult Write(
      absl::Span<const absl::string_view> pieces) override;
  net_internal::IoResult SendFile(int fd, uint64_t offset,
                                  size_t length) override;
  absl::Status ShutdownWrite() override;
  absl::Status Probe() const override;
  bool HasPendingInput() const override;
  // OpenSSL reads the socket itself (its BIO): no receive-ahead.
  bool MayReceiveAhead() const override { return false; }

  TlsInfo Info() const;
  const std::string& session_key() const { return session_key_; }

  // The transport an SSL belongs to (its app data).
  static TlsTransport* OfSsl(const SSL* ssl);

 private:
  void HandleEvent(const Event& event) override;

  // What to register: the connection's interest, or the handshake's needs,
  // plus what a blocked read or write waits for.
  Interest EffectiveLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ApplyInterestLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Reports "readable" from the loop soon (plaintext held by OpenSSL, or an
  // end of stream found after returning data), once per need.
  void ScheduleReportLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The outcome of a failed SSL call; `what` names it in messages.
  net_internal::IoResult FailureLocked(int ssl_error, const char* what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Why Write / SendFile cannot send now (handshake not done: would block;
  // the session ended: failed), or nothing when they can.
  std::optional<net_internal::IoResult> WriteRefusalLocked() const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A failed SSL_write / SSL_sendfile: would block (registering what
  // OpenSSL waits for) or the failure.
  net_internal::IoResult WriteFailureLocked(int ssl_error, const char* what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status HandshakeErrorLocked(int ssl_error)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable CompactMutex mu_;
  SSL* const ssl_;
  const std::shared_ptr<const void> context_;
  const std::string session_key_;
  const std::string peer_name_;
  absl::Status setup_error_;
  const absl::Duration handshake_timeout_;
  EventLoop::TimerId handshake_timer_ ABSL_GUARDED_BY(mu_);
  Interest wanted_ ABSL_GUARDED_BY(mu_) = Interest::None();
  Interest registered_ ABSL_GUARDED_BY(mu_) = Interest::None();
  Interest handshake_needs_ ABSL_GUARDED_BY(mu_) = Interest::None();
  const bool server_;
  bool tcp_connected_ ABSL_GUARDED_BY(mu_);
  bool handshake_done_ ABSL_GUARDED_BY(mu_) = false;
  bool read_wants_write_ ABSL_GUARDED_BY(mu_) = false;
  bool write_wants_read_ ABSL_GUARDED_BY(mu_) = false;
  bool report_scheduled_ ABSL_GUARDED_BY(mu_) = false;
  // A fatal error happened: no more SSL calls but freeing.
  bool fatal_ ABSL_GUARDED_BY(mu_) = false;
  bool sent_close_notify_ ABSL_GUARDED_BY(mu_) = false;
  // An end found after a read returned data: the next Read returns it.
  bool has_pending_end_ ABSL_GUARDED_BY(mu_) = false;
  net_internal::IoResult pending_end_ ABSL_GUARDED_BY(mu_) =
      net_internal::IoResult::Eof();
};

}  // namespace tls_internal
}  // namespace mill

#endif  // MILL_IO_TLS_INTERNAL_TLS_TRANSPORT_H_
