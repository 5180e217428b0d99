// Per-registration state of the EventLoop. Internal: not part of the API.
#ifndef MILL_IO_REACTOR_INTERNAL_SOURCE_H_
#define MILL_IO_REACTOR_INTERNAL_SOURCE_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "poll/interest.h"
#include "poll/token.h"
#include "reactor/event_handler.h"
#include "timer/timing_wheel.h"

namespace mill {
namespace reactor_internal {

// One registration. Shared by the loop's tables and by every dispatch in
// flight, so the handler outlives its last invocation.
struct Source {
  Source(int fd, bool named, Token user_token, Token key, Interest interest,
         std::shared_ptr<EventHandler> handler)
      : fd(fd),
        named(named),
        user_token(user_token),
        key(key),
        handler(std::move(handler)),
        interest(interest) {}

  const int fd;
  const bool named;        // registered under a user token
  const Token user_token;  // what the user registered (or `key`, unnamed)
  const Token key;         // generation tag reported by the poller
  const std::shared_ptr<EventHandler> handler;

  // Guards interest, in_flight and fd_lost, and orders re-arming against
  // Deregister: once deregistered is set under this lock, nobody re-arms the
  // fd.
  std::mutex state_mu;
  Interest interest;
  bool in_flight = false;  // pool mode: event taken, not yet re-armed
  // The descriptor number now belongs to a newer registration (this one's fd
  // was closed before Deregister and reused): never touch it again.
  bool fd_lost = false;
  std::atomic<bool> deregistered{false};

  // The invocation gate: kInvoking while the handler runs, kDeregistered
  // once removed. An invocation starts only from 0, so none starts after
  // Deregister; whoever of the invoker and Deregister comes second (both see
  // the other's bit) takes the slow path below, under release_mu.
  static constexpr uint32_t kInvoking = 1;
  static constexpr uint32_t kDeregistered = 2;
  std::atomic<uint32_t> gate{0};
  // Thread running the handler now (default id when none), so a handler can
  // deregister itself without waiting for itself.
  std::atomic<std::thread::id> invoking_thread{};

  // Slow path of the gate: set when the invocation that overlapped
  // Deregister has finished; on_released (if any) runs then.
  std::mutex release_mu;
  std::condition_variable released_cv;
  bool invocation_finished = false;        // guarded by release_mu
  absl::AnyInvocable<void()> on_released;  // guarded by release_mu
};

// A timer of the loop. Shared by the id table, the wheel's callback and a
// pool dispatch in flight.
struct LoopTimer {
  LoopTimer(uint64_t id, bool repeating, absl::AnyInvocable<void()> fn)
      : id(id), repeating(repeating), fn(std::move(fn)) {}
  const uint64_t id;
  const bool repeating;
  absl::AnyInvocable<void()> fn;  // run by one thread at a time
  std::atomic<bool> cancelled{false};
  std::atomic<bool> running{false};  // pool mode: an invocation in flight
  TimerId wheel_id;                  // loop thread only
};

}  // namespace reactor_internal
}  // namespace mill

#endif  // MILL_IO_REACTOR_INTERNAL_SOURCE_H_
