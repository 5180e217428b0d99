// LoopImpl: RunInLoop and the task runner.
//
// Tasks run one at a time, in FIFO order, on the owner of the first poller
// (between batches). tasks_running_ marks the one thread running them. A
// task that blocks is taken over from like a handler: the old owner finishes
// that task, gives the tasks it had not started back to the queue (ahead of
// the ones posted since) and wakes the new owner, which runs them. Until
// then the new owner sleeps in its poll like an idle one (defect 6 of issue
// 16: it used to see queued tasks it could not run and poll without a
// timeout, spinning for as long as the task ran).
#include <atomic>
#include <cstddef>
#include <iterator>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "base/call_scope.h"
#include "base/mutex.h"
#include "reactor/internal/loop_impl.h"
#include "reactor/internal/source.h"

namespace mill {
namespace reactor_internal {

absl::Status LoopImpl::RunInLoop(Task fn) {
  const bool inline_here = options_.dispatch_mode == DispatchMode::kDirect
                               ? IsInLoopThread()
                               : CallScope::Active(kTaskScope, this);
  if (inline_here) {
    fn();
    return absl::OkStatus();
  }
  {
    MutexLock lock(&posted_mu_);
    if (stop_.load(std::memory_order_acquire)) {
      return absl::FailedPreconditionError(
          "EventLoop::RunInLoop: the loop is stopped");
    }
    posted_.push_back(std::move(fn));
    posted_count_.fetch_add(1, std::memory_order_seq_cst);
  }
  // Pairs with the owner's publish-then-check before it sleeps.
  if (sets_[0]->sleeping_until.load(std::memory_order_seq_cst) !=
      PollSet::kAwake) {
    return sets_[0]->waker->Wake();
  }
  return absl::OkStatus();
}

bool LoopImpl::RunTasks(PollSet& set, uint64_t& activity) {
  if (tasks_running_.exchange(true, std::memory_order_acq_rel)) return true;
  for (;;) {
    std::vector<Task> tasks;
    {
      MutexLock lock(&posted_mu_);
      tasks.swap(posted_);
      posted_count_.store(0, std::memory_order_relaxed);
    }
    for (size_t i = 0; i < tasks.size(); ++i) {
      if (stop_.load(std::memory_order_acquire)) break;
      bool owned;
      {
        CallScope in_task(kTaskScope, this);
        owned = Work(standby_enabled_, set, activity,
                     [this, &tasks, i] { Guarded(Token(), tasks[i]); });
      }
      tasks[i] = nullptr;
      if (!owned) {
        GiveBackTasks(tasks, i + 1);
        return false;
      }
    }
    // Tasks not run because the loop stopped are destroyed here.
    tasks.clear();
    tasks_running_.store(false, std::memory_order_seq_cst);
    if (stop_.load(std::memory_order_acquire) ||
        posted_count_.load(std::memory_order_seq_cst) == 0 ||
        tasks_running_.exchange(true, std::memory_order_acq_rel)) {
      return true;
    }
  }
}

void LoopImpl::GiveBackTasks(std::vector<Task>& tasks, size_t first) {
  {
    MutexLock lock(&posted_mu_);
    posted_.insert(posted_.begin(),
                   std::make_move_iterator(tasks.begin() + first),
                   std::make_move_iterator(tasks.end()));
    posted_count_.store(posted_.size(), std::memory_order_seq_cst);
  }
  tasks.clear();  // moved from
  // A Dekker pair with the new owner's PollOnce, which publishes
  // sleeping_until and then reads tasks_running_: either it sees the tasks
  // runnable and does not sleep, or we see it asleep and wake it. (If it
  // stops, Run() destroys what we gave back.)
  tasks_running_.store(false, std::memory_order_seq_cst);
  if (posted_count_.load(std::memory_order_seq_cst) > 0 &&
      sets_[0]->sleeping_until.load(std::memory_order_seq_cst) !=
          PollSet::kAwake) {
    (void)sets_[0]->waker->Wake();
  }
}

}  // namespace reactor_internal
}  // namespace mill
