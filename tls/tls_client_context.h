// TlsClientContext: TLS for a TcpClient's connections, and so for a
// ConnectionPool's (OpenSSL 3). Set it as TcpClientOptions::layer (for a
// pool: ConnectionPoolOptions::client.layer).
//
//   mill::TlsClientOptions tls;           // system trust store
//   tls.alpn = {"http/1.1"};
//   auto context = mill::TlsClientContext::Create(tls);
//   mill::TcpClientOptions options;
//   options.layer = *context;
//   client->Connect("example.com:443", ...);  // verifies "example.com"
//
// What it does: TLS 1.2 and 1.3 (renegotiation disabled); verification of
// the server's chain against the system trust store or ca_file, and of its
// name against the host connected to (DNS name, or IP address for an
// address target: SNI is sent for names only, as RFC 6066 says); ALPN;
// session resumption, sessions cached per endpoint (name and address), so
// a reconnect (a pool's new connection to the same endpoint) resumes.
// A connect completes when the handshake did; a failed handshake is the
// connect's error, with OpenSSL's reason and the verification's ("TLS
// handshake with example.com failed: certificate verify failed
// (certificate has expired)"). Close() sends close_notify after pending
// output; a server that closes without one is CloseReason::kTruncated.
//
// A pool keys connections by endpoint and layer (ConnectionPool::Acquire
// with a layer), so a connection is only ever reused under the context that
// verified it. Contexts are told apart by identity: create one per
// configuration and share it.
//
// Thread-safety: immutable after Create, but for the session cache, which
// is thread-safe. Any number of clients on any loops may share one context.
// Ownership: clients hold it by shared_ptr, and so does every connection.
#ifndef MILL_IO_TLS_TLS_CLIENT_CONTEXT_H_
#define MILL_IO_TLS_TLS_CLIENT_CONTEXT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "net/connection_layer.h"
#include "tls/tls_version.h"

namespace mill {

namespace tls_internal {
class ClientContextState;
}  // namespace tls_internal

struct TlsClientOptions {
  // PEM file of the CAs to trust; empty: the system trust store.
  std::string ca_file;
  // Verify the server's certificate and name. Turning it off makes the
  // connection open to any man in the middle: for tests only.
  bool verify_peer = true;
  // The name to verify and send as SNI; empty: the host connected to.
  std::string server_name;
  // ALPN protocols offered, in preference order; empty: none.
  std::vector<std::string> alpn;
  TlsVersion min_version = TlsVersion::k1_2;
  TlsVersion max_version = TlsVersion::k1_3;
  std::string cipher_list;   // TLS 1.2 (empty: OpenSSL's defaults)
  std::string ciphersuites;  // TLS 1.3
  // Optional client certificate (mutual TLS): PEM chain and key.
  std::string certificate_file;
  std::string key_file;
  // Sessions kept for resumption, one per endpoint (0: no resumption).
  size_t session_cache_size = 1024;
  KernelTls kernel_tls = KernelTls::kAuto;
};

class TlsClientContext final
    : public ConnectionLayer,
      public std::enable_shared_from_this<TlsClientContext> {
 public:
  // InvalidArgument for bad options, NotFound / PermissionDenied /
  // InvalidArgument for a CA or certificate file that cannot be used.
  static absl::StatusOr<std::shared_ptr<TlsClientContext>> Create(
      TlsClientOptions options);

  ~TlsClientContext() override;

  // Sessions cached now.
  size_t cached_sessions() const;
  // Forgets every cached session (the next connections make full
  // handshakes).
  void ClearSessions();

  bool is_server() const override { return false; }
  ConnectionPtr NewConnection(
      net_internal::NewConnectionArgs args) const override;

 private:
  explicit TlsClientContext(std::unique_ptr<tls_internal::ClientContextState>);
  std::unique_ptr<tls_internal::ClientContextState> state_;
};

}  // namespace mill

#endif  // MILL_IO_TLS_TLS_CLIENT_CONTEXT_H_
