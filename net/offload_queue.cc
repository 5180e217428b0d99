#include "net/offload_queue.h"

#include <algorithm>
#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"

namespace mill {

std::shared_ptr<OffloadQueue> OffloadQueue::Create(const ConnectionPtr& conn,
                                                   size_t max_in_flight) {
  return std::make_shared<OffloadQueue>(PassKey{}, conn,
                                        std::max<size_t>(1, max_in_flight));
}

OffloadQueue::OffloadQueue(PassKey, const ConnectionPtr& conn,
                           size_t max_in_flight)
    : conn_(conn), loop_(conn->loop()), max_in_flight_(max_in_flight) {}

bool OffloadQueue::has_room() const {
  MutexLock lock(&mu_);
  return slots_.size() < max_in_flight_;
}

size_t OffloadQueue::in_flight() const {
  MutexLock lock(&mu_);
  return slots_.size();
}

size_t OffloadQueue::peak_in_flight() const {
  MutexLock lock(&mu_);
  return peak_;
}

absl::Status OffloadQueue::Submit(Job job) {
  ConnectionPtr conn = conn_.lock();
  if (conn == nullptr || conn->is_closed()) {
    return absl::FailedPreconditionError(
        "OffloadQueue::Submit: the connection is closed");
  }
  uint64_t seq;
  {
    MutexLock lock(&mu_);
    if (slots_.size() >= max_in_flight_) {
      // The caller should have checked has_room(); make sure the peer's
      // next requests wait in the socket, not in memory.
      if (!paused_) {
        paused_ = true;
        conn->PauseReading();
      }
      return absl::ResourceExhaustedError(
          "OffloadQueue::Submit: max_in_flight jobs are outstanding");
    }
    seq = first_seq_ + slots_.size();
    slots_.emplace_back();
    peak_ = std::max(peak_, slots_.size());
    if (slots_.size() == max_in_flight_ && !paused_) {
      // Full: stop reading until a reply is delivered (under mu_, so that
      // a delivery cannot resume before this pause).
      paused_ = true;
      conn->PauseReading();
    }
  }
  std::shared_ptr<OffloadQueue> self = shared_from_this();
  absl::Status spawned =
      loop_->SpawnCompute([self, seq, job = std::move(job)]() mutable {
        Reply reply;
        try {
          reply = job();
        } catch (...) {
          reply = nullptr;  // keeps its place, delivers nothing
        }
        job = nullptr;
        self->Finish(seq, std::move(reply));
      });
  if (!spawned.ok()) {
    Finish(seq, nullptr);  // frees its place in line
    return absl::FailedPreconditionError(
        absl::StrCat("OffloadQueue::Submit: the compute pool refused the job: ",
                     spawned.message()));
  }
  return absl::OkStatus();
}

void OffloadQueue::Finish(uint64_t seq, Reply reply) {
  bool post = false;
  {
    MutexLock lock(&mu_);
    Slot& slot = slots_[static_cast<size_t>(seq - first_seq_)];
    slot.done = true;
    slot.reply = std::move(reply);
    if (seq == first_seq_ && !delivery_posted_) {
      delivery_posted_ = true;
      post = true;
    }
  }
  if (!post) return;  // an earlier job delivers it, when it finishes
  ConnectionPtr conn = conn_.lock();
  if (conn == nullptr) return;  // nobody to reply to
  std::shared_ptr<OffloadQueue> self = shared_from_this();
  (void)conn->Post([self](const ConnectionPtr& c) { self->Deliver(c); });
}

void OffloadQueue::Deliver(const ConnectionPtr& conn) {
  std::exception_ptr error;
  for (;;) {
    Reply reply;
    {
      MutexLock lock(&mu_);
      if (slots_.empty() || !slots_.front().done) {
        delivery_posted_ = false;
        if (paused_ && slots_.size() < max_in_flight_) {
          // Inside the connection's context: ResumeReading queues its
          // redelivery of unconsumed input behind this task.
          paused_ = false;
          conn->ResumeReading();
        }
        break;
      }
      reply = std::move(slots_.front().reply);
      slots_.pop_front();
      ++first_seq_;
    }
    if (reply == nullptr || conn->is_closed()) continue;
    try {
      reply(conn);
    } catch (...) {
      if (!error) error = std::current_exception();
    }
  }
  // Every finished reply ran; the connection's executor reports the error.
  if (error) std::rethrow_exception(error);
}

}  // namespace mill
