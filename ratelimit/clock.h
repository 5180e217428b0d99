// Monotonic clocks for rate limiting: the interface TokenBucket reads time
// from, and the real steady clock. (Tests drive buckets with ManualClock from
// ratelimit/testing/manual_clock.h, target //ratelimit:testing.)
//
// Thread-safety: NowNanos() may be called concurrently from any thread on
// every clock here.
// Ownership: code that takes a `const MonotonicClock*` does not own it; the
// clock must outlive its users. SteadyClock::Get() lives forever.
#ifndef MILL_IO_RATELIMIT_CLOCK_H_
#define MILL_IO_RATELIMIT_CLOCK_H_

#include <chrono>
#include <cstdint>

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

}  // namespace mill

#endif  // MILL_IO_RATELIMIT_CLOCK_H_
