// Connection: the serial executor. Callbacks (the transport's reports) and
// Dispatch tasks of one connection never overlap: whoever finds the
// executor free runs; others queue behind it and the runner drains the
// queue before it leaves.
#include <exception>
#include <utility>

#include "base/call_scope.h"
#include "net/connection.h"
#include "net/internal/connection_config.h"
#include "net/internal/write_batch.h"

namespace mill {

using net_internal::kConnectionCallbacks;

bool Connection::EnterCallbacks() {
  CompactMutexLock lock(&mu_);
  if (exec_busy_) return false;
  exec_busy_ = true;
  return true;
}

void Connection::LeaveCallbacks() {
  std::exception_ptr first_error;
  for (;;) {
    absl::AnyInvocable<void(const ConnectionPtr&)> task;
    {
      CompactMutexLock lock(&mu_);
      if (exec_queue_.empty()) {
        exec_busy_ = false;
        if (reports_muted_) {
          // Reports were muted while a task ran elsewhere: what still
          // holds is reported again now (level-triggered).
          reports_muted_ = false;
          UpdateInterestLocked();
        }
        break;
      }
      task = std::move(exec_queue_.front());
      exec_queue_.pop_front();
    }
    try {
      RunExcluded(std::move(task));
    } catch (...) {
      if (!first_error) first_error = std::current_exception();
    }
  }
  // Every queued task ran; now let the caller (or the loop) see the error.
  if (first_error) std::rethrow_exception(first_error);
}

void Connection::RunExcluded(
    absl::AnyInvocable<void(const ConnectionPtr&)> fn) {
  ConnectionPtr self = shared_from_this();
  std::exception_ptr error;
  {
    CallScope scope(kConnectionCallbacks, this);
    net_internal::WriteBatch::Scope batch(this);  // flushes in scope
    try {
      fn(self);
    } catch (...) {
      error = std::current_exception();
    }
    fn = nullptr;  // captured state dies inside the scope
  }
  {
    // The task may have consumed input: reading may resume.
    CompactMutexLock lock(&mu_);
    if (!is_closed()) CheckInputLocked();
  }
  RunPendingClose();
  if (error) std::rethrow_exception(error);
}

void Connection::Dispatch(absl::AnyInvocable<void(const ConnectionPtr&)> fn) {
  {
    CompactMutexLock lock(&mu_);
    if (exec_busy_) {
      exec_queue_.push_back(std::move(fn));
      return;
    }
    exec_busy_ = true;
  }
  std::exception_ptr error;
  try {
    RunExcluded(std::move(fn));
  } catch (...) {
    error = std::current_exception();
  }
  LeaveCallbacks();
  if (error) std::rethrow_exception(error);
}

}  // namespace mill
