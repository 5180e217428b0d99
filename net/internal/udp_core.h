// UdpCore: the state of a UdpSocket that the EventLoop's handler and the
// sending threads share. Internal to //net; see net/udp_socket.h for the
// behaviour.
//
// Thread-safety: the receive side (buffers, headers) is touched only by
// HandleEvent, whose invocations never overlap (the loop's per-source
// ordering), so it needs no lock; the send side (queue, interest) is guarded
// by mu_ and used from any thread. Counters are atomics.
// Ownership: owns the descriptor (closed by Close) and the receive buffers;
// shared by the UdpSocket and the loop's registration.
#ifndef MILL_IO_NET_INTERNAL_UDP_CORE_H_
#define MILL_IO_NET_INTERNAL_UDP_CORE_H_

#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "base/mutex.h"
#include "net/socket_address.h"
#include "net/udp_socket.h"
#include "poll/event.h"
#include "reactor/event_handler.h"
#include "reactor/event_loop.h"

namespace mill {
namespace net_internal {

// Per-datagram overhead counted against max_send_queue_bytes, so that a
// flood of empty datagrams is bounded too.
inline constexpr size_t kQueuedDatagramOverhead = 64;
// Segments per UDP_SEGMENT send (the kernel's UDP_MAX_SEGMENTS was 64 before
// Linux 6.x raised it to 128).
inline constexpr size_t kMaxGsoSegments = 64;

// The handler and send machinery of one UdpSocket.
class UdpCore final : public RegisteredHandler {
 public:
  UdpCore(EventLoop* loop, int fd, const UdpSocketOptions& options,
          UdpCallbacks callbacks, bool gro, bool gso);
  ~UdpCore() override;

  // Registers the descriptor (readable) with the loop; `owner` is what the
  // callbacks get, `self` the shared pointer to this.
  absl::Status Start(UdpSocket* owner, const std::shared_ptr<UdpCore>& self)
      ABSL_LOCKS_EXCLUDED(mu_);
  void HandleEvent(const Event& event) override;

  absl::Status Connect(const SocketAddress& peer);
  absl::Status SendTo(const SocketAddress* to, absl::string_view data)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<size_t> SendBatch(absl::Span<const OutgoingDatagram> batch)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status SendSegmented(const SocketAddress& to, absl::string_view data,
                             size_t segment_size) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Multicast(const SocketAddress& group, unsigned interface_index,
                         bool join);
  void Close() ABSL_LOCKS_EXCLUDED(mu_);

  // Tests: while held, every send is queued as if the kernel said EAGAIN
  // (over loopback it never does: a sent datagram leaves the sender's
  // buffer at once); releasing flushes the queue from the loop.
  void HoldSendsForTesting(bool hold) ABSL_LOCKS_EXCLUDED(mu_);

  int fd() const { return fd_; }
  bool gro_enabled() const { return gro_; }
  bool gso_enabled() const { return gso_; }
  size_t queued_bytes() const ABSL_LOCKS_EXCLUDED(mu_);
  UdpSocket::Stats stats() const;

 private:
  // A datagram waiting for writability (a copy).
  struct Queued {
    std::string data;
    SocketAddress to;
    bool has_to = false;
  };
  struct Counters {
    std::atomic<uint64_t> datagrams_received{0};
    std::atomic<uint64_t> bytes_received{0};
    std::atomic<uint64_t> truncated{0};
    std::atomic<uint64_t> kernel_drops{0};
    std::atomic<uint64_t> receive_calls{0};
    std::atomic<uint64_t> coalesced{0};
    std::atomic<uint64_t> datagrams_sent{0};
    std::atomic<uint64_t> send_calls{0};
    std::atomic<uint64_t> segmented_sends{0};
    std::atomic<uint64_t> queued{0};
    std::atomic<uint64_t> send_refused{0};
    std::atomic<uint64_t> send_errors{0};
    std::atomic<uint64_t> async_errors{0};
  };

  // Receives up to max_batches_per_event batches and hands them over.
  void ReceiveBatches();
  // Turns message `i` of the last recvmmsg into Datagrams (several for a
  // coalesced GRO receive).
  void Unpack(size_t i);
  void ReportError(const absl::Status& status);
  // Sends what is queued; the first error the kernel gave, if any.
  absl::Status FlushLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues a copy, or refuses it when the queue is full.
  absl::Status EnqueueLocked(const SocketAddress* to, absl::string_view data)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status SetWriteInterestLocked(bool on)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // One sendmsg with UDP_SEGMENT; -1 and errno on failure.
  ssize_t SendGsoLocked(const SocketAddress& to, absl::string_view data,
                        size_t segment_size) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // sendmmsg over `count` prepared send headers; returns the number sent or
  // -1 with errno.
  int SendPreparedLocked(size_t count) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PrepareSendLocked(size_t slot, const SocketAddress* to,
                         absl::string_view data)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  EventLoop* const loop_;
  const int fd_;
  const UdpSocketOptions options_;
  const UdpCallbacks callbacks_;
  const bool gro_;
  const bool gso_;
  UdpSocket* owner_ = nullptr;  // set by Start, before any event
  std::atomic<bool> closed_{false};
  std::atomic<bool> connected_{false};
  Counters counters_;

  // Receive side: HandleEvent only. One slot of slot_size_ bytes, one
  // address and one control buffer per message of a batch.
  const size_t slot_size_;
  std::unique_ptr<char[]> arena_;
  std::vector<mmsghdr> rx_msgs_;
  std::vector<iovec> rx_iovs_;
  std::vector<sockaddr_in6> rx_addrs_;
  std::vector<char> rx_control_;
  std::vector<Datagram> rx_out_;

  // Orders connect(2) with the handler's recvmmsg: the kernel serializes
  // them anyway, but ThreadSanitizer models connect as a write to the
  // descriptor racing with the receive. Uncontended: one lock per batch.
  Mutex connect_mu_;

  mutable Mutex mu_;
  Registration registration_ ABSL_GUARDED_BY(mu_);
  bool want_write_ ABSL_GUARDED_BY(mu_) = false;
  bool hold_sends_ ABSL_GUARDED_BY(mu_) = false;  // HoldSendsForTesting
  std::deque<Queued> queue_ ABSL_GUARDED_BY(mu_);
  size_t queue_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<mmsghdr> tx_msgs_ ABSL_GUARDED_BY(mu_);
  std::vector<iovec> tx_iovs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace net_internal
}  // namespace mill

#endif  // MILL_IO_NET_INTERNAL_UDP_CORE_H_
