// Tests of the reconnect backoff: the policy's validation and the delay
// after each failure (growth, cap, jitter bounds, no overflow).
#include "net/internal/keeper.h"

#include <cmath>
#include <limits>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "net/tcp_client.h"

namespace mill {
namespace net_internal {
namespace {

BackoffPolicy Policy(absl::Duration initial, absl::Duration max,
                     double multiplier, double jitter) {
  BackoffPolicy p;
  p.initial = initial;
  p.max = max;
  p.multiplier = multiplier;
  p.jitter = jitter;
  return p;
}

TEST(BackoffDelay, GrowsFromInitialAndStopsAtMax) {
  const BackoffPolicy p =
      Policy(absl::Milliseconds(100), absl::Seconds(1), 2.0, 0.0);
  EXPECT_EQ(BackoffDelay(p, 0, 0.5), absl::Milliseconds(100));  // a close
  EXPECT_EQ(BackoffDelay(p, 1, 0.5), absl::Milliseconds(100));
  EXPECT_EQ(BackoffDelay(p, 2, 0.5), absl::Milliseconds(200));
  EXPECT_EQ(BackoffDelay(p, 3, 0.5), absl::Milliseconds(400));
  EXPECT_EQ(BackoffDelay(p, 4, 0.5), absl::Milliseconds(800));
  EXPECT_EQ(BackoffDelay(p, 5, 0.5), absl::Seconds(1));
  // Days of failures neither overflow nor exceed the cap.
  EXPECT_EQ(BackoffDelay(p, std::numeric_limits<int>::max(), 0.5),
            absl::Seconds(1));
}

TEST(BackoffDelay, MultiplierOneKeepsTheInitialDelay) {
  const BackoffPolicy p =
      Policy(absl::Milliseconds(50), absl::Seconds(1), 1.0, 0.0);
  for (int failures : {1, 2, 10, 1000}) {
    EXPECT_EQ(BackoffDelay(p, failures, 0.0), absl::Milliseconds(50));
  }
}

TEST(BackoffDelay, JitterSpreadsWithinItsBounds) {
  const BackoffPolicy p =
      Policy(absl::Milliseconds(100), absl::Seconds(30), 2.0, 0.2);
  EXPECT_EQ(BackoffDelay(p, 1, 0.0), absl::Milliseconds(80));
  EXPECT_EQ(BackoffDelay(p, 1, 0.5), absl::Milliseconds(100));
  EXPECT_EQ(BackoffDelay(p, 1, 1.0), absl::Milliseconds(120));
  // A draw outside [0, 1] is clamped.
  EXPECT_EQ(BackoffDelay(p, 1, 7.0), absl::Milliseconds(120));
  EXPECT_EQ(BackoffDelay(p, 1, -1.0), absl::Milliseconds(80));
}

TEST(ValidateBackoffPolicy, AcceptsTheDefaultAndEdgeValues) {
  EXPECT_TRUE(ValidateBackoffPolicy(BackoffPolicy()).ok());
  EXPECT_TRUE(ValidateBackoffPolicy(
                  Policy(absl::Nanoseconds(1), absl::Nanoseconds(1), 1.0, 0.0))
                  .ok());
  EXPECT_TRUE(
      ValidateBackoffPolicy(Policy(absl::Seconds(1), absl::Hours(1), 10.0, 1.0))
          .ok());
}

TEST(ValidateBackoffPolicy, RejectsWhatWouldSpinOrNeverWait) {
  const double nan = std::nan("");
  const double inf = std::numeric_limits<double>::infinity();
  const absl::Duration ms = absl::Milliseconds(1);
  const BackoffPolicy bad[] = {
      Policy(absl::ZeroDuration(), absl::Seconds(1), 2.0, 0.2),
      Policy(-ms, absl::Seconds(1), 2.0, 0.2),
      Policy(absl::InfiniteDuration(), absl::InfiniteDuration(), 2.0, 0.2),
      Policy(10 * ms, 5 * ms, 2.0, 0.2),
      Policy(ms, absl::InfiniteDuration(), 2.0, 0.2),
      Policy(ms, absl::Seconds(1), 0.99, 0.2),
      Policy(ms, absl::Seconds(1), nan, 0.2),
      Policy(ms, absl::Seconds(1), inf, 0.2),
      Policy(ms, absl::Seconds(1), 2.0, -0.01),
      Policy(ms, absl::Seconds(1), 2.0, 1.01),
      Policy(ms, absl::Seconds(1), 2.0, nan),
  };
  for (const BackoffPolicy& p : bad) {
    absl::Status s = ValidateBackoffPolicy(p);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument)
        << absl::FormatDuration(p.initial) << " " << absl::FormatDuration(p.max)
        << " " << p.multiplier << " " << p.jitter;
  }
}

}  // namespace
}  // namespace net_internal
}  // namespace mill
