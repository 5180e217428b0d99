#include "ratelimit/token_bucket.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>

#include "absl/time/time.h"
#include "ratelimit/clock.h"

namespace mill {
namespace {

using uint128 = unsigned __int128;

// Units are clamped here so that TAT + burst never overflows.
constexpr uint64_t kMaxUnits = uint64_t{1} << 63;

// The rate is kept in thousandths of a token per second, i.e. tokens per
// 1e12 nanoseconds.
constexpr uint64_t kRateScale = 1000;
constexpr uint64_t kNanosTimesScale = uint64_t{1000000000} * kRateScale;

double ClampRate(double rate) {
  if (!(rate >= TokenBucket::kMinRate)) return TokenBucket::kMinRate;  // NaN
  return std::min(rate, TokenBucket::kMaxRate);
}

int64_t ReadClock(const MonotonicClock* clock) {
  return clock == nullptr ? SteadyClock::Now() : clock->NowNanos();
}

}  // namespace

TokenBucket::TokenBucket(double rate_per_second, uint64_t burst,
                         const MonotonicClock* clock)
    : clock_(clock),
      rate_(ClampRate(rate_per_second)),
      burst_(std::clamp<uint64_t>(burst, 1, kMaxBurst)),
      epoch_ns_(ReadClock(clock)) {
  const uint64_t rate_scaled = std::max<uint64_t>(
      1, static_cast<uint64_t>(std::llround(rate_ * kRateScale)));
  const uint64_t g = std::gcd(rate_scaled, kNanosTimesScale);
  num_ = rate_scaled / g;
  den_ = kNanosTimesScale / g;
  by_den_ = ratelimit_internal::Divider(den_);
  fast_limit_ = std::numeric_limits<uint64_t>::max() / num_;
}

int64_t TokenBucket::ElapsedNanos() const {
  const int64_t now = ReadClock(clock_);
  // A clock read on another thread before construction may be behind.
  return now > epoch_ns_ ? now - epoch_ns_ : 0;
}

uint64_t TokenBucket::ToUnits(int64_t elapsed_ns) const {
  const uint64_t e = static_cast<uint64_t>(elapsed_ns);
  if (e <= fast_limit_) {
    return std::min(by_den_.Divide(e * num_), kMaxUnits);
  }
  const uint128 units = static_cast<uint128>(e) * num_ / den_;
  return units >= kMaxUnits ? kMaxUnits : static_cast<uint64_t>(units);
}

bool TokenBucket::TryAcquire(uint64_t n) {
  if (n == 0) return true;
  if (n > burst_) return false;
  const uint64_t now = ToUnits(ElapsedNanos());
  uint64_t tat = tat_.load(std::memory_order_relaxed);
  while (true) {
    const uint64_t base = std::max(tat, now);
    // Allowed iff base + n <= now + burst, i.e. the deficit after taking n
    // stays within the burst. Written without overflow.
    if (base - now > burst_ - n) return false;
    // Relaxed: the counter publishes no other data.
    if (tat_.compare_exchange_weak(tat, base + n, std::memory_order_relaxed,
                                   std::memory_order_relaxed)) {
      return true;
    }
  }
}

uint64_t TokenBucket::AcquireUpTo(uint64_t max) {
  if (max == 0) return 0;
  const uint64_t now = ToUnits(ElapsedNanos());
  uint64_t tat = tat_.load(std::memory_order_relaxed);
  while (true) {
    const uint64_t base = std::max(tat, now);
    const uint64_t deficit = base - now;
    if (deficit >= burst_) return 0;
    const uint64_t grant = std::min(burst_ - deficit, max);
    if (tat_.compare_exchange_weak(tat, base + grant, std::memory_order_relaxed,
                                   std::memory_order_relaxed)) {
      return grant;
    }
  }
}

void TokenBucket::Refund(uint64_t n) {
  if (n == 0) return;
  const uint64_t now = ToUnits(ElapsedNanos());
  uint64_t tat = tat_.load(std::memory_order_relaxed);
  while (true) {
    if (tat <= now) return;  // Already full: the refund would overflow.
    const uint64_t next = tat - std::min(n, tat - now);
    if (tat_.compare_exchange_weak(tat, next, std::memory_order_relaxed,
                                   std::memory_order_relaxed)) {
      return;
    }
  }
}

uint64_t TokenBucket::Available() const {
  const uint64_t now = ToUnits(ElapsedNanos());
  const uint64_t tat = tat_.load(std::memory_order_relaxed);
  const uint64_t deficit = tat > now ? tat - now : 0;
  return deficit >= burst_ ? 0 : burst_ - deficit;
}

absl::Duration TokenBucket::TimeUntilAvailable(uint64_t n) const {
  if (n == 0) return absl::ZeroDuration();
  if (n > burst_) return absl::InfiniteDuration();
  const int64_t elapsed = ElapsedNanos();
  const uint64_t now = ToUnits(elapsed);
  const uint64_t tat = tat_.load(std::memory_order_relaxed);
  const uint64_t base = std::max(tat, now);
  if (base - now <= burst_ - n) return absl::ZeroDuration();
  // n tokens are available once now >= tat + n - burst (> now here). Convert
  // that unit count back to nanoseconds since the epoch, rounding up.
  const uint128 target_units = static_cast<uint128>(tat) + n - burst_;
  const uint128 target_ns = (target_units * den_ + num_ - 1) / num_;
  const uint128 wait = target_ns - static_cast<uint128>(elapsed);
  if (wait > static_cast<uint128>(std::numeric_limits<int64_t>::max())) {
    return absl::InfiniteDuration();
  }
  return absl::Nanoseconds(static_cast<int64_t>(wait));
}

}  // namespace mill
