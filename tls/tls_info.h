// TlsInfo: what a TLS connection negotiated (version, cipher, ALPN, SNI,
// resumption, kernel offload), for logs, tests and protocol selection.
//
// Thread-safety: TlsInfoOf may be called from any thread once the
// connection is open (on_connect and later). Ownership: a TlsInfo is a
// copy.
#ifndef MILL_IO_TLS_TLS_INFO_H_
#define MILL_IO_TLS_TLS_INFO_H_

#include <string>

#include "absl/status/statusor.h"
#include "net/connection.h"

namespace mill {

struct TlsInfo {
  std::string version;      // "TLSv1.3", "TLSv1.2"
  std::string cipher;       // e.g. "TLS_AES_128_GCM_SHA256"
  std::string alpn;         // the negotiated protocol; empty: none
  std::string server_name;  // SNI: the name the client asked for
  bool resumed = false;     // the session was resumed (ticket / PSK)
  bool handshake_done = false;
  // Records are encrypted by the kernel (kTLS) in that direction.
  bool kernel_tls_send = false;
  bool kernel_tls_receive = false;
};

// NotFound when `conn` is not a TLS connection.
absl::StatusOr<TlsInfo> TlsInfoOf(const Connection& conn);

}  // namespace mill

#endif  // MILL_IO_TLS_TLS_INFO_H_
