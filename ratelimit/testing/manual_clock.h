// ManualClock: a MonotonicClock that only moves when told to, for tests that
// drive rate limiters (TokenBucket, RateLimitGroup, or anything built on
// them) deterministically. Test-only: depend on //ratelimit:testing.
//
// Thread-safety: NowNanos() and Advance() may be called concurrently from any
// thread.
// Ownership: as for any MonotonicClock, users do not own the clock; it must
// outlive every bucket that reads it.
#ifndef MILL_IO_RATELIMIT_TESTING_MANUAL_CLOCK_H_
#define MILL_IO_RATELIMIT_TESTING_MANUAL_CLOCK_H_

#include <atomic>
#include <cstdint>

#include "absl/time/time.h"
#include "ratelimit/clock.h"

namespace mill {

// A clock at `start_nanos` that advances only through Advance():
//
//   ManualClock clock;
//   TokenBucket bucket(/*rate_per_second=*/1000, /*burst=*/100, &clock);
//   clock.Advance(absl::Milliseconds(250));
class ManualClock final : public MonotonicClock {
 public:
  explicit ManualClock(int64_t start_nanos = 0) : now_(start_nanos) {}

  int64_t NowNanos() const override {
    return now_.load(std::memory_order_acquire);
  }

  // Moves the clock forward by `d` (negative durations are ignored, the
  // clock is monotonic).
  void Advance(absl::Duration d) {
    const int64_t ns = absl::ToInt64Nanoseconds(d);
    if (ns > 0) now_.fetch_add(ns, std::memory_order_acq_rel);
  }

 private:
  std::atomic<int64_t> now_;
};

}  // namespace mill

#endif  // MILL_IO_RATELIMIT_TESTING_MANUAL_CLOCK_H_
