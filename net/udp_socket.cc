#include "net/udp_socket.h"

#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>

#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/errno_status.h"
#include "net/internal/socket_util.h"
#include "net/internal/udp_core.h"

namespace mill {
namespace {

using net_internal::SetIntOption;

absl::Status ValidateOptions(const UdpSocketOptions& options) {
  if (options.batch_size < 1 || options.batch_size > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("UdpSocket: batch_size must be in [1, 1024], got ",
                     options.batch_size));
  }
  if (options.max_datagram_size < 1 || options.max_datagram_size > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("UdpSocket: max_datagram_size must be in [1, 65535], got ",
                     options.max_datagram_size));
  }
  if (options.max_batches_per_event < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "UdpSocket: max_batches_per_event must be at least 1, got ",
        options.max_batches_per_event));
  }
  if (options.receive_buffer_bytes < 0 || options.send_buffer_bytes < 0) {
    return absl::InvalidArgumentError(
        "UdpSocket: socket buffer sizes must not be negative");
  }
  return absl::OkStatus();
}

// Socket options before bind; the caller closes `fd` on failure.
absl::Status Configure(int fd, const SocketAddress& local,
                       const UdpSocketOptions& options) {
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
  if (local.is_ipv6()) {
    status = SetIntOption(fd, IPPROTO_IPV6, IPV6_V6ONLY,
                          options.ipv6_only ? 1 : 0, "setsockopt(IPV6_V6ONLY)");
    if (!status.ok()) return status;
  }
  if (options.receive_buffer_bytes > 0) {
    status =
        SetIntOption(fd, SOL_SOCKET, SO_RCVBUF, options.receive_buffer_bytes,
                     "setsockopt(SO_RCVBUF)");
    if (!status.ok()) return status;
  }
  if (options.send_buffer_bytes > 0) {
    status = SetIntOption(fd, SOL_SOCKET, SO_SNDBUF, options.send_buffer_bytes,
                          "setsockopt(SO_SNDBUF)");
    if (!status.ok()) return status;
  }
  // Only the groups this socket joined: Linux's default (IP_MULTICAST_ALL)
  // delivers to a socket bound to the wildcard every group that any socket
  // on the host joined. Best effort (older kernels lack the IPv6 option).
#ifdef IP_MULTICAST_ALL
  (void)SetIntOption(fd, IPPROTO_IP, IP_MULTICAST_ALL, 0,
                     "setsockopt(IP_MULTICAST_ALL)");
#endif
#ifdef IPV6_MULTICAST_ALL
  if (local.is_ipv6()) {
    (void)SetIntOption(fd, IPPROTO_IPV6, IPV6_MULTICAST_ALL, 0,
                       "setsockopt(IPV6_MULTICAST_ALL)");
  }
#endif
  // The kernel's drop counter with every receive (Stats::kernel_drops); a
  // statistic only, so a kernel without it is no error.
  (void)SetIntOption(fd, SOL_SOCKET, SO_RXQ_OVFL, 1, "setsockopt(SO_RXQ_OVFL)");
  if (::bind(fd, local.sockaddr_ptr(), local.sockaddr_len()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("bind(", local.ToString(), ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<UdpSocket>> UdpSocket::Create(
    EventLoop* loop, const SocketAddress& local,
    const UdpSocketOptions& options, UdpCallbacks callbacks) {
  if (loop == nullptr) {
    return absl::InvalidArgumentError("UdpSocket::Create: null loop");
  }
  absl::Status status = ValidateOptions(options);
  if (!status.ok()) return status;
  const int fd =
      ::socket(local.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoStatus(errno, "socket(SOCK_DGRAM)");
  status = Configure(fd, local, options);
  sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (status.ok() &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    status = ErrnoStatus(errno, "getsockname");
  }
  absl::StatusOr<SocketAddress> bound =
      status.ok()
          ? SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ss), len)
          : absl::StatusOr<SocketAddress>(status);
  if (!bound.ok()) {
    net_internal::CloseFd(fd);
    return bound.status();
  }
  // Offloads, where the kernel has them: GRO is switched on (a kernel
  // without it refuses the option), GSO only probed (it is asked for per
  // send).
  const bool gro =
      options.gro && SetIntOption(fd, SOL_UDP, UDP_GRO, 1, "UDP_GRO").ok();
  int gso_size = 0;
  const bool gso =
      options.gso &&
      net_internal::GetIntOption(fd, SOL_UDP, UDP_SEGMENT, &gso_size).ok();
  auto core = std::make_shared<net_internal::UdpCore>(
      loop, fd, options, std::move(callbacks), gro, gso);
  std::unique_ptr<UdpSocket> socket(new UdpSocket(core, *bound));
  status = core->Start(socket.get(), core);
  if (!status.ok()) return status;  // ~UdpSocket closes the descriptor
  return socket;
}

UdpSocket::UdpSocket(std::shared_ptr<net_internal::UdpCore> core,
                     SocketAddress local)
    : core_(std::move(core)), local_(local) {}

UdpSocket::~UdpSocket() { Close(); }

absl::Status UdpSocket::Connect(const SocketAddress& peer) {
  return core_->Connect(peer);
}

absl::Status UdpSocket::SendTo(const SocketAddress& to,
                               absl::string_view data) {
  return core_->SendTo(&to, data);
}

absl::Status UdpSocket::Send(absl::string_view data) {
  return core_->SendTo(nullptr, data);
}

absl::StatusOr<size_t> UdpSocket::SendBatch(
    absl::Span<const OutgoingDatagram> batch) {
  return core_->SendBatch(batch);
}

absl::Status UdpSocket::SendSegmented(const SocketAddress& to,
                                      absl::string_view data,
                                      size_t segment_size) {
  return core_->SendSegmented(to, data, segment_size);
}

absl::Status UdpSocket::JoinMulticast(const SocketAddress& group,
                                      unsigned interface_index) {
  return core_->Multicast(group, interface_index, /*join=*/true);
}

absl::Status UdpSocket::LeaveMulticast(const SocketAddress& group,
                                       unsigned interface_index) {
  return core_->Multicast(group, interface_index, /*join=*/false);
}

void UdpSocket::Close() { core_->Close(); }

int UdpSocket::fd() const { return core_->fd(); }
bool UdpSocket::gro_enabled() const { return core_->gro_enabled(); }
bool UdpSocket::gso_enabled() const { return core_->gso_enabled(); }
size_t UdpSocket::queued_bytes() const { return core_->queued_bytes(); }
UdpSocket::Stats UdpSocket::stats() const { return core_->stats(); }

}  // namespace mill
