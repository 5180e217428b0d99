#include "base/compact_mutex.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace mill {
namespace {

TEST(CompactMutexTest, IsFourBytesOnLinuxAndWindows) {
#ifdef MILL_IO_COMPACT_MUTEX_FUTEX
  EXPECT_EQ(sizeof(CompactMutex), 4u);
#endif
}

class Counter {
 public:
  void Add() ABSL_LOCKS_EXCLUDED(mu_) {
    CompactMutexLock lock(&mu_);
    // A read-modify-write split in two: a lost update would show.
    const int64_t v = value_;
    value_ = v + 1;
  }
  int64_t value() ABSL_LOCKS_EXCLUDED(mu_) {
    CompactMutexLock lock(&mu_);
    return value_;
  }

 private:
  CompactMutex mu_;
  int64_t value_ ABSL_GUARDED_BY(mu_) = 0;
};

TEST(CompactMutexTest, ExcludesUnderContention) {
  Counter counter;
  std::vector<std::thread> threads;
  constexpr int kThreads = 4;
  constexpr int kAdds = 50000;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kAdds; ++i) counter.Add();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter.value(), int64_t{kThreads} * kAdds);
}

// A holder that sleeps makes waiters take the futex path; each wakes.
TEST(CompactMutexTest, SleepingWaitersAreWoken) {
  CompactMutex mu;
  std::atomic<int> done{0};
  mu.Lock();
  std::vector<std::thread> waiters;
  for (int t = 0; t < 3; ++t) {
    waiters.emplace_back([&] {
      CompactMutexLock lock(&mu);
      done.fetch_add(1);
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(done.load(), 0);  // all blocked behind us
  mu.Unlock();
  for (auto& t : waiters) t.join();
  EXPECT_EQ(done.load(), 3);
}

}  // namespace
}  // namespace mill
