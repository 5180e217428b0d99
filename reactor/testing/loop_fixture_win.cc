#include <windows.h>
#include <winsock2.h>
#include <ws2tcpip.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "base/win32_status.h"
#include "reactor/testing/loop_fixture.h"

namespace mill {
namespace reactor_testing {
namespace {

// SOCKETs travel as ints, as through the public API.
SOCKET AsSocket(int fd) {
  return static_cast<SOCKET>(static_cast<intptr_t>(fd));
}
int AsFd(SOCKET s) {
  return s == INVALID_SOCKET ? -1 : static_cast<int>(static_cast<intptr_t>(s));
}

void EnsureWinsock() {
  static const bool started = [] {
    WSADATA data;
    return WSAStartup(MAKEWORD(2, 2), &data) == 0;
  }();
  (void)started;
}

sockaddr_in Loopback(int port) {
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<u_short>(port));
  return addr;
}

void NoDelay(SOCKET s) {
  BOOL on = TRUE;
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, reinterpret_cast<const char*>(&on),
             sizeof(on));
}

}  // namespace

long ReadSome(int fd, void* data, size_t size) {
  return recv(AsSocket(fd), static_cast<char*>(data), static_cast<int>(size),
              0);
}

long WriteSome(int fd, const void* data, size_t size) {
  return send(AsSocket(fd), static_cast<const char*>(data),
              static_cast<int>(size), 0);
}

bool LastErrorWouldBlock() { return WSAGetLastError() == WSAEWOULDBLOCK; }

std::string LastErrorText() {
  return std::string(LastSocketErrorStatus("socket").message());
}

void CloseFd(int fd) { closesocket(AsSocket(fd)); }

size_t BytesAvailable(int fd) {
  u_long avail = 0;
  if (ioctlsocket(AsSocket(fd), FIONREAD, &avail) != 0) return 0;
  return static_cast<size_t>(avail);
}

void SetNonBlocking(int fd) {
  u_long on = 1;
  ASSERT_EQ(ioctlsocket(AsSocket(fd), FIONBIO, &on), 0) << LastErrorText();
}

void MakeSocketPair(int* a, int* b) {
  *a = *b = -1;
  int port = 0;
  const int listener = ListenLoopback(&port);
  ASSERT_GE(listener, 0);
  const int client = ConnectLoopback(port);
  ASSERT_GE(client, 0) << LastErrorText();
  // The listener is non-blocking; the connection is queued already.
  SOCKET server = INVALID_SOCKET;
  for (int i = 0; i < 1000 && server == INVALID_SOCKET; ++i) {
    server = accept(AsSocket(listener), nullptr, nullptr);
    if (server == INVALID_SOCKET) Sleep(1);
  }
  CloseFd(listener);
  ASSERT_NE(server, INVALID_SOCKET) << LastErrorText();
  // Accepted sockets inherit the listener's non-blocking mode: back to
  // blocking, as socketpair's ends are.
  u_long off = 0;
  ioctlsocket(server, FIONBIO, &off);
  NoDelay(server);
  *a = client;
  *b = AsFd(server);
}

int ListenLoopback(int* port) {
  EnsureWinsock();
  SOCKET s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
  EXPECT_NE(s, INVALID_SOCKET) << LastErrorText();
  if (s == INVALID_SOCKET) return -1;
  sockaddr_in addr = Loopback(0);
  EXPECT_EQ(bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0)
      << LastErrorText();
  EXPECT_EQ(listen(s, 16), 0) << LastErrorText();
  int len = sizeof(addr);
  EXPECT_EQ(getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  *port = ntohs(addr.sin_port);
  u_long on = 1;
  ioctlsocket(s, FIONBIO, &on);
  return AsFd(s);
}

int AcceptNonBlocking(int listener) {
  SOCKET s = accept(AsSocket(listener), nullptr, nullptr);
  if (s == INVALID_SOCKET) return -1;
  u_long on = 1;
  ioctlsocket(s, FIONBIO, &on);
  NoDelay(s);
  return AsFd(s);
}

int ConnectLoopback(int port) {
  EnsureWinsock();
  SOCKET s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
  if (s == INVALID_SOCKET) return -1;
  sockaddr_in addr = Loopback(port);
  if (connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    closesocket(s);
    return -1;
  }
  NoDelay(s);
  return AsFd(s);
}

std::unique_ptr<SocketPair> SocketPairNumbered(int fd) {
  std::vector<std::unique_ptr<SocketPair>> others;  // not reused meanwhile
  for (int attempt = 0; attempt < 256; ++attempt) {
    auto pair = std::make_unique<SocketPair>();
    if (pair->peer == fd) {
      std::swap(pair->loop_end, pair->peer);
      SetNonBlocking(pair->loop_end);
    }
    if (pair->loop_end == fd) return pair;
    others.push_back(std::move(pair));
  }
  ADD_FAILURE() << "no new socket got the handle value " << fd;
  return nullptr;
}

int TestStopSignal() { return 21; }  // SIGBREAK: CTRL_BREAK_EVENT

absl::Status RaiseTestStopSignal() {
  // Process group 0: every process attached to this console (the test's
  // own, when it is started in one).
  if (!GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, 0)) {
    return LastWin32ErrorStatus("GenerateConsoleCtrlEvent");
  }
  return absl::OkStatus();
}

}  // namespace reactor_testing
}  // namespace mill
