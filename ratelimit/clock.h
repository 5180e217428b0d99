// Monotonic clocks for rate limiting: the interface TokenBucket reads time
// from, the real steady clock, and a manual clock for deterministic tests.
//
// Thread-safety: NowNanos() may be called concurrently from any thread on
// every clock here; ManualClock may also be advanced concurrently with reads.
// Ownership: code that takes a `const MonotonicClock*` does not own it; the
// clock must outlive its users. SteadyClock::Get() lives forever.
#ifndef MILL_IO_RATELIMIT_CLOCK_H_
#define MILL_IO_RATELIMIT_CLOCK_H_

#include <atomic>
#include <chrono>
#include <cstdint>

#include "absl/time/time.h"

namespace mill {

// A source of monotonic time in nanoseconds from an arbitrary origin. Values
// never decrease. Implement it to drive rate limiters from your own clock.
class MonotonicClock {
 public:
  virtual ~MonotonicClock() = default;
  virtual int64_t NowNanos() const = 0;
};

// std::chrono::steady_clock. Use SteadyClock::Get() rather than constructing
// one; it is also what a TokenBucket uses when given no clock.
class SteadyClock final : public MonotonicClock {
 public:
  static const SteadyClock* Get() {
    static const SteadyClock clock;
    return &clock;
  }

  // Non-virtual fast path for callers that know the concrete type.
  static int64_t Now() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

  int64_t NowNanos() const override { return Now(); }
};

// A clock that only moves when told to, for deterministic tests:
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

#endif  // MILL_IO_RATELIMIT_CLOCK_H_
