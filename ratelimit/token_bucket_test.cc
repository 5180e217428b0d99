#include "ratelimit/token_bucket.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "ratelimit/testing/manual_clock.h"

namespace mill {
namespace {

TEST(ManualClockTest, AdvancesOnlyForward) {
  ManualClock clock(5);
  EXPECT_EQ(clock.NowNanos(), 5);
  clock.Advance(absl::Microseconds(2));
  EXPECT_EQ(clock.NowNanos(), 2005);
  clock.Advance(-absl::Seconds(1));
  EXPECT_EQ(clock.NowNanos(), 2005);
}

TEST(SteadyClockTest, IsMonotonic) {
  const MonotonicClock* clock = SteadyClock::Get();
  int64_t prev = clock->NowNanos();
  for (int i = 0; i < 1000; ++i) {
    const int64_t now = clock->NowNanos();
    ASSERT_GE(now, prev);
    prev = now;
  }
}

TEST(TokenBucketTest, StartsFull) {
  ManualClock clock;
  TokenBucket bucket(1000, 100, &clock);
  EXPECT_EQ(bucket.rate_per_second(), 1000);
  EXPECT_EQ(bucket.burst(), 100u);
  EXPECT_EQ(bucket.Available(), 100u);
  EXPECT_TRUE(bucket.TryAcquire(100));
  EXPECT_EQ(bucket.Available(), 0u);
  EXPECT_FALSE(bucket.TryAcquire());
}

TEST(TokenBucketTest, DefaultAcquireTakesOne) {
  ManualClock clock;
  TokenBucket bucket(1, 3, &clock);
  EXPECT_TRUE(bucket.TryAcquire());
  EXPECT_TRUE(bucket.TryAcquire());
  EXPECT_TRUE(bucket.TryAcquire());
  EXPECT_FALSE(bucket.TryAcquire());
}

TEST(TokenBucketTest, RefillsAtRate) {
  ManualClock clock;
  TokenBucket bucket(1000, 1000, &clock);
  ASSERT_TRUE(bucket.TryAcquire(1000));
  clock.Advance(absl::Milliseconds(250));
  EXPECT_EQ(bucket.Available(), 250u);
  clock.Advance(absl::Microseconds(999));
  EXPECT_EQ(bucket.Available(), 250u);
  clock.Advance(absl::Microseconds(1));
  EXPECT_EQ(bucket.Available(), 251u);
  EXPECT_FALSE(bucket.TryAcquire(252));
  EXPECT_TRUE(bucket.TryAcquire(251));
  EXPECT_EQ(bucket.Available(), 0u);
  // 10 seconds at 1000/s would be 10000 tokens, but the bucket holds 1000.
  clock.Advance(absl::Seconds(10));
  EXPECT_EQ(bucket.Available(), 1000u);
}

// Many small acquisitions over a long time grant exactly rate * time: the
// accounting has no per-call rounding drift.
TEST(TokenBucketTest, NoDriftOverManySteps) {
  ManualClock clock;
  TokenBucket bucket(3, 1, &clock);  // one token every 333.33 ms
  ASSERT_TRUE(bucket.TryAcquire());
  uint64_t granted = 0;
  for (int step = 0; step < 3000; ++step) {  // 3000 steps of 10 ms = 30 s
    clock.Advance(absl::Milliseconds(10));
    if (bucket.TryAcquire()) ++granted;
  }
  EXPECT_EQ(granted, 90u);
}

TEST(TokenBucketTest, FractionalRateRefillsOnExactBoundaries) {
  ManualClock clock;
  TokenBucket bucket(3, 3, &clock);
  ASSERT_TRUE(bucket.TryAcquire(3));
  clock.Advance(absl::Nanoseconds(333333333));
  EXPECT_EQ(bucket.Available(), 0u);  // 0.999999999 tokens
  clock.Advance(absl::Nanoseconds(1));
  EXPECT_EQ(bucket.Available(), 1u);
}

TEST(TokenBucketTest, SubUnitRate) {
  ManualClock clock;
  TokenBucket bucket(0.5, 1, &clock);
  ASSERT_TRUE(bucket.TryAcquire());
  clock.Advance(absl::Milliseconds(1999));
  EXPECT_FALSE(bucket.TryAcquire());
  clock.Advance(absl::Milliseconds(1));
  EXPECT_TRUE(bucket.TryAcquire());
  EXPECT_EQ(bucket.TimeUntilAvailable(1), absl::Seconds(2));
}

TEST(TokenBucketTest, HighByteRate) {
  ManualClock clock;
  TokenBucket bucket(1e9, 1 << 20, &clock);  // 1 GB/s, 1 MiB burst
  ASSERT_EQ(bucket.AcquireUpTo(1 << 30), 1u << 20);
  clock.Advance(absl::Microseconds(1));
  EXPECT_EQ(bucket.Available(), 1000u);
  clock.Advance(absl::Nanoseconds(7));
  EXPECT_EQ(bucket.Available(), 1007u);
}

TEST(TokenBucketTest, NonIntegralHighRateIsExact) {
  ManualClock clock;
  TokenBucket bucket(12345678.9, 1 << 30, &clock);
  ASSERT_TRUE(bucket.TryAcquire(1 << 30));
  // Well past the 64-bit fast path of the unit conversion (an hour).
  clock.Advance(absl::Seconds(3600));
  EXPECT_EQ(bucket.Available(), 1u << 30);  // capped
  ASSERT_TRUE(bucket.TryAcquire(1 << 30));
  clock.Advance(absl::Seconds(10));
  EXPECT_EQ(bucket.Available(), 123456789u);
}

TEST(TokenBucketTest, CannotExceedBurstAfterLongIdle) {
  ManualClock clock;
  TokenBucket bucket(1000, 50, &clock);
  clock.Advance(absl::Hours(24 * 365));
  EXPECT_EQ(bucket.Available(), 50u);
  EXPECT_EQ(bucket.AcquireUpTo(1000), 50u);
  EXPECT_EQ(bucket.AcquireUpTo(1000), 0u);
}

TEST(TokenBucketTest, WorksFromLargeClockOrigin) {
  // steady_clock counts from boot: a server up for 200 days.
  ManualClock clock(absl::ToInt64Nanoseconds(absl::Hours(24 * 200)));
  TokenBucket bucket(1e9, 1000, &clock);
  EXPECT_EQ(bucket.Available(), 1000u);
  ASSERT_TRUE(bucket.TryAcquire(1000));
  clock.Advance(absl::Nanoseconds(500));
  EXPECT_EQ(bucket.Available(), 500u);
}

// A clock that can be set anywhere, to model a reading taken on another
// thread before the bucket was created.
class SettableClock final : public MonotonicClock {
 public:
  int64_t NowNanos() const override { return now.load(); }
  std::atomic<int64_t> now{0};
};

TEST(TokenBucketTest, ClockBehindCreationCountsAsCreation) {
  SettableClock clock;
  clock.now = 1000000000;
  TokenBucket bucket(1000, 10, &clock);
  clock.now = 500000000;  // half a second before creation
  EXPECT_EQ(bucket.Available(), 10u);
  EXPECT_TRUE(bucket.TryAcquire(10));
  EXPECT_EQ(bucket.TimeUntilAvailable(1), absl::Milliseconds(1));
  clock.now = 1001000000;
  EXPECT_EQ(bucket.Available(), 1u);
}

TEST(TokenBucketTest, ZeroAndOversizedRequests) {
  ManualClock clock;
  TokenBucket bucket(10, 5, &clock);
  EXPECT_TRUE(bucket.TryAcquire(0));
  EXPECT_FALSE(bucket.TryAcquire(6));
  EXPECT_EQ(bucket.Available(), 5u);  // a refusal takes nothing
  EXPECT_EQ(bucket.AcquireUpTo(0), 0u);
  EXPECT_EQ(bucket.Available(), 5u);
  ASSERT_TRUE(bucket.TryAcquire(5));
  EXPECT_TRUE(bucket.TryAcquire(0));  // even when empty
}

TEST(TokenBucketTest, FailedAcquireTakesNothing) {
  ManualClock clock;
  TokenBucket bucket(1000, 10, &clock);
  ASSERT_TRUE(bucket.TryAcquire(7));
  EXPECT_FALSE(bucket.TryAcquire(4));
  EXPECT_EQ(bucket.Available(), 3u);
  EXPECT_TRUE(bucket.TryAcquire(3));
}

TEST(TokenBucketTest, ParametersAreClamped) {
  ManualClock clock;
  TokenBucket zero_burst(1000, 0, &clock);
  EXPECT_EQ(zero_burst.burst(), 1u);
  EXPECT_TRUE(zero_burst.TryAcquire());
  TokenBucket zero_rate(0, 1, &clock);
  EXPECT_EQ(zero_rate.rate_per_second(), TokenBucket::kMinRate);
  TokenBucket nan_rate(std::nan(""), 1, &clock);
  EXPECT_EQ(nan_rate.rate_per_second(), TokenBucket::kMinRate);
  TokenBucket huge_rate(1e300, 1, &clock);
  EXPECT_EQ(huge_rate.rate_per_second(), TokenBucket::kMaxRate);
  TokenBucket huge_burst(1, UINT64_MAX, &clock);
  EXPECT_EQ(huge_burst.burst(), TokenBucket::kMaxBurst);
  EXPECT_TRUE(huge_burst.TryAcquire(TokenBucket::kMaxBurst));
  EXPECT_FALSE(huge_burst.TryAcquire());
  EXPECT_EQ(huge_burst.TimeUntilAvailable(1), absl::Seconds(1));
}

TEST(TokenBucketTest, TimeUntilAvailable) {
  ManualClock clock;
  TokenBucket bucket(1000, 500, &clock);
  EXPECT_EQ(bucket.TimeUntilAvailable(0), absl::ZeroDuration());
  EXPECT_EQ(bucket.TimeUntilAvailable(500), absl::ZeroDuration());
  EXPECT_EQ(bucket.TimeUntilAvailable(501), absl::InfiniteDuration());
  ASSERT_TRUE(bucket.TryAcquire(500));
  EXPECT_EQ(bucket.TimeUntilAvailable(0), absl::ZeroDuration());
  EXPECT_EQ(bucket.TimeUntilAvailable(1), absl::Milliseconds(1));
  EXPECT_EQ(bucket.TimeUntilAvailable(250), absl::Milliseconds(250));
  EXPECT_EQ(bucket.TimeUntilAvailable(500), absl::Milliseconds(500));
  clock.Advance(absl::Microseconds(100));
  EXPECT_EQ(bucket.TimeUntilAvailable(1), absl::Microseconds(900));
  EXPECT_EQ(bucket.TimeUntilAvailable(250), absl::Microseconds(249900));
  // Waiting exactly that long is enough, one nanosecond less is not.
  clock.Advance(absl::Microseconds(249900) - absl::Nanoseconds(1));
  EXPECT_FALSE(bucket.TryAcquire(250));
  clock.Advance(absl::Nanoseconds(1));
  EXPECT_EQ(bucket.TimeUntilAvailable(250), absl::ZeroDuration());
  EXPECT_TRUE(bucket.TryAcquire(250));
  EXPECT_EQ(bucket.TimeUntilAvailable(1), absl::Milliseconds(1));
}

TEST(TokenBucketTest, TimeUntilAvailableRoundsUp) {
  ManualClock clock;
  TokenBucket bucket(3, 2, &clock);
  ASSERT_TRUE(bucket.TryAcquire(2));
  const absl::Duration one = bucket.TimeUntilAvailable(1);
  EXPECT_EQ(one, absl::Nanoseconds(333333334));
  EXPECT_EQ(bucket.TimeUntilAvailable(2), absl::Nanoseconds(666666667));
  clock.Advance(one - absl::Nanoseconds(1));
  EXPECT_FALSE(bucket.TryAcquire());
  clock.Advance(absl::Nanoseconds(1));
  EXPECT_TRUE(bucket.TryAcquire());
}

TEST(TokenBucketTest, AcquireUpTo) {
  ManualClock clock;
  TokenBucket bucket(1000, 100, &clock);
  EXPECT_EQ(bucket.AcquireUpTo(30), 30u);
  EXPECT_EQ(bucket.AcquireUpTo(1000), 70u);
  EXPECT_EQ(bucket.AcquireUpTo(1000), 0u);
  clock.Advance(absl::Milliseconds(15));
  EXPECT_EQ(bucket.AcquireUpTo(10), 10u);
  EXPECT_EQ(bucket.AcquireUpTo(10), 5u);
  EXPECT_EQ(bucket.AcquireUpTo(10), 0u);
}

TEST(TokenBucketTest, RefundReturnsTokensUpToBurst) {
  ManualClock clock;
  TokenBucket bucket(1000, 100, &clock);
  ASSERT_EQ(bucket.AcquireUpTo(100), 100u);
  bucket.Refund(40);  // e.g. read() returned fewer bytes than granted
  EXPECT_EQ(bucket.Available(), 40u);
  bucket.Refund(0);
  EXPECT_EQ(bucket.Available(), 40u);
  clock.Advance(absl::Milliseconds(50));
  EXPECT_EQ(bucket.Available(), 90u);
  bucket.Refund(1000);  // cannot overfill
  EXPECT_EQ(bucket.Available(), 100u);
  bucket.Refund(5);  // full already
  EXPECT_EQ(bucket.Available(), 100u);
  EXPECT_TRUE(bucket.TryAcquire(100));
  EXPECT_FALSE(bucket.TryAcquire(1));
}

// Without time passing, concurrent acquirers share exactly `burst` tokens.
TEST(TokenBucketConcurrencyTest, ExactlyBurstGrantedWithFrozenClock) {
  ManualClock clock;
  constexpr uint64_t kBurst = 20000;
  TokenBucket bucket(1, kBurst, &clock);
  constexpr int kThreads = 4;
  std::vector<uint64_t> granted(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Mix single, multi and AcquireUpTo grants; stop at the first refusal
      // of a single token (the bucket is then empty for good).
      for (uint64_t i = 0;; ++i) {
        if (i % 3 == 0) {
          if (!bucket.TryAcquire()) break;
          granted[t] += 1;
        } else if (i % 3 == 1) {
          if (bucket.TryAcquire(2)) granted[t] += 2;
        } else {
          granted[t] += bucket.AcquireUpTo(3);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  uint64_t total = 0;
  for (uint64_t g : granted) total += g;
  EXPECT_EQ(total, kBurst);
  EXPECT_EQ(bucket.Available(), 0u);
}

// With a clock advanced by another thread, the total granted never exceeds
// burst + rate * elapsed, and refunds are never lost.
TEST(TokenBucketConcurrencyTest, NeverExceedsRateWithAdvancingClock) {
  ManualClock clock;
  constexpr uint64_t kBurst = 100;
  TokenBucket bucket(1e6, kBurst, &clock);  // 1 token per microsecond
  std::atomic<bool> stop{false};
  std::atomic<int> running{0};
  std::atomic<uint64_t> granted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      running.fetch_add(1);
      uint64_t local = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        const uint64_t got = bucket.AcquireUpTo(7);
        // Give one back now and then: net grant stays exact.
        if (got > 0 && t == 0) {
          bucket.Refund(1);
          local += got - 1;
        } else {
          local += got;
        }
        if (bucket.TryAcquire(3)) local += 3;
      }
      granted.fetch_add(local);
    });
  }
  while (running.load() < 3) std::this_thread::yield();
  constexpr int kSteps = 2000;
  for (int i = 0; i < kSteps; ++i) {
    clock.Advance(absl::Microseconds(1));
    if (i % 64 == 0) std::this_thread::yield();
  }
  stop.store(true);
  for (auto& th : threads) th.join();
  const uint64_t elapsed_tokens = kSteps;  // 1 per microsecond
  EXPECT_LE(granted.load() + bucket.Available(), kBurst + elapsed_tokens);
  EXPECT_GT(granted.load(), 0u);
}

// Two threads hammer one bucket on the real clock for a bounded time. Each
// must get a reasonable share, and the total is bounded by burst + rate *
// elapsed (plus one token of rounding).
// Fairness between two threads, independent of how the OS schedules them:
// in each round the clock refills exactly kPerRound tokens, both threads are
// released together and take one token at a time until the bucket refuses. No
// token is lost or granted twice, and over many rounds neither thread is
// starved.
// Two threads race for each refill: exactly the refilled tokens are
// granted, never more (a lost update would grant twice) nor fewer. Which
// thread wins how much is the scheduler's business, not the bucket's (it
// has no queue and no bias): shares are not asserted, as a loaded machine
// may run one thread alone for whole rounds (TSan in CI: 319 of 19200).
TEST(TokenBucketConcurrencyTest, TwoThreadsRacingGetExactlyTheRefills) {
  constexpr uint64_t kPerRound = 64;
  constexpr int kRounds = 300;
  ManualClock clock;
  TokenBucket bucket(/*rate_per_second=*/1000, /*burst=*/kPerRound, &clock);
  ASSERT_TRUE(bucket.TryAcquire(kPerRound));  // start empty
  std::atomic<int> round{0};
  std::atomic<int> finished{0};
  uint64_t granted[2] = {0, 0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 1; r <= kRounds; ++r) {
        while (round.load(std::memory_order_acquire) < r) {
          std::this_thread::yield();
        }
        // One token at a time, yielding between attempts as a consumer that
        // does some work per token would, so both threads are in the race.
        uint64_t local = 0;
        while (bucket.TryAcquire()) {
          ++local;
          std::this_thread::yield();
        }
        granted[t] += local;
        finished.fetch_add(1, std::memory_order_acq_rel);
      }
    });
  }
  for (int r = 1; r <= kRounds; ++r) {
    clock.Advance(absl::Milliseconds(kPerRound));  // exactly kPerRound tokens
    round.store(r, std::memory_order_release);
    while (finished.load(std::memory_order_acquire) < 2 * r) {
      std::this_thread::yield();
    }
  }
  for (auto& th : threads) th.join();
  // Exactly the refilled tokens were granted, no more, no fewer.
  EXPECT_EQ(granted[0] + granted[1], kPerRound * kRounds)
      << granted[0] << " + " << granted[1];
  // Nothing is left over between rounds: each round's race emptied it.
  EXPECT_FALSE(bucket.TryAcquire());
}

}  // namespace
}  // namespace mill
