#include "net/tcp_listener.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/errno_status.h"
#include "net/internal/socket_util.h"

namespace mill {

using net_internal::SetIntOption;

absl::StatusOr<TcpListener> TcpListener::Bind(
    const SocketAddress& address, const TcpListenerOptions& options) {
  const int fd =
      ::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoStatus(errno, "socket");
  TcpListener listener(fd);
  absl::Status status;
  if (options.reuse_address) {
    status = SetIntOption(fd, SOL_SOCKET, SO_REUSEADDR, 1,
                          "setsockopt(SO_REUSEADDR)");
    if (!status.ok()) return status;
  }
  if (options.reuse_port) {
    status = SetIntOption(fd, SOL_SOCKET, SO_REUSEPORT, 1,
                          "setsockopt(SO_REUSEPORT)");
    if (!status.ok()) return status;
  }
  if (address.is_ipv6()) {
    status = SetIntOption(fd, IPPROTO_IPV6, IPV6_V6ONLY,
                          options.ipv6_only ? 1 : 0, "setsockopt(IPV6_V6ONLY)");
    if (!status.ok()) return status;
  }
  if (::bind(fd, address.sockaddr_ptr(), address.sockaddr_len()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("bind(", address.ToString(), ")"));
  }
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
