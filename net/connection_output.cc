// Connection: Send, SendFile, flushing the output queue through the
// transport, the water marks, and the interest the transport reports.
#include <algorithm>
#include <utility>

#include "net/connection.h"
#include "net/internal/connection_config.h"
#include "net/internal/transport.h"

namespace mill {

using net_internal::IoResult;
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

IoResult Connection::WriteNowLocked(absl::string_view data) {
  size_t written = 0;
  while (written < data.size()) {
    const absl::string_view rest = data.substr(written);
    IoResult result = transport_->Write(absl::MakeConstSpan(&rest, 1));
    if (result.kind != IoResult::Kind::kProgress) {
      if (result.kind == IoResult::Kind::kFailed) return result;
      break;  // would block: the rest is queued
    }
    written += result.bytes;
  }
  return IoResult::Progress(written);
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
  if (config().callbacks.on_high_water) {
    config().callbacks.on_high_water(shared_from_this(), pending);
  }
}

absl::Status Connection::Send(absl::string_view data) {
  bool crossed_high = false;
  size_t pending = 0;
  {
    CompactMutexLock lock(&mu_);
    if (!CanSendLocked()) {
      return absl::FailedPreconditionError(
          "Connection::Send: the connection is closing or closed");
    }
    if (data.empty()) return absl::OkStatus();
    if (out_.empty() && phase() == Phase::kOpen) {
      // Nothing queued: write directly, keep what the transport refuses.
      IoResult result = WriteNowLocked(data);
      if (result.kind == IoResult::Kind::kFailed) {
        absl::Status status = result.error;
        const bool fresh = MarkCloseLocked(result.reason, status);
        lock.Unlock();
        if (fresh) ScheduleClose();
        return status;
      }
      CountWritten(result.bytes);
      data.remove_prefix(result.bytes);
      if (data.empty()) return absl::OkStatus();
    }
    out_.AppendBytes(data);
    crossed_high = CrossedHighWaterLocked();
    pending = out_.pending_bytes();
    UpdateInterestLocked();
  }
  if (crossed_high) NotifyHighWater(pending);
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
      if (was_idle && !crossed_high && phase() == Phase::kOpen) {
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
                                     OutputQueue::Releases* released) {
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
    } else {
      const size_t chunk =
          static_cast<size_t>(std::min(front.length, kSendFileChunk));
      result = transport_->SendFile(front.fd, front.offset, chunk);
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
  absl::Status failed;
  {
    CompactMutexLock lock(&mu_);
    failed = FlushLocked(&below_low_water, &reason, &released);
  }
  RunAll(released);
  if (!failed.ok()) {
    Teardown(reason, std::move(failed));
    return;
  }
  if (below_low_water && config().callbacks.on_low_water) {
    config().callbacks.on_low_water(shared_from_this());
  }
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
  if (!out_.empty()) interest |= Interest::Writable();
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
