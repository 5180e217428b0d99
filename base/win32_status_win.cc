#include <windows.h>
#include <winsock2.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "base/win32_status.h"

namespace mill {
namespace {

absl::StatusCode CodeFor(uint32_t code) {
  switch (code) {
    case ERROR_SUCCESS:
      return absl::StatusCode::kOk;

    case ERROR_INVALID_FUNCTION:
    case ERROR_INVALID_HANDLE:
    case ERROR_INVALID_PARAMETER:
    case ERROR_INVALID_NAME:
    case ERROR_BAD_PATHNAME:
    case ERROR_FILENAME_EXCED_RANGE:
    case ERROR_NEGATIVE_SEEK:
    case ERROR_INVALID_ADDRESS:
    case ERROR_NOACCESS:
    case ERROR_INVALID_FLAGS:
    case WSAEBADF:
    case WSAENOTSOCK:
    case WSAEINVAL:
    case WSAEFAULT:
    case WSAEDESTADDRREQ:
    case WSAENOPROTOOPT:
    case WSAEPROTOTYPE:
    case WSAENAMETOOLONG:
      return absl::StatusCode::kInvalidArgument;

    case WSAETIMEDOUT:
    case ERROR_TIMEOUT:
    case WAIT_TIMEOUT:
    case ERROR_SEM_TIMEOUT:
      return absl::StatusCode::kDeadlineExceeded;

    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
    case ERROR_INVALID_DRIVE:
    case ERROR_BAD_NETPATH:
    case ERROR_BAD_NET_NAME:
    case ERROR_DEV_NOT_EXIST:
    case ERROR_MOD_NOT_FOUND:
    case ERROR_PROC_NOT_FOUND:
    case ERROR_NOT_FOUND:
    case WSAHOST_NOT_FOUND:
      return absl::StatusCode::kNotFound;

    case ERROR_ALREADY_EXISTS:
    case ERROR_FILE_EXISTS:
    case WSAEADDRINUSE:
    case WSAEADDRNOTAVAIL:
    case WSAEALREADY:
      return absl::StatusCode::kAlreadyExists;

    case ERROR_ACCESS_DENIED:
    case ERROR_WRITE_PROTECT:
    case ERROR_PRIVILEGE_NOT_HELD:
    case WSAEACCES:
      return absl::StatusCode::kPermissionDenied;

    case ERROR_DIR_NOT_EMPTY:
    case ERROR_DIRECTORY:
    case ERROR_BROKEN_PIPE:
    case ERROR_NO_DATA:
    case ERROR_PIPE_NOT_CONNECTED:
    case ERROR_BUSY:
    case ERROR_SHARING_VIOLATION:
    case ERROR_LOCK_VIOLATION:
    case WSAEISCONN:
    case WSAENOTCONN:
    case WSAESHUTDOWN:
      return absl::StatusCode::kFailedPrecondition;

    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY:
    case ERROR_TOO_MANY_OPEN_FILES:
    case ERROR_DISK_FULL:
    case ERROR_HANDLE_DISK_FULL:
    case ERROR_NO_SYSTEM_RESOURCES:
    case ERROR_NOT_ENOUGH_QUOTA:
    case WSAENOBUFS:
    case WSAEMFILE:
    case WSAEPROCLIM:
    case WSAEUSERS:
    case WSAEDQUOT:
      return absl::StatusCode::kResourceExhausted;

    case ERROR_FILE_TOO_LARGE:
    case ERROR_ARITHMETIC_OVERFLOW:
    case ERROR_BUFFER_OVERFLOW:
      return absl::StatusCode::kOutOfRange;

    case ERROR_NOT_SUPPORTED:
    case ERROR_CALL_NOT_IMPLEMENTED:
    case ERROR_NOT_SAME_DEVICE:
    case WSAEOPNOTSUPP:
    case WSAEAFNOSUPPORT:
    case WSAEPFNOSUPPORT:
    case WSAEPROTONOSUPPORT:
    case WSAESOCKTNOSUPPORT:
    case WSAVERNOTSUPPORTED:
      return absl::StatusCode::kUnimplemented;

    case WSAEWOULDBLOCK:
    case WSAEINPROGRESS:
    case WSAECONNREFUSED:
    case WSAECONNRESET:
    case WSAECONNABORTED:
    case WSAEINTR:
    case WSAEHOSTDOWN:
    case WSAEHOSTUNREACH:
    case WSAENETDOWN:
    case WSAENETRESET:
    case WSAENETUNREACH:
    case WSANOTINITIALISED:
    case WSASYSNOTREADY:
    case WSATRY_AGAIN:
    case ERROR_NETNAME_DELETED:
    case ERROR_CONNECTION_REFUSED:
    case ERROR_CONNECTION_ABORTED:
    case ERROR_NETWORK_UNREACHABLE:
    case ERROR_HOST_UNREACHABLE:
    case ERROR_RETRY:
      return absl::StatusCode::kUnavailable;

    case ERROR_POSSIBLE_DEADLOCK:
      return absl::StatusCode::kAborted;

    case ERROR_OPERATION_ABORTED:
    case ERROR_CANCELLED:
    case WSAECANCELLED:
      return absl::StatusCode::kCancelled;

    default:
      return absl::StatusCode::kUnknown;
  }
}

// The system's text for `code`, trailing line breaks and spaces trimmed.
std::string SystemText(uint32_t code) {
  char buffer[512];
  DWORD n = FormatMessageA(
      FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, nullptr,
      static_cast<DWORD>(code), 0, buffer, sizeof(buffer), nullptr);
  while (n > 0 && (buffer[n - 1] == '\r' || buffer[n - 1] == '\n' ||
                   buffer[n - 1] == ' ')) {
    --n;
  }
  if (n == 0) return "unknown error";
  return std::string(buffer, n);
}

}  // namespace

absl::Status Win32ErrorStatus(uint32_t code, absl::string_view what) {
  const absl::StatusCode status_code = CodeFor(code);
  if (status_code == absl::StatusCode::kOk) return absl::OkStatus();
  return absl::Status(status_code, absl::StrCat(what, ": ", SystemText(code),
                                                " (Win32 error ", code, ")"));
}

absl::Status LastWin32ErrorStatus(absl::string_view what) {
  return Win32ErrorStatus(GetLastError(), what);
}

absl::Status LastSocketErrorStatus(absl::string_view what) {
  return Win32ErrorStatus(static_cast<uint32_t>(WSAGetLastError()), what);
}

}  // namespace mill
