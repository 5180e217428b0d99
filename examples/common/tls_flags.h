// The flags of an example server that serves TLS: --tls-cert=CERT.pem and
// --tls-key=KEY.pem (also spelled --tls_cert / --tls_key; see
// ServerProgram::ParseCommandLine). With both, the server's connections
// speak TLS (TcpServerOptions::layer); with neither, plain TCP. Only the
// binaries that link this library (and so //tls and OpenSSL) have them.
//
// Thread-safety: call from main() after the command line was parsed.
#ifndef MILL_IO_EXAMPLES_COMMON_TLS_FLAGS_H_
#define MILL_IO_EXAMPLES_COMMON_TLS_FLAGS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tls/tls_server_context.h"

namespace mill {
namespace examples {

// The TLS context --tls-cert and --tls-key ask for, offering `alpn`: null
// when neither is set; InvalidArgument when only one is; otherwise
// TlsServerContext::Create's result, whose errors name the file and why
// (missing, unreadable, not PEM, encrypted key, key not matching).
absl::StatusOr<std::shared_ptr<TlsServerContext>> ServerTlsFromFlags(
    std::vector<std::string> alpn);

}  // namespace examples
}  // namespace mill

#endif  // MILL_IO_EXAMPLES_COMMON_TLS_FLAGS_H_
