// Small OpenSSL helpers shared by //tls: owning pointers, the error queue as
// an absl::Status, and the settings every context gets. Internal.
#ifndef MILL_IO_TLS_INTERNAL_OPENSSL_UTIL_H_
#define MILL_IO_TLS_INTERNAL_OPENSSL_UTIL_H_

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tls/tls_version.h"

namespace mill {
namespace tls_internal {

struct SslCtxDeleter {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;

// Drains this thread's OpenSSL error queue into "reason; reason" (the
// library's own words, e.g. "certificate verify failed"); `fallback` when
// the queue is empty.
std::string DrainErrors(absl::string_view fallback = "unknown error");
// `code` with "<what>: <DrainErrors()>".
absl::Status ErrorStatus(absl::StatusCode code, absl::string_view what);

// What both sides' contexts are made with.
struct ContextSettings {
  TlsVersion min_version;
  TlsVersion max_version;
  bool kernel_tls;
  absl::string_view cipher_list;   // TLS 1.2; empty: OpenSSL's defaults
  absl::string_view ciphersuites;  // TLS 1.3; empty: OpenSSL's defaults
};

// A new context with what both sides share: the version range and ciphers,
// renegotiation off, no compression, read-ahead, partial writes from a
// moving buffer (the output queue's), buffers released while idle.
// InvalidArgument for a bad version range or cipher string.
absl::StatusOr<SslCtxPtr> NewContext(const SSL_METHOD* method,
                                     const ContextSettings& settings);

// ALPN's wire format (length-prefixed names); InvalidArgument for an empty
// or over-long (> 255 bytes) name.
absl::StatusOr<std::string> AlpnWireFormat(
    const std::vector<std::string>& protocols);

// OK if `path` can be opened for reading; else the errno status (NotFound,
// PermissionDenied, ...) naming the file: "TLS: <what> file '<path>'".
// InvalidArgument for an empty path.
absl::Status CheckReadable(const std::string& path, absl::string_view what);

// True when `name` is an IPv4 or IPv6 address literal.
bool IsIpLiteral(absl::string_view name);

}  // namespace tls_internal
}  // namespace mill

#endif  // MILL_IO_TLS_INTERNAL_OPENSSL_UTIL_H_
