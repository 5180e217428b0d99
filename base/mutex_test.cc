#include "base/mutex.h"

#include <chrono>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace mill {
namespace {

class Counter {
 public:
  void Add() ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    ++value_;
    if (value_ == target_) reached_.NotifyAll();
  }
  void WaitFor(int target) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    target_ = target;
    while (value_ < target) reached_.Wait(&mu_);
  }
  int value() ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return value_;
  }

 private:
  Mutex mu_;
  CondVar reached_;
  int value_ ABSL_GUARDED_BY(mu_) = 0;
  int target_ ABSL_GUARDED_BY(mu_) = -1;
};

TEST(MutexTest, ExcludesConcurrentWriters) {
  Counter counter;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) counter.Add();
    });
  }
  counter.WaitFor(40000);
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter.value(), 40000);
}

TEST(MutexTest, LockCanBeReleasedAndRetakenInItsScope) {
  Mutex mu;
  MutexLock lock(&mu);
  lock.Unlock();
  const bool free_while_released = mu.TryLock();
  EXPECT_TRUE(free_while_released);
  if (free_while_released) mu.Unlock();
  lock.Lock();
  EXPECT_FALSE(mu.TryLock());  // held again
}

TEST(MutexTest, TimedWaitReportsTheTimeout) {
  Mutex mu;
  CondVar cv;
  MutexLock lock(&mu);
  EXPECT_FALSE(cv.WaitFor(&mu, std::chrono::milliseconds(1)));
  EXPECT_FALSE(mu.TryLock());  // returned with the lock held
}

TEST(SharedMutexTest, ReadersShareWritersExclude) {
  SharedMutex mu;
  int value = 0;
  {
    ReaderMutexLock first(&mu);
    bool second_reader_got_in = false;
    std::thread reader([&] {
      ReaderMutexLock second(&mu);
      second_reader_got_in = true;
    });
    reader.join();  // would hang if readers excluded each other
    EXPECT_TRUE(second_reader_got_in);
  }
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        WriterMutexLock lock(&mu);
        ++value;
      }
    });
  }
  for (auto& t : writers) t.join();
  ReaderMutexLock lock(&mu);
  EXPECT_EQ(value, 40000);
}

}  // namespace
}  // namespace mill
