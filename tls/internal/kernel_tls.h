// Whether to ask OpenSSL for kernel TLS (SSL_OP_ENABLE_KTLS). Internal.
//
// OpenSSL switches a session to kTLS after the handshake when the option is
// set and setsockopt(TCP_ULP, "tls") succeeds; where the kernel has no "tls"
// module that setsockopt fails (ENOENT) and OpenSSL stays in user space,
// but only after a failed system call per connection. Probing once per
// process avoids that cost and says in TlsInfo what happened.
#ifndef MILL_IO_TLS_INTERNAL_KERNEL_TLS_H_
#define MILL_IO_TLS_INTERNAL_KERNEL_TLS_H_

#include "absl/status/status.h"
#include "tls/tls_version.h"

namespace mill {
namespace tls_internal {

// What the kernel offers: OK when a connected TCP socket accepts
// TCP_ULP "tls", else why not (ENOENT: no module; EPERM, ...). Probed once
// per process, on a loopback connection.
absl::Status KernelTlsSupport();

// The decision: enable kTLS when the mode allows it and the kernel has it.
bool UseKernelTls(KernelTls mode, const absl::Status& support);

}  // namespace tls_internal
}  // namespace mill

#endif  // MILL_IO_TLS_INTERNAL_KERNEL_TLS_H_
