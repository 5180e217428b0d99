// SocketAddress: an IPv4 or IPv6 socket address (address + port) for the
// //net TCP layer.
//
// Build one from a literal ("127.0.0.1:8080", "[::1]:8080"), or with the
// named constructors for loopback and wildcard addresses; read the port back
// after binding port 0 through TcpListener::local_address().
//
// Thread-safety: plain value type; thread-compatible.
// Ownership: holds the sockaddr by value (28 bytes); no resources.
#ifndef MILL_IO_NET_SOCKET_ADDRESS_H_
#define MILL_IO_NET_SOCKET_ADDRESS_H_

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mill {

// An AF_INET or AF_INET6 address with a port.
//
//   mill::SocketAddress any = mill::SocketAddress::AnyIPv4(0);
//   absl::StatusOr<mill::SocketAddress> a =
//       mill::SocketAddress::Parse("127.0.0.1:7000");
//   a->port();        // 7000
//   a->ToString();    // "127.0.0.1:7000"
//
// A default-constructed SocketAddress is 0.0.0.0:0 (IPv4 wildcard).
class SocketAddress {
 public:
  SocketAddress();

  static SocketAddress LoopbackIPv4(uint16_t port);
  static SocketAddress AnyIPv4(uint16_t port);
  static SocketAddress LoopbackIPv6(uint16_t port);
  static SocketAddress AnyIPv6(uint16_t port);

  // "a.b.c.d:port" or "[v6]:port". Numeric only (no name resolution).
  static absl::StatusOr<SocketAddress> Parse(absl::string_view text);

  // Copies an address returned by the kernel (accept, getsockname...).
  // InvalidArgument unless the family is AF_INET or AF_INET6.
  static absl::StatusOr<SocketAddress> FromSockaddr(const sockaddr* addr,
                                                    socklen_t len);

  int family() const { return storage_.generic.sa_family; }
  bool is_ipv6() const { return family() == AF_INET6; }
  uint16_t port() const;

  const sockaddr* sockaddr_ptr() const {
    return reinterpret_cast<const sockaddr*>(&storage_);
  }
  socklen_t sockaddr_len() const;

  // "127.0.0.1:7000" or "[::1]:7000".
  std::string ToString() const;

  friend bool operator==(const SocketAddress& a, const SocketAddress& b);
  friend bool operator!=(const SocketAddress& a, const SocketAddress& b) {
    return !(a == b);
  }
  friend std::ostream& operator<<(std::ostream& os, const SocketAddress& a) {
    return os << a.ToString();
  }

 private:
  // Only IPv4 and IPv6: 28 bytes, not sockaddr_storage's 128 (every
  // connection keeps its peer's address).
  union Storage {
    sockaddr generic;
    sockaddr_in v4;
    sockaddr_in6 v6;
  };
  Storage storage_;
};

}  // namespace mill

#endif  // MILL_IO_NET_SOCKET_ADDRESS_H_
