#include "connpool/pool_stats.h"

namespace mill {

absl::string_view PoolCloseReasonName(PoolCloseReason reason) {
  switch (reason) {
    case PoolCloseReason::kIdleTimeout:
      return "idle_timeout";
    case PoolCloseReason::kLifetime:
      return "lifetime";
    case PoolCloseReason::kDeadOnReuse:
      return "dead_on_reuse";
    case PoolCloseReason::kDeadWhileIdle:
      return "dead_while_idle";
    case PoolCloseReason::kHealthCheck:
      return "health_check";
    case PoolCloseReason::kNotReusable:
      return "not_reusable";
    case PoolCloseReason::kError:
      return "error";
    case PoolCloseReason::kEvicted:
      return "evicted";
    case PoolCloseReason::kDrain:
      return "drain";
  }
  return "unknown";
}

std::ostream& operator<<(std::ostream& os, PoolCloseReason reason) {
  return os << PoolCloseReasonName(reason);
}

absl::Duration WaitBucketLimit(int bucket) {
  static constexpr int64_t kLimitsUs[] = {100, 1000, 10000, 100000, 1000000};
  if (bucket < 0) return absl::ZeroDuration();
  if (bucket >= static_cast<int>(sizeof(kLimitsUs) / sizeof(kLimitsUs[0]))) {
    return absl::InfiniteDuration();
  }
  return absl::Microseconds(kLimitsUs[bucket]);
}

}  // namespace mill
