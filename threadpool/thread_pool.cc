#include "threadpool/thread_pool.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <system_error>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "base/call_scope.h"
#include "base/mutex.h"
#include "base/os_thread.h"
#include "threadpool/internal/mpmc_ring.h"
#include "threadpool/internal/segmented_queue.h"

namespace mill {
namespace {

// Pushed by each worker for its whole life, keyed by its pool: "is this
// thread one of that pool's workers?" (IsWorkerThread).
ABSL_CONST_INIT const CallScopeKind kWorkerScope{"ThreadPool worker"};

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

int ResolveWorkerCount(const ThreadPoolOptions& options) {
  if (options.workers > 0) return options.workers;
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

// Single-writer counter bump: no locked instruction needed.
inline void Bump(std::atomic<uint64_t>& counter, uint64_t by = 1) {
  counter.store(counter.load(std::memory_order_relaxed) + by,
                std::memory_order_relaxed);
}

uint64_t NowNs() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

}  // namespace

const char* PriorityName(Priority priority) {
  switch (priority) {
    case Priority::kLow:
      return "low";
    case Priority::kNormal:
      return "normal";
    case Priority::kHigh:
      return "high";
    case Priority::kCritical:
      return "critical";
  }
  return "unknown";
}

struct ThreadPool::State {
  // One queue per priority: unbounded, lock-free on the fast path.
  using Lane = threadpool_internal::SegmentedQueue<Task>;

  // Per-worker state, one cache line each; counters have a single writer
  // (the worker) so they are bumped with plain load+store, not RMW.
  struct alignas(threadpool_internal::kCacheLineSize) Worker {
    std::thread thread;
    std::atomic<uint64_t> completed{0};
    std::atomic<uint64_t> failed{0};
    std::atomic<uint64_t> busy_ns{0};
    std::atomic<bool> active{false};
  };

  State(const ThreadPool* pool, ThreadPoolOptions options, int workers)
      : pool(pool),
        options(std::move(options)),
        worker_count(workers),
        spin_ns(this->options.spin_time.count() > 0
                    ? static_cast<uint64_t>(this->options.spin_time.count())
                    : 0),
        workers_(new Worker[workers]) {
    for (auto& lane : lanes_) {
      lane = std::make_unique<Lane>(this->options.ring_capacity,
                                    this->options.max_segment_capacity);
    }
  }

  void WorkerLoop(int index);
  bool TryPop(Task& out);
  // Lock-free hint; may miss work while a segment is being recycled.
  bool MaybeHasQueuedWork() const;
  // Exact (takes each lane's mutex); used before parking and exiting.
  bool HasQueuedWork() const;
  // Queues `task`, or hands it back (returns false) if the lane is closed.
  bool Push(Task& task, Priority priority);
  void WakeOne() ABSL_LOCKS_EXCLUDED(park_mu_);
  void Park() ABSL_LOCKS_EXCLUDED(park_mu_);
  // Stops admission on every lane, then tells the workers; idempotent.
  void Close() ABSL_LOCKS_EXCLUDED(park_mu_);
  size_t DiscardQueued();
  void JoinWorkers() ABSL_LOCKS_EXCLUDED(join_mu_);
  void StartWorkers();

  const ThreadPool* const pool;
  const ThreadPoolOptions options;
  const int worker_count;
  const uint64_t spin_ns;
  std::unique_ptr<Lane> lanes_[kNumPriorities];
  std::unique_ptr<Worker[]> workers_;

  // Shutdown has begun: Submit checks this first (a plain load), then the
  // lane itself refuses pushes once closed (see Close()).
  std::atomic<bool> closing_{false};
  // Parked workers that no wake-up has been sent to yet. Read by every
  // Submit; written only when workers park and are woken. On its own cache
  // line (padding, not alignas, so a pool may live anywhere, including on
  // an ASan fake stack).
  threadpool_internal::CacheLinePadded<char> gap_;
  threadpool_internal::CacheLinePadded<std::atomic<int>> unsignaled_parked_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> discard_{false};
  std::atomic<uint64_t> rejected_{0};
  std::atomic<uint64_t> discarded_{0};

  Mutex park_mu_;
  CondVar park_cv_;
  int wakeups_ ABSL_GUARDED_BY(park_mu_) = 0;  // Not yet consumed.

  Mutex join_mu_;  // Serializes JoinWorkers() (the threads are joined once).
};

ThreadPool::ThreadPool(ThreadPoolOptions options)
    : workers_(ResolveWorkerCount(options)),
      state_(std::make_unique<State>(this, std::move(options), workers_)) {
  state_->StartWorkers();
}

absl::StatusOr<std::unique_ptr<ThreadPool>> ThreadPool::Create(
    ThreadPoolOptions options) {
  try {
    return std::make_unique<ThreadPool>(std::move(options));
  } catch (const std::system_error& e) {
    return absl::ResourceExhaustedError(
        std::string("ThreadPool: cannot start worker thread: ") + e.what());
  }
}

void ThreadPool::State::StartWorkers() {
  int started = 0;
  try {
    for (; started < worker_count; ++started) {
      workers_[started].thread =
          std::thread(&ThreadPool::State::WorkerLoop, this, started);
    }
  } catch (...) {
    // The destructor will not run: stop the workers already started.
    Close();
    JoinWorkers();
    throw;
  }
}

ThreadPool::~ThreadPool() {
  if (IsWorkerThread()) {
    std::fprintf(stderr,
                 "mill::ThreadPool destroyed from one of its own worker "
                 "threads; a worker cannot join itself\n");
    std::abort();
  }
  Shutdown();
}

absl::Status ThreadPool::Submit(Task task, Priority priority) {
  if (!task) {
    return absl::InvalidArgumentError("ThreadPool::Submit: empty task");
  }
  if (static_cast<size_t>(priority) >= kNumPriorities) {
    return absl::InvalidArgumentError("ThreadPool::Submit: bad priority");
  }
  // No read-modify-write here beyond the ring's own CAS: admission control
  // is the lane's closed state (see Close()), and this flag only makes
  // rejection fast and keeps one thread's submits consistent across lanes.
  State& state = *state_;
  if (state.closing_.load(std::memory_order_acquire) ||
      !state.Push(task, priority)) {
    state.rejected_.fetch_add(1, std::memory_order_relaxed);
    return absl::FailedPreconditionError(
        "ThreadPool: shut down, task rejected");
  }
  // Dekker pairing with Park(): Push's position update is seq_cst and so is
  // this load, so either a parking worker sees the task or we see it parked.
  if (state.unsignaled_parked_.value.load(std::memory_order_seq_cst) > 0) {
    state.WakeOne();
  }
  return absl::OkStatus();
}

bool ThreadPool::State::Push(Task& task, Priority priority) {
  return lanes_[static_cast<size_t>(priority)]->TryPush(std::move(task));
}

bool ThreadPool::State::TryPop(Task& out) {
  for (size_t i = kNumPriorities; i-- > 0;) {
    if (lanes_[i]->TryPop(out)) return true;
  }
  return false;
}

bool ThreadPool::State::MaybeHasQueuedWork() const {
  for (const auto& lane : lanes_) {
    if (lane->MaybeNonEmpty()) return true;
  }
  return false;
}

bool ThreadPool::State::HasQueuedWork() const {
  for (const auto& lane : lanes_) {
    if (lane->NonEmpty()) return true;
  }
  return false;
}

void ThreadPool::State::WakeOne() {
  {
    MutexLock lock(&park_mu_);
    // Every parked worker already has a wake-up coming: nothing to do.
    if (unsignaled_parked_.value.load(std::memory_order_relaxed) == 0) return;
    unsignaled_parked_.value.fetch_sub(1, std::memory_order_relaxed);
    ++wakeups_;
  }
  park_cv_.NotifyOne();
}

// Invariant (under park_mu_): unsignaled_parked_ + wakeups_ == number of
// workers between announcing themselves here and leaving. Producers read
// unsignaled_parked_ without the lock, so once a parked worker has been
// signaled, further submits skip the mutex until it parks again.
void ThreadPool::State::Park() {
  MutexLock lock(&park_mu_);
  unsignaled_parked_.value.fetch_add(1, std::memory_order_seq_cst);
  // Re-check after announcing ourselves (see Submit): a task pushed before
  // the announcement is seen here; one pushed after it sees us parked.
  if (HasQueuedWork() || stop_.load(std::memory_order_seq_cst) ||
      discard_.load(std::memory_order_relaxed)) {
    unsignaled_parked_.value.fetch_sub(1, std::memory_order_relaxed);
    return;
  }
  while (wakeups_ == 0 && !stop_.load(std::memory_order_relaxed)) {
    park_cv_.Wait(&park_mu_);
  }
  if (wakeups_ > 0) {
    --wakeups_;  // Our announcement was already withdrawn by WakeOne.
  } else {
    unsignaled_parked_.value.fetch_sub(1, std::memory_order_relaxed);
  }
}

void ThreadPool::State::WorkerLoop(int index) {
  const CallScope worker_scope(kWorkerScope, pool);
  {
    const std::string suffix = std::to_string(index);
    const size_t prefix_len =
        suffix.size() >= kMaxThreadName ? 0 : kMaxThreadName - suffix.size();
    SetCurrentThreadName(options.name_prefix.substr(0, prefix_len) + suffix);
  }

  Worker& self = workers_[index];
  Task task;
  bool busy = false;
  uint64_t busy_start = 0;
  uint64_t idle_since = 0;  // 0: not idle (the clock is read once per gap)
  auto end_busy = [&] {
    if (!busy) return;
    busy = false;
    Bump(self.busy_ns, NowNs() - busy_start);
    self.active.store(false, std::memory_order_relaxed);
  };

  for (;;) {
    if (discard_.load(std::memory_order_relaxed)) break;
    if (TryPop(task)) {
      if (!busy) {
        busy = true;
        self.active.store(true, std::memory_order_relaxed);
        busy_start = NowNs();
      }
      try {
        task();
        Bump(self.completed);
      } catch (...) {
        Bump(self.failed);
      }
      // Destroy the callable (and what it captured) here, not at the next
      // assignment, so its resources are released as soon as it has run.
      task = nullptr;
      idle_since = 0;
      continue;
    }
    end_busy();
    if (stop_.load(std::memory_order_acquire)) {
      // Close() closed every lane before setting stop_, so no push can
      // start now, and claimed-but-unpublished slots count as queued work:
      // an empty queue now stays empty.
      if (!HasQueuedWork()) break;
      CpuRelax();
      continue;
    }
    if (MaybeHasQueuedWork()) {
      // A push has claimed a slot but not published it yet, or the head
      // segment is drained and the next TryPop moves past it.
      CpuRelax();
      continue;
    }
    // Spin for at most spin_ns of wall time (cheap to resume while a
    // producer is mid-burst), then park: pause hints for the first half,
    // then yield (sched_yield), which lets a producer sharing the core
    // run (with as many workers as cores, pure spinning starves the
    // producers). The bound is in time, so however cheap a yield is, an idle
    // worker parks after spin_ns.
    if (spin_ns > 0) {
      const uint64_t now = NowNs();
      if (idle_since == 0) idle_since = now;
      const uint64_t idle = now - idle_since;
      if (idle < spin_ns) {
        if (idle < spin_ns / 2) {
          for (int i = 0; i < 8; ++i) CpuRelax();
        } else {
          std::this_thread::yield();
        }
        continue;
      }
    }
    idle_since = 0;
    Park();
  }
  end_busy();
}

void ThreadPool::State::Close() {
  closing_.store(true, std::memory_order_seq_cst);
  // After this no push can start on any lane (the ring CAS fails on the
  // closed position). Pushes that already claimed a slot still publish it;
  // they count as queued work (HasQueuedWork), so workers and DiscardQueued
  // wait for them.
  for (auto& lane : lanes_) lane->Close();
  stop_.store(true, std::memory_order_seq_cst);
  // Taking the lock orders stop_ before a parking worker's check of it, so
  // no worker parks after this wake-up and sleeps through it.
  { MutexLock lock(&park_mu_); }
  park_cv_.NotifyAll();
}

size_t ThreadPool::State::DiscardQueued() {
  size_t discarded = 0;
  Task task;
  for (;;) {
    if (TryPop(task)) {
      task = nullptr;
      ++discarded;
    } else if (HasQueuedWork()) {
      std::this_thread::yield();  // A claimed slot is about to be published.
    } else {
      break;
    }
  }
  discarded_.fetch_add(discarded, std::memory_order_relaxed);
  return discarded;
}

void ThreadPool::State::JoinWorkers() {
  MutexLock lock(&join_mu_);
  for (int i = 0; i < worker_count; ++i) {
    if (workers_[i].thread.joinable()) workers_[i].thread.join();
  }
}

void ThreadPool::Shutdown() {
  state_->Close();
  if (!IsWorkerThread()) state_->JoinWorkers();
}

size_t ThreadPool::ShutdownNow() {
  // Set first so workers stop taking tasks as soon as possible.
  state_->discard_.store(true, std::memory_order_seq_cst);
  state_->Close();
  const size_t discarded = state_->DiscardQueued();
  if (!IsWorkerThread()) state_->JoinWorkers();
  return discarded;
}

bool ThreadPool::is_shutdown() const {
  return state_->closing_.load(std::memory_order_acquire);
}

bool ThreadPool::IsWorkerThread() const {
  return CallScope::Active(kWorkerScope, this);
}

ThreadPool::Metrics ThreadPool::GetMetrics() const {
  const State& state = *state_;
  Metrics m;
  m.workers = workers_;
  for (int i = 0; i < workers_; ++i) {
    const State::Worker& w = state.workers_[i];
    m.completed += w.completed.load(std::memory_order_relaxed);
    m.failed += w.failed.load(std::memory_order_relaxed);
    m.busy_ns += w.busy_ns.load(std::memory_order_relaxed);
    if (w.active.load(std::memory_order_relaxed)) ++m.active_workers;
  }
  for (size_t p = 0; p < kNumPriorities; ++p) {
    m.submitted += state.lanes_[p]->pushed();
    m.queue_depth[p] = state.lanes_[p]->Size();
  }
  m.rejected = state.rejected_.load(std::memory_order_relaxed);
  m.discarded = state.discarded_.load(std::memory_order_relaxed);
  return m;
}

}  // namespace mill
