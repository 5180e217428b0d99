// The io_uring floor: an echo / HTTP hello server written straight on
// liburing, one thread, no library, to show what the io_uring path of an
// event loop can cost at best (as epoll_server.cc does for epoll).
//
// Design (after liburing's examples/proxy.c): ONE ring; a multishot accept
// on the listener; per connection a multishot receive that takes its
// buffers from one provided-buffer ring shared by all connections; replies
// go out with plain sends from a per-connection output buffer, one send in
// flight per connection (bytes replied meanwhile wait in a second buffer),
// so replies keep their order. Each loop iteration is one
// io_uring_submit_and_wait() followed by a pass over the completions.
//
// Flags: --port=N as every peer, plus --buffers=N (power of two, default
// 4096) and --buffer-size=BYTES (default 4096) for the provided-buffer ring.
// The defaults: the ring is shared, so its memory (16 MiB) does not grow
// with connections and equals the epoll floor's 16 KiB read buffer at 1,000
// connections; a page per buffer keeps a 4 KiB message in one completion;
// 4,096 buffers leave 4 per connection at 1,000 connections, so running out
// (-ENOBUFS, handled but slow) stays rare.
#include <liburing.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "bench/peers/peer_common.h"
#include "bench/peers/session.h"

// liburing 2.3's headers may predate these (kernel 6.0/6.1 values).
#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#endif
#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN (1U << 13)
#endif

namespace mill {
namespace bench {
namespace {

constexpr int kBufferGroup = 0;
constexpr unsigned kSqEntries = 4096;
// Completions arrive unrequested (multishot), so the CQ is much larger than
// the SQ; with IORING_FEAT_NODROP an overflow is not lost either, only slow.
constexpr unsigned kCqEntries = 8 * kSqEntries;

// What a completion is for: the low bits of its user_data (Conn is aligned
// to 8), the rest is the Conn pointer (none for the listener/signal/cancel).
enum Op : uint64_t {
  kAccept = 0,
  kSignal = 1,
  kCancel = 2,  // Its completion carries nothing to do.
  kRecv = 3,
  kSend = 4,
};
constexpr uint64_t kOpMask = 7;

// Replies waiting beyond this pause the connection's receive until they are
// out (as the epoll floor stops reading while a write is pending), so a
// client that sends without reading cannot grow them without bound.
constexpr std::size_t kMaxPending = 1 << 20;

struct alignas(8) Conn {
  int fd = -1;
  Session session;
  // The bytes of the send in flight (stable until it completes: the kernel
  // may read them after io_uring_enter returns) and the replies made since.
  std::string sending;
  std::size_t sent = 0;
  std::string pending;
  bool send_in_flight = false;
  bool recv_armed = false;
  bool recv_paused = false;  // Cancelled for kMaxPending; re-armed by OnSend.
  bool queued_for_send = false;
  bool closing = false;
};

uint64_t Tag(Conn* conn, Op op) {
  return reinterpret_cast<uint64_t>(conn) | op;
}

struct Server {
  io_uring ring;
  int listen_fd = -1;
  int signal_fd = -1;
  // The provided-buffer ring and the buffers it hands out.
  io_uring_buf_ring* buf_ring = nullptr;
  std::size_t buf_ring_bytes = 0;
  char* buffers = nullptr;
  unsigned buffer_count = 0;
  unsigned buffer_size = 0;
  int buffers_returned = 0;  // Added since the last advance.
  // Connections that need a send or a new multishot receive once the
  // current batch of completions is done.
  std::vector<Conn*> to_send;
  std::vector<Conn*> to_rearm;
  // Closed connections, freed after the batch (the lists above may still
  // name them).
  std::vector<Conn*> closed;
  std::unordered_set<Conn*> conns;  // Touched on accept and close only.
  bool running = true;

  // An SQE, flushing the submission queue first if it is full.
  io_uring_sqe* Sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    while (sqe == nullptr) {
      io_uring_submit(&ring);
      sqe = io_uring_get_sqe(&ring);
    }
    return sqe;
  }

  void ArmAccept() {
    io_uring_sqe* sqe = Sqe();
    io_uring_prep_multishot_accept(sqe, listen_fd, nullptr, nullptr,
                                   SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, kAccept);
  }

  void ArmRecv(Conn* conn) {
    io_uring_sqe* sqe = Sqe();
    io_uring_prep_recv_multishot(sqe, conn->fd, nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = kBufferGroup;
    io_uring_sqe_set_data64(sqe, Tag(conn, kRecv));
    conn->recv_armed = true;
  }

  void StartSend(Conn* conn) {
    io_uring_sqe* sqe = Sqe();
    io_uring_prep_send(sqe, conn->fd, conn->sending.data() + conn->sent,
                       conn->sending.size() - conn->sent, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, Tag(conn, kSend));
    conn->send_in_flight = true;
  }

  void CancelRecv(Conn* conn) {
    io_uring_sqe* sqe = Sqe();
    io_uring_prep_cancel64(sqe, Tag(conn, kRecv), 0);
    io_uring_sqe_set_data64(sqe, kCancel);
  }

  void ReturnBuffer(unsigned bid) {
    io_uring_buf_ring_add(
        buf_ring, buffers + std::size_t{bid} * buffer_size, buffer_size, bid,
        io_uring_buf_ring_mask(buffer_count), buffers_returned++);
  }

  // Frees the connection once the kernel holds no request of it, else
  // cancels its receive; the last completion comes back here.
  void Close(Conn* conn) {
    if (!conn->closing) {
      conn->closing = true;
      if (conn->recv_armed) CancelRecv(conn);
    }
    if (conn->recv_armed || conn->send_in_flight) return;
    close(conn->fd);
    conns.erase(conn);
    closed.push_back(conn);  // No completion of it can follow.
  }

  void OnAccept(const io_uring_cqe* cqe) {
    if (!(cqe->flags & IORING_CQE_F_MORE)) ArmAccept();
    if (cqe->res < 0) return;  // ECONNABORTED, EMFILE...: keep accepting.
    SetNoDelay(cqe->res);
    Conn* conn = new Conn;
    conn->fd = cqe->res;
    conns.insert(conn);
    ArmRecv(conn);
  }

  // The bytes of one provided buffer, through the session like every peer's
  // read buffer (a copy: the buffer goes back to the ring right away).
  bool Consume(Conn* conn, const char* data, std::size_t size) {
    while (size > 0) {
      const std::size_t n = std::min(size, conn->session.read_space());
      std::memcpy(conn->session.read_ptr(), data, n);
      std::string_view reply;
      if (!conn->session.Commit(n, &reply)) return false;
      conn->pending.append(reply.data(), reply.size());
      data += n;
      size -= n;
    }
    if (conn->pending.size() > kMaxPending && !conn->recv_paused) {
      conn->recv_paused = true;
      if (conn->recv_armed) CancelRecv(conn);
    }
    if (!conn->pending.empty() && !conn->send_in_flight &&
        !conn->queued_for_send) {
      conn->queued_for_send = true;
      to_send.push_back(conn);
    }
    return true;
  }

  void OnRecv(Conn* conn, const io_uring_cqe* cqe) {
    const bool more = cqe->flags & IORING_CQE_F_MORE;
    if (!more) conn->recv_armed = false;
    bool ok = cqe->res > 0;
    if (cqe->flags & IORING_CQE_F_BUFFER) {
      const unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
      if (ok && !conn->closing) {
        ok = Consume(conn, buffers + std::size_t{bid} * buffer_size,
                     static_cast<std::size_t>(cqe->res));
      }
      ReturnBuffer(bid);
    }
    // -ENOBUFS: the ring ran dry, the data waits in the socket: re-arm
    // after this batch, when the buffers consumed in it are back.
    // -ECANCELED on an open connection: the kMaxPending pause (OnSend
    // re-arms it). Without IORING_CQE_F_MORE the kernel ended the multishot.
    const bool stopped = cqe->res == -ENOBUFS || cqe->res == -ECANCELED;
    if (conn->closing || (!ok && !stopped)) {
      Close(conn);  // EOF, an error, or a request too large.
    } else if ((stopped || !more) && !conn->recv_paused) {
      to_rearm.push_back(conn);
    }
  }

  void OnSend(Conn* conn, const io_uring_cqe* cqe) {
    conn->send_in_flight = false;
    if (cqe->res < 0 || conn->closing) {
      Close(conn);
      return;
    }
    conn->sent += static_cast<std::size_t>(cqe->res);
    if (conn->sent == conn->sending.size()) {
      conn->sending.clear();
      conn->sent = 0;
      std::swap(conn->sending, conn->pending);
    }
    if (!conn->sending.empty()) {
      StartSend(conn);  // Short send, or more.
    } else if (conn->recv_paused) {
      conn->recv_paused = false;
      if (!conn->recv_armed) ArmRecv(conn);
    }
  }

  void OnCompletion(const io_uring_cqe* cqe) {
    const uint64_t data = io_uring_cqe_get_data64(cqe);
    Conn* conn = reinterpret_cast<Conn*>(data & ~kOpMask);
    switch (data & kOpMask) {
      case kAccept:
        OnAccept(cqe);
        break;
      case kSignal:
        running = false;
        break;
      case kRecv:
        OnRecv(conn, cqe);
        break;
      case kSend:
        OnSend(conn, cqe);
        break;
      default:
        break;
    }
  }

  // Sends and re-arms queued by a batch of completions.
  void AfterBatch() {
    if (buffers_returned > 0) {
      io_uring_buf_ring_advance(buf_ring, buffers_returned);
      buffers_returned = 0;
    }
    for (Conn* conn : to_send) {
      conn->queued_for_send = false;
      if (conn->closing || conn->send_in_flight || conn->pending.empty()) {
        continue;
      }
      std::swap(conn->sending, conn->pending);
      StartSend(conn);
    }
    to_send.clear();
    for (Conn* conn : to_rearm) {
      if (!conn->closing && !conn->recv_armed && !conn->recv_paused) {
        ArmRecv(conn);
      }
    }
    to_rearm.clear();
    for (Conn* conn : closed) delete conn;
    closed.clear();
  }
};

int SetUpRing(io_uring* ring) {
  io_uring_params params{};
  params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER |
                 IORING_SETUP_DEFER_TASKRUN;
  params.cq_entries = kCqEntries;
  int rc = io_uring_queue_init_params(kSqEntries, ring, &params);
  if (rc == -EINVAL) {  // Kernel older than 6.1.
    params = io_uring_params{};
    params.flags = IORING_SETUP_CQSIZE;
    params.cq_entries = kCqEntries;
    rc = io_uring_queue_init_params(kSqEntries, ring, &params);
  }
  if (rc == 0 && !(params.features & IORING_FEAT_NODROP)) {
    std::fprintf(stderr, "io_uring: no IORING_FEAT_NODROP (kernel < 5.5)\n");
    return -EINVAL;
  }
  return rc;
}

bool SetUpBuffers(Server* server) {
  // The ring of buffer descriptors must be page-aligned: mmap it.
  server->buf_ring_bytes = sizeof(io_uring_buf) * server->buffer_count;
  void* mem = mmap(nullptr, server->buf_ring_bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  const std::size_t data_bytes =
      std::size_t{server->buffer_count} * server->buffer_size;
  void* data = mmap(nullptr, data_bytes, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED || data == MAP_FAILED) {
    std::perror("mmap");
    return false;
  }
  server->buf_ring = static_cast<io_uring_buf_ring*>(mem);
  server->buffers = static_cast<char*>(data);
  io_uring_buf_ring_init(server->buf_ring);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(mem);
  reg.ring_entries = server->buffer_count;
  reg.bgid = kBufferGroup;
  const int rc = io_uring_register_buf_ring(&server->ring, &reg, 0);
  if (rc != 0) {
    std::fprintf(stderr, "io_uring_register_buf_ring: %s\n",
                 std::strerror(-rc));
    return false;
  }
  for (unsigned bid = 0; bid < server->buffer_count; ++bid) {
    server->ReturnBuffer(bid);
  }
  io_uring_buf_ring_advance(server->buf_ring, server->buffers_returned);
  server->buffers_returned = 0;
  return true;
}

// Takes --buffers=N and --buffer-size=N out of argv (ParsePortFlagOrDie
// handles the rest).
bool ParseBufferFlag(const char* arg, const char* name, unsigned* value) {
  const std::size_t len = std::strlen(name);
  if (std::strncmp(arg, name, len) != 0) return false;
  char* end = nullptr;
  const long v = std::strtol(arg + len, &end, 10);
  if (*end != '\0' || end == arg + len || v <= 0 || v > (1 << 24)) {
    std::fprintf(stderr, "bad value in '%s'\n", arg);
    std::exit(2);
  }
  *value = static_cast<unsigned>(v);
  return true;
}

int Main(int argc, char** argv) {
  Server server;
  server.buffer_count = 4096;
  server.buffer_size = 4096;
  std::vector<char*> rest = {argv[0]};
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0) {
      std::fprintf(stderr,
                   "usage: %s [--port=N] [--buffers=N] [--buffer-size=BYTES]\n"
                   "  Serves on 127.0.0.1:N (0 = a free port) until SIGINT "
                   "or SIGTERM;\n  receives into a ring of N (a power of two "
                   "<= 32768, default 4096)\n  provided buffers of BYTES "
                   "(default 4096).\n",
                   argv[0]);
      return 2;
    }
    if (!ParseBufferFlag(argv[i], "--buffers=", &server.buffer_count) &&
        !ParseBufferFlag(argv[i], "--buffer-size=", &server.buffer_size)) {
      rest.push_back(argv[i]);
    }
  }
  if ((server.buffer_count & (server.buffer_count - 1)) != 0 ||
      server.buffer_count > 32768) {
    std::fprintf(stderr, "--buffers must be a power of two <= 32768\n");
    return 2;
  }
  const int port =
      ParsePortFlagOrDie(static_cast<int>(rest.size()), rest.data());
  IgnoreSigpipe();

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigprocmask(SIG_BLOCK, &stop_signals, nullptr);
  server.signal_fd = signalfd(-1, &stop_signals, SFD_NONBLOCK | SFD_CLOEXEC);
  if (server.signal_fd < 0) {
    std::perror("signalfd");
    return 1;
  }
  const int rc = SetUpRing(&server.ring);
  if (rc != 0) {
    std::fprintf(stderr, "io_uring_queue_init_params: %s\n",
                 std::strerror(-rc));
    return 1;
  }
  if (!SetUpBuffers(&server)) return 1;
  server.listen_fd = ListenOrDie(port);
  server.ArmAccept();
  // SIGINT/SIGTERM: a one-shot poll on the signalfd ends the loop.
  io_uring_sqe* sqe = server.Sqe();
  io_uring_prep_poll_add(sqe, server.signal_fd, POLLIN);
  io_uring_sqe_set_data64(sqe, kSignal);
  AnnounceListening(LocalPortOrDie(server.listen_fd));

  while (server.running) {
    const int n = io_uring_submit_and_wait(&server.ring, 1);
    if (n < 0 && n != -EINTR && n != -EAGAIN && n != -EBUSY) {
      std::fprintf(stderr, "io_uring_submit_and_wait: %s\n", std::strerror(-n));
      return 1;
    }
    unsigned head;
    unsigned count = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&server.ring, head, cqe) {
      server.OnCompletion(cqe);
      ++count;
    }
    io_uring_cq_advance(&server.ring, count);
    server.AfterBatch();
  }

  for (Conn* conn : server.conns) {
    close(conn->fd);
    delete conn;
  }
  server.conns.clear();
  io_uring_queue_exit(&server.ring);
  munmap(server.buf_ring, server.buf_ring_bytes);
  munmap(server.buffers, std::size_t{server.buffer_count} * server.buffer_size);
  close(server.listen_fd);
  close(server.signal_fd);
  return 0;
}

}  // namespace
}  // namespace bench
}  // namespace mill

int main(int argc, char** argv) { return mill::bench::Main(argc, argv); }
