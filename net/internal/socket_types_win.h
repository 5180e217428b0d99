// Socket address types and option constants on Windows (Winsock 2).
// Internal: included through net/internal/socket_types.h only.
//
// Winsock spells the BSD types the same (sockaddr, sockaddr_in,
// sockaddr_in6, sockaddr_storage, socklen_t) and has sockaddr_un in
// <afunix.h> (Windows 10 1803 and later).
#ifndef MILL_IO_NET_INTERNAL_SOCKET_TYPES_WIN_H_
#define MILL_IO_NET_INTERNAL_SOCKET_TYPES_WIN_H_

// winsock2.h first: before windows.h, and afunix.h needs its types.
// clang-format off
#include <winsock2.h>  // IWYU pragma: export
#include <ws2tcpip.h>  // IWYU pragma: export
#include <afunix.h>  // IWYU pragma: export
// clang-format on

// shutdown(2)'s names, which TcpStream::Shutdown takes (the values of
// Winsock's SD_RECEIVE, SD_SEND and SD_BOTH; as mingw-w64's unistd.h
// defines them).
#ifndef SHUT_RDWR
#define SHUT_RD 0x00
#define SHUT_WR 0x01
#define SHUT_RDWR 0x02
#endif

#endif  // MILL_IO_NET_INTERNAL_SOCKET_TYPES_WIN_H_
