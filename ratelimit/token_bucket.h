// TokenBucket: a lock-free token-bucket rate limiter.
//
// A bucket holds up to `burst` tokens, starts full and refills continuously at
// `rate_per_second`. Acquiring n tokens succeeds if n are available. The
// network layer uses buckets to cap bytes read per second per connection
// (AcquireUpTo: "how many bytes may I read now, up to N?") and accepts per
// second (TryAcquire). Several buckets (per connection + shared group) compose
// through rate_limit_group.h.
//
// Thread-safety: every member function may be called concurrently from any
// thread. The whole state is one std::atomic<uint64_t> updated with a
// compare-exchange loop: no lock is ever taken, and a refusal does not write.
// Ownership: the bucket does not own its clock, which must outlive it.
//
// Accounting is exact in whole tokens: after draining a bucket of rate r, the
// number of tokens available t nanoseconds later is floor(r * t / 1e9),
// capped at `burst`; there is no rounding drift however many calls are made.
#ifndef MILL_IO_RATELIMIT_TOKEN_BUCKET_H_
#define MILL_IO_RATELIMIT_TOKEN_BUCKET_H_

#include <atomic>
#include <cstdint>

#include "absl/time/time.h"
#include "ratelimit/clock.h"
#include "ratelimit/internal/divider.h"

namespace mill {

// A token bucket of fixed rate and burst.
//
//   // Per connection: at most 1 MiB/s, bursts of 64 KiB.
//   TokenBucket reads(/*rate_per_second=*/1 << 20, /*burst=*/64 << 10);
//   uint64_t n = reads.AcquireUpTo(buffer.size());
//   if (n == 0) { ScheduleRetry(reads.TimeUntilAvailable(1)); return; }
//   ssize_t got = read(fd, buffer.data(), n);
//   if (got >= 0 && uint64_t(got) < n) reads.Refund(n - got);  // unused
//
// Implementation: GCRA ("generic cell rate algorithm"). Time since the
// bucket's creation is measured in token units (one unit = 1/rate seconds)
// and the state is the "theoretical arrival time" (TAT) in those units: the
// time at which the bucket would be full again. Tokens available at time now
// are burst - max(0, TAT - now); acquiring n moves TAT to max(TAT, now) + n.
//
// Limits: rate_per_second is clamped to [kMinRate, kMaxRate] with a
// resolution of 1/1000 token per second; burst to [1, kMaxBurst]. The bucket
// works for 2^63 / rate seconds after creation (29 years at kMaxRate).
class TokenBucket {
 public:
  static constexpr double kMinRate = 0.001;
  static constexpr double kMaxRate = 1e10;
  static constexpr uint64_t kMaxBurst = uint64_t{1} << 60;

  // `clock` defaults to std::chrono::steady_clock (read without a virtual
  // call). The bucket starts full.
  TokenBucket(double rate_per_second, uint64_t burst,
              const MonotonicClock* clock = nullptr);

  TokenBucket(const TokenBucket&) = delete;
  TokenBucket& operator=(const TokenBucket&) = delete;

  // Takes `n` tokens if at least `n` are available; otherwise takes nothing
  // and returns false. Always false if n > burst(); always true if n == 0.
  bool TryAcquire(uint64_t n = 1);

  // Takes min(max, Available()) tokens and returns how many it took.
  uint64_t AcquireUpTo(uint64_t max);

  // Returns `n` previously acquired tokens (e.g. bytes granted but not
  // read). Tokens that would overflow the burst are discarded.
  void Refund(uint64_t n);

  // Whole tokens available now, in [0, burst()]. A snapshot: other threads
  // may change it immediately.
  uint64_t Available() const;

  // How long until `n` tokens are available, assuming nobody else takes any:
  // ZeroDuration() if they are available now, InfiniteDuration() if
  // n > burst(). Rounded up to the nanosecond, so that after waiting this long
  // TryAcquire(n) succeeds (absent competition).
  absl::Duration TimeUntilAvailable(uint64_t n) const;

  // The effective (clamped) parameters.
  double rate_per_second() const { return rate_; }
  uint64_t burst() const { return burst_; }

 private:
  // Nanoseconds since creation, never negative.
  int64_t ElapsedNanos() const;
  // Token units elapsed in `elapsed_ns`: floor(elapsed_ns * num_ / den_).
  uint64_t ToUnits(int64_t elapsed_ns) const;

  const MonotonicClock* const clock_;  // nullptr: SteadyClock::Now()
  const double rate_;
  const uint64_t burst_;
  // Token units per nanosecond as the reduced fraction num_ / den_.
  uint64_t num_;
  uint64_t den_;
  // Divides by den_ without a div instruction on the fast path.
  ratelimit_internal::Divider by_den_;
  // Largest elapsed_ns whose product with num_ fits in 64 bits.
  uint64_t fast_limit_;
  const int64_t epoch_ns_;

  // TAT in token units since epoch_ns_: the only field written after
  // construction. Deliberately not on a cache line of its own: every
  // operation reads it together with the constants above, so sharing one
  // line costs one miss instead of two (and keeps the type free of
  // over-alignment, which ASan's fake stacks do not honour).
  std::atomic<uint64_t> tat_{0};
};

}  // namespace mill

#endif  // MILL_IO_RATELIMIT_TOKEN_BUCKET_H_
