// End-to-end task throughput: P producer threads submit N empty tasks in
// total, then the benchmark waits until the pool has completed all of them.
// items_per_second is tasks/second; compare ThreadPool with the baselines at
// the same P.
//
//   BM_Baseline      one std::mutex + std::condition_variable +
//                    std::deque<std::function<void()>>, notify_one per submit
//                    (outside the lock: the better-behaved textbook variant).
//   BM_ThreadPool    mill::ThreadPool (shared per-priority MPMC rings).
//   BM_StealingPool  per-worker MPMC rings, producers spread round-robin,
//                    idle workers steal; same spin and park/wake protocol
//                    as ThreadPool, but no priorities, metrics or shutdown
//                    accounting, and producers wait when a ring is full. Kept
//                    here to justify the shared-queue design choice (see the
//                    report in thread_pool.h).
//
// All pools have 2 workers and count completions per worker (no shared
// counter), and the waiting thread polls with a short sleep so it does not
// steal a core from the pool on a 2-core machine.
//
//   BM_Spin          ThreadPool with ThreadPoolOptions::spin_time 0, 5, 20
//                    and 50 microseconds (the default is 20): what the idle
//                    spin buys in throughput.
//   BM_Sparse        one task every ~100 us: process CPU time per task (the
//                    cost of an idle pool: spinning workers burn it, parked
//                    ones do not), next to the baseline's.
//
//   ./bazelw run --config=opt //threadpool:thread_pool_benchmark --
//       --benchmark_min_time=0.2   (one command line)
#include <time.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"
#include "threadpool/internal/mpmc_ring.h"
#include "threadpool/thread_pool.h"

namespace mill {
namespace {

constexpr int kWorkers = 2;
constexpr int64_t kTasksPerIteration = 200000;

struct alignas(64) PaddedCounter {
  std::atomic<uint64_t> value{0};
};

// The baseline named in the task: mutex + condition variable + deque of
// std::function.
class BaselinePool {
 public:
  explicit BaselinePool(int workers) : counters_(new PaddedCounter[workers]) {
    for (int i = 0; i < workers; ++i) {
      threads_.emplace_back([this, i] { Run(counters_[i].value); });
    }
  }
  ~BaselinePool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void Submit(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(task));
    }
    cv_.notify_one();
  }
  uint64_t completed() const {
    uint64_t sum = 0;
    for (size_t i = 0; i < threads_.size(); ++i) {
      sum += counters_[i].value.load(std::memory_order_relaxed);
    }
    return sum;
  }

 private:
  void Run(std::atomic<uint64_t>& completed) {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      task();
      completed.store(completed.load(std::memory_order_relaxed) + 1,
                      std::memory_order_relaxed);
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::unique_ptr<PaddedCounter[]> counters_;
  std::vector<std::thread> threads_;
};

// Per-worker queues with stealing, for comparison with ThreadPool's shared
// queues. No priorities, no overflow (producers spin when a ring is full),
// no shutdown protocol beyond what the benchmark needs.
class StealingPool {
 public:
  using Task = absl::AnyInvocable<void()>;

  explicit StealingPool(int workers) : n_(workers) {
    for (int i = 0; i < n_; ++i) {
      rings_.push_back(
          std::make_unique<threadpool_internal::MpmcRing<Task>>(4096));
    }
    counters_.reset(new PaddedCounter[n_]);
    for (int i = 0; i < n_; ++i) threads_.emplace_back([this, i] { Run(i); });
  }
  ~StealingPool() {
    stop_.store(true);
    { std::lock_guard<std::mutex> lock(mu_); }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void Submit(Task task) {
    thread_local unsigned next = 0;
    for (;;) {
      for (int k = 0; k < n_; ++k) {
        auto& ring = *rings_[next++ % n_];
        if (ring.TryPush(std::move(task)) ==
            threadpool_internal::MpmcRing<Task>::PushResult::kOk) {
          if (parked_.load(std::memory_order_seq_cst) > 0) Wake();
          return;
        }
      }
      std::this_thread::yield();
    }
  }
  uint64_t completed() const {
    uint64_t sum = 0;
    for (int i = 0; i < n_; ++i) {
      sum += counters_[i].value.load(std::memory_order_relaxed);
    }
    return sum;
  }

 private:
  bool TryPop(int self, Task& out) {
    for (int k = 0; k < n_; ++k) {
      if (rings_[(self + k) % n_]->TryPop(out)) return true;
    }
    return false;
  }
  bool HasWork() const {
    for (const auto& ring : rings_) {
      if (ring->SizeApprox() > 0) return true;
    }
    return false;
  }
  void Wake() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (parked_.load(std::memory_order_relaxed) == 0) return;
      parked_.fetch_sub(1, std::memory_order_relaxed);
      ++wakeups_;
    }
    cv_.notify_one();
  }
  void Run(int self) {
    auto& completed = counters_[self].value;
    Task task;
    int idle = 0;
    while (!stop_.load(std::memory_order_relaxed)) {
      if (TryPop(self, task)) {
        task();
        task = nullptr;
        completed.store(completed.load(std::memory_order_relaxed) + 1,
                        std::memory_order_relaxed);
        idle = 0;
        continue;
      }
      if (HasWork()) continue;
      if (idle < 128) {
        if (idle++ < 64) {
          __builtin_ia32_pause();
        } else {
          std::this_thread::yield();
        }
        continue;
      }
      idle = 0;
      std::unique_lock<std::mutex> lock(mu_);
      parked_.fetch_add(1, std::memory_order_seq_cst);
      if (HasWork() || stop_.load()) {
        parked_.fetch_sub(1, std::memory_order_relaxed);
        continue;
      }
      cv_.wait(lock, [this] { return wakeups_ > 0 || stop_.load(); });
      if (wakeups_ > 0) {
        --wakeups_;
      } else {
        parked_.fetch_sub(1, std::memory_order_relaxed);
      }
    }
  }

  const int n_;
  std::vector<std::unique_ptr<threadpool_internal::MpmcRing<Task>>> rings_;
  std::unique_ptr<PaddedCounter[]> counters_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  std::atomic<int> parked_{0};  // Parked and not yet signaled.
  std::mutex mu_;
  std::condition_variable cv_;
  int wakeups_ = 0;
};

uint64_t Completed(const BaselinePool& pool) { return pool.completed(); }
uint64_t Completed(const StealingPool& pool) { return pool.completed(); }
uint64_t Completed(const ThreadPool& pool) {
  return pool.GetMetrics().completed;
}

void SubmitEmpty(BaselinePool& pool) {
  pool.Submit([] {});
}
void SubmitEmpty(StealingPool& pool) {
  pool.Submit([] {});
}
void SubmitEmpty(ThreadPool& pool) {
  if (!pool.Submit([] {}).ok()) std::abort();
}

template <typename Pool>
std::unique_ptr<Pool> MakePool() {
  return std::make_unique<Pool>(kWorkers);
}
template <>
std::unique_ptr<ThreadPool> MakePool<ThreadPool>() {
  ThreadPoolOptions options;
  options.workers = kWorkers;
  return std::make_unique<ThreadPool>(options);
}

void RunThroughput(benchmark::State& state, int producers,
                   const std::function<void()>& submit,
                   const std::function<uint64_t()>& completed) {
  uint64_t done = completed();
  for (auto _ : state) {
    std::vector<std::thread> threads;
    for (int p = 0; p < producers; ++p) {
      const int64_t share = kTasksPerIteration / producers +
                            (p < kTasksPerIteration % producers ? 1 : 0);
      threads.emplace_back([&submit, share] {
        for (int64_t i = 0; i < share; ++i) submit();
      });
    }
    for (auto& t : threads) t.join();
    done += kTasksPerIteration;
    while (completed() < done) {
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }
  state.SetItemsProcessed(state.iterations() * kTasksPerIteration);
  state.counters["producers"] = producers;
}

void BM_Spin(benchmark::State& state) {
  ThreadPoolOptions options;
  options.workers = kWorkers;
  options.spin_time = std::chrono::microseconds(state.range(0));
  ThreadPool pool(options);
  RunThroughput(
      state, static_cast<int>(state.range(1)), [&pool] { SubmitEmpty(pool); },
      [&pool] { return Completed(pool); });
}
BENCHMARK(BM_Spin)
    ->ArgNames({"spin_us", "producers"})
    ->ArgsProduct({{0, 5, 20, 50}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

double ProcessCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// One task at a time, ~100 us apart: the pool is idle almost always.
template <typename Pool>
void SparseLoop(benchmark::State& state, Pool& pool) {
  constexpr int kTasks = 200;
  double cpu = 0;
  int64_t tasks = 0;
  for (auto _ : state) {
    const double before = ProcessCpuSeconds();
    for (int i = 0; i < kTasks; ++i) {
      std::atomic<bool> ran{false};
      (void)pool.Submit([&ran] { ran.store(true, std::memory_order_release); });
      while (!ran.load(std::memory_order_acquire)) {
        std::this_thread::sleep_for(std::chrono::microseconds(10));
      }
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    cpu += ProcessCpuSeconds() - before;
    tasks += kTasks;
  }
  state.counters["cpu_us_per_task"] = cpu * 1e6 / static_cast<double>(tasks);
}

void BM_SparseBaseline(benchmark::State& state) {
  BaselinePool pool(kWorkers);
  SparseLoop(state, pool);
}
void BM_SparseThreadPool(benchmark::State& state) {
  ThreadPoolOptions options;
  options.workers = kWorkers;
  options.spin_time = std::chrono::microseconds(state.range(0));
  ThreadPool pool(options);
  SparseLoop(state, pool);
}
BENCHMARK(BM_SparseBaseline)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SparseThreadPool)
    ->ArgName("spin_us")
    ->Arg(0)
    ->Arg(20)
    ->Arg(200)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

template <typename Pool>
void BM_Throughput(benchmark::State& state) {
  const int producers = static_cast<int>(state.range(0));
  std::unique_ptr<Pool> pool = MakePool<Pool>();
  uint64_t done = Completed(*pool);
  for (auto _ : state) {
    std::vector<std::thread> threads;
    for (int p = 0; p < producers; ++p) {
      const int64_t share = kTasksPerIteration / producers +
                            (p < kTasksPerIteration % producers ? 1 : 0);
      threads.emplace_back([&pool, share] {
        for (int64_t i = 0; i < share; ++i) SubmitEmpty(*pool);
      });
    }
    for (auto& t : threads) t.join();
    done += kTasksPerIteration;
    while (Completed(*pool) < done) {
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }
  state.SetItemsProcessed(state.iterations() * kTasksPerIteration);
  state.counters["producers"] = producers;
}

BENCHMARK_TEMPLATE(BM_Throughput, BaselinePool)
    ->ArgName("producers")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_Throughput, ThreadPool)
    ->ArgName("producers")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_Throughput, StealingPool)
    ->ArgName("producers")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace mill
