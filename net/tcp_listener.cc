#include "net/tcp_listener.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/errno_status.h"
#include "net/internal/socket_util.h"

namespace mill {

using net_internal::SetIntOption;

namespace {

// bind(2); for a Unix path in use, applies the stale-file policy (see the
// header): removes the file only when it is a socket nobody listens on.
absl::Status BindAddress(int fd, const SocketAddress& address) {
  if (::bind(fd, address.sockaddr_ptr(), address.sockaddr_len()) == 0) {
    return absl::OkStatus();
  }
  const int bind_errno = errno;
  const std::string where = absl::StrCat("bind(", address.ToString(), ")");
  if (bind_errno != EADDRINUSE || !address.is_unix() || address.is_abstract()) {
    return ErrnoStatus(bind_errno, where);
  }
  const std::string path = address.unix_path();
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return ErrnoStatus(bind_errno, where);
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
  net_internal::CloseFd(probe);
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
  if (::bind(fd, address.sockaddr_ptr(), address.sockaddr_len()) != 0) {
    return ErrnoStatus(errno, where);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TcpListener> TcpListener::Adopt(int fd) {
  absl::Status status = net_internal::CheckStreamSocket(fd, /*listening=*/true,
                                                        "TcpListener::Adopt");
  if (status.ok()) status = net_internal::SetNonBlocking(fd);
  if (status.ok()) status = net_internal::SetCloseOnExec(fd);
  if (!status.ok()) return status;
  return TcpListener(fd);
}

absl::StatusOr<TcpListener> TcpListener::Bind(
    const SocketAddress& address, const TcpListenerOptions& options) {
  const int fd =
      ::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoStatus(errno, "socket");
  TcpListener listener(fd);
  absl::Status status;
  if (options.reuse_address && !address.is_unix()) {
    status = SetIntOption(fd, SOL_SOCKET, SO_REUSEADDR, 1,
                          "setsockopt(SO_REUSEADDR)");
    if (!status.ok()) return status;
  }
  if (options.reuse_port && !address.is_unix()) {
    status = SetIntOption(fd, SOL_SOCKET, SO_REUSEPORT, 1,
                          "setsockopt(SO_REUSEPORT)");
    if (!status.ok()) return status;
  }
  if (address.is_ipv6()) {
    status = SetIntOption(fd, IPPROTO_IPV6, IPV6_V6ONLY,
                          options.ipv6_only ? 1 : 0, "setsockopt(IPV6_V6ONLY)");
    if (!status.ok()) return status;
  }
  status = BindAddress(fd, address);
  if (!status.ok()) return status;
  if (::listen(fd, options.backlog) != 0) {
    return ErrnoStatus(errno, "listen");
  }
  return listener;
}

TcpListener::TcpListener(TcpListener&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)) {}

TcpListener& TcpListener::operator=(TcpListener&& other) noexcept {
  if (this != &other) {
    Close();
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

TcpListener::~TcpListener() { Close(); }

absl::StatusOr<SocketAddress> TcpListener::local_address() const {
  sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return ErrnoStatus(errno, "getsockname");
  }
  return SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

absl::StatusOr<TcpStream> TcpListener::Accept(const TcpStreamOptions& options,
                                              SocketAddress* peer) {
  sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  int fd;
  do {
    fd = ::accept4(fd_, reinterpret_cast<sockaddr*>(&ss), &len,
                   SOCK_NONBLOCK | SOCK_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return ErrnoStatus(errno, "accept4");
  if (peer != nullptr) {
    absl::StatusOr<SocketAddress> addr =
        SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ss), len);
    if (addr.ok()) *peer = *addr;
  }
  absl::StatusOr<TcpStream> stream = TcpStream::Adopt(fd, options);
  if (!stream.ok()) net_internal::CloseFd(fd);
  return stream;
}

int TcpListener::Release() { return std::exchange(fd_, -1); }

void TcpListener::Close() { net_internal::CloseFd(Release()); }

}  // namespace mill
