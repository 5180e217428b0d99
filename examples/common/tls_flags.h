// The flags of an example server that serves TLS: --tls-cert=CERT.pem and
// --tls-key=KEY.pem (also spelled --tls_cert / --tls_key; see
// ServerProgram::ParseCommandLine). With both, the server's connections
// speak TLS (TcpServerOptions::layer); with neither, plain TCP. Only the
// binaries that link this library have them.
//
// Per platform: tls_flags.cc builds the layers with //tls (OpenSSL);
// tls_flags_none.cc, for the Windows build (Debian has no mingw-w64
// OpenSSL), has the same flags and refuses them with "TLS is not available
// in this build", so a server never silently serves plaintext where TLS was
// asked for.
//
// Thread-safety: call from main() after the command line was parsed.
#ifndef MILL_IO_EXAMPLES_COMMON_TLS_FLAGS_H_
#define MILL_IO_EXAMPLES_COMMON_TLS_FLAGS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "net/connection_layer.h"

namespace mill {
namespace examples {

// The server TLS layer --tls-cert and --tls-key ask for, offering `alpn`:
// null when neither is set; InvalidArgument when only one is; otherwise
// TlsServerContext::Create's result, whose errors name the file and why
// (missing, unreadable, not PEM, encrypted key, key not matching).
// Without TLS in the build: FailedPrecondition when either is set.
absl::StatusOr<std::shared_ptr<const ConnectionLayer>> ServerTlsFromFlags(
    std::vector<std::string> alpn);

// A client TLS layer offering `alpn` that verifies servers against the
// PEM CA bundle `ca_file` (empty: the system's trust store), for
// https:// upstreams: TlsClientContext::Create's result. Without TLS in the
// build: FailedPrecondition.
absl::StatusOr<std::shared_ptr<const ConnectionLayer>> ClientTls(
    std::string ca_file, std::vector<std::string> alpn);

// Whether this build has TLS (the two functions above can succeed).
bool TlsAvailable();

}  // namespace examples
}  // namespace mill

#endif  // MILL_IO_EXAMPLES_COMMON_TLS_FLAGS_H_
