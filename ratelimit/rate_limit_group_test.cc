#include "ratelimit/rate_limit_group.h"

#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "ratelimit/testing/manual_clock.h"
#include "ratelimit/token_bucket.h"

namespace mill {
namespace {

TEST(AcquireAllTest, TakesFromEveryBucketWhenAllAllow) {
  ManualClock clock;
  TokenBucket conn(100, 10, &clock);
  TokenBucket group(1000, 100, &clock);
  EXPECT_TRUE(AcquireAll({&conn, &group}, 4));
  EXPECT_EQ(conn.Available(), 6u);
  EXPECT_EQ(group.Available(), 96u);
}

TEST(AcquireAllTest, GroupRefusalRefundsConnection) {
  ManualClock clock;
  TokenBucket conn(100, 10, &clock);
  TokenBucket group(1000, 5, &clock);
  ASSERT_TRUE(group.TryAcquire(3));  // another connection used the group
  EXPECT_FALSE(AcquireAll({&conn, &group}, 4));
  EXPECT_EQ(conn.Available(), 10u);  // refunded
  EXPECT_EQ(group.Available(), 2u);  // untouched
  EXPECT_TRUE(AcquireAll({&conn, &group}, 2));
  EXPECT_EQ(conn.Available(), 8u);
  EXPECT_EQ(group.Available(), 0u);
}

TEST(AcquireAllTest, ConnectionRefusalLeavesGroupUntouched) {
  ManualClock clock;
  TokenBucket conn(100, 3, &clock);
  TokenBucket group(1000, 100, &clock);
  EXPECT_FALSE(AcquireAll({&conn, &group}, 4));
  EXPECT_EQ(conn.Available(), 3u);
  EXPECT_EQ(group.Available(), 100u);
}

TEST(AcquireAllTest, RefundsEveryEarlierBucketOfALongerChain) {
  ManualClock clock;
  TokenBucket a(1, 10, &clock), b(1, 10, &clock), c(1, 2, &clock);
  EXPECT_FALSE(AcquireAll({&a, &b, &c}, 5));
  EXPECT_EQ(a.Available(), 10u);
  EXPECT_EQ(b.Available(), 10u);
  EXPECT_EQ(c.Available(), 2u);
}

TEST(AcquireAllTest, EmptyListAndNullBucketsDoNotLimit) {
  EXPECT_TRUE(AcquireAll({}, 1000));
  EXPECT_EQ(AcquireUpToAll({}, 1000), 1000u);
  EXPECT_EQ(AvailableAll({}), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(TimeUntilAvailableAll({}, 5), absl::ZeroDuration());
  ManualClock clock;
  TokenBucket conn(1, 2, &clock);
  EXPECT_TRUE(AcquireAll({nullptr, &conn}, 2));
  EXPECT_FALSE(AcquireAll({&conn, nullptr}, 1));
  RefundAll({nullptr, &conn}, 1);
  EXPECT_EQ(AvailableAll({&conn, nullptr}), 1u);
}

TEST(AcquireUpToAllTest, GrantsTheMinimumAndRefundsTheRest) {
  ManualClock clock;
  TokenBucket conn(1000, 50, &clock);
  TokenBucket group(1000, 30, &clock);
  EXPECT_EQ(AcquireUpToAll({&conn, &group}, 100), 30u);
  EXPECT_EQ(conn.Available(), 20u);
  EXPECT_EQ(group.Available(), 0u);
  // The group is dry: nothing granted, the connection keeps its 20.
  EXPECT_EQ(AcquireUpToAll({&conn, &group}, 100), 0u);
  EXPECT_EQ(conn.Available(), 20u);
}

TEST(AcquireUpToAllTest, OrderDoesNotChangeTheResult) {
  ManualClock clock;
  TokenBucket conn(1000, 50, &clock);
  TokenBucket group(1000, 30, &clock);
  EXPECT_EQ(AcquireUpToAll({&group, &conn}, 100), 30u);
  EXPECT_EQ(conn.Available(), 20u);
  EXPECT_EQ(group.Available(), 0u);
}

TEST(AcquireUpToAllTest, DecreasingGrantsAlongTheChain) {
  ManualClock clock;
  TokenBucket a(1, 40, &clock), b(1, 25, &clock), c(1, 10, &clock);
  EXPECT_EQ(AcquireUpToAll({&a, &b, &c}, 30), 10u);
  EXPECT_EQ(a.Available(), 30u);
  EXPECT_EQ(b.Available(), 15u);
  EXPECT_EQ(c.Available(), 0u);
  EXPECT_EQ(AcquireUpToAll({&a, &b, &c}, 5), 0u);
  EXPECT_EQ(a.Available(), 30u);
  EXPECT_EQ(b.Available(), 15u);
}

TEST(AcquireUpToAllTest, ZeroMaxTakesNothing) {
  ManualClock clock;
  TokenBucket a(1, 4, &clock);
  EXPECT_EQ(AcquireUpToAll({&a}, 0), 0u);
  EXPECT_EQ(a.Available(), 4u);
}

TEST(TimeUntilAvailableAllTest, IsTheSlowestBucket) {
  ManualClock clock;
  TokenBucket conn(1000, 10, &clock);  // 1 ms per token
  TokenBucket group(100, 10, &clock);  // 10 ms per token
  ASSERT_TRUE(AcquireAll({&conn, &group}, 10));
  EXPECT_EQ(TimeUntilAvailableAll({&conn, &group}, 2), absl::Milliseconds(20));
  EXPECT_EQ(TimeUntilAvailableAll({&conn, &group}, 11),
            absl::InfiniteDuration());
  clock.Advance(absl::Milliseconds(20));
  EXPECT_EQ(AvailableAll({&conn, &group}), 2u);
  EXPECT_TRUE(AcquireAll({&conn, &group}, 2));
}

TEST(RateLimiterTest, DefaultIsUnlimited) {
  RateLimiter limiter;
  EXPECT_TRUE(limiter.unlimited());
  EXPECT_TRUE(limiter.TryAcquire(1u << 30));
  EXPECT_EQ(limiter.AcquireUpTo(12345), 12345u);
  EXPECT_EQ(limiter.TimeUntilAvailable(7), absl::ZeroDuration());
  EXPECT_EQ(limiter.Available(), std::numeric_limits<uint64_t>::max());
  EXPECT_TRUE(RateLimiter({nullptr}).unlimited());
}

// Two connections with their own 80-token buckets share a 100-token group.
TEST(RateLimiterTest, ConnectionsShareGroupBudget) {
  ManualClock clock;
  auto group = std::make_shared<TokenBucket>(1000, 100, &clock);
  RateLimiter conn1({std::make_shared<TokenBucket>(1000, 80, &clock), group});
  RateLimiter conn2({std::make_shared<TokenBucket>(1000, 80, &clock), group});
  EXPECT_FALSE(conn1.unlimited());
  EXPECT_EQ(conn1.buckets().size(), 2u);
  EXPECT_EQ(conn1.AcquireUpTo(1000), 80u);  // capped by its own bucket
  EXPECT_EQ(conn2.AcquireUpTo(1000), 20u);  // capped by the group
  EXPECT_EQ(conn2.Available(), 0u);
  EXPECT_FALSE(conn2.TryAcquire());
  // conn2 was granted 20 of its 80; the refused token went back.
  EXPECT_EQ(conn2.buckets()[0]->Available(), 60u);
  EXPECT_EQ(conn2.TimeUntilAvailable(1), absl::Milliseconds(1));
  // A short read gives bytes back to both buckets of conn1.
  conn1.Refund(30);
  EXPECT_EQ(group->Available(), 30u);
  EXPECT_EQ(conn1.Available(), 30u);
  EXPECT_EQ(conn1.buckets()[0]->Available(), 30u);
  clock.Advance(absl::Milliseconds(10));
  EXPECT_EQ(conn2.Available(), 40u);
  EXPECT_TRUE(conn2.TryAcquire(40));
  EXPECT_EQ(conn1.Available(), 0u);
  // Copies share buckets.
  RateLimiter copy = conn1;
  EXPECT_EQ(copy.buckets()[1], group);
  EXPECT_FALSE(copy.TryAcquire());
}

// Per-connection limits hold and the group budget is never overdrawn, with
// connections acquiring concurrently and no time passing; refunds are exact,
// so every connection's bucket ends up at burst minus what it was granted.
TEST(RateLimiterConcurrencyTest, GroupNeverOverdrawnAndRefundsExact) {
  ManualClock clock;
  constexpr uint64_t kGroupBurst = 30000;
  constexpr uint64_t kConnBurst = 12000;
  constexpr int kConnections = 4;
  auto group = std::make_shared<TokenBucket>(1, kGroupBurst, &clock);
  std::vector<RateLimiter> limiters;
  for (int i = 0; i < kConnections; ++i) {
    limiters.push_back(RateLimiter(
        {std::make_shared<TokenBucket>(1, kConnBurst, &clock), group}));
  }
  std::vector<uint64_t> granted(kConnections, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < kConnections; ++i) {
    threads.emplace_back([&, i] {
      RateLimiter& limiter = limiters[i];
      int refusals = 0;
      for (uint64_t k = 0; refusals < 100; ++k) {
        const uint64_t want = 1 + k % 5;
        uint64_t got = 0;
        if (k % 2 == 0) {
          got = limiter.TryAcquire(want) ? want : 0;
        } else {
          got = limiter.AcquireUpTo(want);
        }
        if (got == 0) ++refusals;
        granted[i] += got;
      }
    });
  }
  for (auto& th : threads) th.join();
  uint64_t total = 0;
  for (int i = 0; i < kConnections; ++i) {
    EXPECT_LE(granted[i], kConnBurst);
    EXPECT_EQ(limiters[i].buckets()[0]->Available(), kConnBurst - granted[i])
        << "connection " << i;
    total += granted[i];
  }
  EXPECT_LE(total, kGroupBurst);
  EXPECT_EQ(group->Available(), kGroupBurst - total);
}

}  // namespace
}  // namespace mill
