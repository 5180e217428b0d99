#include "net/tcp_listener.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "net/internal/socket_types.h"
#include "net/internal/socket_util.h"

namespace mill {

using net_internal::SetIntOption;

namespace {

// bind(2); for a Unix path in use, applies the stale-file policy (see the
// header): removes the file only when it is a socket nobody listens on.
absl::Status BindAddress(int fd, const SocketAddress& address) {
  int err = net_internal::kNoSocketError;
  if (net_internal::BindSocket(fd, address, &err) == 0) {
    return absl::OkStatus();
  }
  const std::string where = absl::StrCat("bind(", address.ToString(), ")");
  if (net_internal::ClassifySocketError(err) !=
          net_internal::SocketErrorKind::kAddressInUse ||
      !address.is_unix() || address.is_abstract()) {
    return net_internal::SocketErrorStatus(err, where);
  }
  absl::Status status = net_internal::RemoveStaleUnixSocket(address, where);
  if (!status.ok()) return status;
  if (net_internal::BindSocket(fd, address, &err) != 0) {
    return net_internal::SocketErrorStatus(err, where);
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
  int err = net_internal::kNoSocketError;
  const int fd =
      net_internal::OpenSocket(address.family(), /*datagram=*/false, &err);
  if (fd < 0) return net_internal::SocketErrorStatus(err, "socket");
  TcpListener listener(fd);
  absl::Status status;
  if (options.reuse_address && !address.is_unix()) {
    status = net_internal::AllowAddressReuse(fd);
    if (!status.ok()) return status;
  }
  if (options.reuse_port && !address.is_unix()) {
    status = net_internal::AllowPortReuse(fd);
    if (!status.ok()) return status;
  }
  if (address.is_ipv6()) {
    status = SetIntOption(fd, IPPROTO_IPV6, IPV6_V6ONLY,
                          options.ipv6_only ? 1 : 0, "setsockopt(IPV6_V6ONLY)");
    if (!status.ok()) return status;
  }
  status = BindAddress(fd, address);
  if (!status.ok()) return status;
  if (net_internal::ListenSocket(fd, options.backlog, &err) != 0) {
    return net_internal::SocketErrorStatus(err, "listen");
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
  int err = net_internal::kNoSocketError;
  if (net_internal::GetLocalName(fd_, reinterpret_cast<sockaddr*>(&ss), &len,
                                 &err) != 0) {
    return net_internal::SocketErrorStatus(err, "getsockname");
  }
  return SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

absl::StatusOr<TcpStream> TcpListener::Accept(const TcpStreamOptions& options,
                                              SocketAddress* peer) {
  sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  int err = net_internal::kNoSocketError;
  const int fd = net_internal::AcceptSocket(
      fd_, reinterpret_cast<sockaddr*>(&ss), &len, &err);
  if (fd < 0) return net_internal::SocketErrorStatus(err, "accept4");
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
