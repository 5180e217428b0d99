#include "net/tcp_stream.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "net/internal/socket_types.h"
#include "net/internal/socket_util.h"

namespace mill {

using net_internal::ClassifySocketError;
using net_internal::SetIntOption;
using net_internal::SocketErrorKind;
using net_internal::SocketErrorStatus;

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
  int err = net_internal::kNoSocketError;
  const int fd =
      net_internal::OpenSocket(address.family(), /*datagram=*/false, &err);
  if (fd < 0) return SocketErrorStatus(err, "socket");
  TcpStream stream(fd);
  if (!address.is_unix()) {  // TCP options mean nothing on a Unix socket
    absl::Status status = stream.Apply(options);
    if (!status.ok()) return status;
  }
  if (net_internal::ConnectSocket(fd, address, &err) != 0) {
    if (ClassifySocketError(err) != SocketErrorKind::kInProgress) {
      return SocketErrorStatus(
          err, absl::StrCat("connect(", address.ToString(), ")"));
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
    const int64_t ms =
        std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now()));
    int err = net_internal::kNoSocketError;
    const int rc =
        net_internal::WaitWritable(stream->fd(), static_cast<int>(ms), &err);
    if (rc < 0) {
      if (ClassifySocketError(err) == SocketErrorKind::kInterrupted) continue;
      return SocketErrorStatus(err, "poll");
    }
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
    return SocketErrorStatus(err, "connect");
  }
  sockaddr_storage peer;
  socklen_t len = sizeof(peer);
  if (net_internal::GetPeerName(fd_, reinterpret_cast<sockaddr*>(&peer), &len,
                                &err) != 0) {
    if (ClassifySocketError(err) == SocketErrorKind::kNotConnected) {
      // A spurious wake-up: no error yet, but not connected either.
      return absl::FailedPreconditionError("connect: still in progress");
    }
    return SocketErrorStatus(err, "getpeername");
  }
  connect_pending_ = false;
  return absl::OkStatus();
}

ssize_t TcpStream::Read(void* data, size_t size) {
  int err = net_internal::kNoSocketError;
  const int64_t n = net_internal::ReceiveSome(fd_, data, size, &err);
  if (n < 0) net_internal::SetErrnoFromSocketError(err);
  return static_cast<ssize_t>(n);
}

ssize_t TcpStream::Write(const void* data, size_t size) {
  int err = net_internal::kNoSocketError;
  const int64_t n = net_internal::SendSome(fd_, data, size, &err);
  if (n < 0) net_internal::SetErrnoFromSocketError(err);
  return static_cast<ssize_t>(n);
}

absl::Status TcpStream::Shutdown(int how) {
  int err = net_internal::kNoSocketError;
  if (net_internal::ShutdownSocket(fd_, net_internal::ShutdownHowFromPosix(how),
                                   &err) != 0) {
    return SocketErrorStatus(err, "shutdown");
  }
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
  return net_internal::SetLingerZero(fd_);
}

absl::StatusOr<SocketAddress> TcpStream::local_address() const {
  sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  int err = net_internal::kNoSocketError;
  if (net_internal::GetLocalName(fd_, reinterpret_cast<sockaddr*>(&ss), &len,
                                 &err) != 0) {
    return SocketErrorStatus(err, "getsockname");
  }
  return SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

absl::StatusOr<SocketAddress> TcpStream::peer_address() const {
  sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  int err = net_internal::kNoSocketError;
  if (net_internal::GetPeerName(fd_, reinterpret_cast<sockaddr*>(&ss), &len,
                                &err) != 0) {
    return SocketErrorStatus(err, "getpeername");
  }
  return SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

int TcpStream::Release() {
  connect_pending_ = false;
  return std::exchange(fd_, -1);
}

void TcpStream::Close() { net_internal::CloseFd(Release()); }

}  // namespace mill
