// POSIX implementation of poll/testing/socket_pair.h.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "base/errno_status.h"
#include "poll/testing/socket_pair.h"

namespace mill {
namespace poll_testing {
namespace {

absl::Status SetNonBlocking(int fd) {
  const int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
    return ErrnoStatus(errno, "fcntl(O_NONBLOCK)");
  }
  return absl::OkStatus();
}

absl::StatusOr<FdPair> NonBlockingPair(int a, int b) {
  FdPair pair{Fd(a), Fd(b)};
  if (absl::Status s = SetNonBlocking(a); !s.ok()) return s;
  if (absl::Status s = SetNonBlocking(b); !s.ok()) return s;
  return pair;
}

sockaddr_in Loopback(uint16_t port_be) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = port_be;
  return addr;
}

// A 127.0.0.1 TCP socket bound to an ephemeral port; listening if asked.
absl::StatusOr<Fd> BoundTcpSocket(bool listening, sockaddr_in* bound) {
  Fd s(socket(AF_INET, SOCK_STREAM, 0));
  if (s.get() < 0) return ErrnoStatus(errno, "socket");
  sockaddr_in addr = Loopback(0);
  if (bind(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return ErrnoStatus(errno, "bind");
  }
  socklen_t len = sizeof(*bound);
  if (getsockname(s.get(), reinterpret_cast<sockaddr*>(bound), &len) != 0) {
    return ErrnoStatus(errno, "getsockname");
  }
  if (listening && listen(s.get(), 16) != 0)
    return ErrnoStatus(errno, "listen");
  return s;
}

}  // namespace

void CloseDescriptor(int fd) { close(fd); }

absl::StatusOr<FdPair> MakeSocketPair() {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) {
    return ErrnoStatus(errno, "socketpair");
  }
  return NonBlockingPair(fds[0], fds[1]);
}

absl::StatusOr<FdPair> MakeTcpPair() {
  sockaddr_in addr;
  absl::StatusOr<Fd> listener = BoundTcpSocket(/*listening=*/true, &addr);
  if (!listener.ok()) return listener.status();
  Fd client(socket(AF_INET, SOCK_STREAM, 0));
  if (client.get() < 0) return ErrnoStatus(errno, "socket");
  if (connect(client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) !=
      0) {
    return ErrnoStatus(errno, "connect");
  }
  Fd server(accept(listener->get(), nullptr, nullptr));
  if (server.get() < 0) return ErrnoStatus(errno, "accept");
  FdPair pair{std::move(client), std::move(server)};
  if (absl::Status s = SetNonBlocking(pair.a.get()); !s.ok()) return s;
  if (absl::Status s = SetNonBlocking(pair.b.get()); !s.ok()) return s;
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
  socklen_t len = sizeof(addr);
  if (getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return ErrnoStatus(errno, "getsockname");
  }
  Fd client(socket(AF_INET, SOCK_STREAM, 0));
  if (client.get() < 0) return ErrnoStatus(errno, "socket");
  if (connect(client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) !=
      0) {
    return ErrnoStatus(errno, "connect");
  }
  return client;
}

absl::StatusOr<FdPair> MakePipe() {
  int fds[2];
  if (pipe(fds) != 0) return ErrnoStatus(errno, "pipe");
  return NonBlockingPair(fds[0], fds[1]);
}

absl::StatusOr<FdPair> StartRefusedConnect() {
  // A bound but not listening socket: connecting to its port is refused, and
  // keeping it open means no one else can take the port meanwhile.
  sockaddr_in addr;
  absl::StatusOr<Fd> holder = BoundTcpSocket(/*listening=*/false, &addr);
  if (!holder.ok()) return holder.status();
  Fd s(socket(AF_INET, SOCK_STREAM, 0));
  if (s.get() < 0) return ErrnoStatus(errno, "socket");
  if (absl::Status st = SetNonBlocking(s.get()); !st.ok()) return st;
  const int rc =
      connect(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  if (rc == 0 || errno != EINPROGRESS) {
    return absl::UnavailableError(
        absl::StrCat("connect did not go asynchronous: ",
                     rc == 0 ? "connected" : strerror(errno)));
  }
  return FdPair{std::move(s), *std::move(holder)};
}

bool PendingErrorIsConnectionRefused(int fd, std::string* detail) {
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
    *detail = absl::StrCat("getsockopt(SO_ERROR): ", strerror(errno));
    return false;
  }
  *detail = strerror(err);
  return err == ECONNREFUSED;
}

long WriteSome(int fd, const void* data, size_t n) {
  return static_cast<long>(write(fd, data, n));
}

long ReadSome(int fd, void* data, size_t n) {
  return static_cast<long>(read(fd, data, n));
}

long SendUrgent(int fd, char byte) {
  return static_cast<long>(send(fd, &byte, 1, MSG_OOB));
}

bool LastErrorWouldBlock() { return errno == EAGAIN || errno == EWOULDBLOCK; }

std::string LastErrorText() { return strerror(errno); }

void CloseWithReset(int fd) {
  linger lin{};
  lin.l_onoff = 1;
  lin.l_linger = 0;
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lin, sizeof(lin));
  close(fd);
}

absl::Status ShutdownWrite(int fd) {
  if (shutdown(fd, SHUT_WR) != 0) return ErrnoStatus(errno, "shutdown");
  return absl::OkStatus();
}

absl::StatusOr<Fd> OpenRegularFile(const std::string& path) {
  Fd fd(open(path.c_str(), O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0600));
  if (fd.get() < 0) return ErrnoStatus(errno, "open " + path);
  return fd;
}

absl::StatusOr<Fd> OpenDirectory(const std::string& path) {
  Fd fd(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoStatus(errno, "open " + path);
  return fd;
}

void RemoveFile(const std::string& path) { unlink(path.c_str()); }

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

std::string BadDescriptorErrorText() { return strerror(EBADF); }

ScopedDescriptorLimit::ScopedDescriptorLimit(size_t n) {
  rlimit lim;
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) {
    ok_ = false;
    why_ = absl::StrCat("getrlimit: ", strerror(errno));
    return;
  }
  const rlim_t needed = static_cast<rlim_t>(n);
  if (lim.rlim_cur >= needed) return;
  if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < needed) {
    ok_ = false;
    why_ = absl::StrCat("RLIMIT_NOFILE hard limit ", lim.rlim_max,
                        " is below the ", n, " descriptors needed");
    return;
  }
  old_soft_ = lim.rlim_cur;
  rlimit raised = lim;
  raised.rlim_cur = needed;
  if (setrlimit(RLIMIT_NOFILE, &raised) != 0) {
    ok_ = false;
    why_ = absl::StrCat("setrlimit: ", strerror(errno));
    return;
  }
  restore_ = true;
}

ScopedDescriptorLimit::~ScopedDescriptorLimit() {
  if (!restore_) return;
  rlimit lim;
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  lim.rlim_cur = static_cast<rlim_t>(old_soft_);
  setrlimit(RLIMIT_NOFILE, &lim);
}

}  // namespace poll_testing
}  // namespace mill
