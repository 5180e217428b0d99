#include "base/monotonic_clock.h"

#include <chrono>
#include <cstdint>
#include <thread>

#include "gtest/gtest.h"

namespace mill {
namespace {

TEST(MonotonicNanosTest, NeverGoesBackAndCountsNanoseconds) {
  int64_t last = MonotonicNanos();
  for (int i = 0; i < 1000; ++i) {
    const int64_t now = MonotonicNanos();
    EXPECT_GE(now, last);
    last = now;
  }
  const int64_t before = MonotonicNanos();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_GE(MonotonicNanos() - before, 20'000'000);  // a sleep never ends early
}

}  // namespace
}  // namespace mill
