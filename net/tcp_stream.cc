#include "net/tcp_stream.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/errno_status.h"
#include "net/internal/socket_util.h"

namespace mill {

using net_internal::SetIntOption;

absl::StatusOr<TcpStream> TcpStream::Adopt(int fd,
                                           const TcpStreamOptions& options) {
  if (fd < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("TcpStream::Adopt: bad descriptor ", fd));
  }
  TcpStream stream(fd);
  absl::Status status = net_internal::SetNonBlocking(fd);
  if (status.ok() && (options.no_delay || options.keep_alive)) {
    // TCP options mean nothing on a Unix socket: skipped there.
    absl::StatusOr<int> domain = net_internal::SocketDomain(fd);
    if (!domain.ok()) {
      status = domain.status();
    } else if (*domain != AF_UNIX) {
      status = stream.Apply(options);
    }
  }
  if (!status.ok()) {
    stream.Release();  // the caller keeps ownership on failure
    return status;
  }
  return stream;
}

absl::StatusOr<TcpStream> TcpStream::Connect(const SocketAddress& address,
                                             const TcpStreamOptions& options) {
  const int fd =
      ::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoStatus(errno, "socket");
  TcpStream stream(fd);
  if (!address.is_unix()) {  // TCP options mean nothing on a Unix socket
    absl::Status status = stream.Apply(options);
    if (!status.ok()) return status;
  }
  int rc;
  do {
    rc = ::connect(fd, address.sockaddr_ptr(), address.sockaddr_len());
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    if (errno != EINPROGRESS) {
      return ErrnoStatus(errno,
                         absl::StrCat("connect(", address.ToString(), ")"));
    }
    stream.connect_pending_ = true;
  }
  return stream;
}

absl::StatusOr<TcpStream> TcpStream::ConnectAndWait(
    const SocketAddress& address, absl::Duration timeout,
    const TcpStreamOptions& options) {
  absl::StatusOr<TcpStream> stream = Connect(address, options);
  if (!stream.ok() || !stream->connect_pending()) return stream;
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    pollfd pfd = {stream->fd(), POLLOUT, 0};
    const int64_t ms =
        std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now()));
    const int rc = ::poll(&pfd, 1, static_cast<int>(ms));
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) return ErrnoStatus(errno, "poll");
    if (rc == 0) {
      return absl::DeadlineExceededError(
          absl::StrCat("connect(", address.ToString(), "): timed out"));
    }
    break;
  }
  absl::Status status = stream->FinishConnect();
  if (!status.ok()) return status;
  return stream;
}

TcpStream::TcpStream(TcpStream&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      connect_pending_(std::exchange(other.connect_pending_, false)) {}

TcpStream& TcpStream::operator=(TcpStream&& other) noexcept {
  if (this != &other) {
    Close();
    fd_ = std::exchange(other.fd_, -1);
    connect_pending_ = std::exchange(other.connect_pending_, false);
  }
  return *this;
}

TcpStream::~TcpStream() { Close(); }

absl::Status TcpStream::Apply(const TcpStreamOptions& options) {
  if (options.no_delay) {
    absl::Status s = SetNoDelay(true);
    if (!s.ok()) return s;
  }
  if (options.keep_alive) {
    absl::Status s = SetKeepAlive(true);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status TcpStream::FinishConnect() {
  int err = 0;
  absl::Status status =
      net_internal::GetIntOption(fd_, SOL_SOCKET, SO_ERROR, &err);
  if (!status.ok()) return status;
  if (err != 0) {
    connect_pending_ = false;
    return ErrnoStatus(err, "connect");
  }
  sockaddr_storage peer;
  socklen_t len = sizeof(peer);
  if (::getpeername(fd_, reinterpret_cast<sockaddr*>(&peer), &len) != 0) {
    if (errno == ENOTCONN) {
      // A spurious wake-up: no error yet, but not connected either.
      return absl::FailedPreconditionError("connect: still in progress");
    }
    return ErrnoStatus(errno, "getpeername");
  }
  connect_pending_ = false;
  return absl::OkStatus();
}

ssize_t TcpStream::Read(void* data, size_t size) {
  ssize_t n;
  do {
    n = ::recv(fd_, data, size, 0);
  } while (n < 0 && errno == EINTR);
  return n;
}

ssize_t TcpStream::Write(const void* data, size_t size) {
  ssize_t n;
  do {
    n = ::send(fd_, data, size, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  return n;
}

absl::Status TcpStream::Shutdown(int how) {
  if (::shutdown(fd_, how) != 0) return ErrnoStatus(errno, "shutdown");
  return absl::OkStatus();
}

absl::Status TcpStream::SetNoDelay(bool on) {
  return SetIntOption(fd_, IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0,
                      "setsockopt(TCP_NODELAY)");
}

absl::Status TcpStream::SetKeepAlive(bool on) {
  return SetIntOption(fd_, SOL_SOCKET, SO_KEEPALIVE, on ? 1 : 0,
                      "setsockopt(SO_KEEPALIVE)");
}

absl::Status TcpStream::SetLingerZero() {
  linger lg = {1, 0};
  if (setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) != 0) {
    return ErrnoStatus(errno, "setsockopt(SO_LINGER)");
  }
  return absl::OkStatus();
}

absl::StatusOr<SocketAddress> TcpStream::local_address() const {
  sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return ErrnoStatus(errno, "getsockname");
  }
  return SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

absl::StatusOr<SocketAddress> TcpStream::peer_address() const {
  sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (::getpeername(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return ErrnoStatus(errno, "getpeername");
  }
  return SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

int TcpStream::Release() {
  connect_pending_ = false;
  return std::exchange(fd_, -1);
}

void TcpStream::Close() { net_internal::CloseFd(Release()); }

}  // namespace mill
