#include "threadpool/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/os_thread.h"
#include "base/testing/process_cpu.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mill {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::UnorderedElementsAre;

// Generous upper bound for "this must eventually happen" waits; only reached
// when the behaviour under test is broken.
constexpr auto kEventually = std::chrono::seconds(30);

// A one-shot gate: tasks block in Wait() until Open(); Entered() tells the
// test that a task has reached the gate (so the worker is known to be busy).
class Gate {
 public:
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    ++entered_;
    cv_.notify_all();
    cv_.wait(lock, [this] { return open_; });
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  bool AwaitEntered(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kEventually, [&] { return entered_ >= n; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  int entered_ = 0;
};

// Thread-safe append-only log of integers.
class Log {
 public:
  void Add(int v) {
    std::lock_guard<std::mutex> lock(mu_);
    values_.push_back(v);
  }
  std::vector<int> values() {
    std::lock_guard<std::mutex> lock(mu_);
    return values_;
  }

 private:
  std::mutex mu_;
  std::vector<int> values_;
};

ThreadPoolOptions Workers(int n) {
  ThreadPoolOptions options;
  options.workers = n;
  return options;
}

template <typename Pred>
bool Eventually(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + kEventually;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

TEST(ThreadPoolTest, DefaultWorkerCountIsHardwareConcurrencyAtLeastOne) {
  ThreadPool pool;
  const int hw = static_cast<int>(std::thread::hardware_concurrency());
  EXPECT_EQ(pool.workers(), std::max(hw, 1));
  EXPECT_EQ(pool.GetMetrics().workers, pool.workers());
}

TEST(ThreadPoolTest, ExplicitWorkerCount) {
  ThreadPool pool(Workers(3));
  EXPECT_EQ(pool.workers(), 3);
}

TEST(ThreadPoolTest, CreateReturnsWorkingPool) {
  absl::StatusOr<std::unique_ptr<ThreadPool>> pool =
      ThreadPool::Create(Workers(2));
  ASSERT_TRUE(pool.ok()) << pool.status();
  auto f = (*pool)->SubmitWithFuture([] { return 7; });
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->get(), 7);
}

TEST(ThreadPoolTest, RunsAllSubmittedTasks) {
  std::atomic<int> sum{0};
  {
    ThreadPool pool(Workers(2));
    for (int i = 1; i <= 1000; ++i) {
      ASSERT_TRUE(pool.Submit([&sum, i] { sum.fetch_add(i); }).ok());
    }
    pool.Shutdown();
    const ThreadPool::Metrics m = pool.GetMetrics();
    EXPECT_EQ(m.submitted, 1000u);
    EXPECT_EQ(m.completed, 1000u);
    EXPECT_EQ(m.queued(), 0u);
  }
  EXPECT_EQ(sum.load(), 1000 * 1001 / 2);
}

TEST(ThreadPoolTest, EmptyTaskIsInvalidArgument) {
  ThreadPool pool(Workers(1));
  EXPECT_EQ(pool.Submit(ThreadPool::Task()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(pool.GetMetrics().submitted, 0u);
}

TEST(ThreadPoolTest, AcceptsMoveOnlyTasks) {
  ThreadPool pool(Workers(1));
  auto value = std::make_unique<int>(41);
  auto f = pool.SubmitWithFuture([v = std::move(value)] { return *v + 1; });
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->get(), 42);
}

// With one worker blocked on a gate, tasks queued at mixed priorities run in
// priority order (Critical first), FIFO within a priority.
TEST(ThreadPoolTest, OneWorkerRunsQueuedTasksInPriorityOrder) {
  ThreadPool pool(Workers(1));
  Gate gate;
  Log log;
  ASSERT_TRUE(pool.Submit([&] { gate.Wait(); }).ok());
  ASSERT_TRUE(gate.AwaitEntered(1));
  const std::pair<int, Priority> tasks[] = {
      {1, Priority::kLow},    {2, Priority::kNormal},   {3, Priority::kHigh},
      {4, Priority::kLow},    {5, Priority::kCritical}, {6, Priority::kNormal},
      {7, Priority::kHigh},   {8, Priority::kCritical}, {9, Priority::kLow},
      {10, Priority::kNormal}};
  for (const auto& [id, priority] : tasks) {
    ASSERT_TRUE(pool.Submit([&log, id = id] { log.Add(id); }, priority).ok());
  }
  const ThreadPool::Metrics m = pool.GetMetrics();
  EXPECT_EQ(m.queue_depth[static_cast<size_t>(Priority::kLow)], 3u);
  EXPECT_EQ(m.queue_depth[static_cast<size_t>(Priority::kNormal)], 3u);
  EXPECT_EQ(m.queue_depth[static_cast<size_t>(Priority::kHigh)], 2u);
  EXPECT_EQ(m.queue_depth[static_cast<size_t>(Priority::kCritical)], 2u);
  gate.Open();
  pool.Shutdown();
  EXPECT_THAT(log.values(), ElementsAre(5, 8, 3, 7, 2, 6, 10, 1, 4, 9));
}

// FIFO within a priority holds past the first ring segment's capacity, where
// the queue chains (and later recycles) further segments.
TEST(ThreadPoolTest, FifoWithinPriorityAcrossRingSegments) {
  ThreadPoolOptions options = Workers(1);
  options.ring_capacity = 4;
  options.max_segment_capacity = 8;
  ThreadPool pool(options);
  Gate gate;
  Log log;
  ASSERT_TRUE(pool.Submit([&] { gate.Wait(); }).ok());
  ASSERT_TRUE(gate.AwaitEntered(1));
  std::vector<int> expected_high, expected_low;
  for (int i = 0; i < 50; ++i) {
    const Priority priority = (i % 3 == 0) ? Priority::kHigh : Priority::kLow;
    ASSERT_TRUE(pool.Submit([&log, i] { log.Add(i); }, priority).ok());
    (priority == Priority::kHigh ? expected_high : expected_low).push_back(i);
  }
  EXPECT_EQ(pool.GetMetrics().queued(), 50u);
  gate.Open();
  pool.Shutdown();
  std::vector<int> expected = expected_high;
  expected.insert(expected.end(), expected_low.begin(), expected_low.end());
  EXPECT_THAT(log.values(), ElementsAreArray(expected));
  EXPECT_EQ(pool.GetMetrics().completed, 51u);
}

TEST(ThreadPoolTest, SubmitAfterShutdownIsRejected) {
  ThreadPool pool(Workers(2));
  EXPECT_FALSE(pool.is_shutdown());
  pool.Shutdown();
  EXPECT_TRUE(pool.is_shutdown());
  bool ran = false;
  const absl::Status status = pool.Submit([&] { ran = true; });
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  auto future = pool.SubmitWithFuture([] { return 1; });
  EXPECT_EQ(future.status().code(), absl::StatusCode::kFailedPrecondition);
  const ThreadPool::Metrics m = pool.GetMetrics();
  EXPECT_EQ(m.rejected, 2u);
  EXPECT_EQ(m.submitted, 0u);
  EXPECT_FALSE(ran);
}

TEST(ThreadPoolTest, FutureCarriesValue) {
  ThreadPool pool(Workers(2));
  std::vector<std::future<int>> futures;
  for (int i = 0; i < 20; ++i) {
    auto f = pool.SubmitWithFuture([i] { return i * i; }, Priority::kHigh);
    ASSERT_TRUE(f.ok());
    futures.push_back(std::move(*f));
  }
  for (int i = 0; i < 20; ++i) EXPECT_EQ(futures[i].get(), i * i);
}

TEST(ThreadPoolTest, FutureOfVoidAndOfMoveOnlyResult) {
  ThreadPool pool(Workers(1));
  std::atomic<bool> ran{false};
  auto v = pool.SubmitWithFuture([&] { ran = true; });
  ASSERT_TRUE(v.ok());
  v->get();
  EXPECT_TRUE(ran.load());
  auto p = pool.SubmitWithFuture([] { return std::make_unique<int>(5); });
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p->get(), 5);
}

TEST(ThreadPoolTest, FutureCarriesException) {
  ThreadPool pool(Workers(1));
  auto f =
      pool.SubmitWithFuture([]() -> int { throw std::runtime_error("boom"); });
  ASSERT_TRUE(f.ok());
  ASSERT_EQ(f->wait_for(kEventually), std::future_status::ready);
  // Join the worker before inspecting the exception: the worker drops its
  // reference to the exception when it destroys the finished task, and that
  // reference count lives in uninstrumented libstdc++, so TSan would report
  // a false race between our read of what() and that release.
  pool.Shutdown();
  try {
    f->get();
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "boom");
  }
  // The exception went to the future, not to the worker.
  EXPECT_EQ(pool.GetMetrics().failed, 0u);
  EXPECT_EQ(pool.GetMetrics().completed, 1u);
}

TEST(ThreadPoolTest, ThrowingTasksAreCountedAndWorkerSurvives) {
  ThreadPool pool(Workers(1));
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(
        pool.Submit([] { throw std::runtime_error("task failed"); }).ok());
    ASSERT_TRUE(pool.Submit([] { throw 42; }).ok());  // Not a std::exception.
  }
  auto after = pool.SubmitWithFuture([] { return std::string("alive"); });
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->get(), "alive");
  pool.Shutdown();
  const ThreadPool::Metrics m = pool.GetMetrics();
  EXPECT_EQ(m.failed, 10u);
  EXPECT_EQ(m.completed, 1u);
  EXPECT_EQ(m.submitted, 11u);
}

TEST(ThreadPoolTest, ShutdownNowDiscardsQueuedTasksAndReturnsCount) {
  ThreadPool pool(Workers(1));
  Gate gate;
  std::atomic<int> ran{0};
  ASSERT_TRUE(pool.Submit([&] { gate.Wait(); }).ok());
  ASSERT_TRUE(gate.AwaitEntered(1));
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(pool.Submit([&] { ran.fetch_add(1); },
                            static_cast<Priority>(i % kNumPriorities))
                    .ok());
  }
  auto broken = pool.SubmitWithFuture([] { return 1; });
  ASSERT_TRUE(broken.ok());
  // ShutdownNow waits for the running gate task, so run it on another thread
  // and open the gate once the queued tasks have been discarded.
  std::future<size_t> discarded =
      std::async(std::launch::async, [&] { return pool.ShutdownNow(); });
  ASSERT_TRUE(Eventually([&] { return pool.GetMetrics().discarded == 11; }));
  EXPECT_EQ(pool.Submit([] {}).code(), absl::StatusCode::kFailedPrecondition);
  gate.Open();
  EXPECT_EQ(discarded.get(), 11u);
  EXPECT_EQ(ran.load(), 0);
  try {
    broken->get();
    FAIL() << "expected broken_promise";
  } catch (const std::future_error& e) {
    EXPECT_EQ(e.code(), std::future_errc::broken_promise);
  }
  const ThreadPool::Metrics m = pool.GetMetrics();
  EXPECT_EQ(m.submitted, 12u);
  EXPECT_EQ(m.completed, 1u);
  EXPECT_EQ(m.discarded, 11u);
  EXPECT_EQ(m.queued(), 0u);
  // Idempotent: nothing left to discard.
  EXPECT_EQ(pool.ShutdownNow(), 0u);
  pool.Shutdown();
}

TEST(ThreadPoolTest, ShutdownDrainsQueuedTasks) {
  ThreadPool pool(Workers(1));
  Gate gate;
  std::atomic<int> ran{0};
  ASSERT_TRUE(pool.Submit([&] { gate.Wait(); }).ok());
  ASSERT_TRUE(gate.AwaitEntered(1));
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(pool.Submit([&] { ran.fetch_add(1); }).ok());
  }
  std::thread closer([&] { pool.Shutdown(); });
  ASSERT_TRUE(Eventually([&] { return pool.is_shutdown(); }));
  EXPECT_EQ(pool.Submit([&] { ran.fetch_add(1000); }).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ran.load(), 0);
  gate.Open();
  closer.join();
  EXPECT_EQ(ran.load(), 100);
  pool.Shutdown();  // Idempotent.
  EXPECT_EQ(pool.GetMetrics().completed, 101u);
}

TEST(ThreadPoolTest, DestructorDrainsQueuedTasks) {
  std::atomic<int> ran{0};
  {
    ThreadPool pool(Workers(2));
    for (int i = 0; i < 2000; ++i) {
      ASSERT_TRUE(pool.Submit([&] { ran.fetch_add(1); },
                              static_cast<Priority>(i % kNumPriorities))
                      .ok());
    }
  }
  EXPECT_EQ(ran.load(), 2000);
}

TEST(ThreadPoolTest, TasksCanSubmitTasks) {
  std::atomic<int> ran{0};
  ThreadPool pool(Workers(2));
  // A binary tree of depth 8 built from inside tasks: 2^9 - 1 tasks.
  std::function<void(int)> spawn = [&](int depth) {
    ran.fetch_add(1);
    if (depth == 0) return;
    for (int i = 0; i < 2; ++i) {
      EXPECT_TRUE(pool.Submit([&spawn, depth] { spawn(depth - 1); }).ok());
    }
  };
  ASSERT_TRUE(pool.Submit([&] { spawn(8); }).ok());
  ASSERT_TRUE(Eventually([&] { return ran.load() == 511; }));
  pool.Shutdown();
  EXPECT_EQ(ran.load(), 511);
  EXPECT_EQ(pool.GetMetrics().completed, 511u);
}

// Two workers: one blocked on a gate must not delay a task submitted after.
TEST(ThreadPoolTest, IdleWorkerTakesTaskWhileAnotherIsBlocked) {
  ThreadPool pool(Workers(2));
  Gate gate;
  ASSERT_TRUE(pool.Submit([&] { gate.Wait(); }).ok());
  ASSERT_TRUE(gate.AwaitEntered(1));
  for (int i = 0; i < 5; ++i) {
    auto f = pool.SubmitWithFuture([i] { return i; });
    ASSERT_TRUE(f.ok());
    ASSERT_EQ(f->wait_for(kEventually), std::future_status::ready);
    EXPECT_EQ(f->get(), i);
  }
  // Only the gated worker is still busy once the other has gone idle.
  EXPECT_TRUE(
      Eventually([&] { return pool.GetMetrics().active_workers == 1; }));
  gate.Open();
}

TEST(ThreadPoolTest, MetricsReflectState) {
  ThreadPool pool(Workers(1));
  Gate gate;
  ASSERT_TRUE(pool.Submit([&] {
                    gate.Wait();
                    std::this_thread::sleep_for(std::chrono::milliseconds(20));
                  })
                  .ok());
  ASSERT_TRUE(gate.AwaitEntered(1));
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(pool.Submit([] {}, Priority::kLow).ok());
  for (int i = 0; i < 2; ++i)
    ASSERT_TRUE(pool.Submit([] {}, Priority::kCritical).ok());
  ASSERT_TRUE(
      pool.Submit([] { throw std::logic_error("x"); }, Priority::kHigh).ok());

  ThreadPool::Metrics m = pool.GetMetrics();
  EXPECT_EQ(m.submitted, 7u);
  EXPECT_EQ(m.completed, 0u);
  EXPECT_EQ(m.failed, 0u);
  EXPECT_EQ(m.active_workers, 1);
  EXPECT_EQ(m.queue_depth[static_cast<size_t>(Priority::kLow)], 3u);
  EXPECT_EQ(m.queue_depth[static_cast<size_t>(Priority::kNormal)], 0u);
  EXPECT_EQ(m.queue_depth[static_cast<size_t>(Priority::kHigh)], 1u);
  EXPECT_EQ(m.queue_depth[static_cast<size_t>(Priority::kCritical)], 2u);
  EXPECT_EQ(m.queued(), 6u);

  gate.Open();
  ASSERT_TRUE(Eventually([&] {
    m = pool.GetMetrics();
    return m.completed + m.failed == 7 && m.active_workers == 0;
  }));
  pool.Shutdown();
  EXPECT_EQ(pool.Submit([] {}).code(), absl::StatusCode::kFailedPrecondition);
  m = pool.GetMetrics();
  EXPECT_EQ(m.submitted, 7u);
  EXPECT_EQ(m.completed, 6u);
  EXPECT_EQ(m.failed, 1u);
  EXPECT_EQ(m.rejected, 1u);
  EXPECT_EQ(m.discarded, 0u);
  EXPECT_EQ(m.active_workers, 0);
  EXPECT_EQ(m.queued(), 0u);
  EXPECT_GE(m.busy_ns, 20'000'000u);  // The gate task slept 20 ms.
}

// Each of several producers counts how many of its submits were accepted;
// whether Shutdown or ShutdownNow stops them, every accepted task either ran
// or was discarded, and the pool's counters agree.
void RunShutdownRace(bool now, int iteration) {
  constexpr int kProducers = 3;
  ThreadPoolOptions options = Workers(2);
  options.ring_capacity = 16;  // Exercise segment growth and recycling too.
  options.max_segment_capacity = 64;
  ThreadPool pool(options);
  std::atomic<uint64_t> ran{0};
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> rejected{0};
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      // Submit until shutdown rejects us (bounded in case it never comes).
      int my_rejections = 0;
      for (int i = 0; i < 2'000'000 && my_rejections < 10; ++i) {
        const absl::Status s =
            pool.Submit([&ran] { ran.fetch_add(1, std::memory_order_relaxed); },
                        static_cast<Priority>((i + p) % kNumPriorities));
        if (s.ok()) {
          accepted.fetch_add(1);
        } else {
          ASSERT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
          rejected.fetch_add(1);
          ++my_rejections;
        }
      }
    });
  }
  // Shut down while every producer is still submitting.
  ASSERT_TRUE(Eventually([&] { return accepted.load() >= 1000; }));
  std::this_thread::sleep_for(std::chrono::microseconds(300 * iteration));
  const uint64_t discarded = now ? pool.ShutdownNow() : (pool.Shutdown(), 0);
  for (auto& t : producers) t.join();

  const ThreadPool::Metrics m = pool.GetMetrics();
  EXPECT_GE(rejected.load(), static_cast<uint64_t>(kProducers));
  EXPECT_EQ(accepted.load(), ran.load() + discarded);
  EXPECT_EQ(m.submitted, accepted.load());
  EXPECT_EQ(m.completed, ran.load());
  EXPECT_EQ(m.discarded, discarded);
  EXPECT_EQ(m.rejected, rejected.load());
  EXPECT_EQ(m.failed, 0u);
  EXPECT_EQ(m.queued(), 0u);
  if (!now) {
    EXPECT_EQ(discarded, 0u);
  }
}

TEST(ThreadPoolTest, ShutdownWhileProducersSubmitAccountsForEveryTask) {
  for (int i = 0; i < 4; ++i) RunShutdownRace(/*now=*/false, i);
}

TEST(ThreadPoolTest, ShutdownNowWhileProducersSubmitAccountsForEveryTask) {
  for (int i = 0; i < 4; ++i) RunShutdownRace(/*now=*/true, i);
}

TEST(ThreadPoolTest, ConcurrentShutdownCallsAreSafe) {
  ThreadPool pool(Workers(2));
  std::atomic<uint64_t> ran{0};
  for (int i = 0; i < 5000; ++i) {
    ASSERT_TRUE(pool.Submit([&] { ran.fetch_add(1); }).ok());
  }
  std::atomic<uint64_t> discarded{0};
  std::vector<std::thread> closers;
  for (int i = 0; i < 4; ++i) {
    closers.emplace_back([&, i] {
      if (i % 2 == 0) {
        pool.Shutdown();
      } else {
        discarded.fetch_add(pool.ShutdownNow());
      }
      // Whichever call returns, no worker is running any more.
      EXPECT_EQ(pool.GetMetrics().active_workers, 0);
    });
  }
  for (auto& t : closers) t.join();
  EXPECT_EQ(ran.load() + discarded.load(), 5000u);
  EXPECT_EQ(pool.GetMetrics().discarded, discarded.load());
}

// Shutdown() from a task stops admission and returns without joining its own
// thread; the queue still drains and the destructor joins.
TEST(ThreadPoolTest, ShutdownFromInsideTaskDoesNotDeadlock) {
  std::atomic<int> ran{0};
  absl::Status late_submit;
  {
    ThreadPool pool(Workers(2));
    Gate gate;
    ASSERT_TRUE(pool.Submit([&] { gate.Wait(); }).ok());
    ASSERT_TRUE(gate.AwaitEntered(1));
    ASSERT_TRUE(pool.Submit([&] {
                      EXPECT_TRUE(pool.IsWorkerThread());
                      pool.Shutdown();
                      late_submit = pool.Submit([&] { ran.fetch_add(100); });
                      ran.fetch_add(1);
                    })
                    .ok());
    ASSERT_TRUE(Eventually([&] { return pool.is_shutdown(); }));
    gate.Open();
  }
  EXPECT_EQ(ran.load(), 1);
  EXPECT_EQ(late_submit.code(), absl::StatusCode::kFailedPrecondition);
}

TEST(ThreadPoolTest, ShutdownNowFromInsideTaskDiscardsAndReturns) {
  std::atomic<int> ran{0};
  size_t discarded = 0;
  {
    ThreadPool pool(Workers(1));
    Gate gate;
    ASSERT_TRUE(pool.Submit([&] {
                      gate.Wait();
                      discarded = pool.ShutdownNow();
                    })
                    .ok());
    ASSERT_TRUE(gate.AwaitEntered(1));
    for (int i = 0; i < 7; ++i) {
      ASSERT_TRUE(pool.Submit([&] { ran.fetch_add(1); }).ok());
    }
    gate.Open();
    pool.Shutdown();  // Joins the worker, which exits after that task.
    EXPECT_EQ(pool.GetMetrics().discarded, 7u);
  }
  EXPECT_EQ(discarded, 7u);
  EXPECT_EQ(ran.load(), 0);
}

// Collects the name of every worker: each of `n` tasks waits until all `n`
// are running, so each runs on a different worker.
std::set<std::string> WorkerNames(ThreadPool& pool, int n) {
  std::mutex mu;
  std::condition_variable cv;
  std::set<std::string> names;
  int arrived = 0;
  std::vector<std::future<void>> futures;
  for (int i = 0; i < n; ++i) {
    auto f = pool.SubmitWithFuture([&] {
      std::unique_lock<std::mutex> lock(mu);
      names.insert(CurrentThreadName());
      ++arrived;
      cv.notify_all();
      cv.wait_for(lock, kEventually, [&] { return arrived == n; });
    });
    EXPECT_TRUE(f.ok());
    futures.push_back(std::move(*f));
  }
  for (auto& f : futures) f.get();
  return names;
}

TEST(ThreadPoolTest, WorkersAreNamedWithPrefixAndIndex) {
  ThreadPoolOptions options = Workers(2);
  options.name_prefix = "io-";
  ThreadPool pool(options);
  EXPECT_THAT(WorkerNames(pool, 2), UnorderedElementsAre("io-0", "io-1"));
}

TEST(ThreadPoolTest, LongPrefixIsTruncatedKeepingTheIndex) {
  ThreadPoolOptions options = Workers(2);
  options.name_prefix = "a-very-long-worker-prefix-";
  ThreadPool pool(options);
  EXPECT_THAT(WorkerNames(pool, 2),
              UnorderedElementsAre("a-very-long-wo0", "a-very-long-wo1"));
}

TEST(ThreadPoolTest, DefaultNames) {
  ThreadPool pool(Workers(1));
  EXPECT_THAT(WorkerNames(pool, 1), UnorderedElementsAre("mill-pool-0"));
}

TEST(ThreadPoolTest, IsWorkerThreadOnlyInsideOwnPool) {
  ThreadPool a(Workers(1));
  ThreadPool b(Workers(1));
  EXPECT_FALSE(a.IsWorkerThread());
  auto in_a = a.SubmitWithFuture(
      [&] { return std::make_pair(a.IsWorkerThread(), b.IsWorkerThread()); });
  ASSERT_TRUE(in_a.ok());
  EXPECT_EQ(in_a->get(), std::make_pair(true, false));
}

TEST(ThreadPoolTest, PriorityNames) {
  EXPECT_STREQ(PriorityName(Priority::kLow), "low");
  EXPECT_STREQ(PriorityName(Priority::kNormal), "normal");
  EXPECT_STREQ(PriorityName(Priority::kHigh), "high");
  EXPECT_STREQ(PriorityName(Priority::kCritical), "critical");
}

// Parked workers wake for new work: with no spinning, every task submitted
// after the pool goes idle must still run (a lost wake-up would hang here).
TEST(ThreadPoolTest, ParkedWorkersWakeForEachBurst) {
  ThreadPoolOptions options = Workers(2);
  options.spin_time = std::chrono::nanoseconds(0);
  ThreadPool pool(options);
  for (int round = 0; round < 200; ++round) {
    auto f =
        pool.SubmitWithFuture([round] { return round; },
                              static_cast<Priority>(round % kNumPriorities));
    ASSERT_TRUE(f.ok());
    ASSERT_EQ(f->wait_for(kEventually), std::future_status::ready) << round;
    EXPECT_EQ(f->get(), round);
  }
}

// No busy waiting: idle workers spin for at most spin_time, then park.
TEST(ThreadPoolTest, IdlePoolUsesNoCpu) {
  ThreadPool pool(Workers(2));
  auto f = pool.SubmitWithFuture([] { return 1; });
  ASSERT_TRUE(f.ok());
  ASSERT_EQ(f->get(), 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const double before = testing::ProcessCpuMillis();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // Two spinning workers would use ~600 ms of CPU here.
  EXPECT_LT(testing::ProcessCpuMillis() - before, 30.0);
}

}  // namespace
}  // namespace mill
