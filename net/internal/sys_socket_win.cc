// net/internal/sys_socket.h on Windows: Winsock 2, errors from
// WSAGetLastError(). A SOCKET lives in an int (see sys_socket.h); ToSocket
// and FromSocket are the only conversions.
//
// No SIGPIPE on Windows: a send to a reset connection fails with
// WSAECONNRESET (or WSAESHUTDOWN after a shutdown), nothing is raised.
// SendFileSome reads a bounded chunk and sends it: TransmitFile would block
// a non-blocking socket's caller or need an overlapped completion that the
// readiness-based loop does not wait for.
// winsock2.h before windows.h and the other Winsock headers.
// clang-format off
#include <winsock2.h>
#include <mswsock.h>
#include <windows.h>
#include <ws2tcpip.h>
#include <io.h>
// clang-format on

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "base/win32_status.h"
#include "net/internal/sys_socket.h"

namespace mill {
namespace net_internal {
namespace {

SOCKET ToSocket(int fd) {
  return static_cast<SOCKET>(static_cast<intptr_t>(fd));
}

int FromSocket(SOCKET s) {
  return s == INVALID_SOCKET ? -1 : static_cast<int>(static_cast<intptr_t>(s));
}

// WSAStartup once per process (never WSACleanup: sockets may be closed by
// static destructors). 0, or the WSAStartup error.
int EnsureWinsock() {
  static const int started = [] {
    WSADATA data;
    return WSAStartup(MAKEWORD(2, 2), &data);
  }();
  return started;
}

// A Winsock call's result; on SOCKET_ERROR *err = WSAGetLastError().
int Check(int result, int* err) {
  if (result == SOCKET_ERROR) {
    *err = WSAGetLastError();
    return -1;
  }
  return result;
}

int Clamp(size_t size) {
  return static_cast<int>(std::min<size_t>(size, INT_MAX));
}

absl::Status LastStatus(absl::string_view what) {
  return Win32ErrorStatus(static_cast<uint32_t>(WSAGetLastError()), what);
}

}  // namespace

SocketErrorKind ClassifySocketError(int err) {
  switch (err) {
    case WSAEWOULDBLOCK:
      return SocketErrorKind::kWouldBlock;
    case WSAEINTR:
      return SocketErrorKind::kInterrupted;
    case WSAEINPROGRESS:
      return SocketErrorKind::kInProgress;
    case WSAENOTCONN:
      return SocketErrorKind::kNotConnected;
    case WSAECONNREFUSED:
      return SocketErrorKind::kConnectionRefused;
    case WSAEADDRINUSE:
      return SocketErrorKind::kAddressInUse;
    case WSAECONNABORTED:
      return SocketErrorKind::kAborted;
    case WSAEMFILE:
      return SocketErrorKind::kDescriptorLimit;
    case WSAECONNRESET:
    case WSAENETRESET:
    case WSAESHUTDOWN:  // send after shutdown: EPIPE
    case WSAETIMEDOUT:
    case WSAEHOSTUNREACH:
    case WSAENETUNREACH:
      return SocketErrorKind::kReset;
    default:
      return SocketErrorKind::kOther;
  }
}

absl::Status SocketErrorStatus(int err, absl::string_view what) {
  return Win32ErrorStatus(static_cast<uint32_t>(err), what);
}

void SetErrnoFromSocketError(int err) {
  switch (err) {
    case WSAEWOULDBLOCK:
      errno = EAGAIN;
      break;
    case WSAEINPROGRESS:
      errno = EINPROGRESS;
      break;
    case WSAENOTCONN:
      errno = ENOTCONN;
      break;
    case WSAECONNREFUSED:
      errno = ECONNREFUSED;
      break;
    case WSAECONNRESET:
    case WSAENETRESET:
      errno = ECONNRESET;
      break;
    case WSAECONNABORTED:
      errno = ECONNABORTED;
      break;
    case WSAESHUTDOWN:
      errno = EPIPE;
      break;
    case WSAETIMEDOUT:
      errno = ETIMEDOUT;
      break;
    case WSAENOTSOCK:
    case WSAEBADF:
      errno = EBADF;
      break;
    case WSAEINVAL:
    case WSAEFAULT:
      errno = EINVAL;
      break;
    case WSAEMSGSIZE:
      errno = EMSGSIZE;
      break;
    case WSAENOBUFS:
      errno = ENOBUFS;
      break;
    default:
      errno = EIO;
      break;
  }
}

int OpenSocket(int family, bool datagram, int* err) {
  if (const int rc = EnsureWinsock(); rc != 0) {
    *err = rc;
    return -1;
  }
  const SOCKET s =
      WSASocketW(family, datagram ? SOCK_DGRAM : SOCK_STREAM, 0, nullptr, 0,
                 WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
  if (s == INVALID_SOCKET) {
    *err = WSAGetLastError();
    return -1;
  }
  u_long on = 1;
  if (ioctlsocket(s, FIONBIO, &on) != 0) {
    *err = WSAGetLastError();
    closesocket(s);
    return -1;
  }
  if (datagram) {
    // A datagram to a closed port must not fail later receives with
    // WSAECONNRESET (the ICMP port-unreachable report): as on Linux, an
    // unconnected socket ignores it. Best effort.
    BOOL off = FALSE;
    DWORD bytes = 0;
    (void)WSAIoctl(s, SIO_UDP_CONNRESET, &off, sizeof(off), nullptr, 0, &bytes,
                   nullptr, nullptr);
  }
  return FromSocket(s);
}

int AcceptSocket(int listen_fd, sockaddr* addr, socklen_t* len, int* err) {
  const SOCKET s = ::accept(ToSocket(listen_fd), addr, len);
  if (s == INVALID_SOCKET) {
    *err = WSAGetLastError();
    // Reset before it was accepted: that connection is gone, as Linux's
    // ECONNABORTED says.
    if (*err == WSAECONNRESET) *err = WSAECONNABORTED;
    return -1;
  }
  u_long on = 1;
  if (ioctlsocket(s, FIONBIO, &on) != 0) {
    *err = WSAGetLastError();
    closesocket(s);
    return -1;
  }
  (void)SetHandleInformation(reinterpret_cast<HANDLE>(s), HANDLE_FLAG_INHERIT,
                             0);
  return FromSocket(s);
}

int ConnectSocket(int fd, const SocketAddress& to, int* err) {
  const int rc =
      Check(::connect(ToSocket(fd), to.sockaddr_ptr(), to.sockaddr_len()), err);
  // A non-blocking connect that goes on says WSAEWOULDBLOCK on Windows.
  if (rc != 0 && *err == WSAEWOULDBLOCK) *err = WSAEINPROGRESS;
  return rc;
}

int BindSocket(int fd, const SocketAddress& address, int* err) {
  return Check(
      ::bind(ToSocket(fd), address.sockaddr_ptr(), address.sockaddr_len()),
      err);
}

int ListenSocket(int fd, int backlog, int* err) {
  return Check(::listen(ToSocket(fd), backlog), err);
}

int64_t ReceiveSome(int fd, void* data, size_t size, int* err) {
  return Check(::recv(ToSocket(fd), static_cast<char*>(data), Clamp(size), 0),
               err);
}

int64_t PeekByte(int fd, int* err) {
  char byte;
  // Non-blocking already: Winsock has no MSG_DONTWAIT.
  return Check(::recv(ToSocket(fd), &byte, 1, MSG_PEEK), err);
}

int64_t SendSome(int fd, const void* data, size_t size, int* err) {
  return Check(
      ::send(ToSocket(fd), static_cast<const char*>(data), Clamp(size), 0),
      err);
}

int64_t SendPieces(int fd, const absl::string_view* pieces, size_t count,
                   int* err) {
  WSABUF buffers[kMaxSendPieces];
  count = std::min(count, kMaxSendPieces);
  for (size_t i = 0; i < count; ++i) {
    buffers[i].buf = const_cast<char*>(pieces[i].data());
    buffers[i].len =
        static_cast<ULONG>(std::min<size_t>(pieces[i].size(), ULONG_MAX));
  }
  DWORD sent = 0;
  if (WSASend(ToSocket(fd), buffers, static_cast<DWORD>(count), &sent, 0,
              nullptr, nullptr) != 0) {
    *err = WSAGetLastError();
    return -1;
  }
  return static_cast<int64_t>(sent);
}

int64_t SendFileSome(int fd, int file_fd, uint64_t offset, size_t length,
                     int* err) {
  const auto file = reinterpret_cast<HANDLE>(_get_osfhandle(file_fd));
  if (file == INVALID_HANDLE_VALUE) {
    *err = ERROR_INVALID_HANDLE;
    return -1;
  }
  char buffer[16 * 1024];
  OVERLAPPED at = {};  // a positioned read, as pread(2)
  at.Offset = static_cast<DWORD>(offset);
  at.OffsetHigh = static_cast<DWORD>(offset >> 32);
  DWORD got = 0;
  if (!ReadFile(file, buffer,
                static_cast<DWORD>(std::min(length, sizeof(buffer))), &got,
                &at)) {
    const DWORD error = GetLastError();
    if (error == ERROR_HANDLE_EOF) return 0;
    *err = static_cast<int>(error);
    return -1;
  }
  if (got == 0) return 0;
  return SendSome(fd, buffer, got, err);
}

ShutdownHow ShutdownHowFromPosix(int how) {
  // The public API takes shutdown(2)'s values: SHUT_RD 0, SHUT_WR 1,
  // SHUT_RDWR 2 (Winsock's SD_RECEIVE, SD_SEND and SD_BOTH are the same).
  return how == SD_RECEIVE ? ShutdownHow::kRead
         : how == SD_SEND  ? ShutdownHow::kWrite
                           : ShutdownHow::kBoth;
}

int ShutdownSocket(int fd, ShutdownHow how, int* err) {
  const int sd = how == ShutdownHow::kRead    ? SD_RECEIVE
                 : how == ShutdownHow::kWrite ? SD_SEND
                                              : SD_BOTH;
  return Check(::shutdown(ToSocket(fd), sd), err);
}

int SetSocketOption(int fd, int level, int name, const void* value,
                    socklen_t len, int* err) {
  return Check(::setsockopt(ToSocket(fd), level, name,
                            static_cast<const char*>(value), len),
               err);
}

int GetSocketOption(int fd, int level, int name, void* value, socklen_t* len,
                    int* err) {
  return Check(
      ::getsockopt(ToSocket(fd), level, name, static_cast<char*>(value), len),
      err);
}

int GetLocalName(int fd, sockaddr* addr, socklen_t* len, int* err) {
  return Check(::getsockname(ToSocket(fd), addr, len), err);
}

int GetPeerName(int fd, sockaddr* addr, socklen_t* len, int* err) {
  return Check(::getpeername(ToSocket(fd), addr, len), err);
}

absl::Status AllowAddressReuse(int /*fd*/) {
  // Nothing to do, and SO_REUSEADDR would be wrong: see sys_socket.h.
  return absl::OkStatus();
}

absl::Status AllowPortReuse(int /*fd*/) {
  return absl::UnimplementedError(
      "SO_REUSEPORT: Windows has no load-balancing port sharing");
}

absl::Status SetLingerZero(int fd) {
  linger lg = {};
  lg.l_onoff = 1;
  lg.l_linger = 0;
  if (::setsockopt(ToSocket(fd), SOL_SOCKET, SO_LINGER,
                   reinterpret_cast<const char*>(&lg), sizeof(lg)) != 0) {
    return LastStatus("setsockopt(SO_LINGER)");
  }
  return absl::OkStatus();
}

int WaitWritable(int fd, int timeout_ms, int* err) {
  // select(): a failed connect shows in the exception set (WSAPoll missed
  // it before Windows 10 2004).
  fd_set writable;
  fd_set failed;
  FD_ZERO(&writable);
  FD_ZERO(&failed);
  FD_SET(ToSocket(fd), &writable);
  FD_SET(ToSocket(fd), &failed);
  timeval tv;
  tv.tv_sec = timeout_ms / 1000;
  tv.tv_usec = (timeout_ms % 1000) * 1000;
  return Check(::select(0, nullptr, &writable, &failed, &tv), err);
}

void CloseSocket(int fd) {
  if (fd < 0) return;
  const int saved = WSAGetLastError();
  const int saved_errno = errno;
  (void)::closesocket(ToSocket(fd));
  WSASetLastError(saved);
  errno = saved_errno;
}

bool HasPendingConnection(int listener_fd) {
  fd_set readable;
  FD_ZERO(&readable);
  FD_SET(ToSocket(listener_fd), &readable);
  timeval tv = {0, 0};
  return ::select(0, &readable, nullptr, nullptr, &tv) != 0;
}

int OpenReserveDescriptor(int* err) {
  // Windows has no per-process descriptor table to fill; a spare socket
  // still stands in, so that TcpServer's shedding (on WSAEMFILE) works
  // the same.
  return OpenSocket(AF_INET, /*datagram=*/true, err);
}

absl::Status RemoveStaleUnixSocket(const SocketAddress& address,
                                   absl::string_view where) {
  return Win32ErrorStatus(
      WSAEADDRINUSE,
      absl::StrCat(where,
                   " (a stale Unix socket file is not removed on "
                   "Windows: remove ",
                   address.unix_path(), " first)"));
}

absl::Status SetNonBlocking(int fd) {
  u_long on = 1;
  if (ioctlsocket(ToSocket(fd), FIONBIO, &on) != 0) {
    return LastStatus("ioctlsocket(FIONBIO)");
  }
  return absl::OkStatus();
}

absl::Status SetCloseOnExec(int fd) {
  if (!SetHandleInformation(reinterpret_cast<HANDLE>(ToSocket(fd)),
                            HANDLE_FLAG_INHERIT, 0)) {
    return LastWin32ErrorStatus("SetHandleInformation(HANDLE_FLAG_INHERIT)");
  }
  return absl::OkStatus();
}

absl::StatusOr<int> SocketDomain(int fd) {
  WSAPROTOCOL_INFOW info = {};
  int len = sizeof(info);
  if (::getsockopt(ToSocket(fd), SOL_SOCKET, SO_PROTOCOL_INFOW,
                   reinterpret_cast<char*>(&info), &len) != 0) {
    return LastStatus("getsockopt(SO_PROTOCOL_INFOW)");
  }
  return info.iAddressFamily;
}

absl::Status CheckIsSocket(int fd, absl::string_view what) {
  if (EnsureWinsock() != 0) return LastStatus("WSAStartup");
  int type = 0;
  int len = sizeof(type);
  if (::getsockopt(ToSocket(fd), SOL_SOCKET, SO_TYPE,
                   reinterpret_cast<char*>(&type), &len) != 0) {
    const int error = WSAGetLastError();
    if (error == WSAENOTSOCK) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": descriptor ", fd, " is not a socket"));
    }
    return Win32ErrorStatus(static_cast<uint32_t>(error),
                            absl::StrCat(what, ": descriptor ", fd));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<SocketAddress>> LookUpHost(const std::string& host) {
  if (const int rc = EnsureWinsock(); rc != 0) {
    return Win32ErrorStatus(static_cast<uint32_t>(rc), "WSAStartup");
  }
  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  addrinfo* result = nullptr;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &result);
  if (rc == EAI_BADFLAGS || (rc == EAI_NONAME && host == "localhost")) {
    hints.ai_flags = 0;
    rc = getaddrinfo(host.c_str(), nullptr, &hints, &result);
  }
  if (rc != 0) {
    const std::string what = absl::StrCat("getaddrinfo(", host, ")");
    const absl::Status status =
        Win32ErrorStatus(static_cast<uint32_t>(rc), what);
    switch (rc) {
      case WSAHOST_NOT_FOUND:
      case WSANO_DATA:
      case WSANO_RECOVERY:
        return absl::NotFoundError(status.message());
      case WSATRY_AGAIN:
        return absl::UnavailableError(status.message());
      default:
        return status;
    }
  }
  std::vector<SocketAddress> addresses;
  for (addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
    absl::StatusOr<SocketAddress> address = SocketAddress::FromSockaddr(
        ai->ai_addr, static_cast<socklen_t>(ai->ai_addrlen));
    if (address.ok()) addresses.push_back(*std::move(address));
  }
  freeaddrinfo(result);
  return addresses;
}

}  // namespace net_internal
}  // namespace mill
