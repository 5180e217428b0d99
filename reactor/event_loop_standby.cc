// LoopImpl: the standby thread, which takes a poller over from an owner
// stuck in one handler (or timer callback, or task) for takeover_delay, and
// sleeps without a timeout while every owner is idle.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <vector>

#include "absl/time/time.h"
#include "base/mutex.h"
#include "reactor/internal/loop_impl.h"
#include "reactor/internal/source.h"

namespace mill {
namespace reactor_internal {
namespace {

using Clock = std::chrono::steady_clock;

// Ticks without any activity (every owner idle in its poll) before the
// standby sleeps without a timeout: an idle loop costs nothing.
constexpr int kQuietTicksBeforeSleep = 8;

}  // namespace

void LoopImpl::RunStandby(LoopThread& self) {
  const auto tick = absl::ToChronoNanoseconds(options_.takeover_delay);
  std::vector<uint64_t> seen(polling_threads_, UINT64_MAX);
  int quiet_ticks = 0;
  bool deep = false;
  Clock::time_point next = Clock::now() + tick;
  while (!stop_.load(std::memory_order_acquire) && standby_ == self.index) {
    if (deep) {
      roles_cv_.Wait(&roles_mu_);
      if (standby_deep_.load(std::memory_order_relaxed)) continue;
      deep = false;  // an owner got events: watch again
      quiet_ticks = 0;
      std::fill(seen.begin(), seen.end(), UINT64_MAX);
      next = Clock::now() + tick;
      continue;
    }
    // Other notifications wake us early; observe only a full tick apart,
    // so that "the same odd count twice" means "busy for a tick or more".
    if (roles_cv_.WaitUntil(&roles_mu_, next) && Clock::now() < next) {
      continue;
    }
    if (stop_.load(std::memory_order_acquire)) break;
    next = Clock::now() + tick;
    bool quiet = true;
    for (int i = 0; i < polling_threads_; ++i) {
      if (set_owner_[i] < 0) continue;
      PollSet& set = *sets_[i];
      const uint64_t activity = set.activity.load(std::memory_order_acquire);
      if (activity == seen[i] && (activity & 1) != 0 &&
          TakeOver(self, i, activity)) {
        return;
      }
      if (activity != seen[i] || !set.in_poll.load(std::memory_order_relaxed)) {
        quiet = false;
      }
      seen[i] = activity;
    }
    quiet_ticks = quiet ? quiet_ticks + 1 : 0;
    if (quiet_ticks >= kQuietTicksBeforeSleep) {
      // Announce the sleep, then check that every owner is still in its
      // poll; an owner leaving it checks the flag after the same fence.
      standby_deep_.store(true, std::memory_order_seq_cst);
      bool idle = true;
      for (int i = 0; i < polling_threads_; ++i) {
        if (set_owner_[i] >= 0 &&
            !sets_[i]->in_poll.load(std::memory_order_seq_cst)) {
          idle = false;
        }
      }
      if (idle) {
        deep = true;
      } else {
        standby_deep_.store(false, std::memory_order_relaxed);
        quiet_ticks = 0;
      }
    }
  }
  if (standby_ == self.index) standby_ = -1;
  standby_deep_.store(false, std::memory_order_relaxed);
}

bool LoopImpl::TakeOver(LoopThread& self, int set_index,
                        uint64_t seen_activity) {
  PollSet& set = *sets_[set_index];
  uint64_t expected = seen_activity;
  // Succeeds only if the owner is still inside the same handler; its own
  // end-of-handler CAS then fails, and it leaves its batch alone until it
  // holds roles_mu_, which we hold now.
  if (!set.activity.compare_exchange_strong(expected, seen_activity + 1,
                                            std::memory_order_acq_rel)) {
    return false;
  }
  LoopThread& old = *threads_[set_owner_[set_index]];
  self.events.clear();
  self.due.clear();
  self.cursor = 0;
  const size_t polled = old.events.size();
  for (size_t k = old.cursor; k < polled; ++k) {
    self.events.push_back(old.events[k]);
  }
  for (size_t k = std::max(old.cursor, polled) - polled; k < old.due.size();
       ++k) {
    self.due.push_back(old.due[k]);
  }
  thread_set_[old.index] = -1;
  set_owner_[set_index] = self.index;
  thread_set_[self.index] = set_index;
  standby_ = -1;
  standby_deep_.store(false, std::memory_order_relaxed);
  takeovers_.fetch_add(1, std::memory_order_relaxed);
  roles_cv_.NotifyAll();  // a parked thread becomes the standby
  return true;
}

void LoopImpl::WakeStandby() {
  {
    MutexLock lock(&roles_mu_);
    if (!standby_deep_.load(std::memory_order_relaxed)) return;
    standby_deep_.store(false, std::memory_order_relaxed);
  }
  roles_cv_.NotifyAll();
}

}  // namespace reactor_internal
}  // namespace mill
