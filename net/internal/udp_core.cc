#include "net/internal/udp_core.h"

#include <arpa/inet.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/errno_status.h"
#include "net/internal/socket_util.h"

namespace mill {
namespace net_internal {
namespace {

// Room for the two control messages a receive may carry: UDP_GRO's segment
// size (an int) and SO_RXQ_OVFL's drop counter (a uint32_t).
constexpr size_t kControlBytes = 64;
// The buffer of one coalesced (GRO) receive: the most the kernel coalesces.
constexpr size_t kGroSlotBytes = 65535;

bool WouldBlock(int error) {
  return error == EAGAIN || error == EWOULDBLOCK || error == ENOBUFS;
}

}  // namespace

UdpCore::UdpCore(EventLoop* loop, int fd, const UdpSocketOptions& options,
                 UdpCallbacks callbacks, bool gro, bool gso)
    : loop_(loop),
      fd_(fd),
      options_(options),
      callbacks_(std::move(callbacks)),
      gro_(gro),
      gso_(gso),
      slot_size_(gro ? kGroSlotBytes : options.max_datagram_size),
      arena_(new char[slot_size_ * options.batch_size]),
      rx_msgs_(options.batch_size),
      rx_iovs_(options.batch_size),
      rx_addrs_(options.batch_size),
      rx_control_(kControlBytes * options.batch_size) {
  for (size_t i = 0; i < options_.batch_size; ++i) {
    rx_iovs_[i].iov_base = arena_.get() + i * slot_size_;
    rx_iovs_[i].iov_len = slot_size_;
  }
  rx_out_.reserve(options_.batch_size);
  MutexLock lock(&mu_);
  tx_msgs_.resize(options_.batch_size);
  tx_iovs_.resize(options_.batch_size);
}

UdpCore::~UdpCore() {
  // Close() normally ran; this covers a Start() that failed.
  if (!closed_.exchange(true)) CloseFd(fd_);
}

absl::Status UdpCore::Start(UdpSocket* owner,
                            const std::shared_ptr<UdpCore>& self) {
  owner_ = owner;
  // Held across Register so that a send from the first callback (which may
  // run before Register returns) finds the registration set.
  MutexLock lock(&mu_);
  absl::StatusOr<Registration> registration =
      loop_->Register(fd_, Interest::Readable(), self);
  if (!registration.ok()) return registration.status();
  registration_ = *registration;
  return absl::OkStatus();
}

void UdpCore::HandleEvent(const Event& event) {
  if (closed_.load(std::memory_order_acquire)) return;
  if (event.is_error()) {
    // An ICMP error on a connected socket sets the socket's error, which
    // epoll reports until it is read: read (and so clear) it here.
    int error = 0;
    socklen_t len = sizeof(error);
    if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &len) == 0 &&
        error != 0) {
      ReportError(ErrnoStatus(error, "UdpSocket: asynchronous error"));
    }
  }
  if (event.is_writable()) {
    absl::Status status;
    {
      MutexLock lock(&mu_);
      if (closed_.load(std::memory_order_acquire)) return;
      status = FlushLocked();
    }
    if (!status.ok()) ReportError(status);
  }
  if (event.is_readable() || event.is_error()) ReceiveBatches();
}

void UdpCore::ReceiveBatches() {
  const size_t batch = options_.batch_size;
  for (int round = 0; round < options_.max_batches_per_event; ++round) {
    if (closed_.load(std::memory_order_acquire)) return;
    for (size_t i = 0; i < batch; ++i) {
      msghdr& h = rx_msgs_[i].msg_hdr;
      h.msg_name = &rx_addrs_[i];
      h.msg_namelen = sizeof(rx_addrs_[i]);
      h.msg_iov = &rx_iovs_[i];
      h.msg_iovlen = 1;
      h.msg_control = &rx_control_[i * kControlBytes];
      h.msg_controllen = kControlBytes;
      h.msg_flags = 0;
      rx_msgs_[i].msg_len = 0;
    }
    int n;
    int error;
    {
      MutexLock lock(&connect_mu_);
      n = recvmmsg(fd_, rx_msgs_.data(), static_cast<unsigned>(batch),
                   MSG_DONTWAIT, nullptr);
      error = errno;
    }
    if (n < 0) {
      if (error == EINTR) continue;
      if (error == EAGAIN || error == EWOULDBLOCK) return;
      // A pending ICMP error on a connected socket (ECONNREFUSED...): the
      // call returned and cleared it; datagrams may follow.
      ReportError(ErrnoStatus(error, "recvmmsg"));
      continue;
    }
    if (n == 0) return;
    counters_.receive_calls.fetch_add(1, std::memory_order_relaxed);
    rx_out_.clear();
    for (int i = 0; i < n; ++i) Unpack(static_cast<size_t>(i));
    if (!rx_out_.empty() && callbacks_.on_datagrams) {
      callbacks_.on_datagrams(*owner_, absl::MakeConstSpan(rx_out_));
    }
    // A short batch drained the socket: another call would say EAGAIN.
    if (static_cast<size_t>(n) < batch) return;
  }
}

void UdpCore::Unpack(size_t i) {
  const msghdr& h = rx_msgs_[i].msg_hdr;
  size_t segment = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr;
       c = CMSG_NXTHDR(const_cast<msghdr*>(&h), c)) {
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
      int size = 0;
      std::memcpy(&size, CMSG_DATA(c), sizeof(size));
      if (size > 0) segment = static_cast<size_t>(size);
    } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
      uint32_t drops = 0;  // the socket's drops so far
      std::memcpy(&drops, CMSG_DATA(c), sizeof(drops));
      uint64_t seen = counters_.kernel_drops.load(std::memory_order_relaxed);
      while (drops > seen && !counters_.kernel_drops.compare_exchange_weak(
                                 seen, drops, std::memory_order_relaxed)) {
      }
    }
  }
  absl::StatusOr<SocketAddress> peer = SocketAddress::FromSockaddr(
      reinterpret_cast<const sockaddr*>(h.msg_name), h.msg_namelen);
  const SocketAddress from = peer.ok() ? *peer : SocketAddress();
  const char* data = static_cast<const char*>(h.msg_iov[0].iov_base);
  const size_t len = rx_msgs_[i].msg_len;
  const bool kernel_truncated = (h.msg_flags & MSG_TRUNC) != 0;
  const size_t limit = options_.max_datagram_size;
  size_t count = 0;
  size_t truncated = 0;
  auto add = [&](const char* p, size_t n) {
    const bool cut = kernel_truncated || n > limit;
    rx_out_.push_back(
        Datagram{absl::string_view(p, std::min(n, limit)), from, cut});
    ++count;
    if (cut) ++truncated;
  };
  if (segment > 0 && len > segment) {
    counters_.coalesced.fetch_add(1, std::memory_order_relaxed);
    for (size_t off = 0; off < len; off += segment) {
      add(data + off, std::min(segment, len - off));
    }
  } else {
    add(data, len);
  }
  counters_.datagrams_received.fetch_add(count, std::memory_order_relaxed);
  counters_.bytes_received.fetch_add(len, std::memory_order_relaxed);
  if (truncated > 0) {
    counters_.truncated.fetch_add(truncated, std::memory_order_relaxed);
  }
}

void UdpCore::ReportError(const absl::Status& status) {
  counters_.async_errors.fetch_add(1, std::memory_order_relaxed);
  if (callbacks_.on_error) callbacks_.on_error(*owner_, status);
}

absl::Status UdpCore::Connect(const SocketAddress& peer) {
  if (closed_.load(std::memory_order_acquire)) {
    return absl::FailedPreconditionError("UdpSocket::Connect: closed");
  }
  MutexLock lock(&connect_mu_);
  if (::connect(fd_, peer.sockaddr_ptr(), peer.sockaddr_len()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("connect(", peer.ToString(), ")"));
  }
  connected_.store(true, std::memory_order_release);
  return absl::OkStatus();
}

absl::Status UdpCore::SendTo(const SocketAddress* to, absl::string_view data) {
  if (data.size() > kMaxUdpPayload) {
    return absl::InvalidArgumentError(absl::StrCat(
        "UdpSocket: a datagram of ", data.size(),
        " bytes is longer than UDP allows (", kMaxUdpPayload, ")"));
  }
  if (to == nullptr && !connected_.load(std::memory_order_acquire)) {
    return absl::FailedPreconditionError("UdpSocket::Send: not connected");
  }
  MutexLock lock(&mu_);
  if (closed_.load(std::memory_order_acquire)) {
    return absl::FailedPreconditionError("UdpSocket: closed");
  }
  if (queue_.empty() && !hold_sends_) {
    ssize_t n;
    do {
      n = ::sendto(fd_, data.data(), data.size(), MSG_DONTWAIT,
                   to != nullptr ? to->sockaddr_ptr() : nullptr,
                   to != nullptr ? to->sockaddr_len() : 0);
    } while (n < 0 && errno == EINTR);
    counters_.send_calls.fetch_add(1, std::memory_order_relaxed);
    if (n >= 0) {
      counters_.datagrams_sent.fetch_add(1, std::memory_order_relaxed);
      return absl::OkStatus();
    }
    if (!WouldBlock(errno)) {
      return ErrnoStatus(
          errno, to != nullptr ? absl::StrCat("sendto(", to->ToString(), ")")
                               : std::string("send"));
    }
  }
  return EnqueueLocked(to, data);
}

absl::StatusOr<size_t> UdpCore::SendBatch(
    absl::Span<const OutgoingDatagram> batch) {
  for (size_t i = 0; i < batch.size(); ++i) {
    if (batch[i].data.size() > kMaxUdpPayload) {
      return absl::InvalidArgumentError(absl::StrCat(
          "UdpSocket::SendBatch: datagram ", i, " has ", batch[i].data.size(),
          " bytes, more than UDP allows (", kMaxUdpPayload, ")"));
    }
  }
  const bool connected = connected_.load(std::memory_order_acquire);
  MutexLock lock(&mu_);
  if (closed_.load(std::memory_order_acquire)) {
    return absl::FailedPreconditionError("UdpSocket: closed");
  }
  size_t accepted = 0;
  absl::Status first_error;
  size_t i = 0;
  if (queue_.empty() && !hold_sends_) {
    while (i < batch.size()) {
      const size_t count = std::min(batch.size() - i, options_.batch_size);
      for (size_t k = 0; k < count; ++k) {
        PrepareSendLocked(k, connected ? nullptr : &batch[i + k].to,
                          batch[i + k].data);
      }
      const int n = SendPreparedLocked(count);
      if (n < 0) {
        if (WouldBlock(errno)) break;
        // The kernel refused datagram i: skip it, send the rest.
        counters_.send_errors.fetch_add(1, std::memory_order_relaxed);
        if (first_error.ok()) first_error = ErrnoStatus(errno, "sendmmsg");
        ++i;
        continue;
      }
      i += static_cast<size_t>(n);
      accepted += static_cast<size_t>(n);
    }
  }
  for (; i < batch.size(); ++i) {
    absl::Status status =
        EnqueueLocked(connected ? nullptr : &batch[i].to, batch[i].data);
    if (absl::IsResourceExhausted(status)) {
      counters_.send_refused.fetch_add(batch.size() - i - 1,
                                       std::memory_order_relaxed);
      break;
    }
    if (!status.ok()) return status;
    ++accepted;
  }
  if (accepted == 0 && !first_error.ok()) return first_error;
  return accepted;
}

absl::Status UdpCore::SendSegmented(const SocketAddress& to,
                                    absl::string_view data,
                                    size_t segment_size) {
  if (segment_size == 0 || segment_size > kMaxUdpPayload) {
    return absl::InvalidArgumentError(
        absl::StrCat("UdpSocket::SendSegmented: segment size ", segment_size,
                     " is not in [1, ", kMaxUdpPayload, "]"));
  }
  MutexLock lock(&mu_);
  if (closed_.load(std::memory_order_acquire)) {
    return absl::FailedPreconditionError("UdpSocket: closed");
  }
  size_t off = 0;
  bool use_gso = gso_;
  if (queue_.empty() && !hold_sends_) {
    const size_t per_call = std::max<size_t>(
        1, std::min(kMaxGsoSegments, kMaxUdpPayload / segment_size));
    while (use_gso && off < data.size()) {
      const size_t len = std::min(per_call * segment_size, data.size() - off);
      if (len <= segment_size) break;  // one datagram: no segmentation
      if (SendGsoLocked(to, data.substr(off, len), segment_size) < 0) {
        if (WouldBlock(errno)) break;
        // EIO: the route's device cannot checksum segments; EINVAL: the
        // segment does not fit its MTU. The plain path still works.
        if (errno == EIO || errno == EINVAL) {
          use_gso = false;
          break;
        }
        return ErrnoStatus(
            errno, absl::StrCat("sendmsg(UDP_SEGMENT, ", to.ToString(), ")"));
      }
      off += len;
    }
    while (off < data.size()) {
      const size_t left = (data.size() - off + segment_size - 1) / segment_size;
      const size_t count = std::min(left, options_.batch_size);
      for (size_t k = 0; k < count; ++k) {
        PrepareSendLocked(k, &to,
                          data.substr(off + k * segment_size, segment_size));
      }
      const int n = SendPreparedLocked(count);
      if (n < 0) {
        if (WouldBlock(errno)) break;
        return ErrnoStatus(errno,
                           absl::StrCat("sendmmsg(", to.ToString(), ")"));
      }
      off = std::min(data.size(), off + static_cast<size_t>(n) * segment_size);
    }
  }
  for (; off < data.size(); off += segment_size) {
    absl::Status status = EnqueueLocked(&to, data.substr(off, segment_size));
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

ssize_t UdpCore::SendGsoLocked(const SocketAddress& to, absl::string_view data,
                               size_t segment_size) {
  iovec iov{const_cast<char*>(data.data()), data.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(uint16_t))] = {};
  msghdr h{};
  h.msg_name = const_cast<sockaddr*>(to.sockaddr_ptr());
  h.msg_namelen = to.sockaddr_len();
  h.msg_iov = &iov;
  h.msg_iovlen = 1;
  h.msg_control = control;
  h.msg_controllen = sizeof(control);
  cmsghdr* c = CMSG_FIRSTHDR(&h);
  c->cmsg_level = SOL_UDP;
  c->cmsg_type = UDP_SEGMENT;
  c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
  const uint16_t size = static_cast<uint16_t>(segment_size);
  std::memcpy(CMSG_DATA(c), &size, sizeof(size));
  ssize_t n;
  do {
    n = ::sendmsg(fd_, &h, MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  counters_.send_calls.fetch_add(1, std::memory_order_relaxed);
  if (n >= 0) {
    counters_.segmented_sends.fetch_add(1, std::memory_order_relaxed);
    counters_.datagrams_sent.fetch_add(
        (data.size() + segment_size - 1) / segment_size,
        std::memory_order_relaxed);
  }
  return n;
}

void UdpCore::PrepareSendLocked(size_t slot, const SocketAddress* to,
                                absl::string_view data) {
  tx_iovs_[slot].iov_base = const_cast<char*>(data.data());
  tx_iovs_[slot].iov_len = data.size();
  msghdr& h = tx_msgs_[slot].msg_hdr;
  h = msghdr{};
  if (to != nullptr) {
    h.msg_name = const_cast<sockaddr*>(to->sockaddr_ptr());
    h.msg_namelen = to->sockaddr_len();
  }
  h.msg_iov = &tx_iovs_[slot];
  h.msg_iovlen = 1;
  tx_msgs_[slot].msg_len = 0;
}

int UdpCore::SendPreparedLocked(size_t count) {
  int n;
  do {
    n = ::sendmmsg(fd_, tx_msgs_.data(), static_cast<unsigned>(count),
                   MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  counters_.send_calls.fetch_add(1, std::memory_order_relaxed);
  if (n > 0) {
    counters_.datagrams_sent.fetch_add(static_cast<uint64_t>(n),
                                       std::memory_order_relaxed);
  }
  return n;
}

absl::Status UdpCore::EnqueueLocked(const SocketAddress* to,
                                    absl::string_view data) {
  const size_t cost = data.size() + kQueuedDatagramOverhead;
  if (queue_bytes_ + cost > options_.max_send_queue_bytes) {
    counters_.send_refused.fetch_add(1, std::memory_order_relaxed);
    return absl::ResourceExhaustedError(absl::StrCat(
        "UdpSocket: send queue full (", queue_bytes_, " bytes queued, limit ",
        options_.max_send_queue_bytes, ")"));
  }
  Queued queued;
  queued.data.assign(data.data(), data.size());
  if (to != nullptr) {
    queued.to = *to;
    queued.has_to = true;
  }
  queue_.push_back(std::move(queued));
  queue_bytes_ += cost;
  counters_.queued.fetch_add(1, std::memory_order_relaxed);
  return hold_sends_ ? absl::OkStatus() : SetWriteInterestLocked(true);
}

absl::Status UdpCore::SetWriteInterestLocked(bool on) {
  if (want_write_ == on) return absl::OkStatus();
  absl::Status status = loop_->Reregister(
      registration_,
      on ? Interest::Readable() | Interest::Writable() : Interest::Readable());
  if (status.ok()) want_write_ = on;
  return status;
}

absl::Status UdpCore::FlushLocked() {
  if (hold_sends_) return SetWriteInterestLocked(false);
  absl::Status first_error;
  while (!queue_.empty()) {
    const size_t count = std::min(queue_.size(), options_.batch_size);
    for (size_t k = 0; k < count; ++k) {
      const Queued& q = queue_[k];
      PrepareSendLocked(k, q.has_to ? &q.to : nullptr, q.data);
    }
    int n = SendPreparedLocked(count);
    if (n < 0) {
      if (WouldBlock(errno)) return first_error;  // still armed for writing
      // The kernel refused the first queued datagram: drop it, go on.
      counters_.send_errors.fetch_add(1, std::memory_order_relaxed);
      if (first_error.ok()) first_error = ErrnoStatus(errno, "sendmmsg");
      n = 1;
    }
    for (int k = 0; k < n; ++k) {
      queue_bytes_ -= queue_.front().data.size() + kQueuedDatagramOverhead;
      queue_.pop_front();
    }
  }
  absl::Status status = SetWriteInterestLocked(false);
  return first_error.ok() ? status : first_error;
}

absl::Status UdpCore::Multicast(const SocketAddress& group,
                                unsigned interface_index, bool join) {
  const char* what = join ? "join" : "leave";
  int result;
  if (!group.is_ipv6()) {
    const auto* sin =
        reinterpret_cast<const sockaddr_in*>(group.sockaddr_ptr());
    if (!IN_MULTICAST(ntohl(sin->sin_addr.s_addr))) {
      return absl::InvalidArgumentError(
          absl::StrCat("UdpSocket: cannot ", what, " ", group.ToString(),
                       ": not an IPv4 multicast address (224.0.0.0/4)"));
    }
    ip_mreqn request{};
    request.imr_multiaddr = sin->sin_addr;
    request.imr_ifindex = static_cast<int>(interface_index);
    result = setsockopt(fd_, IPPROTO_IP,
                        join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP, &request,
                        sizeof(request));
  } else {
    const auto* sin6 =
        reinterpret_cast<const sockaddr_in6*>(group.sockaddr_ptr());
    if (!IN6_IS_ADDR_MULTICAST(&sin6->sin6_addr)) {
      return absl::InvalidArgumentError(
          absl::StrCat("UdpSocket: cannot ", what, " ", group.ToString(),
                       ": not an IPv6 multicast address (ff00::/8)"));
    }
    ipv6_mreq request{};
    request.ipv6mr_multiaddr = sin6->sin6_addr;
    request.ipv6mr_interface = interface_index;
    result = setsockopt(fd_, IPPROTO_IPV6,
                        join ? IPV6_ADD_MEMBERSHIP : IPV6_DROP_MEMBERSHIP,
                        &request, sizeof(request));
  }
  if (result != 0) {
    return ErrnoStatus(errno, absl::StrCat("UdpSocket: ", what, " multicast ",
                                           group.ToString()));
  }
  return absl::OkStatus();
}

void UdpCore::Close() {
  Registration registration;
  {
    MutexLock lock(&mu_);
    if (closed_.exchange(true, std::memory_order_acq_rel)) return;
    registration = registration_;
    queue_.clear();
    queue_bytes_ = 0;
  }
  // Waits for a callback running on another thread; from inside one of
  // this socket's callbacks it returns at once and HandleEvent, seeing
  // closed_, touches the descriptor no more.
  if (registration.valid()) (void)loop_->Deregister(registration);
  CloseFd(fd_);
}

void UdpCore::HoldSendsForTesting(bool hold) {
  MutexLock lock(&mu_);
  hold_sends_ = hold;
  if (!hold && !queue_.empty()) (void)SetWriteInterestLocked(true);
}

size_t UdpCore::queued_bytes() const {
  MutexLock lock(&mu_);
  return queue_bytes_;
}

UdpSocket::Stats UdpCore::stats() const {
  UdpSocket::Stats s;
  const auto get = [](const std::atomic<uint64_t>& v) {
    return v.load(std::memory_order_relaxed);
  };
  s.datagrams_received = get(counters_.datagrams_received);
  s.bytes_received = get(counters_.bytes_received);
  s.truncated = get(counters_.truncated);
  s.kernel_drops = get(counters_.kernel_drops);
  s.receive_calls = get(counters_.receive_calls);
  s.coalesced = get(counters_.coalesced);
  s.datagrams_sent = get(counters_.datagrams_sent);
  s.send_calls = get(counters_.send_calls);
  s.segmented_sends = get(counters_.segmented_sends);
  s.queued = get(counters_.queued);
  s.send_refused = get(counters_.send_refused);
  s.send_errors = get(counters_.send_errors);
  s.async_errors = get(counters_.async_errors);
  return s;
}

}  // namespace net_internal
}  // namespace mill
