// A host name to an address, for the proxy's upstream list (parsed once at
// start-up, before the loop runs, so a blocking lookup is fine). Internal to
// //examples/proxy; per platform: resolve_host_posix.cc (getaddrinfo),
// resolve_host_win.cc (getaddrinfo after WSAStartup, which a lookup before
// the first socket needs).
//
// Thread-safety: thread-safe.
#ifndef MILL_IO_EXAMPLES_PROXY_RESOLVE_HOST_H_
#define MILL_IO_EXAMPLES_PROXY_RESOLVE_HOST_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "net/socket_address.h"

namespace mill::proxy::internal {

// The first address `host` resolves to for TCP, with `port`. NotFound with
// the resolver's reason when it does not resolve.
absl::StatusOr<SocketAddress> ResolveHost(const std::string& host,
                                          uint16_t port);

}  // namespace mill::proxy::internal

#endif  // MILL_IO_EXAMPLES_PROXY_RESOLVE_HOST_H_
