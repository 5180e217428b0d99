// Connection: starting, the transport's reports, and the read path.
#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/call_scope.h"
#include "net/connection.h"
#include "net/internal/connection_config.h"
#include "net/internal/transport.h"
#include "net/internal/write_batch.h"

namespace mill {

using net_internal::IoResult;
using net_internal::kConnectionCallbacks;

namespace {
// Largest single read (the loop's default budget).
constexpr size_t kReadChunk = size_t{64} * 1024;
}  // namespace

// --- Starting ----------------------------------------------------------------

void Connection::Start() {
  absl::Status failed;
  {
    CompactMutexLock lock(&mu_);
    switch (phase()) {
      case Phase::kOpen:
        break;  // below, unlocked: on_connect runs first
      case Phase::kConnecting:
        // Started under mu_: a report handled at once on a worker waits
        // for mu_, by when the transport's registration is in place.
        told_ = ComputeInterestLocked();
        failed = transport_->Start(told_);
        if (failed.ok()) return;
        break;
      default:
        // Closed before it started (its owner stopped, the connect was
        // cancelled): the owner already heard; nothing to start.
        return;
    }
  }
  if (failed.ok()) {
    StartOpen();
    return;
  }
  // Watching the connecting socket failed: report it, close quietly.
  ConnectionPtr self = shared_from_this();
  Teardown(CloseReason::kError, failed);
  owner_->OnConnectDone(self, failed);
}

void Connection::StartOpen() {
  ConnectionPtr self = shared_from_this();
  // Nothing else runs callbacks yet (the transport is not started) but a
  // close from the owner may race: it queues behind us.
  (void)EnterCallbacks();
  std::exception_ptr error;
  {
    CallScope scope(kConnectionCallbacks, this);
    net_internal::WriteBatch::Scope batch(this);  // flushes in scope
    bool open;
    {
      CompactMutexLock lock(&mu_);
      open = phase() == Phase::kOpen;
      on_close_owed_ = open;
    }
    if (open && config().callbacks.on_connect) {
      try {
        config().callbacks.on_connect(self);
      } catch (...) {
        error = std::current_exception();  // the loop counts and reports it
        CompactMutexLock lock(&mu_);
        MarkCloseLocked(CloseReason::kError,
                        absl::InternalError("on_connect threw"));
      }
    }
    CompactMutexLock lock(&mu_);
    // Open, or closing with output to flush (Close() inside on_connect).
    if (phase() == Phase::kOpen || phase() == Phase::kClosing) {
      told_ = ComputeInterestLocked();
      absl::Status started = transport_->Start(told_);
      if (started.ok()) {
        ArmIdleTimerLocked();
      } else {
        MarkCloseLocked(CloseReason::kError, std::move(started));
      }
    }
  }
  RunPendingClose();
  LeaveCallbacks();
  if (error) std::rethrow_exception(error);
}

void Connection::FinishConnect() {
  bool in_progress = false;
  CloseReason failure = CloseReason::kError;
  absl::Status status = transport_->FinishConnect(&in_progress, &failure);
  if (in_progress) return;  // a spurious report: still connecting
  ConnectionPtr self = shared_from_this();
  {
    CompactMutexLock lock(&mu_);
    if (phase() != Phase::kConnecting) return;  // cancelled meanwhile
    if (status.ok()) {
      SetPhaseLocked(Phase::kOpen);
      on_close_owed_ = true;
      ArmIdleTimerLocked();
      // Told even when unchanged: a transport with a handshake registered
      // what the handshake waited for, not what it was told while
      // connecting; this one call moves it to what the open connection wants.
      told_ = ComputeInterestLocked();
      transport_->SetInterest(told_);
    }
  }
  if (!status.ok()) {
    Teardown(failure, status);
    owner_->OnConnectDone(self, status);
    return;
  }
  if (config().callbacks.on_connect) config().callbacks.on_connect(self);
  owner_->OnConnectDone(self, absl::OkStatus());
  FlushFromHandler();  // output queued while connecting goes out now
}

// --- The transport's reports -------------------------------------------------

void Connection::OnTransportEvent(const Event& event) {
  if (is_closed()) return;
  {
    CompactMutexLock lock(&mu_);
    if (exec_busy_) {
      // A Dispatch task runs on another thread. Queueing a replay of every
      // report would spin the loop (the registration is level-triggered)
      // and grow the queue for as long as the task runs: mute the reports
      // instead; LeaveCallbacks unmutes, and what still holds is reported
      // again then.
      if (!reports_muted_) {
        reports_muted_ = true;
        UpdateInterestLocked();
      }
      return;
    }
    exec_busy_ = true;
  }
  std::exception_ptr error;
  {
    CallScope scope(kConnectionCallbacks, this);
    net_internal::WriteBatch::Scope batch(this);  // flushes in scope
    try {
      HandleEventExcluded(event);
    } catch (...) {
      error = std::current_exception();  // the loop reports it (guarantee 4)
    }
  }
  RunPendingClose();
  try {
    LeaveCallbacks();
  } catch (...) {
    if (!error) error = std::current_exception();
  }
  if (error) std::rethrow_exception(error);
}

void Connection::HandleEventExcluded(const Event& event) {
  if (phase() == Phase::kConnecting) {
    FinishConnect();
    return;
  }
  if (event.is_error()) {
    // Bytes that arrived before the error (a reset) are still queued, and a
    // transport may hold more after a short read (TLS: the peer's
    // close_notify behind its last data): read them first, boundedly and
    // unless reading is paused, so a peer that wrote, ended its stream and
    // then reset loses nothing and its clean end decides the close. Also
    // when the report does not say readable: one taken while reports were
    // muted carries the error alone.
    for (int i = 0; i < 4; ++i) {
      ReadSome();
      if (is_closed()) return;
      if (!transport_->HasPendingInput()) break;
    }
    CloseReason reason = CloseReason::kError;
    absl::Status error = transport_->TakeError(&reason);
    if (!error.ok()) {
      Teardown(reason, std::move(error));
      return;
    }
  }
  if (event.is_writable() || event.is_write_closed()) {
    FlushFromHandler();
    bool redeliver;
    {
      CompactMutexLock lock(&mu_);
      redeliver = redeliver_;
      redeliver_ = false;
    }
    if (redeliver && !input_.empty() && !is_closed()) DeliverInput();
  }
  if (event.is_readable() || event.is_read_closed()) ReadSome();
  // An empty input buffer gives its block back to the loop's pool.
  if (input_.empty() && input_.capacity() > 0) input_.Shrink();
}

// --- The read path -----------------------------------------------------------

void Connection::ReadSome() {
  const ConnectionOptions& options = config().options;
  BufferPool& blocks = loop()->buffer_pool();
  size_t budget = std::max<size_t>(1, loop()->options().read_budget);
  while (budget > 0) {
    size_t room;
    {
      CompactMutexLock lock(&mu_);
      if (!WantsReadLocked()) return;
      room = options.max_input_bytes > input_.size()
                 ? options.max_input_bytes - input_.size()
                 : 0;
      if (room == 0) {
        SetPauseLocked(kPausedInputFull, true);
        return;
      }
    }
    const size_t want = std::min({budget, room, kReadChunk});
    size_t grant = want;
    if (read_limit_ != nullptr) {
      // Refuse crumbs: at a high rate a few bytes are always available, and
      // reading them one syscall at a time would burn the CPU. Wait for a
      // useful chunk instead.
      const size_t useful = std::min<size_t>(want, read_limit_->min_grant);
      grant = static_cast<size_t>(read_limit_->limiter.AcquireUpTo(want));
      if (grant < useful) {
        if (grant > 0) read_limit_->limiter.Refund(grant);
        PauseForRate(useful);
        return;
      }
    }
    // Reads land in the buffer itself: an empty one borrows a block.
    if (input_.capacity() == 0) input_.AdoptBlock(blocks.Acquire());
    size_t copied = 0;
    IoResult result = transport_->Read(input_, grant, &copied);
    const size_t got = result.bytes;
    if (read_limit_ != nullptr && got < grant) {
      read_limit_->limiter.Refund(grant - got);
    }
    switch (result.kind) {
      case IoResult::Kind::kProgress: {
        bytes_in_.fetch_add(got, std::memory_order_relaxed);
        net_internal::ConnectionCounters& counters = config().counters;
        counters.bytes_read.fetch_add(got, std::memory_order_relaxed);
        if (copied > 0) {
          counters.input_bytes_copied.fetch_add(copied,
                                                std::memory_order_relaxed);
        }
        Touch();
        DeliverInput();
        if (is_closed()) return;
        budget -= std::min(budget, got);
        // A short read means the socket is drained; the level-triggered
        // registration reports anything that arrives later.
        if (got < grant) return;
        continue;
      }
      case IoResult::Kind::kWouldBlock:
        return;
      case IoResult::Kind::kEof:
        OnPeerEof();
        return;
      case IoResult::Kind::kFailed:
        Teardown(result.reason, std::move(result.error));
        return;
    }
  }
}

void Connection::DeliverInput() {
  if (config().callbacks.on_data) {
    config().callbacks.on_data(shared_from_this(), input_);
  }
  CompactMutexLock lock(&mu_);
  if (is_closed()) return;
  const ConnectionOptions& options = config().options;
  if (input_.size() >= options.max_input_bytes &&
      (options.close_on_input_overflow || (pause_ & kPausedByUser) == 0)) {
    // on_data cannot (or will not) make room: waiting would stall forever.
    MarkCloseLocked(
        CloseReason::kInputOverflow,
        absl::ResourceExhaustedError(absl::StrCat(
            "on_data left max_input_bytes (", options.max_input_bytes,
            ") of input unconsumed: a message larger than the bound?")));
    return;
  }
  CheckInputLocked();
}

void Connection::CheckInputLocked() {
  const bool full = input_.size() >= config().options.max_input_bytes;
  if (full == ((pause_ & kPausedInputFull) != 0)) return;
  SetPauseLocked(kPausedInputFull, full);
}

void Connection::OnPeerEof() {
  bool notify = false;
  {
    CompactMutexLock lock(&mu_);
    if (input_ended_) return;
    input_ended_ = true;
    if (write_side() == WriteSide::kShut) {
      MarkCloseLocked(CloseReason::kPeerClosed, absl::OkStatus());
    } else if (config().callbacks.on_peer_shutdown) {
      notify = true;
    } else if (phase() == Phase::kOpen) {
      SetPhaseLocked(Phase::kClosing);
      close_reason_ = CloseReason::kPeerClosed;
      if (out_.empty()) {
        MarkCloseLocked(CloseReason::kPeerClosed, absl::OkStatus());
      }
    }
    UpdateInterestLocked();
  }
  if (notify) config().callbacks.on_peer_shutdown(shared_from_this());
}

void Connection::PauseForRate(size_t wanted) {
  CompactMutexLock lock(&mu_);
  if (is_closed() || (pause_ & kPausedRateLimit) != 0) return;
  config().counters.rate_limit_pauses.fetch_add(1, std::memory_order_relaxed);
  SetPauseLocked(kPausedRateLimit, true);
  // Wake up when a useful chunk (not a single byte) can be read.
  absl::Duration delay =
      read_limit_->limiter.TimeUntilAvailable(std::max<uint64_t>(wanted, 1));
  if (delay == absl::InfiniteDuration()) delay = absl::Milliseconds(100);
  delay = std::max(delay, absl::Milliseconds(1));
  std::weak_ptr<Connection> weak = weak_from_this();
  read_limit_->resume_timer = loop()->RunAfter(delay, [weak] {
    std::shared_ptr<Connection> self = weak.lock();
    if (self == nullptr) return;
    CompactMutexLock lock(&self->mu_);
    self->read_limit_->resume_timer = EventLoop::TimerId();
    // Re-arms READABLE: level-triggered.
    if (!self->is_closed()) self->SetPauseLocked(kPausedRateLimit, false);
  });
}

// --- Pausing -----------------------------------------------------------------

void Connection::PauseReading() {
  CompactMutexLock lock(&mu_);
  if (is_closed()) return;
  SetPauseLocked(kPausedByUser, true);
}

void Connection::ResumeReading() {
  {
    CompactMutexLock lock(&mu_);
    if (is_closed() || (pause_ & kPausedByUser) == 0) return;
    SetPauseLocked(kPausedByUser, false);
  }
  // Bytes already buffered get another on_data: no report would announce
  // them (they are no longer in the socket).
  Dispatch([](const ConnectionPtr& c) {
    if (!c->input_.empty() && !c->is_closed()) c->DeliverInput();
  });
}

}  // namespace mill
