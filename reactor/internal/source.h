// Per-registration, per-timer, per-poller and per-thread state of the
// EventLoop. Internal: not part of the API.
#ifndef MILL_IO_REACTOR_INTERNAL_SOURCE_H_
#define MILL_IO_REACTOR_INTERNAL_SOURCE_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "poll/event.h"
#include "poll/interest.h"
#include "poll/poller.h"
#include "poll/token.h"
#include "poll/waker.h"
#include "reactor/event_handler.h"
#include "timer/timing_wheel.h"

namespace mill {
namespace reactor_internal {

inline constexpr size_t kCacheLine = 64;

// One registration. Shared by the loop's tables and by every dispatch in
// flight, so the handler outlives its last invocation.
struct Source {
  Source(int fd, bool named, Token user_token, Token key, Interest interest,
         std::shared_ptr<EventHandler> handler, uint32_t set)
      : fd(fd),
        named(named),
        user_token(user_token),
        key(key),
        set(set),
        handler(std::move(handler)),
        interest(interest) {}

  const int fd;
  const bool named;        // registered under a user token
  const Token user_token;  // what the user registered (or `key`, unnamed)
  const Token key;         // generation tag reported by the poller
  const uint32_t set;      // index of the poller it is registered with
  const std::shared_ptr<EventHandler> handler;

  // Guards interest and fd_lost, and orders every epoll_ctl for this source
  // (re-arming, silencing, Reregister) against Deregister: once
  // deregistered is set under this lock, nobody touches the fd.
  std::mutex state_mu;
  Interest interest;
  // The descriptor number now belongs to a newer registration (this one's fd
  // was closed before Deregister and reused): never touch it again.
  bool fd_lost = false;
  std::atomic<bool> deregistered{false};

  // The invocation gate. kInvoking while the handler runs; kDeregistered
  // once removed; kSilenced while the source is disarmed because another
  // thread polled it during an invocation (pool mode, after a takeover).
  // An invocation starts only from 0, so none starts after Deregister or
  // while another runs. Whoever of the invoker and Deregister comes second
  // (both see the other's bit) takes the slow path (ReleaseStripe);
  // an invocation that ends with kSilenced set re-arms the source.
  static constexpr uint32_t kInvoking = 1;
  static constexpr uint32_t kDeregistered = 2;
  static constexpr uint32_t kSilenced = 4;
  std::atomic<uint32_t> gate{0};
  // Thread running the handler now (default id when none), so a handler can
  // deregister itself without waiting for itself.
  std::atomic<std::thread::id> invoking_thread{};

  // Slow path of the gate, when Deregister overlaps an invocation: rare,
  // so its state lives in a striped table shared by all sources (not here:
  // every idle connection pays for what a Source holds). `invocation
  // finished` is this flag, guarded by the stripe's mutex.
  bool invocation_finished = false;
};

// The slow path's state for `source`: a mutex and condition variable of one
// of 64 stripes, and the on_released callbacks waiting for an invocation to
// end, keyed by source (guarded by `mu`).
struct ReleaseStripe {
  std::mutex mu;
  std::condition_variable cv;
  absl::flat_hash_map<const Source*, absl::AnyInvocable<void()>> waiting;
};
ReleaseStripe& ReleaseStripeFor(const Source* source);

// A timer of the loop. Shared by the id table, the wheel's callback and a
// batch that is about to run it.
struct LoopTimer {
  LoopTimer(bool repeating, absl::AnyInvocable<void()> fn)
      : repeating(repeating), fn(std::move(fn)) {}
  const bool repeating;
  absl::AnyInvocable<void()> fn;  // run by one thread at a time
  // kCancelled: Cancel returned true (or the loop dropped it); kRunning: an
  // invocation runs; kStarted: a one-shot's only invocation has started.
  static constexpr uint32_t kCancelled = 1;
  static constexpr uint32_t kRunning = 2;
  static constexpr uint32_t kStarted = 4;
  std::atomic<uint32_t> state{0};
  std::atomic<std::thread::id> running_thread{};
  TimerId id;  // set at scheduling, under the loop's wheel lock
};

// One poller (an epoll set) and the state its owner publishes for the
// standby thread.
struct PollSet {
  std::unique_ptr<Poller> poller;
  std::unique_ptr<Waker> waker;
  int owner = -1;  // thread index; guarded by the loop's roles_mu_

  // Written by the owner, read by the standby; own cache line.
  // activity: odd while the owner runs a handler (or a timer callback or a
  // task), incremented at every start and end. A standby that sees the same
  // odd value twice, takeover_delay apart, takes the set over with a CAS
  // from that value, which the owner's end-of-handler CAS then fails on.
  alignas(kCacheLine) std::atomic<uint64_t> activity{0};
  // The owner is inside Poll (idle), for the standby's decision to sleep.
  std::atomic<bool> in_poll{false};
  // Set 0 only: the deadline (steady-clock ns) its owner's Poll waits for,
  // INT64_MAX for no timeout, kAwake when it is not waiting; RunAfter and
  // RunInLoop wake the poll only when needed.
  std::atomic<int64_t> sleeping_until{INT64_MIN};
  static constexpr int64_t kAwake = INT64_MIN;
};

// One thread of the loop (index 0 is the one inside Run()).
struct LoopThread {
  LoopThread(int index, size_t events_capacity)
      : index(index), events(events_capacity) {}
  const int index;
  std::thread thread;  // empty for index 0
  int set = -1;        // the set it owns, or -1; guarded by roles_mu_

  // The batch being run: polled events, then due timers, up to `size`;
  // entries before `cursor` are taken. Private to the owner except during a
  // takeover, when the taker copies the rest (the owner is then provably
  // inside a handler and does not touch it).
  Events events;
  std::vector<std::shared_ptr<LoopTimer>> due;
  size_t cursor = 0;

  // Counters, summed by stats(); single writer.
  alignas(kCacheLine) std::atomic<uint64_t> events_dispatched{0};
  std::atomic<uint64_t> stale_events{0};
  std::atomic<uint64_t> polls{0};
};

}  // namespace reactor_internal
}  // namespace mill

#endif  // MILL_IO_REACTOR_INTERNAL_SOURCE_H_
