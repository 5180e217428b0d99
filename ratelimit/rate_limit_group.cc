#include "ratelimit/rate_limit_group.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "absl/types/span.h"
#include "ratelimit/token_bucket.h"

namespace mill {

bool AcquireAll(absl::Span<TokenBucket* const> buckets, uint64_t n) {
  for (size_t i = 0; i < buckets.size(); ++i) {
    if (buckets[i] == nullptr || buckets[i]->TryAcquire(n)) continue;
    // Give back what the earlier buckets granted.
    for (size_t j = 0; j < i; ++j) {
      if (buckets[j] != nullptr) buckets[j]->Refund(n);
    }
    return false;
  }
  return true;
}

uint64_t AcquireUpToAll(absl::Span<TokenBucket* const> buckets, uint64_t max) {
  // Invariant: buckets[0..i) each hold exactly `granted` tokens for us.
  uint64_t granted = max;
  for (size_t i = 0; i < buckets.size() && granted > 0; ++i) {
    if (buckets[i] == nullptr) continue;
    const uint64_t got = buckets[i]->AcquireUpTo(granted);
    if (got < granted) {
      for (size_t j = 0; j < i; ++j) {
        if (buckets[j] != nullptr) buckets[j]->Refund(granted - got);
      }
      granted = got;
    }
  }
  return granted;
}

void RefundAll(absl::Span<TokenBucket* const> buckets, uint64_t n) {
  for (TokenBucket* bucket : buckets) {
    if (bucket != nullptr) bucket->Refund(n);
  }
}

uint64_t AvailableAll(absl::Span<TokenBucket* const> buckets) {
  uint64_t available = std::numeric_limits<uint64_t>::max();
  for (const TokenBucket* bucket : buckets) {
    if (bucket != nullptr) available = std::min(available, bucket->Available());
  }
  return available;
}

absl::Duration TimeUntilAvailableAll(absl::Span<TokenBucket* const> buckets,
                                     uint64_t n) {
  absl::Duration wait = absl::ZeroDuration();
  for (const TokenBucket* bucket : buckets) {
    if (bucket != nullptr) wait = std::max(wait, bucket->TimeUntilAvailable(n));
  }
  return wait;
}

RateLimiter::RateLimiter(std::vector<std::shared_ptr<TokenBucket>> buckets) {
  for (auto& bucket : buckets) {
    if (bucket == nullptr) continue;
    view_.push_back(bucket.get());
    buckets_.push_back(std::move(bucket));
  }
}

}  // namespace mill
