#include "threadpool/internal/mpmc_ring.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace mill {
namespace threadpool_internal {
namespace {

constexpr auto kOk = MpmcRing<int>::PushResult::kOk;

TEST(MpmcRingTest, CapacityRoundsUpToPowerOfTwo) {
  EXPECT_EQ(MpmcRing<int>(0).capacity(), 2u);
  EXPECT_EQ(MpmcRing<int>(3).capacity(), 4u);
  EXPECT_EQ(MpmcRing<int>(64).capacity(), 64u);
}

TEST(MpmcRingTest, FifoAcrossWrapAround) {
  MpmcRing<int> ring(4);
  int next_in = 0;
  int next_out = 0;
  for (int round = 0; round < 10; ++round) {
    for (int i = 0; i < 3; ++i) ASSERT_EQ(ring.TryPush(int{next_in++}), kOk);
    for (int i = 0; i < 3; ++i) {
      int v = -1;
      ASSERT_TRUE(ring.TryPop(v));
      EXPECT_EQ(v, next_out++);
    }
  }
  int v;
  EXPECT_FALSE(ring.TryPop(v));
  EXPECT_EQ(ring.pushed(), 30u);
  EXPECT_EQ(ring.popped(), 30u);
}

TEST(MpmcRingTest, FullPushFailsWithoutConsumingValue) {
  MpmcRing<std::unique_ptr<int>> ring(2);
  using Result = MpmcRing<std::unique_ptr<int>>::PushResult;
  ASSERT_EQ(ring.TryPush(std::make_unique<int>(1)), Result::kOk);
  ASSERT_EQ(ring.TryPush(std::make_unique<int>(2)), Result::kOk);
  EXPECT_EQ(ring.SizeApprox(), 2u);
  auto third = std::make_unique<int>(3);
  EXPECT_EQ(ring.TryPush(std::move(third)), Result::kFull);
  ASSERT_NE(third, nullptr);  // Not moved from on failure.
  EXPECT_EQ(*third, 3);
  std::unique_ptr<int> out;
  ASSERT_TRUE(ring.TryPop(out));
  EXPECT_EQ(*out, 1);
  EXPECT_EQ(ring.TryPush(std::move(third)), Result::kOk);
  ASSERT_TRUE(ring.TryPop(out));
  EXPECT_EQ(*out, 2);
  ASSERT_TRUE(ring.TryPop(out));
  EXPECT_EQ(*out, 3);
  EXPECT_EQ(ring.SizeApprox(), 0u);
}

TEST(MpmcRingTest, CloseRejectsPushesButKeepsQueuedElements) {
  MpmcRing<std::unique_ptr<int>> ring(4);
  using Result = MpmcRing<std::unique_ptr<int>>::PushResult;
  ASSERT_EQ(ring.TryPush(std::make_unique<int>(1)), Result::kOk);
  EXPECT_FALSE(ring.closed());
  ring.Close();
  ring.Close();  // Idempotent.
  EXPECT_TRUE(ring.closed());
  auto rejected = std::make_unique<int>(2);
  EXPECT_EQ(ring.TryPush(std::move(rejected)), Result::kClosed);
  ASSERT_NE(rejected, nullptr);
  EXPECT_EQ(ring.pushed(), 1u);
  EXPECT_EQ(ring.SizeApprox(), 1u);
  std::unique_ptr<int> out;
  ASSERT_TRUE(ring.TryPop(out));
  EXPECT_EQ(*out, 1);
  EXPECT_FALSE(ring.TryPop(out));
  EXPECT_EQ(ring.SizeApprox(), 0u);
}

// Closing while producers push: every push reported kOk is popped exactly
// once, and none succeeds after Close() returned.
TEST(MpmcRingTest, CloseRacingWithProducers) {
  for (int round = 0; round < 20; ++round) {
    MpmcRing<int> ring(1 << 16);
    std::atomic<int> accepted{0};
    std::atomic<bool> closed_seen{false};
    std::atomic<int> accepted_after_close{0};
    std::vector<std::thread> producers;
    for (int p = 0; p < 2; ++p) {
      producers.emplace_back([&] {
        for (int i = 0; i < 5000; ++i) {
          const bool was_closed = closed_seen.load();
          const auto result = ring.TryPush(int{i});
          if (result == kOk) {
            accepted.fetch_add(1);
            if (was_closed) accepted_after_close.fetch_add(1);
          } else {
            ASSERT_EQ(result, MpmcRing<int>::PushResult::kClosed);
          }
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::microseconds(50 * round));
    ring.Close();
    closed_seen.store(true);
    for (auto& t : producers) t.join();
    int popped = 0;
    int v;
    while (ring.TryPop(v)) ++popped;
    EXPECT_EQ(popped, accepted.load());
    EXPECT_EQ(ring.pushed(), static_cast<uint64_t>(accepted.load()));
    EXPECT_EQ(accepted_after_close.load(), 0);
  }
}

TEST(MpmcRingTest, DestructorDestroysQueuedElements) {
  auto tracker = std::make_shared<int>(0);
  {
    MpmcRing<std::shared_ptr<int>> ring(8);
    for (int i = 0; i < 5; ++i)
      ASSERT_EQ(ring.TryPush(std::shared_ptr<int>(tracker)),
                MpmcRing<std::shared_ptr<int>>::PushResult::kOk);
    EXPECT_EQ(tracker.use_count(), 6);
  }
  EXPECT_EQ(tracker.use_count(), 1);
}

// Every pushed value is popped exactly once, and each producer's values come
// out in the order it pushed them.
TEST(MpmcRingTest, ConcurrentProducersAndConsumersSeeEachItemOnce) {
  constexpr int kProducers = 2;
  constexpr int kConsumers = 2;
  constexpr int kPerProducer = 20000;
  MpmcRing<int> ring(64);
  std::vector<std::atomic<int>> seen(kProducers * kPerProducer);
  std::atomic<int> consumed{0};
  std::atomic<bool> order_ok{true};
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) {
        while (ring.TryPush(p * kPerProducer + i) != kOk) {
          std::this_thread::yield();
        }
      }
    });
  }
  for (int c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&] {
      std::vector<int> last(kProducers, -1);
      while (consumed.load() < kProducers * kPerProducer) {
        int v;
        if (!ring.TryPop(v)) {
          std::this_thread::yield();
          continue;
        }
        seen[v].fetch_add(1);
        const int producer = v / kPerProducer;
        if (v % kPerProducer <= last[producer]) order_ok = false;
        last[producer] = v % kPerProducer;
        consumed.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_TRUE(order_ok.load());
  for (size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i].load(), 1) << i;
  EXPECT_EQ(ring.pushed(), static_cast<uint64_t>(kProducers * kPerProducer));
}

}  // namespace
}  // namespace threadpool_internal
}  // namespace mill
