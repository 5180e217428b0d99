// SocketAddress: a socket address for the //net layer: IPv4 or IPv6
// (address + port), or Unix-domain (a filesystem path or a name in Linux's
// abstract namespace).
//
// Build one from a literal ("127.0.0.1:8080", "[::1]:8080", "unix:/run/x.sock",
// "unix:@name"), or with the named constructors; read the port back after
// binding port 0 through TcpListener::local_address().
//
// Thread-safety: value type; thread-compatible (copies of one Unix address
// share an immutable, atomically reference-counted block, so copies may be
// used and destroyed on different threads).
// Ownership: an IP address is held by value (28 bytes); a Unix address's
// sockaddr_un (110 bytes) lives out of line in that shared block, so that
// every connection's peer address stays 28 bytes. An unnamed Unix address
// (the peer of an unbound client, a socketpair) allocates nothing.
#ifndef MILL_IO_NET_SOCKET_ADDRESS_H_
#define MILL_IO_NET_SOCKET_ADDRESS_H_

#include <cstdint>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
// sockaddr, sockaddr_in/in6, socklen_t, AF_*: the platform's header.
#include "net/internal/socket_types.h"

namespace mill {

// An AF_INET or AF_INET6 address with a port, or an AF_UNIX address.
//
//   mill::SocketAddress any = mill::SocketAddress::AnyIPv4(0);
//   absl::StatusOr<mill::SocketAddress> a =
//       mill::SocketAddress::Parse("127.0.0.1:7000");
//   a->port();        // 7000
//   a->ToString();    // "127.0.0.1:7000"
//   absl::StatusOr<mill::SocketAddress> u =
//       mill::SocketAddress::Parse("unix:/run/app.sock");
//   u->ToString();    // "unix:/run/app.sock"; port() is 0
//
// A default-constructed SocketAddress is 0.0.0.0:0 (IPv4 wildcard).
class SocketAddress {
 public:
  // The longest Unix path (or abstract name) an address holds: sun_path's
  // 108 bytes less the path's terminating NUL (the abstract name's leading
  // NUL).
  static constexpr size_t kMaxUnixPathLength = 107;

  SocketAddress();
  SocketAddress(const SocketAddress& other);
  SocketAddress(SocketAddress&& other) noexcept;
  SocketAddress& operator=(const SocketAddress& other);
  SocketAddress& operator=(SocketAddress&& other) noexcept;
  ~SocketAddress();

  static SocketAddress LoopbackIPv4(uint16_t port);
  static SocketAddress AnyIPv4(uint16_t port);
  static SocketAddress LoopbackIPv6(uint16_t port);
  static SocketAddress AnyIPv6(uint16_t port);

  // A Unix-domain socket at filesystem path `path`. InvalidArgument when
  // empty, longer than kMaxUnixPathLength or containing a NUL byte.
  static absl::StatusOr<SocketAddress> Unix(absl::string_view path);
  // A Unix-domain socket named `name` in Linux's abstract namespace (no
  // file; gone with its last socket). InvalidArgument when empty or longer
  // than kMaxUnixPathLength.
  static absl::StatusOr<SocketAddress> AbstractUnix(absl::string_view name);

  // "a.b.c.d:port", "[v6]:port" (numeric only: no name resolution),
  // "unix:PATH" or "unix:@ABSTRACT_NAME".
  static absl::StatusOr<SocketAddress> Parse(absl::string_view text);

  // Copies an address returned by the kernel (accept, getsockname...).
  // InvalidArgument unless the family is AF_INET, AF_INET6 or AF_UNIX.
  static absl::StatusOr<SocketAddress> FromSockaddr(const sockaddr* addr,
                                                    socklen_t len);

  int family() const { return storage_.generic.sa_family; }
  bool is_ipv6() const { return family() == AF_INET6; }
  bool is_unix() const { return family() == AF_UNIX; }
  // A Unix address in the abstract namespace.
  bool is_abstract() const;
  // 0 for a Unix address.
  uint16_t port() const;
  // A Unix address's path or abstract name (without the leading '@'); empty
  // for an unnamed one and for IP addresses.
  std::string unix_path() const;

  const sockaddr* sockaddr_ptr() const;
  socklen_t sockaddr_len() const;

  // "127.0.0.1:7000", "[::1]:7000", "unix:/path", "unix:@name", or "unix:"
  // for an unnamed Unix address (which Parse does not accept).
  std::string ToString() const;

  friend bool operator==(const SocketAddress& a, const SocketAddress& b);
  friend bool operator!=(const SocketAddress& a, const SocketAddress& b) {
    return !(a == b);
  }
  friend std::ostream& operator<<(std::ostream& os, const SocketAddress& a) {
    return os << a.ToString();
  }

 private:
  struct UnixBlock;  // refcount + sockaddr_un, out of line

  // AF_UNIX: the family, then the block's pointer stored as bytes (not a
  // pointer member: that would raise the union's alignment, and its size,
  // from 4 to 8 and 32).
  struct UnixRef {
    uint16_t family;  // sa_family_t: Linux's, Winsock's ADDRESS_FAMILY
    unsigned char pad[6];
    unsigned char block[sizeof(uintptr_t)];
  };
  // 28 bytes, not sockaddr_storage's 128 (every connection keeps its
  // peer's address).
  union Storage {
    sockaddr generic;
    sockaddr_in v4;
    sockaddr_in6 v6;
    UnixRef un;
  };

  static absl::StatusOr<SocketAddress> MakeUnix(absl::string_view name,
                                                bool abstract,
                                                absl::string_view what);
  UnixBlock* block() const;
  void SetBlock(UnixBlock* block);
  void Unref();

  Storage storage_;
};

}  // namespace mill

#endif  // MILL_IO_NET_SOCKET_ADDRESS_H_
