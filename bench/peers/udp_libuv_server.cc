// UDP echo peer on libuv: one uv_udp_t created with UV_UDP_RECVMMSG (libuv
// then receives with recvmmsg when the buffer it is given holds several
// 64 KiB slots: it is given kUdpBatch of them, as the Mill-IO socket and the
// epoll floor use), each datagram answered with uv_udp_try_send (libuv has
// no batched try-send; what would block is dropped, as UDP allows).
// Flags and announcement follow peer_common.h ("listening on ... (udp)").
#include <signal.h>
#include <uv.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "bench/peers/peer_common.h"
#include "bench/peers/udp_peer_common.h"

namespace {

std::vector<char>* g_arena = nullptr;

void OnAlloc(uv_handle_t*, size_t, uv_buf_t* buf) {
  *buf = uv_buf_init(g_arena->data(), static_cast<unsigned>(g_arena->size()));
}

void OnRecv(uv_udp_t* handle, ssize_t nread, const uv_buf_t* buf,
            const sockaddr* addr, unsigned flags) {
  // With recvmmsg libuv reports each datagram (UV_UDP_MMSG_CHUNK), then
  // hands the buffer back (UV_UDP_MMSG_FREE, nread 0): nothing to free here.
  if (nread < 0 || addr == nullptr) return;
  uv_buf_t reply = uv_buf_init(buf->base, static_cast<unsigned>(nread));
  (void)uv_udp_try_send(handle, &reply, 1, addr);
  (void)flags;
}

void OnSignal(uv_signal_t* handle, int) { uv_stop(handle->loop); }

}  // namespace

int main(int argc, char** argv) {
  const int port = mill::bench::ParsePortFlagOrDie(argc, argv);
  std::vector<char> arena(mill::bench::kUdpBatch * mill::bench::kUdpSlot);
  g_arena = &arena;
  uv_loop_t* loop = uv_default_loop();
  uv_udp_t udp;
  sockaddr_in local{};
  uv_ip4_addr("127.0.0.1", port, &local);
  // libuv's own socket: the flag is kept only for a socket it creates.
  int rc = uv_udp_init_ex(loop, &udp, AF_INET | UV_UDP_RECVMMSG);
  if (rc == 0) {
    rc = uv_udp_bind(&udp, reinterpret_cast<const sockaddr*>(&local), 0);
  }
  if (rc == 0) rc = uv_udp_recv_start(&udp, OnAlloc, OnRecv);
  if (rc != 0 || !uv_udp_using_recvmmsg(&udp)) {
    std::fprintf(stderr, "libuv udp setup failed: %s\n",
                 rc != 0 ? uv_strerror(rc) : "recvmmsg not in use");
    return 1;
  }
  sockaddr_in bound{};
  int len = sizeof(bound);
  uv_udp_getsockname(&udp, reinterpret_cast<sockaddr*>(&bound), &len);
  uv_signal_t sigint, sigterm;
  uv_signal_init(loop, &sigint);
  uv_signal_init(loop, &sigterm);
  uv_signal_start(&sigint, OnSignal, SIGINT);
  uv_signal_start(&sigterm, OnSignal, SIGTERM);
  mill::bench::AnnounceUdp(ntohs(bound.sin_port));
  uv_run(loop, UV_RUN_DEFAULT);
  return 0;
}
