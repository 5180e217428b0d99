// The ConnectionPool's counters (ConnectionPoolStats) and why it closes
// connections (PoolCloseReason). Included by connection_pool.h; a header of
// its own so that the pool's socket-free state (connpool/internal) can keep
// them without depending on //net.
//
// Thread-safety: plain values. Ownership: none.
#ifndef MILL_IO_CONNPOOL_POOL_STATS_H_
#define MILL_IO_CONNPOOL_POOL_STATS_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <ostream>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace mill {

// Why the pool closed a connection (ConnectionPoolStats::closed_by).
enum class PoolCloseReason {
  kIdleTimeout,    // idle longer than idle_timeout (or the connection's own
                   // ConnectionOptions::idle_timeout fired while idle)
  kLifetime,       // past its lifetime (max_lifetime with jitter)
  kDeadOnReuse,    // failed the liveness check before being handed out
  kDeadWhileIdle,  // input, EOF, reset or an error while idle
  kHealthCheck,    // rejected by check_on_acquire or check_on_release
  kNotReusable,    // Release(lease, false), a dropped Lease, closed by the
                   // holder, or released with unread input
  kError,          // closed by the peer or a socket error while leased
  kEvicted,        // over max_idle_per_endpoint, or closed to make room for
                   // another endpoint under max_connections
  kDrain,          // Drain() or the pool's destruction
};
inline constexpr int kPoolCloseReasonCount = 9;

// "idle_timeout", "lifetime", "dead_on_reuse", ...
absl::string_view PoolCloseReasonName(PoolCloseReason reason);
std::ostream& operator<<(std::ostream& os, PoolCloseReason reason);

// Counters, readable at any time (one consistent snapshot).
struct ConnectionPoolStats {
  size_t active = 0;      // leased (or being checked, handed over, released)
  size_t idle = 0;        // in the idle set
  size_t connecting = 0;  // connects in progress
  size_t open = 0;        // active + idle + connecting (what the limits see)
  size_t pending = 0;     // Acquire requests waiting
  size_t endpoints = 0;   // endpoints with connections or requests

  uint64_t created = 0;   // connections opened
  uint64_t reused = 0;    // leases of a connection from the pool
  uint64_t acquired = 0;  // leases handed out (created + reused ones)
  uint64_t connect_failures = 0;
  // Acquire requests that failed, by cause.
  uint64_t failed_queue_full = 0;  // ResourceExhausted
  uint64_t failed_deadline = 0;    // DeadlineExceeded
  uint64_t failed_connect = 0;     // the connect error (Unavailable, ...)
  uint64_t failed_closed = 0;      // FailedPrecondition / Unavailable: drain
  uint64_t cancelled = 0;          // CancelAcquire

  std::array<uint64_t, kPoolCloseReasonCount> closed_by{};
  uint64_t closed(PoolCloseReason reason) const {
    return closed_by[static_cast<int>(reason)];
  }

  // Time from Acquire to the lease being handed out, over every lease (an
  // idle connection handed out at once counts as no wait).
  absl::Duration wait_total = absl::ZeroDuration();
  absl::Duration wait_max = absl::ZeroDuration();
  // Histogram of the same: wait_histogram[i] counts waits below
  // kWaitBucketLimits[i] (and not below the previous limit); the last
  // bucket counts the rest.
  static constexpr int kWaitBuckets = 6;
  std::array<uint64_t, kWaitBuckets> wait_histogram{};
};
// Upper limits of the wait histogram's buckets but the last (100 us, 1 ms,
// 10 ms, 100 ms, 1 s).
absl::Duration WaitBucketLimit(int bucket);

}  // namespace mill

#endif  // MILL_IO_CONNPOOL_POOL_STATS_H_
