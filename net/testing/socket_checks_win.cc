// The Windows build of socket_checks.h: Winsock; a SOCKET lives in an int.
// clang-format off
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
// clang-format on

#include "gtest/gtest.h"
#include "net/testing/socket_checks.h"

namespace mill {
namespace net_testing {
namespace {

SOCKET S(int fd) { return static_cast<SOCKET>(static_cast<intptr_t>(fd)); }

void EnsureWinsock() {
  static const bool started = [] {
    WSADATA data;
    return WSAStartup(MAKEWORD(2, 2), &data) == 0;
  }();
  EXPECT_TRUE(started);
}

}  // namespace

int GetSocketOptionInt(int fd, int level, int name) {
  int value = -1;
  int len = sizeof(value);
  EXPECT_EQ(
      getsockopt(S(fd), level, name, reinterpret_cast<char*>(&value), &len), 0)
      << "WSA error " << WSAGetLastError();
  return value;
}

bool IsDescriptorOpen(int fd) {
  int type = 0;
  int len = sizeof(type);
  return getsockopt(S(fd), SOL_SOCKET, SO_TYPE, reinterpret_cast<char*>(&type),
                    &len) == 0;
}

std::optional<bool> IsNonBlocking(int /*fd*/) { return std::nullopt; }

bool IsCloseOnExec(int fd) {
  DWORD flags = 0;
  if (!GetHandleInformation(reinterpret_cast<HANDLE>(S(fd)), &flags)) {
    ADD_FAILURE() << "GetHandleInformation: error " << GetLastError();
    return false;
  }
  return (flags & HANDLE_FLAG_INHERIT) == 0;
}

int WaitReadable(int fd, int timeout_ms) {
  WSAPOLLFD pfd = {S(fd), POLLRDNORM, 0};
  return WSAPoll(&pfd, 1, timeout_ms);
}

bool ListenerSetsReuseAddress() { return false; }
bool PlatformHasReusePort() { return false; }

bool ReuseAddressSet(int fd) {
  return GetSocketOptionInt(fd, SOL_SOCKET, SO_REUSEADDR) != 0;
}

bool ReusePortSet(int /*fd*/) { return false; }

bool MakeStreamPair(int fds[2]) {
  EnsureWinsock();
  const SOCKET listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int len = sizeof(addr);
  SOCKET a = INVALID_SOCKET;
  SOCKET b = INVALID_SOCKET;
  bool ok =
      listener != INVALID_SOCKET &&
      bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      listen(listener, 1) == 0 &&
      getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  if (ok) {
    a = socket(AF_INET, SOCK_STREAM, 0);
    ok = a != INVALID_SOCKET &&
         connect(a, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  if (ok) {
    b = accept(listener, nullptr, nullptr);
    ok = b != INVALID_SOCKET;
  }
  const int error = WSAGetLastError();
  if (listener != INVALID_SOCKET) closesocket(listener);
  if (!ok) {
    if (a != INVALID_SOCKET) closesocket(a);
    ADD_FAILURE() << "loopback pair: WSA error " << error;
    return false;
  }
  SetHandleInformation(reinterpret_cast<HANDLE>(a), HANDLE_FLAG_INHERIT, 0);
  SetHandleInformation(reinterpret_cast<HANDLE>(b), HANDLE_FLAG_INHERIT, 0);
  fds[0] = static_cast<int>(a);
  fds[1] = static_cast<int>(b);
  return true;
}

void CloseDescriptor(int fd) {
  if (fd >= 0) closesocket(S(fd));
}

bool ReplaceWithNonSocket(int /*fd*/) { return false; }

bool CanReplaceWithNonSocket() { return false; }

}  // namespace net_testing
}  // namespace mill
