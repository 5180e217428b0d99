// ResolveHost on POSIX: getaddrinfo(3).
// clang-format off
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
// clang-format on

#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "examples/proxy/resolve_host.h"

namespace mill::proxy::internal {

absl::StatusOr<SocketAddress> ResolveHost(const std::string& host,
                                          uint16_t port) {
  addrinfo hints;
  std::memset(&hints, 0, sizeof(hints));
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &result);
  if (rc != 0 || result == nullptr) {
    return absl::NotFoundError(std::string(gai_strerror(rc)));
  }
  // The first address, with the port set.
  sockaddr_storage storage;
  std::memset(&storage, 0, sizeof(storage));
  std::memcpy(&storage, result->ai_addr, result->ai_addrlen);
  const socklen_t length = static_cast<socklen_t>(result->ai_addrlen);
  freeaddrinfo(result);
  if (storage.ss_family == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&storage)->sin_port = htons(port);
  } else {
    reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port = htons(port);
  }
  return SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&storage),
                                     length);
}

}  // namespace mill::proxy::internal
