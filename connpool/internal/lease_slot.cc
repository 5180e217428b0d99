// LeaseSlot: a pool-held lease, its handlers and its response timer.
#include "connpool/internal/lease_slot.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace mill {
namespace connpool_internal {

LeaseSlot::LeaseSlot(EventLoop* loop, absl::string_view endpoint,
                     LeaseHandlers handlers, absl::Duration response_timeout,
                     std::shared_ptr<EndpointSet> set, size_t index)
    : loop_(loop),
      endpoint_(endpoint),
      response_timeout_(response_timeout),
      set_(std::move(set)),
      index_(index),
      handlers_(std::move(handlers)) {}

LeaseSlot::LeaseSlot(EventLoop* loop, absl::string_view endpoint,
                     std::shared_ptr<const LeaseCallbacks> callbacks,
                     absl::Duration response_timeout)
    : loop_(loop),
      endpoint_(endpoint),
      response_timeout_(response_timeout),
      index_(0),
      user_callbacks_(std::move(callbacks)),
      user_held_(true) {}

LeaseSlot::~LeaseSlot() {
  // The lease (if still held) releases as not reusable when lease_ goes;
  // its weak reference to this slot has expired by then, so end here.
  End(absl::OkStatus());
}

std::shared_ptr<const LeaseCallbacks> LeaseSlot::CallbacksFor(
    const std::shared_ptr<LeaseSlot>& slot) {
  if (slot->user_held_) return WrapUserCallbacks(slot);
  auto cb = std::make_shared<LeaseCallbacks>();
  cb->on_data = [slot](const ConnectionPtr&, ByteBuffer& input) {
    slot->GotInput();
    if (slot->handlers_.on_data) slot->handlers_.on_data(slot->lease_, input);
  };
  // Left unset when the handler is, so that the pool's defaults apply
  // (close on EOF after pending output).
  if (slot->handlers_.on_peer_shutdown) {
    cb->on_peer_shutdown = [slot](const ConnectionPtr&) {
      slot->handlers_.on_peer_shutdown(slot->lease_);
    };
  }
  if (slot->handlers_.on_high_water) {
    cb->on_high_water = [slot](const ConnectionPtr&, size_t pending) {
      slot->handlers_.on_high_water(slot->lease_, pending);
    };
  }
  if (slot->handlers_.on_low_water) {
    cb->on_low_water = [slot](const ConnectionPtr&) {
      slot->handlers_.on_low_water(slot->lease_);
    };
  }
  if (slot->handlers_.on_write_complete) {
    cb->on_write_complete = [slot](const ConnectionPtr&) {
      slot->handlers_.on_write_complete(slot->lease_);
    };
  }
  cb->on_close = [slot](const ConnectionPtr&, CloseReason reason,
                        const absl::Status& status) {
    const bool timed_out = slot->TimedOut();
    slot->End(absl::OkStatus());
    if (!slot->handlers_.on_close) return;
    if (!timed_out) {
      slot->handlers_.on_close(slot->lease_, reason, status);
      return;
    }
    slot->handlers_.on_close(slot->lease_, reason, slot->TimeoutStatus());
  };
  return cb;
}

std::shared_ptr<const LeaseCallbacks> LeaseSlot::WrapUserCallbacks(
    const std::shared_ptr<LeaseSlot>& slot) {
  // The user's callbacks, with the response timer's hooks: only on_data
  // and on_close are wrapped; the others are the user's own.
  const std::shared_ptr<const LeaseCallbacks>& user = slot->user_callbacks_;
  auto cb = std::make_shared<LeaseCallbacks>();
  if (user != nullptr) *cb = *user;
  cb->on_data = [slot](const ConnectionPtr& c, ByteBuffer& input) {
    slot->GotInput();
    const LeaseCallbacks* u = slot->user_callbacks_.get();
    if (u != nullptr && u->on_data) u->on_data(c, input);
  };
  cb->on_close = [slot](const ConnectionPtr& c, CloseReason reason,
                        const absl::Status& status) {
    const bool timed_out = slot->TimedOut();
    slot->End(absl::OkStatus());
    const LeaseCallbacks* u = slot->user_callbacks_.get();
    if (u == nullptr || !u->on_close) return;
    u->on_close(c, reason, timed_out ? slot->TimeoutStatus() : status);
  };
  return cb;
}

absl::Status LeaseSlot::TimeoutStatus() const {
  return absl::DeadlineExceededError(
      absl::StrCat("ConnectionPool: no response from ", endpoint_, " within ",
                   absl::FormatDuration(response_timeout_),
                   " of the last Lease::Send; connection closed"));
}

AcquireCallback LeaseSlot::DoneFor(const std::shared_ptr<LeaseSlot>& slot,
                                   LeaseReadyCallback ready) {
  return [slot, ready = std::move(ready)](absl::StatusOr<Lease> lease) mutable {
    if (!lease.ok()) {
      slot->End(lease.status());
      if (ready) ready(lease.status());
      return;
    }
    if (slot->set_ != nullptr) slot->set_->Succeeded(slot->index_);
    lease->slot_ = slot;
    slot->conn_ = lease->connection();
    slot->lease_ = *std::move(lease);
    if (ready) ready(&slot->lease_);
  };
}

AcquireCallback LeaseSlot::DoneForUser(const std::shared_ptr<LeaseSlot>& slot,
                                       AcquireCallback done) {
  return [slot, done = std::move(done)](absl::StatusOr<Lease> lease) mutable {
    if (lease.ok()) {
      lease->slot_ = slot;
      slot->conn_ = lease->connection();
    } else {
      slot->End(lease.status());
    }
    done(std::move(lease));
  };
}

void LeaseSlot::WillSend() {
  if (response_timeout_ <= absl::ZeroDuration()) return;
  uint64_t send;
  EventLoop::TimerId previous;
  {
    MutexLock lock(&mu_);
    if (ended_) return;
    send = ++sends_;
    awaiting_ = true;
    previous = std::exchange(timer_, EventLoop::TimerId());
  }
  if (previous.valid()) loop_->Cancel(previous);
  std::weak_ptr<LeaseSlot> weak = weak_from_this();
  EventLoop::TimerId timer = loop_->RunAfter(response_timeout_, [weak, send] {
    if (std::shared_ptr<LeaseSlot> self = weak.lock()) self->OnTimer(send);
  });
  bool stale;
  {
    MutexLock lock(&mu_);
    // A later Send (another thread) or the end overtook this one.
    stale = ended_ || sends_ != send || !awaiting_;
    if (!stale) timer_ = timer;
  }
  if (stale && timer.valid()) loop_->Cancel(timer);
}

void LeaseSlot::GotInput() {
  if (response_timeout_ <= absl::ZeroDuration()) return;
  EventLoop::TimerId timer;
  {
    MutexLock lock(&mu_);
    awaiting_ = false;
    timer = std::exchange(timer_, EventLoop::TimerId());
  }
  // Outside the lock: the timer's callback takes it.
  if (timer.valid()) loop_->Cancel(timer);
}

void LeaseSlot::OnTimer(uint64_t send) {
  ConnectionPtr conn;
  {
    MutexLock lock(&mu_);
    if (ended_ || !awaiting_ || sends_ != send) return;
    timer_ = EventLoop::TimerId();
    conn = conn_.lock();
  }
  if (conn == nullptr) return;
  // Decided inside the connection's exclusion, so that input being handled
  // right now (on_data) wins over the timer.
  conn->Dispatch([self = shared_from_this(), send](const ConnectionPtr& c) {
    {
      MutexLock lock(&self->mu_);
      if (self->ended_ || !self->awaiting_ || self->sends_ != send) return;
      self->timed_out_ = true;
    }
    c->Abort();  // its on_close reports the timeout; never reused
  });
}

bool LeaseSlot::TimedOut() const {
  MutexLock lock(&mu_);
  return timed_out_;
}

void LeaseSlot::End(const absl::Status& status) {
  EventLoop::TimerId timer;
  {
    MutexLock lock(&mu_);
    if (ended_) return;
    ended_ = true;
    awaiting_ = false;
    timer = std::exchange(timer_, EventLoop::TimerId());
  }
  if (timer.valid()) loop_->Cancel(timer);
  if (set_ != nullptr) set_->Finish(index_, status);
}

}  // namespace connpool_internal
}  // namespace mill
