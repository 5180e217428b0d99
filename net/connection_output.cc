// Connection: Send, SendFile, flushing the output queue through the
// transport, the water marks, and the interest the transport reports.
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
using net_internal::OutputQueue;

namespace {

// Largest single sendfile(2) call (keeps one flush from holding the
// connection's lock for a huge file; the transport reports writable again).
constexpr uint64_t kSendFileChunk = 1 << 20;
// Most byte runs gathered into one write.
constexpr size_t kGather = 16;

void RunAll(OutputQueue::Releases& releases) {
  for (auto& release : releases) release();
  releases.clear();
}

}  // namespace

IoResult Connection::WriteNowLocked(absl::Span<const absl::string_view> pieces,
                                    size_t size) {
  absl::string_view rest[kGather];
  size_t written = 0;
  size_t first = 0;  // pieces before it are written
  size_t skip = 0;   // bytes of pieces[first] written
  while (written < size) {
    size_t count = 0;
    for (size_t i = first; i < pieces.size() && count < kGather; ++i) {
      rest[count++] = i == first ? pieces[i].substr(skip) : pieces[i];
    }
    IoResult result = transport_->Write(absl::MakeConstSpan(rest, count));
    CountWriteCall();
    if (result.kind != IoResult::Kind::kProgress) {
      if (result.kind == IoResult::Kind::kFailed) return result;
      break;  // would block: the rest is queued
    }
    written += result.bytes;
    size_t n = result.bytes;
    while (n > 0 && first < pieces.size()) {
      const size_t left = pieces[first].size() - skip;
      if (n < left) {
        skip += n;
        n = 0;
      } else {
        n -= left;
        ++first;
        skip = 0;
      }
    }
  }
  return IoResult::Progress(written);
}

void Connection::CountWriteCall() {
  config().counters.write_calls.fetch_add(1, std::memory_order_relaxed);
}

void Connection::CountWritten(size_t written) {
  if (written == 0) return;
  bytes_out_.fetch_add(written, std::memory_order_relaxed);
  config().counters.bytes_written.fetch_add(written, std::memory_order_relaxed);
  Touch();
}

bool Connection::CrossedHighWaterLocked() {
  const size_t high = config().options.high_water_mark;
  if (high == 0 || above_high_water_ || out_.pending_bytes() < high) {
    return false;
  }
  above_high_water_ = true;
  if (config().options.pause_reading_above_high_water) {
    pause_ |= kPausedOutputFull;
  }
  return true;
}

void Connection::NotifyHighWater(size_t pending) {
  config().counters.high_water_events.fetch_add(1, std::memory_order_relaxed);
  if (!config().callbacks.on_high_water) return;
  (void)Post([pending](const ConnectionPtr& c) {
    if (!c->is_closed()) c->config().callbacks.on_high_water(c, pending);
  });
}

void Connection::PostLowWater() {
  if (!config().callbacks.on_low_water) return;
  (void)Post([](const ConnectionPtr& c) {
    if (!c->is_closed()) c->config().callbacks.on_low_water(c);
  });
}

void Connection::PostWriteComplete() {
  if (!config().callbacks.on_write_complete) return;
  {
    CompactMutexLock lock(&mu_);
    if (write_complete_posted_) return;  // the posted one covers this write
    write_complete_posted_ = true;
  }
  (void)Post([](const ConnectionPtr& c) {
    {
      CompactMutexLock lock(&c->mu_);
      c->write_complete_posted_ = false;
    }
    if (!c->is_closed()) c->config().callbacks.on_write_complete(c);
  });
}

absl::Status Connection::Send(absl::string_view data) {
  Outgoing out;
  out.pieces = absl::MakeConstSpan(&data, 1);
  out.size = data.size();
  return SendOutgoing(out, "Connection::Send");
}

absl::Status Connection::Send(std::string&& data) {
  const absl::string_view view(data);
  Outgoing out;
  out.pieces = absl::MakeConstSpan(&view, 1);
  out.size = data.size();
  out.owned = &data;
  return SendOutgoing(out, "Connection::Send");
}

absl::Status Connection::Send(ByteBuffer&& data) {
  const absl::string_view view = data.view();
  Outgoing out;
  out.pieces = absl::MakeConstSpan(&view, 1);
  out.size = data.size();
  out.buffer = &data;
  return SendOutgoing(out, "Connection::Send");
}

absl::Status Connection::SendPieces(
    absl::Span<const absl::string_view> pieces) {
  Outgoing out;
  out.pieces = pieces;
  for (absl::string_view piece : pieces) out.size += piece.size();
  return SendOutgoing(out, "Connection::SendPieces");
}

void Connection::QueueOutgoingLocked(Outgoing& out, size_t skip) {
  if (skip >= out.size) return;
  if (out.owned != nullptr) {
    if (skip == 0) {
      out_.AppendString(std::move(*out.owned));
    } else {
      out_.AppendBytes(absl::string_view(*out.owned).substr(skip));
    }
    return;
  }
  if (out.buffer != nullptr) {
    out.buffer->Consume(skip);
    out_.AppendBuffer(std::move(*out.buffer));
    return;
  }
  for (absl::string_view piece : out.pieces) {
    if (skip >= piece.size()) {
      skip -= piece.size();
      continue;
    }
    out_.AppendBytes(piece.substr(skip));
    skip = 0;
  }
}

absl::Status Connection::SendOutgoing(Outgoing out, const char* caller) {
  bool crossed_high = false;
  bool below_low_water = false;
  bool drained = false;
  bool fresh_close = false;
  bool flushed = false;  // a flush may have finished a Close()
  size_t pending = 0;
  CloseReason reason = CloseReason::kError;
  absl::Status failed;
  OutputQueue::Releases released;
  {
    CompactMutexLock lock(&mu_);
    if (!CanSendLocked()) {
      return absl::FailedPreconditionError(
          absl::StrCat(caller, ": the connection is closing or closed"));
    }
    if (out.size == 0) return absl::OkStatus();
    const bool open = phase() == Phase::kOpen;
    const bool in_callback = CallScope::Active(kConnectionCallbacks, this);
    if (open && in_callback && (out_.empty() || gathering_)) {
      // Inside a callback: gather; the batch's end writes it, unless it
      // grows to the bound first.
      QueueOutgoingLocked(out, 0);
      if (!gathering_) {
        gathering_ = true;
        net_internal::WriteBatch::Add(this);
      }
      const size_t high = config().options.high_water_mark;
      const size_t bound =
          high == 0 ? kSendBatchBytes : std::min(kSendBatchBytes, high);
      if (out_.pending_bytes() < bound) {
        // Below the bound, hence below the high-water mark, and the
        // interest is unchanged while gathering: nothing else to do.
        return absl::OkStatus();
      }
      gathering_ = false;
      flushed = true;
      failed = FlushLocked(&below_low_water, &reason, &released, &drained);
    } else if (open && out_.empty()) {
      // Nothing queued: write directly, keep what the transport refuses.
      IoResult result = WriteNowLocked(out.pieces, out.size);
      if (result.kind == IoResult::Kind::kFailed) {
        failed = std::move(result.error);
        fresh_close = MarkCloseLocked(result.reason, failed);
        lock.Unlock();
        if (fresh_close) ScheduleClose();
        return failed;
      }
      CountWritten(result.bytes);
      QueueOutgoingLocked(out, result.bytes);
      drained = out_.empty();
    } else {
      QueueOutgoingLocked(out, 0);
      if (open && gathering_) {
        // A callback on another thread gathered here; a Send from outside
        // the callbacks goes out at once, with what was gathered before it.
        gathering_ = false;
        flushed = true;
        failed = FlushLocked(&below_low_water, &reason, &released, &drained);
      }
    }
    if (!failed.ok()) {
      fresh_close = MarkCloseLocked(reason, failed);
    } else {
      crossed_high = CrossedHighWaterLocked();
      pending = out_.pending_bytes();
      UpdateInterestLocked();
    }
  }
  RunAll(released);
  if (!failed.ok()) {
    if (fresh_close) ScheduleClose();
    return failed;
  }
  if (flushed) ScheduleClose();  // no-op unless it finished a Close()
  if (crossed_high) NotifyHighWater(pending);
  if (below_low_water) PostLowWater();
  if (drained) PostWriteComplete();
  return absl::OkStatus();
}

absl::Status Connection::SendFile(int fd, uint64_t offset, uint64_t length,
                                  absl::AnyInvocable<void()> release) {
  bool crossed_high = false;
  size_t pending = 0;
  OutputQueue::Releases released;
  {
    CompactMutexLock lock(&mu_);
    if (!CanSendLocked()) {
      return absl::FailedPreconditionError(
          "Connection::SendFile: the connection is closing or closed");
    }
    if (fd < 0) {
      return absl::InvalidArgumentError("Connection::SendFile: negative fd");
    }
    if (length == 0) {
      // Nothing to send: the range is "sent" at once, its release run
      // below, unlocked like every other release.
      if (release) released.push_back(std::move(release));
    } else {
      const bool was_idle = out_.empty();
      out_.AppendFile(fd, offset, length, std::move(release));
      crossed_high = CrossedHighWaterLocked();
      pending = out_.pending_bytes();
      // Outside a batch, bytes a batch gathered go out now, with the range.
      const bool ungather =
          gathering_ && !CallScope::Active(kConnectionCallbacks, this);
      if (ungather) gathering_ = false;
      if ((was_idle || ungather) && !crossed_high && phase() == Phase::kOpen) {
        // Start at once, like Send: the socket is probably writable.
        // (Below the high-water mark, so no low-water crossing comes of it.)
        bool below_low_water = false;
        CloseReason reason = CloseReason::kError;
        absl::Status failed = FlushLocked(&below_low_water, &reason, &released);
        if (!failed.ok()) MarkCloseLocked(reason, std::move(failed));
      }
      UpdateInterestLocked();
    }
  }
  RunAll(released);
  ScheduleClose();  // no-op unless the flush failed or finished a close
  if (crossed_high) NotifyHighWater(pending);
  return absl::OkStatus();
}

absl::Status Connection::FlushLocked(bool* below_low_water, CloseReason* reason,
                                     OutputQueue::Releases* released,
                                     bool* drained) {
  const Phase p = phase();
  if (p == Phase::kConnecting || p >= Phase::kReleasing) {
    return absl::OkStatus();
  }
  size_t written = 0;
  absl::Status failed;
  while (!out_.empty()) {
    const OutputQueue::Front front = out_.PeekFront();
    IoResult result = IoResult::WouldBlock();
    if (front.fd < 0) {
      absl::string_view views[kGather];
      const size_t count = out_.Gather(views, kGather);
      result = transport_->Write(absl::MakeConstSpan(views, count));
      CountWriteCall();
    } else {
      const size_t chunk =
          static_cast<size_t>(std::min(front.length, kSendFileChunk));
      result = transport_->SendFile(front.fd, front.offset, chunk);
      CountWriteCall();
      if (result.kind == IoResult::Kind::kEof) {
        // The file ended before offset + length.
        result = IoResult::Failed(
            CloseReason::kError,
            absl::OutOfRangeError(
                "Connection::SendFile: the file is shorter than the range"));
      }
    }
    if (result.kind == IoResult::Kind::kProgress) {
      out_.Consume(result.bytes, released);
      written += result.bytes;
      continue;
    }
    if (result.kind == IoResult::Kind::kFailed) {
      *reason = result.reason;
      failed = std::move(result.error);
    }
    break;  // would block (or failed)
  }
  CountWritten(written);
  if (!failed.ok()) return failed;
  if (drained != nullptr && written > 0 && out_.empty()) *drained = true;
  if (above_high_water_ && out_.pending_bytes() <= config().low_water) {
    above_high_water_ = false;
    if ((pause_ & kPausedOutputFull) != 0) {
      pause_ &= ~kPausedOutputFull;
      redeliver_ = true;  // a parser stopped at the mark continues
    }
    *below_low_water = true;
  }
  if (out_.empty()) {
    if (write_side() == WriteSide::kShutdownRequested) {
      (void)transport_->ShutdownWrite();
      set_write_side(WriteSide::kShut);
      if (input_ended_) {
        MarkCloseLocked(CloseReason::kPeerClosed, absl::OkStatus());
      }
    }
    if (phase() == Phase::kClosing) {
      MarkCloseLocked(close_reason_, absl::OkStatus());
    }
  }
  UpdateInterestLocked();
  return absl::OkStatus();
}

void Connection::FlushFromHandler() {
  OutputQueue::Releases released;
  bool below_low_water = false;
  CloseReason reason = CloseReason::kError;
  bool drained = false;
  absl::Status failed;
  {
    CompactMutexLock lock(&mu_);
    gathering_ = false;  // the handler writes it all now
    failed = FlushLocked(&below_low_water, &reason, &released, &drained);
  }
  RunAll(released);
  if (!failed.ok()) {
    Teardown(reason, std::move(failed));
    return;
  }
  if (below_low_water && config().callbacks.on_low_water) {
    config().callbacks.on_low_water(shared_from_this());
  }
  if (drained) PostWriteComplete();
}

void Connection::FlushGathered() {
  OutputQueue::Releases released;
  bool below_low_water = false;
  bool drained = false;
  CloseReason reason = CloseReason::kError;
  {
    CompactMutexLock lock(&mu_);
    if (!gathering_) return;  // written meanwhile
    gathering_ = false;
    if (is_closed()) return;
    absl::Status failed =
        FlushLocked(&below_low_water, &reason, &released, &drained);
    if (!failed.ok()) MarkCloseLocked(reason, std::move(failed));
  }
  RunAll(released);
  // A failure, or a Close() the flush finished: this runs inside the
  // connection's own callback scope, whose epilogue carries it out
  // (ScheduleClose only notes that, without taking the lock).
  ScheduleClose();
  if (below_low_water) PostLowWater();
  if (drained) PostWriteComplete();
}

namespace net_internal {

void WriteBatch::Flush(Connection* conn) { conn->FlushGathered(); }

}  // namespace net_internal

absl::Status Connection::Post(
    absl::AnyInvocable<void(const ConnectionPtr&)> fn) {
  {
    CompactMutexLock lock(&mu_);
    if (exec_busy_) {
      // Runs when the running callback or task returns, on its thread.
      exec_queue_.push_back(std::move(fn));
      return absl::OkStatus();
    }
  }
  ConnectionPtr self = shared_from_this();
  auto task = [self = std::move(self), fn = std::move(fn)]() mutable {
    self->Dispatch(std::move(fn));
  };
  EventLoop* const loop = this->loop();
  if (loop->IsInLoopThread()) {
    // RunInLoop would run it inline here: a zero-delay timer runs it after
    // the current handler, where handlers run.
    if (loop->RunAfter(absl::ZeroDuration(), std::move(task)).valid()) {
      return absl::OkStatus();
    }
  } else if (loop->RunInLoop(std::move(task)).ok()) {
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(
      "Connection::Post: the connection's loop has stopped");
}

// --- Interest ----------------------------------------------------------------

bool Connection::WantsReadLocked() const {
  return phase() == Phase::kOpen && !input_ended_ && pause_ == 0;
}

Interest Connection::ComputeInterestLocked() const {
  const Phase p = phase();
  if (p >= Phase::kClosePending || reports_muted_) return Interest::None();
  if (p == Phase::kConnecting) return Interest::Writable();
  Interest interest = Interest::None();
  if (WantsReadLocked()) interest |= Interest::Readable();
  // Gathered output is written by its batch, not on writable readiness.
  if (!out_.empty() && !gathering_) interest |= Interest::Writable();
  return interest;
}

void Connection::UpdateInterestLocked() {
  // Once closing is decided the transport is never told again (Teardown
  // releases it without the lock).
  if (phase() >= Phase::kClosePending) return;
  TellInterestLocked(ComputeInterestLocked());
}

void Connection::TellInterestLocked(Interest interest) {
  if (interest == told_) return;
  told_ = interest;
  transport_->SetInterest(interest);
}

void Connection::SetPauseLocked(uint32_t reason, bool on) {
  if (on) {
    pause_ |= reason;
  } else {
    pause_ &= ~reason;
  }
  UpdateInterestLocked();
}

}  // namespace mill
