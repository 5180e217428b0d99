#include "examples/common/tls_flags.h"

#include <utility>

#include "absl/flags/flag.h"
#include "absl/status/status.h"

ABSL_FLAG(std::string, tls_cert, "",
          "serve TLS with this PEM certificate chain (leaf first); needs "
          "--tls-key");
ABSL_FLAG(std::string, tls_key, "",
          "the unencrypted PEM private key of --tls-cert");

namespace mill {
namespace examples {

absl::StatusOr<std::shared_ptr<TlsServerContext>> ServerTlsFromFlags(
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
  return TlsServerContext::Create(std::move(options));
}

}  // namespace examples
}  // namespace mill
