// tls_flags.h with //tls (OpenSSL).
#include "examples/common/tls_flags.h"

#include <utility>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "tls/tls_client_context.h"
#include "tls/tls_server_context.h"

ABSL_FLAG(std::string, tls_cert, "",
          "serve TLS with this PEM certificate chain (leaf first); needs "
          "--tls-key");
ABSL_FLAG(std::string, tls_key, "",
          "the unencrypted PEM private key of --tls-cert");

namespace mill {
namespace examples {

absl::StatusOr<std::shared_ptr<const ConnectionLayer>> ServerTlsFromFlags(
    std::vector<std::string> alpn) {
  const std::string cert = absl::GetFlag(FLAGS_tls_cert);
  const std::string key = absl::GetFlag(FLAGS_tls_key);
  if (cert.empty() && key.empty()) return nullptr;
  if (cert.empty() || key.empty()) {
    return absl::InvalidArgumentError(
        "--tls-cert and --tls-key must be given together");
  }
  TlsServerOptions options;
  options.certificates.push_back({cert, key, {}});
  options.alpn = std::move(alpn);
  absl::StatusOr<std::shared_ptr<TlsServerContext>> context =
      TlsServerContext::Create(std::move(options));
  if (!context.ok()) return context.status();
  return std::shared_ptr<const ConnectionLayer>(*std::move(context));
}

absl::StatusOr<std::shared_ptr<const ConnectionLayer>> ClientTls(
    std::string ca_file, std::vector<std::string> alpn) {
  TlsClientOptions options;
  options.ca_file = std::move(ca_file);
  options.alpn = std::move(alpn);
  absl::StatusOr<std::shared_ptr<TlsClientContext>> context =
      TlsClientContext::Create(std::move(options));
  if (!context.ok()) return context.status();
  return std::shared_ptr<const ConnectionLayer>(*std::move(context));
}

bool TlsAvailable() { return true; }

}  // namespace examples
}  // namespace mill
