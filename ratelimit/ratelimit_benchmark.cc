// Cost of TokenBucket::TryAcquire (lock-free, one atomic CAS) against a
// baseline token bucket under a std::mutex (double tokens + last refill
// time, the textbook implementation), with 1 and 2 threads on one shared
// bucket.
//
// Variants:
//   Grant/SteadyClock  - rate so high the bucket never empties: every call
//                        succeeds and writes; includes reading steady_clock.
//   Grant/FixedClock   - same with a clock that does not move, isolating the
//                        synchronization cost from the clock read.
//   Refuse/SteadyClock - an empty bucket: every call is refused.
//
// Run: ./bazelw run --config=opt //ratelimit:ratelimit_benchmark --
//      --benchmark_min_time=0.2   (on one line)
#include <algorithm>
#include <cstdint>
#include <mutex>

#include "benchmark/benchmark.h"
#include "ratelimit/clock.h"
#include "ratelimit/testing/manual_clock.h"
#include "ratelimit/token_bucket.h"

namespace mill {
namespace {

// The baseline: the usual mutex-protected bucket.
class MutexTokenBucket {
 public:
  MutexTokenBucket(double rate_per_second, uint64_t burst,
                   const MonotonicClock* clock)
      : clock_(clock),
        rate_per_ns_(rate_per_second / 1e9),
        burst_(static_cast<double>(burst)),
        tokens_(static_cast<double>(burst)),
        last_ns_(Now()) {}

  bool TryAcquire(uint64_t n = 1) {
    const int64_t now = Now();
    std::lock_guard<std::mutex> lock(mu_);
    if (now > last_ns_) {
      tokens_ = std::min(burst_, tokens_ + (now - last_ns_) * rate_per_ns_);
      last_ns_ = now;
    }
    if (tokens_ < static_cast<double>(n)) return false;
    tokens_ -= static_cast<double>(n);
    return true;
  }

 private:
  int64_t Now() const {
    return clock_ == nullptr ? SteadyClock::Now() : clock_->NowNanos();
  }

  const MonotonicClock* const clock_;
  const double rate_per_ns_;
  const double burst_;
  std::mutex mu_;
  double tokens_;
  int64_t last_ns_;
};

enum Scenario { kGrantSteady, kGrantFixed, kRefuseSteady };

const MonotonicClock* FixedClock() {
  static const ManualClock* clock = new ManualClock(1);
  return clock;
}

template <typename Bucket>
Bucket* MakeBucket(Scenario scenario) {
  switch (scenario) {
    case kGrantSteady:
      return new Bucket(TokenBucket::kMaxRate, TokenBucket::kMaxBurst, nullptr);
    case kGrantFixed:
      return new Bucket(1, TokenBucket::kMaxBurst, FixedClock());
    case kRefuseSteady: {
      auto* bucket = new Bucket(0.001, 1, nullptr);
      bucket->TryAcquire(1);  // empty for the next 1000 s
      return bucket;
    }
  }
  return nullptr;
}

template <typename Bucket, Scenario kScenario>
Bucket& SharedBucket() {
  static Bucket* bucket = MakeBucket<Bucket>(kScenario);
  return *bucket;
}

template <typename Bucket, Scenario kScenario>
void BM_TryAcquire(benchmark::State& state) {
  Bucket& bucket = SharedBucket<Bucket, kScenario>();
  int64_t granted = 0;
  for (auto _ : state) {
    granted += bucket.TryAcquire(1) ? 1 : 0;
  }
  benchmark::DoNotOptimize(granted);
  const bool expect_grant = kScenario != kRefuseSteady;
  if ((granted == state.iterations()) != expect_grant) {
    state.SkipWithError("unexpected grant count");
  }
  state.SetItemsProcessed(state.iterations());
}

#define MILL_RATELIMIT_BENCH(Bucket, scenario)        \
  BENCHMARK_TEMPLATE(BM_TryAcquire, Bucket, scenario) \
      ->Threads(1)                                    \
      ->Threads(2)                                    \
      ->UseRealTime()

MILL_RATELIMIT_BENCH(MutexTokenBucket, kGrantSteady);
MILL_RATELIMIT_BENCH(TokenBucket, kGrantSteady);
MILL_RATELIMIT_BENCH(MutexTokenBucket, kGrantFixed);
MILL_RATELIMIT_BENCH(TokenBucket, kGrantFixed);
MILL_RATELIMIT_BENCH(MutexTokenBucket, kRefuseSteady);
MILL_RATELIMIT_BENCH(TokenBucket, kRefuseSteady);

}  // namespace
}  // namespace mill
