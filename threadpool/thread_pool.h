// ThreadPool: a fixed set of named worker threads that run move-only tasks
// in priority order.
//
// What: tasks (absl::AnyInvocable<void()>) are queued at one of four
// priorities and run by whichever worker is free; all workers share the same
// queues, so no task waits behind a busy worker while another one is idle.
// Each priority has an unbounded queue made of a chain of lock-free bounded
// rings (Vyukov MPMC); a submit is one CAS on the tail ring and allocates
// nothing for small callables, and Submit never fails for capacity. An idle
// worker keeps polling the queues for at most ThreadPoolOptions::spin_time
// (a few microseconds, measured on the clock, not counted in rounds), then
// parks on a condition variable; producers only touch the condition
// variable when some worker is parked. So a pool with little work uses CPU
// in proportion to the work. The Mill-IO event loop runs its I/O handlers on
// its own threads, not on a ThreadPool; its compute pool (SpawnCompute, for
// CPU-heavy work kept off those threads) is a ThreadPool. The pool depends
// on nothing else in Mill-IO but //base.
//
// Ordering: a worker always takes the highest non-empty priority first, and
// within a priority tasks are taken in submission order (FIFO). With one
// worker, queued tasks therefore run strictly in (priority, FIFO) order. With
// several, the order is best-effort: workers race for tasks, so a task may
// start (and finish) before an older one that another worker is taking.
//
// Design note (measured with thread_pool_benchmark, 2 workers, empty tasks,
// 2-core machine under heavy unrelated load): shared per-priority queues ran
// 16-23 M tasks/s, and a per-worker-queues-with-stealing variant 10-42 M/s
// (no consistent winner, much noisier). The shared queues are kept because
// they make "highest priority first, FIFO within it" and "no task waits
// behind a busy worker while another is idle" exact, with no stealing scan
// over every worker's queue. Both beat the mutex + condition_variable +
// std::deque baseline (4-6 M/s) by 2.7x-5x.
//
// Thread-safety: every public method may be called from any thread at any
// time, including from inside a task running on the pool, and concurrently
// with Shutdown()/ShutdownNow(). A Submit either queues the task (OkStatus;
// it will then be run, or counted as discarded by ShutdownNow) or rejects it
// (FailedPrecondition once shutdown has begun): a task is never silently
// dropped.
//
// Ownership: the pool owns the worker threads and every queued task, and
// must outlive every call into it (including Submits racing Shutdown). A
// queued task is destroyed on the worker after it runs, or by ShutdownNow()
// when discarded, or by the destructor. The caller keeps anything a task
// references alive until the task has run (e.g. until Shutdown() returns).
// Destroying the pool from one of its own tasks is not allowed (a worker
// cannot join itself); the destructor aborts with a message if it happens.
#ifndef MILL_IO_THREADPOOL_THREAD_POOL_H_
#define MILL_IO_THREADPOOL_THREAD_POOL_H_

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace mill {

// Scheduling priority of a task. Higher values are taken first.
enum class Priority : uint8_t {
  kLow = 0,
  kNormal = 1,
  kHigh = 2,
  kCritical = 3,
};

inline constexpr size_t kNumPriorities = 4;

// Returns "low", "normal", "high" or "critical".
const char* PriorityName(Priority priority);

// Construction parameters for ThreadPool. The defaults suit a general compute
// pool; the event loop passes its own name prefix.
struct ThreadPoolOptions {
  // Number of worker threads. 0 (or negative) means
  // std::thread::hardware_concurrency(), and at least 1.
  int workers = 0;

  // Worker i is named name_prefix + decimal(i) (SetCurrentThreadName in
  // base/os_thread.h), cut to Linux's 15-character limit by shortening the
  // prefix so the index always survives: "mill-pool-0", "mill-pool-1", ...
  std::string name_prefix = "mill-pool-";

  // Slots in each priority's first ring segment (rounded up to a power of
  // two, ~48 bytes each). When a segment fills up, a new one of twice the
  // size (at most max_segment_capacity) is chained after it; drained
  // segments are recycled, so memory follows the largest backlog seen.
  size_t ring_capacity = 1024;
  size_t max_segment_capacity = 65536;

  // How long an idle worker keeps polling the queues (with a CPU pause
  // hint, then a yield) before it parks on a condition variable. About
  // what a park and wake-up costs, so a burst of submits finds the workers
  // awake, while an idle pool costs at most this much CPU per worker per
  // burst; see docs/BENCHMARKS.md. Zero parks at once.
  std::chrono::nanoseconds spin_time = std::chrono::microseconds(20);
};

// ThreadPool runs tasks on a fixed set of worker threads.
//
//   mill::ThreadPoolOptions options;
//   options.workers = 4;
//   mill::ThreadPool pool(options);
//   absl::Status s = pool.Submit([] { Work(); }, mill::Priority::kHigh);
//   absl::StatusOr<std::future<int>> f =
//       pool.SubmitWithFuture([] { return 42; });
//   if (f.ok()) int v = f->get();  // Rethrows if the task threw.
//   pool.Shutdown();               // Runs what is queued, then joins.
//
// A task that throws is caught on the worker, counted in Metrics::failed and
// otherwise ignored; the worker carries on. (SubmitWithFuture tasks never
// count as failed: their exception goes into the future instead.)
//
// Shutdown semantics (both calls are idempotent and may race each other):
//  * Shutdown(): stops accepting tasks, lets the workers run every task that
//    was accepted, then joins them.
//  * ShutdownNow(): stops accepting tasks, discards (destroys without
//    running, on the calling thread) every task still queued, waits for
//    running tasks to finish and joins; returns how many tasks this call
//    discarded (concurrent calls split the count between them).
//  * From inside a task (a worker thread of this pool) both calls stop
//    accepting (and ShutdownNow discards) but return without joining, since
//    a worker cannot join itself; the remaining workers still drain the
//    queue and exit, and the destructor (on a non-worker thread) joins.
//  * The destructor calls Shutdown().
// Once shutdown has begun every Submit is rejected, including submits from
// tasks that are still draining.
class ThreadPool {
 public:
  using Task = absl::AnyInvocable<void()>;

  // A snapshot of the pool's counters. Each field is read atomically, but
  // not all at one instant: while tasks are flowing, e.g. `completed` may
  // lag a future that has already become ready. Exact once the pool is
  // shut down. GetMetrics() briefly takes each priority queue's internal
  // mutex (to walk its segments), so poll it, don't call it per task.
  struct Metrics {
    uint64_t submitted = 0;  // Tasks accepted by Submit*.
    uint64_t completed = 0;  // Tasks that ran and returned normally.
    uint64_t failed = 0;     // Tasks that ran and threw.
    uint64_t rejected = 0;   // Submits refused because shutdown had begun.
    uint64_t discarded = 0;  // Accepted tasks dropped by ShutdownNow().
    int workers = 0;         // Configured worker threads.
    int active_workers = 0;  // Workers currently running tasks.
    // Tasks waiting, indexed by static_cast<size_t>(Priority).
    std::array<uint64_t, kNumPriorities> queue_depth{};
    // Nanoseconds workers spent running tasks, summed over workers. Measured
    // per run of back-to-back tasks (from picking up the first until finding
    // the queue empty), so it includes the few nanoseconds of dequeueing
    // between consecutive tasks; updated when such a run ends.
    uint64_t busy_ns = 0;

    uint64_t queued() const {
      uint64_t total = 0;
      for (uint64_t d : queue_depth) total += d;
      return total;
    }
  };

  // Starts the workers. Throws std::system_error if a thread cannot be
  // created (after stopping the ones already started); use Create() to get
  // an absl::Status instead.
  explicit ThreadPool(ThreadPoolOptions options = ThreadPoolOptions());

  // Like the constructor, but reports thread-creation failure as a Status
  // (ResourceExhausted) instead of throwing.
  static absl::StatusOr<std::unique_ptr<ThreadPool>> Create(
      ThreadPoolOptions options = ThreadPoolOptions());

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Graceful: equivalent to Shutdown().
  ~ThreadPool();

  // Queues `task` at `priority`. Returns OkStatus if accepted (the task will
  // run, unless ShutdownNow() discards it), FailedPrecondition if shutdown
  // has begun, InvalidArgument if `task` is empty. Never blocks on other
  // tasks. Callables up to two pointers in size are stored inline, so a
  // submit allocates nothing unless the backlog outgrows every ring segment
  // allocated so far (drained segments are reused).
  absl::Status Submit(Task task, Priority priority = Priority::kNormal);

  // Queues `fn` and returns a future for its result. If `fn` throws, the
  // exception is stored in the future (get() rethrows it). If the task is
  // discarded by ShutdownNow(), get() throws std::future_error
  // (broken_promise). Returns the Submit error if rejected. One allocation
  // (the future's shared state) per call.
  //
  // TSan note: an exception object passed through the future may be freed
  // by the worker (when it destroys the finished task) after the caller's
  // catch block; the reference count that orders the two lives in
  // uninstrumented libstdc++, so TSan can report a false race on it.
  template <typename F>
  auto SubmitWithFuture(F&& fn, Priority priority = Priority::kNormal)
      -> absl::StatusOr<std::future<std::invoke_result_t<std::decay_t<F>&>>>;

  // See the class comment. Safe to call concurrently and repeatedly.
  void Shutdown();
  size_t ShutdownNow();

  // True once Shutdown()/ShutdownNow() has begun.
  bool is_shutdown() const;

  // True if the calling thread is one of this pool's workers.
  bool IsWorkerThread() const;

  int workers() const { return workers_; }

  Metrics GetMetrics() const;

 private:
  // Queues, workers and the park/wake protocol (thread_pool.cc), so that
  // this header includes none of the pool's internal headers.
  struct State;

  const int workers_;
  const std::unique_ptr<State> state_;
};

// ---------------------------------------------------------------------------
// Implementation details below.

template <typename F>
auto ThreadPool::SubmitWithFuture(F&& fn, Priority priority)
    -> absl::StatusOr<std::future<std::invoke_result_t<std::decay_t<F>&>>> {
  using R = std::invoke_result_t<std::decay_t<F>&>;
  std::packaged_task<R()> packaged(std::forward<F>(fn));
  std::future<R> future = packaged.get_future();
  absl::Status status = Submit(
      [packaged = std::move(packaged)]() mutable { packaged(); }, priority);
  if (!status.ok()) return status;
  return future;
}

}  // namespace mill

#endif  // MILL_IO_THREADPOOL_THREAD_POOL_H_
