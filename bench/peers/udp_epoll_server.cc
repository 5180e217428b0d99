// UDP echo floor on bare epoll: one socket on 127.0.0.1, recvmmsg of up to
// 32 datagrams into fixed 64 KiB slots, answered with one sendmmsg per batch.
// No library, no callbacks, no counters: the least a batched UDP echo can
// cost, which //examples:udp_echo is measured against (bench/udp_bench.py).
// Flags and announcement follow peer_common.h ("listening on ... (udp)").
#include <netinet/in.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "bench/peers/peer_common.h"
#include "bench/peers/udp_peer_common.h"

namespace {

volatile sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

}  // namespace

int main(int argc, char** argv) {
  const int port = mill::bench::ParsePortFlagOrDie(argc, argv);
  const int fd = mill::bench::UdpBindOrDie(port);
  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
    std::perror("epoll");
    return 1;
  }
  constexpr int kBatch = mill::bench::kUdpBatch;
  constexpr size_t kSlot = mill::bench::kUdpSlot;
  std::vector<char> arena(kBatch * kSlot);
  std::vector<mmsghdr> in(kBatch), out(kBatch);
  std::vector<iovec> iov(kBatch), out_iov(kBatch);
  std::vector<sockaddr_in6> addr(kBatch);
  mill::bench::AnnounceUdp(mill::bench::LocalPortOrDie(fd));
  while (!g_stop) {
    epoll_event events[1];
    const int n = epoll_wait(ep, events, 1, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::perror("epoll_wait");
      return 1;
    }
    for (;;) {
      for (int i = 0; i < kBatch; ++i) {
        iov[i] = {arena.data() + i * kSlot, kSlot};
        in[i].msg_hdr = msghdr{};
        in[i].msg_hdr.msg_name = &addr[i];
        in[i].msg_hdr.msg_namelen = sizeof(addr[i]);
        in[i].msg_hdr.msg_iov = &iov[i];
        in[i].msg_hdr.msg_iovlen = 1;
      }
      const int got = recvmmsg(fd, in.data(), kBatch, MSG_DONTWAIT, nullptr);
      if (got <= 0) break;
      for (int i = 0; i < got; ++i) {
        out_iov[i] = {iov[i].iov_base, in[i].msg_len};
        out[i].msg_hdr = msghdr{};
        out[i].msg_hdr.msg_name = &addr[i];
        out[i].msg_hdr.msg_namelen = in[i].msg_hdr.msg_namelen;
        out[i].msg_hdr.msg_iov = &out_iov[i];
        out[i].msg_hdr.msg_iovlen = 1;
      }
      // What the kernel does not take now is dropped, as UDP allows.
      (void)sendmmsg(fd, out.data(), got, MSG_DONTWAIT);
      if (got < kBatch) break;
    }
  }
  close(ep);
  close(fd);
  return 0;
}
