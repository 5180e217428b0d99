// The platform's socket address types for the public net/socket_address.h,
// which keeps the BSD names in its API (sockaddr, sockaddr_in, sockaddr_in6,
// sockaddr_un, sockaddr_storage, socklen_t, AF_*), and the socket option
// constants //net passes to net/internal/sys_socket.h. Internal: not part of
// the API.
//
// The one place where the platform-neutral files of //net meet a platform
// header: it chooses the platform's header file as libuv's uv.h chooses
// uv/win.h or uv/unix.h. Everything else that differs between the platforms
// lives in *_posix.cc and *_win.cc files behind sys_socket.h.
#ifndef MILL_IO_NET_INTERNAL_SOCKET_TYPES_H_
#define MILL_IO_NET_INTERNAL_SOCKET_TYPES_H_

#if defined(_WIN32)
#include "net/internal/socket_types_win.h"  // IWYU pragma: export
#else
#include "net/internal/socket_types_posix.h"  // IWYU pragma: export
#endif

#endif  // MILL_IO_NET_INTERNAL_SOCKET_TYPES_H_
