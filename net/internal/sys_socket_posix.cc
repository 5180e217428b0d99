// net/internal/sys_socket.h on POSIX systems: BSD sockets, errors in errno.
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/sendfile.h>
#endif

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/errno_status.h"
#include "net/internal/sys_socket.h"

namespace mill {
namespace net_internal {
namespace {

// The call's result; on failure *err = errno.
template <typename T>
T Check(T result, int* err) {
  if (result < 0) *err = errno;
  return result;
}

#ifdef MSG_NOSIGNAL
constexpr int kNoSignal = MSG_NOSIGNAL;
#else
constexpr int kNoSignal = 0;  // SO_NOSIGPIPE where there is no MSG_NOSIGNAL
#endif

}  // namespace

SocketErrorKind ClassifySocketError(int err) {
  switch (err) {
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
      return SocketErrorKind::kWouldBlock;
    case EINTR:
      return SocketErrorKind::kInterrupted;
    case EINPROGRESS:
      return SocketErrorKind::kInProgress;
    case ENOTCONN:
      return SocketErrorKind::kNotConnected;
    case ECONNREFUSED:
      return SocketErrorKind::kConnectionRefused;
    case EADDRINUSE:
      return SocketErrorKind::kAddressInUse;
    case ECONNABORTED:
      return SocketErrorKind::kAborted;
    case EPROTO:
      return SocketErrorKind::kProtocol;
    case EMFILE:
    case ENFILE:
      return SocketErrorKind::kDescriptorLimit;
    case ECONNRESET:
    case EPIPE:
    case ETIMEDOUT:
    case EHOSTUNREACH:
    case ENETUNREACH:
      return SocketErrorKind::kReset;
    default:
      return SocketErrorKind::kOther;
  }
}

absl::Status SocketErrorStatus(int err, absl::string_view what) {
  return ErrnoStatus(err, what);
}

void SetErrnoFromSocketError(int err) { errno = err; }

int OpenSocket(int family, bool datagram, int* err) {
  const int type = datagram ? SOCK_DGRAM : SOCK_STREAM;
  return Check(::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), err);
}

int AcceptSocket(int listen_fd, sockaddr* addr, socklen_t* len, int* err) {
  int fd;
  do {
    fd = ::accept4(listen_fd, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  return Check(fd, err);
}

int ConnectSocket(int fd, const SocketAddress& to, int* err) {
  int rc;
  do {
    rc = ::connect(fd, to.sockaddr_ptr(), to.sockaddr_len());
  } while (rc != 0 && errno == EINTR);
  return Check(rc, err);
}

int BindSocket(int fd, const SocketAddress& address, int* err) {
  return Check(::bind(fd, address.sockaddr_ptr(), address.sockaddr_len()), err);
}

int ListenSocket(int fd, int backlog, int* err) {
  return Check(::listen(fd, backlog), err);
}

int64_t ReceiveSome(int fd, void* data, size_t size, int* err) {
  ssize_t n;
  do {
    n = ::recv(fd, data, size, 0);
  } while (n < 0 && errno == EINTR);
  return Check<int64_t>(n, err);
}

int64_t PeekByte(int fd, int* err) {
  char byte;
  ssize_t n;
  do {
    n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  return Check<int64_t>(n, err);
}

int64_t SendSome(int fd, const void* data, size_t size, int* err) {
  ssize_t n;
  do {
    n = ::send(fd, data, size, kNoSignal);
  } while (n < 0 && errno == EINTR);
  return Check<int64_t>(n, err);
}

int64_t SendPieces(int fd, const absl::string_view* pieces, size_t count,
                   int* err) {
  iovec iov[kMaxSendPieces];
  count = std::min(count, kMaxSendPieces);
  for (size_t i = 0; i < count; ++i) {
    iov[i] = {const_cast<char*>(pieces[i].data()), pieces[i].size()};
  }
  msghdr msg = {};
  msg.msg_iov = iov;
  msg.msg_iovlen = count;
  ssize_t n;
  do {
    n = ::sendmsg(fd, &msg, kNoSignal);
  } while (n < 0 && errno == EINTR);
  return Check<int64_t>(n, err);
}

int64_t SendFileSome(int fd, int file_fd, uint64_t offset, size_t length,
                     int* err) {
#ifdef __linux__
  // sendfile(2) has no MSG_NOSIGNAL: to a peer that reset or shut down it
  // raises SIGPIPE (found when io_uring's receive took the reset's error
  // before the writer saw it; epoll has the same race, narrower). SIGPIPE
  // is blocked on this thread around the call and a SIGPIPE it raised is
  // taken back before the mask is restored. A thread that blocks SIGPIPE
  // itself is left alone (what the kernel raises stays pending for it).
  sigset_t pipe_only;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  sigset_t before;
  pthread_sigmask(SIG_BLOCK, &pipe_only, &before);
  const bool was_blocked = sigismember(&before, SIGPIPE) == 1;
  off_t off = static_cast<off_t>(offset);
  ssize_t n;
  do {
    n = ::sendfile(fd, file_fd, &off, length);
  } while (n < 0 && errno == EINTR);
  const int saved = errno;
  if (!was_blocked) {
    if (n < 0 && saved == EPIPE) {
      // SIGPIPE was not blocked before, so none was pending: this is ours.
      const timespec zero{0, 0};
      while (sigtimedwait(&pipe_only, nullptr, &zero) < 0 && errno == EINTR) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &before, nullptr);
  }
  errno = saved;
  return Check<int64_t>(n, err);
#else
  char buffer[16 * 1024];
  ssize_t n = ::pread(file_fd, buffer, std::min(length, sizeof(buffer)),
                      static_cast<off_t>(offset));
  if (n <= 0) return Check<int64_t>(n, err);
  return SendSome(fd, buffer, static_cast<size_t>(n), err);
#endif
}

ShutdownHow ShutdownHowFromPosix(int how) {
  return how == SHUT_RD   ? ShutdownHow::kRead
         : how == SHUT_WR ? ShutdownHow::kWrite
                          : ShutdownHow::kBoth;
}

int ShutdownSocket(int fd, ShutdownHow how, int* err) {
  const int posix = how == ShutdownHow::kRead    ? SHUT_RD
                    : how == ShutdownHow::kWrite ? SHUT_WR
                                                 : SHUT_RDWR;
  return Check(::shutdown(fd, posix), err);
}

int SetSocketOption(int fd, int level, int name, const void* value,
                    socklen_t len, int* err) {
  return Check(::setsockopt(fd, level, name, value, len), err);
}

int GetSocketOption(int fd, int level, int name, void* value, socklen_t* len,
                    int* err) {
  return Check(::getsockopt(fd, level, name, value, len), err);
}

int GetLocalName(int fd, sockaddr* addr, socklen_t* len, int* err) {
  return Check(::getsockname(fd, addr, len), err);
}

int GetPeerName(int fd, sockaddr* addr, socklen_t* len, int* err) {
  return Check(::getpeername(fd, addr, len), err);
}

absl::Status AllowAddressReuse(int fd) {
  const int on = 1;
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0) {
    return ErrnoStatus(errno, "setsockopt(SO_REUSEADDR)");
  }
  return absl::OkStatus();
}

absl::Status AllowPortReuse(int fd) {
  const int on = 1;
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0) {
    return ErrnoStatus(errno, "setsockopt(SO_REUSEPORT)");
  }
  return absl::OkStatus();
}

absl::Status SetLingerZero(int fd) {
  linger lg = {1, 0};
  if (::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) != 0) {
    return ErrnoStatus(errno, "setsockopt(SO_LINGER)");
  }
  return absl::OkStatus();
}

int WaitWritable(int fd, int timeout_ms, int* err) {
  pollfd pfd = {fd, POLLOUT, 0};
  const int rc = ::poll(&pfd, 1, timeout_ms);
  return Check(rc, err);
}

void CloseSocket(int fd) {
  if (fd < 0) return;
  // close(2) that keeps errno intact and does not retry EINTR (Linux always
  // releases the descriptor, so retrying would close somebody else's).
  const int saved = errno;
  (void)::close(fd);
  errno = saved;
}

bool HasPendingConnection(int listener_fd) {
  pollfd pfd = {listener_fd, POLLIN, 0};
  const int rc = ::poll(&pfd, 1, 0);
  return rc != 0;
}

int OpenReserveDescriptor(int* err) {
  return Check(::open("/dev/null", O_RDONLY | O_CLOEXEC), err);
}

absl::Status RemoveStaleUnixSocket(const SocketAddress& address,
                                   absl::string_view where) {
  const std::string path = address.unix_path();
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return ErrnoStatus(EADDRINUSE, where);
  if (!S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(
        where, ": ", path, " exists and is not a socket; not removed"));
  }
  const int probe =
      ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (probe < 0) return ErrnoStatus(errno, "socket");
  int rc;
  do {
    rc = ::connect(probe, address.sockaddr_ptr(), address.sockaddr_len());
  } while (rc != 0 && errno == EINTR);
  const int connect_errno = rc == 0 ? 0 : errno;
  CloseSocket(probe);
  if (connect_errno != ECONNREFUSED) {
    // Accepted (or its backlog is full: EAGAIN): a live server's socket.
    if (connect_errno == 0 || connect_errno == EAGAIN) {
      return absl::AlreadyExistsError(absl::StrCat(
          where, ": a server is listening on ", path, "; not taken over"));
    }
    return ErrnoStatus(connect_errno,
                       absl::StrCat(where, ": probing the existing socket"));
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoStatus(errno,
                       absl::StrCat(where, ": removing the stale ", path));
  }
  return absl::OkStatus();
}

absl::Status SetNonBlocking(int fd) {
  const int flags = fcntl(fd, F_GETFL, 0);
  if (flags < 0) return ErrnoStatus(errno, "fcntl(F_GETFL)");
  if ((flags & O_NONBLOCK) == 0 &&
      fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    return ErrnoStatus(errno, "fcntl(F_SETFL, O_NONBLOCK)");
  }
  return absl::OkStatus();
}

absl::Status SetCloseOnExec(int fd) {
  const int flags = fcntl(fd, F_GETFD, 0);
  if (flags < 0) return ErrnoStatus(errno, "fcntl(F_GETFD)");
  if ((flags & FD_CLOEXEC) == 0 &&
      fcntl(fd, F_SETFD, flags | FD_CLOEXEC) != 0) {
    return ErrnoStatus(errno, "fcntl(F_SETFD, FD_CLOEXEC)");
  }
  return absl::OkStatus();
}

absl::StatusOr<int> SocketDomain(int fd) {
  int domain = 0;
  socklen_t len = sizeof(domain);
  if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) {
    return ErrnoStatus(errno, "getsockopt");
  }
  return domain;
}

absl::Status CheckIsSocket(int fd, absl::string_view what) {
  struct stat st;
  if (fstat(fd, &st) != 0) {
    return ErrnoStatus(errno, absl::StrCat(what, ": descriptor ", fd));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": descriptor ", fd, " is not a socket"));
  }
  return absl::OkStatus();
}

namespace {

absl::Status GaiStatus(int rc, absl::string_view host) {
  const std::string what = absl::StrCat("getaddrinfo(", host, "): ");
  switch (rc) {
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
    case EAI_FAIL:
      return absl::NotFoundError(absl::StrCat(what, gai_strerror(rc)));
    case EAI_AGAIN:
      return absl::UnavailableError(absl::StrCat(what, gai_strerror(rc)));
    case EAI_SYSTEM:
      return ErrnoStatus(errno, absl::StrCat("getaddrinfo(", host, ")"));
    default:
      return absl::UnknownError(absl::StrCat(what, gai_strerror(rc)));
  }
}

}  // namespace

absl::StatusOr<std::vector<SocketAddress>> LookUpHost(const std::string& host) {
  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  addrinfo* result = nullptr;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &result);
  if (rc == EAI_BADFLAGS || (rc == EAI_NONAME && host == "localhost")) {
    // AI_ADDRCONFIG hides loopback-only hosts on machines without a
    // configured address; ask again without it.
    hints.ai_flags = 0;
    rc = getaddrinfo(host.c_str(), nullptr, &hints, &result);
  }
  if (rc != 0) return GaiStatus(rc, host);
  std::vector<SocketAddress> addresses;
  for (addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
    absl::StatusOr<SocketAddress> address =
        SocketAddress::FromSockaddr(ai->ai_addr, ai->ai_addrlen);
    if (address.ok()) addresses.push_back(*std::move(address));
  }
  freeaddrinfo(result);
  return addresses;
}

}  // namespace net_internal
}  // namespace mill
