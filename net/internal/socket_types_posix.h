// Socket address types and option constants on POSIX systems. Internal:
// included through net/internal/socket_types.h only.
#ifndef MILL_IO_NET_INTERNAL_SOCKET_TYPES_POSIX_H_
#define MILL_IO_NET_INTERNAL_SOCKET_TYPES_POSIX_H_

#include <arpa/inet.h>    // IWYU pragma: export
#include <netinet/in.h>   // IWYU pragma: export
#include <netinet/tcp.h>  // IWYU pragma: export
#include <sys/socket.h>   // IWYU pragma: export
#include <sys/un.h>       // IWYU pragma: export

#endif  // MILL_IO_NET_INTERNAL_SOCKET_TYPES_POSIX_H_
