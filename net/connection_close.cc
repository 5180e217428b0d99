// Connection: the close state machine (Close, Abort, Shutdown, a decided
// close carried out on the loop or in the callback epilogue, Teardown,
// FinishClose) and the idle timeout.
//
//   kOpen/kConnecting --Close() with output--> kClosing --flushed--+
//        |                                                        v
//        +-- error, reset, Abort, idle, EOF, Stop --> kClosePending
//                                                        | Teardown
//                                                        v
//                                                   kReleasing
//                                                        | the transport
//                                                        | released it
//                                                        v
//                                                    kClosed (on_close)
#include <utility>

#include "base/call_scope.h"
#include "net/connection.h"
#include "net/internal/connection_config.h"
#include "net/internal/socket_util.h"
#include "net/internal/transport.h"

namespace mill {

using net_internal::kConnectionCallbacks;

namespace {
// Closes that lose nothing: the transport may tell the peer so.
bool IsCleanClose(CloseReason reason) {
  switch (reason) {
    case CloseReason::kPeerClosed:
    case CloseReason::kIdleTimeout:
    case CloseReason::kClosedLocally:
    case CloseReason::kStopped:
      return true;
    default:
      return false;
  }
}
}  // namespace

void Connection::Close() {
  bool schedule = false;
  {
    CompactMutexLock lock(&mu_);
    switch (phase()) {
      case Phase::kConnecting:
        schedule =
            MarkCloseLocked(CloseReason::kClosedLocally, absl::OkStatus());
        break;
      case Phase::kOpen:
        SetPhaseLocked(Phase::kClosing);
        close_reason_ = CloseReason::kClosedLocally;
        if (out_.empty()) {
          schedule =
              MarkCloseLocked(CloseReason::kClosedLocally, absl::OkStatus());
        } else {
          UpdateInterestLocked();  // stop reading, keep flushing
        }
        break;
      default:
        return;  // closing already
    }
  }
  if (schedule) ScheduleClose();
}

void Connection::Abort() {
  bool schedule;
  {
    CompactMutexLock lock(&mu_);
    schedule = MarkCloseLocked(CloseReason::kClosedLocally, absl::OkStatus());
  }
  if (schedule) ScheduleClose();
}

void Connection::AbortForProtocolError(absl::Status error) {
  if (error.ok()) error = absl::InvalidArgumentError("protocol error");
  bool schedule;
  {
    CompactMutexLock lock(&mu_);
    schedule = MarkCloseLocked(CloseReason::kProtocolError, std::move(error));
  }
  if (schedule) ScheduleClose();
}

void Connection::Shutdown() {
  bool schedule = false;
  {
    CompactMutexLock lock(&mu_);
    if (phase() != Phase::kOpen || write_side() != WriteSide::kOpen) return;
    set_write_side(WriteSide::kShutdownRequested);
    if (out_.empty()) {
      (void)transport_->ShutdownWrite();
      set_write_side(WriteSide::kShut);
      if (input_ended_) {
        schedule = MarkCloseLocked(CloseReason::kPeerClosed, absl::OkStatus());
      }
    }
  }
  if (schedule) ScheduleClose();
}

bool Connection::MarkCloseLocked(CloseReason reason, absl::Status status) {
  if (phase() >= Phase::kClosePending) return false;
  SetPhaseLocked(Phase::kClosePending);
  close_reason_ = reason;
  close_status_ = std::move(status);
  // Reports are useless now. Inside a callback the epilogue tears down at
  // once; elsewhere the loop does, soon: until then a level-triggered report
  // of unread input would come back again and again, so mute it.
  if (!CallScope::Active(kConnectionCallbacks, this)) {
    TellInterestLocked(Interest::None());
  }
  return true;
}

void Connection::ScheduleClose() {
  // Inside one of this connection's callbacks the callback's epilogue
  // carries it out, so the socket is never closed under the handler.
  if (CallScope::Active(kConnectionCallbacks, this)) return;
  {
    CompactMutexLock lock(&mu_);
    if (phase() != Phase::kClosePending) return;
  }
  // Elsewhere, the loop carries it out, so that on_close never runs inside
  // the caller's Close(). Teardown never waits (the transport releases
  // without waiting), so this cannot deadlock; once the loop is stopped it
  // runs here instead.
  std::shared_ptr<Connection> self = shared_from_this();
  auto close = [self] { self->RunPendingClose(); };
  EventLoop* const loop = this->loop();
  if (loop->IsInLoopThread()) {
    // RunInLoop would run it inline here, inside the caller's Send() or
    // Close() (say, another connection's callback holding its own lock):
    // a zero-delay timer runs it after the current handler instead.
    if (loop->RunAfter(absl::ZeroDuration(), std::move(close)).valid()) {
      return;
    }
  } else if (loop->RunInLoop(std::move(close)).ok()) {
    return;
  }
  RunPendingClose();  // the loop is stopped
}

void Connection::RunPendingClose() {
  CloseReason reason;
  absl::Status status;
  {
    CompactMutexLock lock(&mu_);
    if (phase() != Phase::kClosePending) return;
    reason = close_reason_;
    status = close_status_;
  }
  Teardown(reason, std::move(status));
}

void Connection::Teardown(CloseReason reason, absl::Status status) {
  EventLoop::TimerId resume;
  net_internal::OutputQueue::Releases dropped;
  {
    CompactMutexLock lock(&mu_);
    if (phase() >= Phase::kReleasing) return;
    SetPhaseLocked(Phase::kReleasing);
    close_reason_ = reason;
    close_status_ = std::move(status);
    if (read_limit_ != nullptr) {
      resume = std::exchange(read_limit_->resume_timer, EventLoop::TimerId());
    }
    if (out_.empty() && IsCleanClose(reason)) transport_->CloseNotify();
    out_.Clear(&dropped);
  }
  if (config().idle != nullptr) config().idle->Remove(&idle_node_);
  if (resume.valid()) loop()->Cancel(resume);
  for (auto& release : dropped) release();
  dropped.clear();
  // The socket is closed only once the loop has released the registration
  // (no report running or to come): the descriptor number cannot be reused
  // under a running handler. FinishClose then runs excluded from the
  // callbacks, so on_close comes after the last one; the task holds the
  // connection, which keeps it alive (and listed by its owner) until then.
  std::shared_ptr<Connection> self = shared_from_this();
  transport_->Release([self] {
    self->Dispatch([self](const ConnectionPtr&) { self->FinishClose(); });
  });
}

void Connection::FinishClose() {
  bool owed;
  CloseReason reason;
  absl::Status status;
  {
    CompactMutexLock lock(&mu_);
    if (phase() != Phase::kReleasing) return;  // exactly once
    SetPhaseLocked(Phase::kClosed);
    transport_->CloseNow();
    owed = on_close_owed_;
    on_close_owed_ = false;
    reason = close_reason_;
    // Made on another thread; a status's payload is shared by reference.
    status = net_internal::DeepCopy(close_status_);
  }
  input_.Shrink();
  ConnectionPtr self = shared_from_this();
  if (owed) config().counters.CountClose(reason);
  // The owner forgets the connection before on_close (so on_close sees it
  // gone from the owner's list) and hears again after it: Stop() waits for
  // that, so once Stop returns no on_close is still running.
  owner_->OnClosed(self, reason, status);
  std::exception_ptr error;
  if (owed && config().callbacks.on_close) {
    try {
      config().callbacks.on_close(self, reason, status);
    } catch (...) {
      error = std::current_exception();  // reported by the loop
    }
  }
  owner_->OnCloseCallbackDone();
  if (error) std::rethrow_exception(error);
}

// --- Idle timeout ------------------------------------------------------------

void Connection::ArmIdleTimerLocked() {
  if (config().idle != nullptr) {
    config().idle->Add(&idle_node_, this,
                       last_activity_ns_.load(std::memory_order_relaxed));
  }
}

void Connection::OnIdleExpired() {
  bool schedule;
  {
    CompactMutexLock lock(&mu_);
    schedule = MarkCloseLocked(CloseReason::kIdleTimeout, absl::OkStatus());
  }
  if (schedule) ScheduleClose();
}

}  // namespace mill
