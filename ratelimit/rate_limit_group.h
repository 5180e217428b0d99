// Composed rate limits: take tokens from several TokenBuckets at once, all or
// nothing, in the manner of libevent's rate-limit groups. A typical chain is
// a per-connection bucket plus a group bucket shared by every connection of a
// server, so that each connection is capped and so is their sum.
//
// Thread-safety: the free functions and RateLimiter's const and acquiring
// members may be called concurrently from any thread; they are lock-free like
// the buckets themselves. Composition is not one atomic step: a bucket is
// charged, then the next; if a later bucket refuses, the earlier ones are
// refunded. Another thread may briefly see those tokens missing, so under
// contention a composed acquire can fail where a perfectly atomic one would
// succeed, but never the reverse: no bucket ever grants more than its limit.
// Ownership: the free functions borrow their buckets; RateLimiter shares
// ownership of its buckets through std::shared_ptr.
#ifndef MILL_IO_RATELIMIT_RATE_LIMIT_GROUP_H_
#define MILL_IO_RATELIMIT_RATE_LIMIT_GROUP_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "ratelimit/token_bucket.h"

namespace mill {

// Takes `n` tokens from every bucket, or from none: if a bucket refuses, the
// buckets already charged get their tokens back. Null pointers are skipped;
// an empty list always succeeds. Buckets are charged in order, so put the
// one most likely to refuse, and least shared, first (the connection's
// before the group's): a refusal then never touches the shared bucket.
//
//   if (AcquireAll({&conn_accepts, &server_accepts}, 1)) Accept();
bool AcquireAll(absl::Span<TokenBucket* const> buckets, uint64_t n);

// Takes the same number of tokens g from every bucket, as many as all of them
// allow now up to `max`, and returns g (0..max). Buckets that granted more
// than the final g are refunded the difference. Returns `max` for an empty
// list.
uint64_t AcquireUpToAll(absl::Span<TokenBucket* const> buckets, uint64_t max);

// Returns `n` tokens to every bucket (see TokenBucket::Refund).
void RefundAll(absl::Span<TokenBucket* const> buckets, uint64_t n);

// Tokens available from all buckets now: the minimum of their Available().
// UINT64_MAX for an empty list.
uint64_t AvailableAll(absl::Span<TokenBucket* const> buckets);

// How long until every bucket has `n` tokens: the maximum over the buckets.
absl::Duration TimeUntilAvailableAll(absl::Span<TokenBucket* const> buckets,
                                     uint64_t n);

// A fixed chain of buckets that acts as one limit, for an object (such as a
// connection) to keep next to its state.
//
//   // Shared by every connection of the server: 100 MB/s in total.
//   auto server = std::make_shared<TokenBucket>(100e6, 1 << 20);
//   // Per connection: 1 MB/s each, on top of the server's limit.
//   RateLimiter reads({std::make_shared<TokenBucket>(1e6, 64 << 10), server});
//   uint64_t n = reads.AcquireUpTo(want);
//   if (n == 0) retry_after = reads.TimeUntilAvailable(1);
//
// A default-constructed RateLimiter has no bucket and never limits. Copies
// share the same buckets.
class RateLimiter {
 public:
  RateLimiter() = default;
  // Null buckets are dropped. Order matters as for AcquireAll.
  explicit RateLimiter(std::vector<std::shared_ptr<TokenBucket>> buckets);

  bool TryAcquire(uint64_t n = 1) { return AcquireAll(view_, n); }
  uint64_t AcquireUpTo(uint64_t max) { return AcquireUpToAll(view_, max); }
  void Refund(uint64_t n) { RefundAll(view_, n); }
  uint64_t Available() const { return AvailableAll(view_); }
  absl::Duration TimeUntilAvailable(uint64_t n) const {
    return TimeUntilAvailableAll(view_, n);
  }

  bool unlimited() const { return view_.empty(); }
  const std::vector<std::shared_ptr<TokenBucket>>& buckets() const {
    return buckets_;
  }

 private:
  std::vector<std::shared_ptr<TokenBucket>> buckets_;
  // Raw pointers into buckets_, handed to the free functions.
  absl::InlinedVector<TokenBucket*, 2> view_;
};

}  // namespace mill

#endif  // MILL_IO_RATELIMIT_RATE_LIMIT_GROUP_H_
