// A socket BIO for OpenSSL that never raises SIGPIPE. Internal.
//
// OpenSSL's own socket BIO writes with write(2), so a peer that reset the
// connection kills a program that has not ignored SIGPIPE; a library must
// not require that of its users. This BIO is OpenSSL's socket BIO (its
// control, creation and kernel-TLS paths) with reads and writes through
// recv(2) and send(2, MSG_NOSIGNAL), except once the kernel does the
// encryption (kTLS), when OpenSSL's own reads and writes handle the record
// types (kTLS is only used where the program can arrange for SIGPIPE).
#ifndef MILL_IO_TLS_INTERNAL_SOCKET_BIO_H_
#define MILL_IO_TLS_INTERNAL_SOCKET_BIO_H_

#include <openssl/bio.h>

namespace mill {
namespace tls_internal {

// A BIO over `fd` that does not own it; null on allocation failure.
BIO* NewSocketBio(int fd);

}  // namespace tls_internal
}  // namespace mill

#endif  // MILL_IO_TLS_INTERNAL_SOCKET_BIO_H_
