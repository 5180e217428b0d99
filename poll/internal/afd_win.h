// Internal, Windows only: the NT-level declarations the IOCP backend needs to
// ask the AFD driver (the kernel side of Winsock) for socket readiness.
//
// IOCTL_AFD_POLL is what select() and WSAPoll() use inside ws2_32; issued
// asynchronously on a handle to \Device\Afd that is associated with an I/O
// completion port, it completes (one completion packet) as soon as one of
// the requested conditions holds for the socket, or at once if one already
// holds. The same technique as wepoll, mio's sys/windows and libuv's uv_poll.
// The layouts below are the driver's ABI (not in the SDK headers); they are
// the same on every Windows since NT 4 and are what Wine implements.
//
// Include order matters: <winsock2.h> before <windows.h>, and the STATUS_*
// codes from <ntstatus.h> without winnt.h's duplicates (WIN32_NO_STATUS).
#ifndef MILL_IO_POLL_INTERNAL_AFD_WIN_H_
#define MILL_IO_POLL_INTERNAL_AFD_WIN_H_

// clang-format off
#include <winsock2.h>
#include <mswsock.h>
#define WIN32_NO_STATUS
#include <windows.h>
#undef WIN32_NO_STATUS
#include <winternl.h>
#include <ntstatus.h>
// clang-format on

namespace mill {
namespace poll_internal {
namespace afd {

// Poll conditions (AFD_POLL_*), requested in Events and reported back in it.
constexpr ULONG kPollReceive = 0x0001;           // data to read
constexpr ULONG kPollReceiveExpedited = 0x0002;  // urgent (OOB) data
constexpr ULONG kPollSend = 0x0004;              // send buffer space
constexpr ULONG kPollDisconnect = 0x0008;        // peer shut down (FIN)
constexpr ULONG kPollAbort = 0x0010;             // connection reset / aborted
constexpr ULONG kPollLocalClose = 0x0020;        // socket closed by us
constexpr ULONG kPollAccept = 0x0080;            // a connection to accept
constexpr ULONG kPollConnectFail = 0x0100;       // non-blocking connect failed

constexpr ULONG kIoctlPoll = 0x00012024;  // IOCTL_AFD_POLL

struct PollHandleInfo {
  HANDLE handle;
  ULONG events;
  NTSTATUS status;
};

struct PollInfo {
  LARGE_INTEGER timeout;  // INT64_MAX: no timeout
  ULONG number_of_handles;
  ULONG exclusive;
  PollHandleInfo handles[1];
};

}  // namespace afd
}  // namespace poll_internal
}  // namespace mill

// Windows SDK ioctls that older mingw-w64 headers may lack.
#ifndef SIO_BASE_HANDLE
#define SIO_BASE_HANDLE 0x48000022
#endif
#ifndef SIO_BSP_HANDLE_POLL
#define SIO_BSP_HANDLE_POLL 0x4800001D
#endif
#ifndef SIO_BSP_HANDLE_SELECT
#define SIO_BSP_HANDLE_SELECT 0x4800001C
#endif

#endif  // MILL_IO_POLL_INTERNAL_AFD_WIN_H_
