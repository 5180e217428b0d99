// Windows implementation of poll/testing/socket_pair.h: Winsock sockets and
// Win32 handles, stored in an int like the public API stores a SOCKET.
// clang-format off
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
// clang-format on

#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "base/win32_status.h"
#include "poll/testing/socket_pair.h"

namespace mill {
namespace poll_testing {
namespace {

SOCKET ToSocket(int fd) {
  return static_cast<SOCKET>(static_cast<intptr_t>(fd));
}
HANDLE ToHandle(int fd) {
  return reinterpret_cast<HANDLE>(static_cast<intptr_t>(fd));
}
int FromSocket(SOCKET s) { return static_cast<int>(static_cast<intptr_t>(s)); }
int FromHandle(HANDLE h) {
  return static_cast<int>(reinterpret_cast<intptr_t>(h));
}

bool EnsureWinsock() {
  static const bool ok = [] {
    WSADATA wsa;
    return WSAStartup(MAKEWORD(2, 2), &wsa) == 0;
  }();
  return ok;
}

absl::Status SetNonBlocking(int fd) {
  u_long on = 1;
  if (ioctlsocket(ToSocket(fd), FIONBIO, &on) != 0) {
    return LastSocketErrorStatus("ioctlsocket(FIONBIO)");
  }
  return absl::OkStatus();
}

// Small test writes must not wait for delayed ACKs (Nagle).
void SetNoDelay(int fd) {
  BOOL on = TRUE;
  setsockopt(ToSocket(fd), IPPROTO_TCP, TCP_NODELAY,
             reinterpret_cast<const char*>(&on), sizeof(on));
}

absl::StatusOr<Fd> NewTcpSocket() {
  if (!EnsureWinsock()) return absl::InternalError("WSAStartup failed");
  const SOCKET s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
  if (s == INVALID_SOCKET) return LastSocketErrorStatus("socket");
  return Fd(FromSocket(s));
}

absl::StatusOr<Fd> BoundTcpSocket(bool listening, sockaddr_in* bound) {
  absl::StatusOr<Fd> s = NewTcpSocket();
  if (!s.ok()) return s.status();
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(ToSocket(s->get()), reinterpret_cast<sockaddr*>(&addr),
           sizeof(addr)) != 0) {
    return LastSocketErrorStatus("bind");
  }
  int len = sizeof(*bound);
  if (getsockname(ToSocket(s->get()), reinterpret_cast<sockaddr*>(bound),
                  &len) != 0) {
    return LastSocketErrorStatus("getsockname");
  }
  if (listening && listen(ToSocket(s->get()), 16) != 0) {
    return LastSocketErrorStatus("listen");
  }
  return s;
}

}  // namespace

void CloseDescriptor(int fd) {
  if (closesocket(ToSocket(fd)) != 0 && WSAGetLastError() == WSAENOTSOCK) {
    CloseHandle(ToHandle(fd));
  }
}

bool SameAddress(const sockaddr_in& x, const sockaddr_in& y) {
  return x.sin_family == y.sin_family && x.sin_port == y.sin_port &&
         x.sin_addr.s_addr == y.sin_addr.s_addr;
}

absl::StatusOr<FdPair> MakeTcpPair() {
  // One listener for the whole process (the scale test makes 5,000 pairs;
  // a listener per pair costs a third of the time under Wine). The mutex
  // keeps each connect paired with its own accept, and the accepted socket
  // is checked to be the client's peer; on any failure the listener is
  // dropped, so a connection stranded in its backlog cannot pair up with a
  // later client.
  static absl::Mutex mu;
  static Fd* listener ABSL_GUARDED_BY(mu) = nullptr;
  static sockaddr_in addr ABSL_GUARDED_BY(mu);
  absl::MutexLock lock(&mu);
  if (listener == nullptr) {
    absl::StatusOr<Fd> l = BoundTcpSocket(/*listening=*/true, &addr);
    if (!l.ok()) return l.status();
    listener = new Fd(*std::move(l));
  }
  auto fail = [&](absl::Status status) {
    delete listener;
    listener = nullptr;
    return status;
  };
  absl::StatusOr<Fd> client = NewTcpSocket();
  if (!client.ok()) return client.status();
  if (connect(ToSocket(client->get()), reinterpret_cast<sockaddr*>(&addr),
              sizeof(addr)) != 0) {
    return fail(LastSocketErrorStatus("connect"));
  }
  sockaddr_in client_addr{};
  int len = sizeof(client_addr);
  if (getsockname(ToSocket(client->get()),
                  reinterpret_cast<sockaddr*>(&client_addr), &len) != 0) {
    return fail(LastSocketErrorStatus("getsockname"));
  }
  sockaddr_in peer{};
  len = sizeof(peer);
  const SOCKET server = accept(ToSocket(listener->get()),
                               reinterpret_cast<sockaddr*>(&peer), &len);
  if (server == INVALID_SOCKET) return fail(LastSocketErrorStatus("accept"));
  FdPair pair{*std::move(client), Fd(FromSocket(server))};
  if (!SameAddress(peer, client_addr)) {
    return fail(absl::InternalError("accept: not the client's connection"));
  }
  for (int fd : {pair.a.get(), pair.b.get()}) {
    if (absl::Status s = SetNonBlocking(fd); !s.ok()) return s;
    SetNoDelay(fd);
  }
  return pair;
}

absl::StatusOr<Fd> MakeListener() {
  sockaddr_in addr;
  absl::StatusOr<Fd> listener = BoundTcpSocket(/*listening=*/true, &addr);
  if (!listener.ok()) return listener.status();
  if (absl::Status s = SetNonBlocking(listener->get()); !s.ok()) return s;
  return listener;
}

absl::StatusOr<Fd> ConnectToListener(int listener) {
  sockaddr_in addr;
  int len = sizeof(addr);
  if (getsockname(ToSocket(listener), reinterpret_cast<sockaddr*>(&addr),
                  &len) != 0) {
    return LastSocketErrorStatus("getsockname");
  }
  absl::StatusOr<Fd> client = NewTcpSocket();
  if (!client.ok()) return client.status();
  if (connect(ToSocket(client->get()), reinterpret_cast<sockaddr*>(&addr),
              sizeof(addr)) != 0) {
    return LastSocketErrorStatus("connect");
  }
  return client;
}

// Windows has no socketpair(): a loopback TCP connection stands in.
absl::StatusOr<FdPair> MakeSocketPair() { return MakeTcpPair(); }

absl::StatusOr<FdPair> MakePipe() {
  HANDLE read_end = nullptr;
  HANDLE write_end = nullptr;
  if (!CreatePipe(&read_end, &write_end, nullptr, 0)) {
    return LastWin32ErrorStatus("CreatePipe");
  }
  return FdPair{Fd(FromHandle(read_end)), Fd(FromHandle(write_end))};
}

absl::StatusOr<FdPair> StartRefusedConnect() {
  sockaddr_in addr;
  absl::StatusOr<Fd> holder = BoundTcpSocket(/*listening=*/false, &addr);
  if (!holder.ok()) return holder.status();
  absl::StatusOr<Fd> s = NewTcpSocket();
  if (!s.ok()) return s.status();
  if (absl::Status st = SetNonBlocking(s->get()); !st.ok()) return st;
  const int rc = connect(ToSocket(s->get()), reinterpret_cast<sockaddr*>(&addr),
                         sizeof(addr));
  if (rc == 0 || WSAGetLastError() != WSAEWOULDBLOCK) {
    return absl::UnavailableError(absl::StrCat(
        "connect did not go asynchronous: ",
        rc == 0 ? "connected" : LastSocketErrorStatus("connect").message()));
  }
  return FdPair{*std::move(s), *std::move(holder)};
}

bool PendingErrorIsConnectionRefused(int fd, std::string* detail) {
  int err = 0;
  int len = sizeof(err);
  if (getsockopt(ToSocket(fd), SOL_SOCKET, SO_ERROR,
                 reinterpret_cast<char*>(&err), &len) != 0) {
    *detail = std::string(LastSocketErrorStatus("getsockopt").message());
    return false;
  }
  *detail = std::string(Win32ErrorStatus(err, "SO_ERROR").message());
  return err == WSAECONNREFUSED;
}

long WriteSome(int fd, const void* data, size_t n) {
  return send(ToSocket(fd), static_cast<const char*>(data), static_cast<int>(n),
              0);
}

long ReadSome(int fd, void* data, size_t n) {
  return recv(ToSocket(fd), static_cast<char*>(data), static_cast<int>(n), 0);
}

long SendUrgent(int fd, char byte) {
  return send(ToSocket(fd), &byte, 1, MSG_OOB);
}

bool LastErrorWouldBlock() { return WSAGetLastError() == WSAEWOULDBLOCK; }

std::string LastErrorText() {
  return std::string(LastSocketErrorStatus("socket").message());
}

void CloseWithReset(int fd) {
  linger lin{};
  lin.l_onoff = 1;
  lin.l_linger = 0;
  setsockopt(ToSocket(fd), SOL_SOCKET, SO_LINGER,
             reinterpret_cast<const char*>(&lin), sizeof(lin));
  closesocket(ToSocket(fd));
}

absl::Status ShutdownWrite(int fd) {
  if (shutdown(ToSocket(fd), SD_SEND) != 0) {
    return LastSocketErrorStatus("shutdown");
  }
  return absl::OkStatus();
}

absl::StatusOr<Fd> OpenRegularFile(const std::string& path) {
  HANDLE h =
      CreateFileA(path.c_str(), GENERIC_READ | GENERIC_WRITE,
                  FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                  nullptr, CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, nullptr);
  if (h == INVALID_HANDLE_VALUE)
    return LastWin32ErrorStatus("CreateFile " + path);
  return Fd(FromHandle(h));
}

absl::StatusOr<Fd> OpenDirectory(const std::string& path) {
  HANDLE h =
      CreateFileA(path.c_str(), GENERIC_READ,
                  FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                  nullptr, OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS, nullptr);
  if (h == INVALID_HANDLE_VALUE)
    return LastWin32ErrorStatus("CreateFile " + path);
  return Fd(FromHandle(h));
}

void RemoveFile(const std::string& path) { DeleteFileA(path.c_str()); }

std::string TempDir() {
  if (const char* dir = std::getenv("TEST_TMPDIR")) return dir;
  char buf[MAX_PATH + 1];
  DWORD n = GetTempPathA(sizeof(buf), buf);
  if (n == 0 || n > sizeof(buf)) return ".";
  while (n > 1 && (buf[n - 1] == '\\' || buf[n - 1] == '/')) --n;
  return std::string(buf, n);
}

std::string BadDescriptorErrorText() {
  // The backend's message is "<what>: <this>".
  const std::string message(Win32ErrorStatus(WSAENOTSOCK, "x").message());
  return message.substr(3);
}

ScopedDescriptorLimit::ScopedDescriptorLimit(size_t) {}  // no such limit
ScopedDescriptorLimit::~ScopedDescriptorLimit() = default;

}  // namespace poll_testing
}  // namespace mill
