// MonotonicNanos: std::chrono::steady_clock's now in nanoseconds since its
// epoch, the one clock reading //net and //connpool keep their deadlines,
// idle times and expiries in (one int64_t, cheap to store and compare).
//
// Thread-safety: safe from any thread. (//ratelimit, which stands alone,
// reads the same clock through its own Clock interface.)
#ifndef MILL_IO_BASE_MONOTONIC_CLOCK_H_
#define MILL_IO_BASE_MONOTONIC_CLOCK_H_

#include <chrono>
#include <cstdint>

namespace mill {

inline int64_t MonotonicNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace mill

#endif  // MILL_IO_BASE_MONOTONIC_CLOCK_H_
