// Waker: wakes a thread blocked in Poller::Poll from any other thread or
// from a signal handler.
//
// On POSIX a Waker owns a wakeup descriptor (an eventfd on Linux, a
// non-blocking pipe elsewhere) registered with the Poller as readable,
// Trigger::kLevel, under the Waker's token; Wake() makes it readable. On
// Windows (IOCP backend) Wake() posts a completion packet to the Poller's
// port instead, with the same semantics. Either way the polling thread sees a
// readable Event with the Waker's token and calls Drain().
//
// Thread-safety: Wake() is thread-safe and, on POSIX, async-signal-safe (on
// Windows it may be called from a console control handler thread). Drain()
// is called by the polling thread. Create and destruction are not concurrent
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
class WakeChannel;
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
  // Creates the wakeup descriptor (POSIX) and registers it with `poller`
  // (readable, kLevel) under `token`.
  static absl::StatusOr<std::unique_ptr<Waker>> Create(Poller& poller,
                                                       Token token);

  Waker(const Waker&) = delete;
  Waker& operator=(const Waker&) = delete;
  // Deregisters from the poller and closes the descriptor(s).
  ~Waker();

  // Makes the next (or the current, blocked) Poll report this Waker's token.
  // Thread-safe and async-signal-safe: only write(2), errno preserved (on
  // Windows: PostQueuedCompletionStatus, at most one packet in flight). A full
  // pipe / saturated eventfd counts as success (a wakeup is pending). Only a
  // broken Waker returns an error, and building that Status allocates, so a
  // signal handler should ignore the result.
  absl::Status Wake();

  // Consumes pending wakeups; call from the polling thread after seeing the
  // Waker's event.
  void Drain();

  Token token() const { return token_; }

 private:
  Waker(Token token, std::unique_ptr<poll_internal::WakeChannel> channel);

  const Token token_;
  const std::unique_ptr<poll_internal::WakeChannel> channel_;
};

}  // namespace mill

#endif  // MILL_IO_POLL_WAKER_H_
