// Win32ErrorStatus: a failed Win32 or Winsock call's error code as an
// absl::Status, the Windows counterpart of ErrnoStatus (errno_status.h) and
// the one such conversion every Mill-IO package uses on Windows.
//
// The message is "<what>: <FormatMessage text> (Win32 error N)", the system
// text with its trailing CR/LF (and spaces) trimmed; "unknown error" when
// the system has no text for the code.
//
// The code maps like ErrnoStatus's for the errno of the same meaning:
//   InvalidArgument    ERROR_INVALID_HANDLE, ERROR_INVALID_PARAMETER,
//                      WSAEBADF, WSAENOTSOCK, WSAEINVAL, WSAEFAULT, ...
//   Unavailable        WSAEWOULDBLOCK, WSAECONNREFUSED, WSAECONNRESET,
//                      WSAECONNABORTED, WSAENETDOWN, WSAEHOSTUNREACH, ...
//   DeadlineExceeded   WSAETIMEDOUT, ERROR_TIMEOUT, WAIT_TIMEOUT (ETIMEDOUT)
//   PermissionDenied   ERROR_ACCESS_DENIED, WSAEACCES, ...
//   NotFound           ERROR_FILE_NOT_FOUND, ERROR_PATH_NOT_FOUND, ...
//   AlreadyExists      ERROR_ALREADY_EXISTS, ERROR_FILE_EXISTS,
//                      WSAEADDRINUSE, WSAEALREADY, WSAEADDRNOTAVAIL
//   ResourceExhausted  ERROR_NOT_ENOUGH_MEMORY, ERROR_OUTOFMEMORY,
//                      WSAENOBUFS, WSAEMFILE, ERROR_TOO_MANY_OPEN_FILES, ...
//   FailedPrecondition WSAEISCONN, WSAENOTCONN, WSAESHUTDOWN,
//                      ERROR_BROKEN_PIPE, ERROR_DIR_NOT_EMPTY, ...
//   Unimplemented      ERROR_NOT_SUPPORTED, ERROR_CALL_NOT_IMPLEMENTED,
//                      WSAEOPNOTSUPP, WSAEAFNOSUPPORT, ...
//   Cancelled          ERROR_OPERATION_ABORTED, WSAECANCELLED
//   Unknown            anything else
// One deliberate difference from Linux: WSAEADDRINUSE is AlreadyExists
// (absl maps EADDRINUSE to FailedPrecondition).
//
// Windows only (library //base:win32_status). The header includes no
// Windows header; codes are DWORDs passed as uint32_t.
//
// Thread-safety: safe from any thread.
#ifndef MILL_IO_BASE_WIN32_STATUS_H_
#define MILL_IO_BASE_WIN32_STATUS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace mill {

// `code` as a status (see above); code 0 (ERROR_SUCCESS) is OK.
absl::Status Win32ErrorStatus(uint32_t code, absl::string_view what);

// Win32ErrorStatus(GetLastError(), what).
absl::Status LastWin32ErrorStatus(absl::string_view what);

// Win32ErrorStatus(WSAGetLastError(), what).
absl::Status LastSocketErrorStatus(absl::string_view what);

}  // namespace mill

#endif  // MILL_IO_BASE_WIN32_STATUS_H_
