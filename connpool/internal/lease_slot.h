// Internal to //connpool: LeaseSlot, the record of one Acquire with
// LeaseHandlers (or with LeaseCallbacks and a response timeout). It holds
// the lease for the user (so that the handlers can be given it; not in the
// LeaseCallbacks form, where the user holds it), the handlers or the user's
// callbacks, the response timer and, for an Acquire on an EndpointSet,
// which endpoint it counts against. ConnectionPool wraps it in ordinary
// LeaseCallbacks and an AcquireCallback, so PoolCore knows nothing of it.
//
// Lifetime: the wrappers hold the slot; the slot holds the lease, the lease
// its connection, the connection (its context, while leased) the wrappers:
// a cycle, broken when the lease is released (the pool drops the holder's
// callbacks) or its connection closes (on_close drops them). The lease
// refers back to the slot weakly.
//
// Thread-safety: the handlers and the held lease are used inside the
// connection's Dispatch exclusion (as LeaseCallbacks are); the response
// timer's state is under mu_, since Lease::Send may come from any thread.
#ifndef MILL_IO_CONNPOOL_INTERNAL_LEASE_SLOT_H_
#define MILL_IO_CONNPOOL_INTERNAL_LEASE_SLOT_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/mutex.h"
#include "connpool/connection_pool.h"
#include "connpool/endpoint_set.h"
#include "net/connection.h"
#include "reactor/event_loop.h"

namespace mill {
namespace connpool_internal {

class LeaseSlot : public std::enable_shared_from_this<LeaseSlot> {
 public:
  // `response_timeout` zero: none. `set` may be null (`index` unused).
  LeaseSlot(EventLoop* loop, absl::string_view endpoint, LeaseHandlers handlers,
            absl::Duration response_timeout, std::shared_ptr<EndpointSet> set,
            size_t index);
  // The LeaseCallbacks form: `callbacks` (may be null) get the events.
  LeaseSlot(EventLoop* loop, absl::string_view endpoint,
            std::shared_ptr<const LeaseCallbacks> callbacks,
            absl::Duration response_timeout);
  ~LeaseSlot();
  LeaseSlot(const LeaseSlot&) = delete;
  LeaseSlot& operator=(const LeaseSlot&) = delete;

  // The callbacks the pool routes the leased connection's events to.
  static std::shared_ptr<const LeaseCallbacks> CallbacksFor(
      const std::shared_ptr<LeaseSlot>& slot);
  // Acquire's callback: keeps the lease here and hands `ready` a pointer.
  static AcquireCallback DoneFor(const std::shared_ptr<LeaseSlot>& slot,
                                 LeaseReadyCallback ready);
  // The LeaseCallbacks form: `done` gets the lease, linked to the slot.
  static AcquireCallback DoneForUser(const std::shared_ptr<LeaseSlot>& slot,
                                     AcquireCallback done);

  // Lease::Send is about to send: (re)start the response timer.
  void WillSend() ABSL_LOCKS_EXCLUDED(mu_);
  // The request ended (released, closed, or the acquire failed): the timer
  // stops and the endpoint set hears how it went. Once; later calls do
  // nothing.
  void End(const absl::Status& status) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void GotInput() ABSL_LOCKS_EXCLUDED(mu_);
  void OnTimer(uint64_t send) ABSL_LOCKS_EXCLUDED(mu_);
  bool TimedOut() const ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status TimeoutStatus() const;
  static std::shared_ptr<const LeaseCallbacks> WrapUserCallbacks(
      const std::shared_ptr<LeaseSlot>& slot);

  EventLoop* const loop_;
  const std::string endpoint_;
  const absl::Duration response_timeout_;
  const std::shared_ptr<EndpointSet> set_;
  const size_t index_;
  LeaseHandlers handlers_;
  const std::shared_ptr<const LeaseCallbacks> user_callbacks_;  // or these
  const bool user_held_ = false;    // the LeaseCallbacks form
  Lease lease_;                     // the pool-held lease
  std::weak_ptr<Connection> conn_;  // for the timer, set at hand-over

  mutable Mutex mu_;
  uint64_t sends_ ABSL_GUARDED_BY(mu_) = 0;     // Lease::Send calls so far
  bool awaiting_ ABSL_GUARDED_BY(mu_) = false;  // sent, no input since
  bool timed_out_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  EventLoop::TimerId timer_ ABSL_GUARDED_BY(mu_);
};

}  // namespace connpool_internal
}  // namespace mill

#endif  // MILL_IO_CONNPOOL_INTERNAL_LEASE_SLOT_H_
