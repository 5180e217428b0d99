// ResolveHost on Windows: getaddrinfo after WSAStartup (reference counted;
// the proxy resolves its upstreams before it opens any socket).
// clang-format off
#include <winsock2.h>
#include <ws2tcpip.h>
// clang-format on

#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "examples/proxy/resolve_host.h"

namespace mill::proxy::internal {

absl::StatusOr<SocketAddress> ResolveHost(const std::string& host,
                                          uint16_t port) {
  WSADATA wsa;
  if (const int rc = WSAStartup(MAKEWORD(2, 2), &wsa); rc != 0) {
    return absl::UnavailableError(absl::StrCat("WSAStartup failed: ", rc));
  }
  addrinfo hints;
  std::memset(&hints, 0, sizeof(hints));
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &result);
  if (rc != 0 || result == nullptr) {
    return absl::NotFoundError(std::string(gai_strerrorA(rc)));
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
