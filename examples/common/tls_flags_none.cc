// tls_flags.h in a build without TLS (Windows: Debian ships no mingw-w64
// OpenSSL, so //tls is not built there). The flags exist, so that giving
// them is a clear error rather than an unknown flag or a silent plaintext
// server.
#include <utility>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "examples/common/tls_flags.h"

ABSL_FLAG(std::string, tls_cert, "",
          "serve TLS with this PEM certificate chain (not available in this "
          "build)");
ABSL_FLAG(std::string, tls_key, "",
          "the PEM private key of --tls-cert (not available in this build)");

namespace mill {
namespace examples {

absl::StatusOr<std::shared_ptr<const ConnectionLayer>> ServerTlsFromFlags(
    std::vector<std::string> alpn) {
  (void)alpn;
  if (absl::GetFlag(FLAGS_tls_cert).empty() &&
      absl::GetFlag(FLAGS_tls_key).empty()) {
    return nullptr;
  }
  return absl::FailedPreconditionError(
      "TLS is not available in this build (built without OpenSSL): "
      "--tls-cert and --tls-key cannot be used");
}

absl::StatusOr<std::shared_ptr<const ConnectionLayer>> ClientTls(
    std::string ca_file, std::vector<std::string> alpn) {
  (void)ca_file;
  (void)alpn;
  return absl::FailedPreconditionError(
      "TLS is not available in this build (built without OpenSSL): "
      "https:// upstreams cannot be used");
}

bool TlsAvailable() { return false; }

}  // namespace examples
}  // namespace mill
