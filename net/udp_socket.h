// UdpSocket: a UDP datagram socket (IPv4 or IPv6) served by an EventLoop.
//
// Bind to a local address, optionally Connect() to one peer, and receive
// datagrams in batches through one callback, each with its sender's address
// and a truncated flag. Receives use recvmmsg(2) into a fixed set of
// buffers allocated once per socket; sends use sendto/sendmmsg(2), and
// SendSegmented() uses UDP generic segmentation offload (UDP_SEGMENT) where
// the kernel has it. With UdpSocketOptions::gro the socket also accepts
// coalesced receives (UDP_GRO) and splits them back into datagrams.
//
// Thread-safety: Send*, Connect, the multicast calls, stats() and Close()
// may be called from any thread, including from inside the callbacks. The
// callbacks of one socket never overlap (the loop's per-source ordering):
// on_datagrams and on_error run one at a time on a loop thread.
//
// Ownership: the socket owns its descriptor and its receive buffers and
// closes the descriptor in Close() or the destructor, after which no
// callback runs (except the one that called it, when called from a
// callback). The loop must outlive the socket. The Datagram views handed to
// on_datagrams point into the socket's buffers: valid only during the call.
//
// Memory is bounded whatever peers send: receive buffers are
// batch_size * max_datagram_size bytes (2 MiB by default; 65,535 per slot
// with GRO), fixed at Create(): lower max_datagram_size for many sockets;
// excess datagrams are dropped by the kernel once SO_RCVBUF is full (counted in
// Stats::kernel_drops); sends that cannot be written at once are queued up to
// max_send_queue_bytes, and beyond it refused with ResourceExhausted (counted
// in Stats::send_refused).
#ifndef MILL_IO_NET_UDP_SOCKET_H_
#define MILL_IO_NET_UDP_SOCKET_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "net/socket_address.h"
#include "reactor/event_loop.h"

namespace mill {

namespace net_internal {
class UdpCore;
struct UdpTestAccess;
}  // namespace net_internal

// The largest UDP payload over IPv4 (65,535 - 8 - 20); over IPv6 it is 8
// bytes more without extension headers, but this is the portable limit.
inline constexpr size_t kMaxUdpPayload = 65507;

// One received datagram. `data` points into the socket's receive buffers
// and is valid only during the on_datagrams call.
struct Datagram {
  absl::string_view data;
  SocketAddress peer;
  // The datagram was longer than max_datagram_size: `data` is its first
  // max_datagram_size bytes, the rest is lost.
  bool truncated = false;
};

// A datagram to send with SendBatch: `to` is ignored (may be default) on a
// connected socket.
struct OutgoingDatagram {
  absl::string_view data;
  SocketAddress to;
};

struct UdpSocketOptions {
  // Datagrams per recvmmsg/sendmmsg call (1..1024).
  size_t batch_size = 32;
  // Receive buffer per datagram (1..65,535): a longer datagram is delivered
  // truncated, with Datagram::truncated set. With gro, each buffer is 65,535
  // bytes whatever this says (a coalesced receive fills it), and segments
  // longer than this are still reported truncated.
  size_t max_datagram_size = kMaxUdpPayload;
  // recvmmsg calls per readiness event at most (fairness: the socket is
  // reported again after the other ready sources had their turn).
  int max_batches_per_event = 4;
  // SO_RCVBUF / SO_SNDBUF; 0 keeps the system default.
  int receive_buffer_bytes = 0;
  int send_buffer_bytes = 0;
  // Bytes of datagrams queued while the socket is not writable; beyond it
  // sends are refused with ResourceExhausted (Stats::send_refused).
  size_t max_send_queue_bytes = size_t{1} << 20;
  // UDP_GRO: accept coalesced receives where the kernel offers it (ignored,
  // gro_enabled() false, where it does not).
  bool gro = false;
  // UDP_SEGMENT: SendSegmented sends many datagrams in one call where the
  // kernel offers it (else it falls back to sendmmsg).
  bool gso = true;
  // SO_REUSEADDR / SO_REUSEPORT before bind.
  bool reuse_address = false;
  bool reuse_port = false;
  // IPV6_V6ONLY for IPv6 sockets (false: IPv4-mapped peers too).
  bool ipv6_only = false;
};

class UdpSocket;

// The socket's callbacks. They get the socket itself (to answer, or Close),
// so that no datagram arriving before Create() returns finds it unknown.
struct UdpCallbacks {
  // A batch of received datagrams (non-empty), in the order the kernel
  // delivered them.
  std::function<void(UdpSocket&, absl::Span<const Datagram>)> on_datagrams;
  // An asynchronous error: on a connected socket, the ICMP error a peer's
  // host sent back (ECONNREFUSED when nobody listens on the port,
  // EHOSTUNREACH...), or a failure to send queued datagrams. The socket
  // stays usable. Optional.
  std::function<void(UdpSocket&, const absl::Status&)> on_error;
};

// A bound UDP socket registered with an EventLoop.
//
//   UdpCallbacks cb;
//   cb.on_datagrams = [](UdpSocket& s, absl::Span<const Datagram> batch) {
//     for (const Datagram& d : batch) (void)s.SendTo(d.peer, d.data);
//   };
//   absl::StatusOr<std::unique_ptr<UdpSocket>> s = UdpSocket::Create(
//       loop, SocketAddress::LoopbackIPv4(0), {}, std::move(cb));
//   uint16_t port = (*s)->local_address().port();
class UdpSocket {
 public:
  // Counters, readable at any time.
  struct Stats {
    uint64_t datagrams_received = 0;
    uint64_t bytes_received = 0;
    uint64_t truncated = 0;        // received truncated
    uint64_t kernel_drops = 0;     // dropped by the kernel (SO_RXQ_OVFL)
    uint64_t receive_calls = 0;    // recvmmsg calls that returned data
    uint64_t coalesced = 0;        // GRO receives split into segments
    uint64_t datagrams_sent = 0;   // handed to the kernel
    uint64_t send_calls = 0;       // sendto/sendmsg/sendmmsg calls
    uint64_t segmented_sends = 0;  // sendmsg calls with UDP_SEGMENT
    uint64_t queued = 0;           // sends that waited for writability
    uint64_t send_refused = 0;     // refused: send queue full
    uint64_t send_errors = 0;      // queued datagrams the kernel refused
    uint64_t async_errors = 0;     // on_error calls
  };

  // Creates a non-blocking socket of `local`'s family, binds it (port 0: the
  // kernel picks) and registers it with `loop`. Errors carry the system's
  // text ("bind(127.0.0.1:53): Permission denied"); InvalidArgument for bad
  // options or a null loop.
  static absl::StatusOr<std::unique_ptr<UdpSocket>> Create(
      EventLoop* loop, const SocketAddress& local,
      const UdpSocketOptions& options, UdpCallbacks callbacks);

  UdpSocket(const UdpSocket&) = delete;
  UdpSocket& operator=(const UdpSocket&) = delete;
  ~UdpSocket();  // Close()

  // Restricts the socket to one peer: Send() goes there, datagrams from
  // other addresses are not received, and ICMP errors are reported through
  // on_error.
  absl::Status Connect(const SocketAddress& peer);

  // Sends one datagram (at most kMaxUdpPayload bytes; empty is allowed):
  // at once when the socket is writable and nothing is queued, else queued
  // (copied). InvalidArgument for an oversize datagram, ResourceExhausted
  // when the queue is full, FailedPrecondition once closed, or the system's
  // error (e.g. ECONNREFUSED on a connected socket after an ICMP error).
  absl::Status SendTo(const SocketAddress& to, absl::string_view data);
  // On a connected socket.
  absl::Status Send(absl::string_view data);

  // Sends several datagrams with sendmmsg (batch_size per call), queueing
  // what the kernel does not take at once. Returns how many were accepted
  // (sent or queued): fewer than all when the queue filled up (the rest are
  // refused and counted). A datagram the kernel refuses (ECONNREFUSED after
  // an ICMP error, say) is skipped and counted in send_errors; the call
  // fails with that error only if it accepted none. InvalidArgument
  // (nothing sent) if one is too big.
  absl::StatusOr<size_t> SendBatch(absl::Span<const OutgoingDatagram> batch);

  // Sends `data` as consecutive datagrams of `segment_size` bytes (the last
  // may be shorter) to `to`: with UDP_SEGMENT (one system call per 64
  // segments of at most 65,507 bytes in all) when gso_enabled(), else with
  // sendmmsg. A receiver sees ordinary datagrams either way.
  absl::Status SendSegmented(const SocketAddress& to, absl::string_view data,
                             size_t segment_size);

  // Joins / leaves multicast `group` (IPv4 224.0.0.0/4 or IPv6 ff00::/8, of
  // the socket's family) on interface `interface_index` (0: the kernel's
  // choice, if_nametoindex for a name). The socket receives only the groups
  // it joined itself (IP_MULTICAST_ALL is off: Linux's default would hand
  // it every group another socket on the host joined).
  absl::Status JoinMulticast(const SocketAddress& group,
                             unsigned interface_index = 0);
  absl::Status LeaveMulticast(const SocketAddress& group,
                              unsigned interface_index = 0);

  // Deregisters (waiting for a callback running on another thread) and
  // closes the socket. Idempotent.
  void Close();

  // The bound address, with the port the kernel chose.
  const SocketAddress& local_address() const { return local_; }
  int fd() const;
  bool gro_enabled() const;
  bool gso_enabled() const;
  // Bytes of datagrams waiting for writability.
  size_t queued_bytes() const;
  Stats stats() const;

 private:
  friend struct net_internal::UdpTestAccess;  // the tests' send hold
  UdpSocket(std::shared_ptr<net_internal::UdpCore> core, SocketAddress local);

  const std::shared_ptr<net_internal::UdpCore> core_;
  const SocketAddress local_;
};

}  // namespace mill

#endif  // MILL_IO_NET_UDP_SOCKET_H_
