// What the UDP comparison peers (bench/peers/udp_*_server.cc) share with
// each other and with //examples:udp_echo's defaults: the batch (32
// datagrams per recvmmsg) and its 64 KiB slots, the socket (127.0.0.1,
// non-blocking), and the announcement "listening on 127.0.0.1:PORT (udp)".
//
// Thread-safety: for a single-threaded main(). Ownership: UdpBindOrDie()
// returns a descriptor the caller owns.
#ifndef MILL_IO_BENCH_PEERS_UDP_PEER_COMMON_H_
#define MILL_IO_BENCH_PEERS_UDP_PEER_COMMON_H_

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace mill {
namespace bench {

inline constexpr int kUdpBatch = 32;
inline constexpr std::size_t kUdpSlot = 65536;

// A non-blocking UDP socket bound to 127.0.0.1:`port`; exits 1 on failure.
inline int UdpBindOrDie(int port) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(static_cast<uint16_t>(port));
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) != 0) {
    std::fprintf(stderr, "udp bind: %s\n", std::strerror(errno));
    std::exit(1);
  }
  return fd;
}

inline void AnnounceUdp(int port) {
  std::printf("listening on 127.0.0.1:%d (udp)\n", port);
  std::fflush(stdout);
}

}  // namespace bench
}  // namespace mill

#endif  // MILL_IO_BENCH_PEERS_UDP_PEER_COMMON_H_
