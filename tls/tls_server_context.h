// TlsServerContext: TLS for a TcpServer's connections (OpenSSL 3). Set it as
// TcpServerOptions::layer; the connections are ordinary Connections whose
// on_data sees plaintext and whose Send takes plaintext.
//
//   mill::TlsServerOptions tls;
//   tls.certificates.push_back({"cert.pem", "key.pem"});
//   tls.alpn = {"http/1.1"};
//   absl::StatusOr<std::shared_ptr<mill::TlsServerContext>> context =
//       mill::TlsServerContext::Create(tls);
//   if (!context.ok()) return context.status();  // says which file, and why
//   mill::TcpServerOptions options;
//   options.layer = *context;
//
// What it does: TLS 1.2 and 1.3 (renegotiation disabled); a certificate
// chain and key per name, chosen by SNI (the first is the default); ALPN
// (server preference); session resumption by tickets (TLS 1.2 tickets and
// TLS 1.3 PSK) under keys rotated every ticket_key_rotation and kept for
// ticket_keys_kept more periods, with no server-side session store; a
// bound on the handshake (a client that stalls, or never speaks, is closed
// with CloseReason kHandshakeFailed after handshake_timeout); close_notify
// on every clean close; a peer that closes without close_notify is
// CloseReason::kTruncated. Handshake failures (bad certificates, plaintext
// HTTP or garbage on the port, a truncated ClientHello) close that
// connection only: TcpServerStats::handshakes_failed counts them and
// TcpServerOptions::on_handshake_failed hears OpenSSL's reason.
//
// Thread-safety: immutable after Create except the ticket keys, which are
// thread-safe (RotateTicketKeys from any thread). Any number of servers on
// any loops may share one context. Ownership: servers hold it by
// shared_ptr, and so does every connection it made.
#ifndef MILL_IO_TLS_TLS_SERVER_CONTEXT_H_
#define MILL_IO_TLS_TLS_SERVER_CONTEXT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "net/connection_layer.h"
#include "tls/tls_version.h"

namespace mill {

namespace tls_internal {
class ServerContextState;
}  // namespace tls_internal

// One certificate with its key.
struct TlsCertificate {
  // PEM: the leaf certificate first, then its intermediates.
  std::string chain_file;
  // PEM private key matching the leaf, unencrypted.
  std::string key_file;
  // The SNI names this certificate answers ("example.com",
  // "*.example.com"); empty: the DNS names of its subjectAltName (or its
  // common name).
  std::vector<std::string> server_names;
};

struct TlsServerOptions {
  // At least one; the first also answers clients without SNI or with a
  // name no certificate has.
  std::vector<TlsCertificate> certificates;
  // ALPN protocols in preference order ("h2", "http/1.1"); empty: no ALPN.
  // A client offering none of them gets no ALPN (not an error).
  std::vector<std::string> alpn;
  TlsVersion min_version = TlsVersion::k1_2;
  TlsVersion max_version = TlsVersion::k1_3;
  // OpenSSL cipher strings (empty: OpenSSL's defaults).
  std::string cipher_list;   // TLS 1.2
  std::string ciphersuites;  // TLS 1.3
  // A connection must finish its handshake within this (zero: no bound;
  // not recommended for servers facing the internet).
  absl::Duration handshake_timeout = absl::Seconds(10);
  // Session tickets (resumption without a full handshake).
  bool session_tickets = true;
  absl::Duration ticket_key_rotation = absl::Hours(1);
  int ticket_keys_kept = 2;
  KernelTls kernel_tls = KernelTls::kAuto;
};

class TlsServerContext final
    : public ConnectionLayer,
      public std::enable_shared_from_this<TlsServerContext> {
 public:
  // InvalidArgument for bad options; NotFound / PermissionDenied for a
  // certificate or key file that is missing or unreadable; InvalidArgument
  // naming the file for one that does not parse, an encrypted key, or a
  // key that does not match its certificate.
  static absl::StatusOr<std::shared_ptr<TlsServerContext>> Create(
      TlsServerOptions options);

  ~TlsServerContext() override;

  // Starts a new ticket key now (tickets under the previous keys still
  // resume until they age out).
  absl::Status RotateTicketKeys();
  // Keys that decrypt tickets now (1 + the kept previous ones, at most).
  size_t ticket_key_count() const;
  // Whether sessions are offloaded to the kernel (see KernelTls).
  bool kernel_tls() const;

  bool is_server() const override { return true; }
  ConnectionPtr NewConnection(
      net_internal::NewConnectionArgs args) const override;

 private:
  explicit TlsServerContext(std::unique_ptr<tls_internal::ServerContextState>);
  std::unique_ptr<tls_internal::ServerContextState> state_;
};

}  // namespace mill

#endif  // MILL_IO_TLS_TLS_SERVER_CONTEXT_H_
