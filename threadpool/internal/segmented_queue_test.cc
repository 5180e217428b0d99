#include "threadpool/internal/segmented_queue.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace mill {
namespace threadpool_internal {
namespace {

TEST(SegmentedQueueTest, FifoAcrossSegmentsAndRecyclesThem) {
  SegmentedQueue<int> queue(/*initial_capacity=*/2, /*max_segment_capacity=*/8);
  for (int round = 0; round < 5; ++round) {
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(queue.TryPush(int{i}));
    EXPECT_EQ(queue.Size(), 100u);
    EXPECT_TRUE(queue.NonEmpty());
    EXPECT_TRUE(queue.MaybeNonEmpty());
    for (int i = 0; i < 100; ++i) {
      int v = -1;
      ASSERT_TRUE(queue.TryPop(v));
      ASSERT_EQ(v, i);
    }
    int v;
    EXPECT_FALSE(queue.TryPop(v));
    EXPECT_FALSE(queue.NonEmpty());
    EXPECT_FALSE(queue.MaybeNonEmpty());
    EXPECT_EQ(queue.Size(), 0u);
  }
  EXPECT_EQ(queue.pushed(), 500u);
  // 100 elements need at most 2+4+8*13 slots' worth of segments, and later
  // rounds reuse drained segments instead of allocating more.
  EXPECT_LE(queue.segment_count(), 16u);
}

TEST(SegmentedQueueTest, InterleavedPushPopKeepsOrder) {
  SegmentedQueue<int> queue(2, 4);
  int next_in = 0;
  int next_out = 0;
  for (int step = 0; step < 2000; ++step) {
    const int pushes = step % 7;
    for (int i = 0; i < pushes; ++i) ASSERT_TRUE(queue.TryPush(int{next_in++}));
    const int pops = step % 5;
    for (int i = 0; i < pops; ++i) {
      int v;
      if (!queue.TryPop(v)) break;
      ASSERT_EQ(v, next_out++);
    }
  }
  int v;
  while (queue.TryPop(v)) ASSERT_EQ(v, next_out++);
  EXPECT_EQ(next_out, next_in);
}

TEST(SegmentedQueueTest, CloseRejectsPushesAndKeepsQueuedElements) {
  SegmentedQueue<std::unique_ptr<int>> queue(2, 2);
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(queue.TryPush(std::make_unique<int>(i)));
  queue.Close();
  queue.Close();
  auto rejected = std::make_unique<int>(99);
  EXPECT_FALSE(queue.TryPush(std::move(rejected)));
  ASSERT_NE(rejected, nullptr);
  EXPECT_EQ(queue.pushed(), 5u);
  for (int i = 0; i < 5; ++i) {
    std::unique_ptr<int> out;
    ASSERT_TRUE(queue.TryPop(out));
    EXPECT_EQ(*out, i);
  }
  std::unique_ptr<int> out;
  EXPECT_FALSE(queue.TryPop(out));
}

TEST(SegmentedQueueTest, DestructorDestroysElementsInEverySegment) {
  auto tracker = std::make_shared<int>(0);
  {
    SegmentedQueue<std::shared_ptr<int>> queue(2, 4);
    for (int i = 0; i < 50; ++i) {
      ASSERT_TRUE(queue.TryPush(std::shared_ptr<int>(tracker)));
    }
    EXPECT_GT(queue.segment_count(), 1u);
    EXPECT_EQ(tracker.use_count(), 51);
  }
  EXPECT_EQ(tracker.use_count(), 1);
}

// Tiny segments force constant growth, sealing, head advances and recycling
// while producers and consumers run. Every item is popped exactly once. With
// a single consumer, each producer's items also come out in push order (with
// several, a consumer preempted across a segment recycle may legitimately
// take a newer item first; see the header).
void RunConcurrent(int consumers) {
  constexpr int kProducers = 2;
  constexpr int kPerProducer = 30000;
  SegmentedQueue<int> queue(2, 8);
  std::vector<std::atomic<int>> seen(kProducers * kPerProducer);
  std::atomic<int> consumed{0};
  std::atomic<bool> order_ok{true};
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) {
        ASSERT_TRUE(queue.TryPush(p * kPerProducer + i));
      }
    });
  }
  for (int c = 0; c < consumers; ++c) {
    threads.emplace_back([&] {
      std::vector<int> last(kProducers, -1);
      while (consumed.load() < kProducers * kPerProducer) {
        int v;
        if (!queue.TryPop(v)) {
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
  for (size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i].load(), 1) << i;
  EXPECT_EQ(queue.pushed(), static_cast<uint64_t>(kProducers * kPerProducer));
  EXPECT_FALSE(queue.NonEmpty());
  if (consumers == 1) {
    EXPECT_TRUE(order_ok.load());
  }
}

TEST(SegmentedQueueTest, ConcurrentProducersOneConsumerKeepsOrder) {
  RunConcurrent(1);
}

TEST(SegmentedQueueTest, ConcurrentProducersAndConsumersExactlyOnce) {
  RunConcurrent(2);
}

TEST(SegmentedQueueTest, CloseRacingWithProducersLosesNothing) {
  for (int round = 0; round < 10; ++round) {
    SegmentedQueue<int> queue(2, 16);
    std::atomic<int> accepted{0};
    std::vector<std::thread> producers;
    for (int p = 0; p < 2; ++p) {
      producers.emplace_back([&] {
        for (int i = 0; i < 5000; ++i) {
          if (queue.TryPush(int{i})) accepted.fetch_add(1);
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::microseconds(100 * round));
    queue.Close();
    const uint64_t pushed_at_close = queue.pushed();
    for (auto& t : producers) t.join();
    EXPECT_EQ(queue.pushed(), pushed_at_close);  // Nothing after Close().
    int popped = 0;
    int v;
    while (queue.TryPop(v)) ++popped;
    EXPECT_EQ(popped, accepted.load());
    EXPECT_EQ(queue.pushed(), static_cast<uint64_t>(accepted.load()));
  }
}

}  // namespace
}  // namespace threadpool_internal
}  // namespace mill
