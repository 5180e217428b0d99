// Waker: wakes a thread blocked in Poller::Poll from any other thread or
// from a signal handler.
//
// A Waker owns a wakeup descriptor (an eventfd on Linux, a non-blocking pipe
// elsewhere) registered with the Poller as readable, Trigger::kLevel, under
// the Waker's token. Wake() makes it readable; the polling thread sees an
// Event with that token and calls Drain().
//
// Thread-safety: Wake() is thread-safe and async-signal-safe. Drain() is
// called by the polling thread. Create and destruction are not concurrent
// with other calls on the same Waker.
// Ownership: the Waker owns its descriptor(s) and registration; the Poller
// must outlive the Waker (the destructor deregisters from it).
#ifndef MILL_IO_POLL_WAKER_H_
#define MILL_IO_POLL_WAKER_H_

#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "poll/poller.h"
#include "poll/token.h"

namespace mill {

namespace poll_internal {
class WakeupFd;
}  // namespace poll_internal

// Interrupts a blocked Poll.
//
//   auto waker = mill::Waker::Create(*poller, kWakerToken).value();
//   // any thread or signal handler:
//   waker->Wake();
//   // the polling thread:
//   for (const mill::Event& e : events) {
//     if (e.token() == kWakerToken) { waker->Drain(); RunQueuedTasks(); }
//   }
//
// Any number of Wake() calls before the polling thread drains coalesce into
// one event; after Drain() there are no more events until the next Wake().
// A Wake() racing with Drain() is never lost: it is either drained (and the
// caller is about to process what it signalled) or reported by the next Poll.
class Waker {
 public:
  // Creates the wakeup descriptor and registers it with `poller` (readable,
  // kLevel) under `token`.
  static absl::StatusOr<std::unique_ptr<Waker>> Create(Poller& poller,
                                                       Token token);

  Waker(const Waker&) = delete;
  Waker& operator=(const Waker&) = delete;
  // Deregisters from the poller and closes the descriptor(s).
  ~Waker();

  // Makes the next (or the current, blocked) Poll report this Waker's token.
  // Thread-safe and async-signal-safe: only write(2), errno preserved. A full
  // pipe / saturated eventfd counts as success (a wakeup is pending). Only a
  // broken Waker returns an error, and building that Status allocates, so a
  // signal handler should ignore the result.
  absl::Status Wake();

  // Consumes pending wakeups; call from the polling thread after seeing the
  // Waker's event.
  void Drain();

  Token token() const { return token_; }

 private:
  Waker(Poller& poller, Token token,
        std::unique_ptr<poll_internal::WakeupFd> fd);

  Poller& poller_;
  const Token token_;
  const std::unique_ptr<poll_internal::WakeupFd> fd_;
};

}  // namespace mill

#endif  // MILL_IO_POLL_WAKER_H_
