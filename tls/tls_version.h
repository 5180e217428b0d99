// TlsVersion: the protocol versions //tls speaks (TLS 1.2 and 1.3; older
// ones are broken and never offered).
#ifndef MILL_IO_TLS_TLS_VERSION_H_
#define MILL_IO_TLS_TLS_VERSION_H_

namespace mill {

enum class TlsVersion { k1_2, k1_3 };

// Whether //tls offloads record encryption to the kernel (kTLS) when it
// can: kAuto uses it where the kernel has the "tls" module (then
// Connection::SendFile stays zero-copy through SSL_sendfile) and falls back
// to user-space encryption elsewhere, with no change in behaviour.
enum class KernelTls { kAuto, kOff };

}  // namespace mill

#endif  // MILL_IO_TLS_TLS_VERSION_H_
