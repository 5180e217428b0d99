#include "tls/internal/kernel_tls.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "base/errno_status.h"

namespace mill {
namespace tls_internal {
namespace {

#ifndef TCP_ULP
#define TCP_ULP 31
#endif

absl::Status Probe() {
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0) return ErrnoStatus(errno, "kTLS probe: socket");
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  absl::Status status;
  int client = -1;
  int server = -1;
  if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(listener, 1) != 0 ||
      ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    status = ErrnoStatus(errno, "kTLS probe: listen");
  } else if ((client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
             ::connect(client, reinterpret_cast<sockaddr*>(&addr),
                       sizeof(addr)) != 0) {
    status = ErrnoStatus(errno, "kTLS probe: connect");
  } else {
    server = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (::setsockopt(client, SOL_TCP, TCP_ULP, "tls", sizeof("tls")) != 0) {
      status = ErrnoStatus(errno, "setsockopt(TCP_ULP, \"tls\")");
    }
  }
  if (server >= 0) ::close(server);
  if (client >= 0) ::close(client);
  ::close(listener);
  return status;
}

}  // namespace

absl::Status KernelTlsSupport() {
  static const absl::Status* const support = new absl::Status(Probe());
  return *support;
}

bool UseKernelTls(KernelTls mode, const absl::Status& support) {
  return mode == KernelTls::kAuto && support.ok();
}

}  // namespace tls_internal
}  // namespace mill
