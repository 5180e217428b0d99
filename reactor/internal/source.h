// Per-registration, per-timer, per-poller and per-thread state of the
// EventLoop. Internal to //reactor: not part of the API.
#ifndef MILL_IO_REACTOR_INTERNAL_SOURCE_H_
#define MILL_IO_REACTOR_INTERNAL_SOURCE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "base/compact_mutex.h"
#include "base/mutex.h"
#include "poll/event.h"
#include "poll/interest.h"
#include "poll/poller.h"
#include "poll/token.h"
#include "poll/waker.h"
#include "reactor/event_handler.h"

namespace mill {
namespace reactor_internal {

inline constexpr size_t kCacheLine = 64;

// One registration. Every idle connection pays for one, so it is kept small
// (48 bytes, see RegisteredHandler::kSourceSize): what only the slow paths
// need lives in the gate word or in striped tables.
//
// A Source is either embedded in a RegisteredHandler (it lives as long as the
// handler and serves its registrations one after another) or allocated
// with the handler's shared_ptr beside it (OwnedSource, one registration).
// The loop's tables and every dispatch in flight hold a shared_ptr<Source>
// sharing the handler's ownership, so the handler outlives its last
// invocation.
//
// The per-registration fields (key .. fd_lost) are written by Register while
// the source is released (no table lists it, no invocation runs), under the
// loop's tokens_mu_ and state_mu, before the gate word publishes the new
// generation (release); whoever found the source through a table reads them
// after that. A party that looked a source up before it was released and
// registered again (a stale event, a stale Registration handle) sees another
// generation in the gate and leaves it alone.
struct Source {
  explicit Source(EventHandler* handler) : handler(handler) {}
  Source(const Source&) = delete;
  Source& operator=(const Source&) = delete;

  // --- The gate: generation and state in one atomic word. ---------------
  // Bits 32-63: the low 32 bits of the registration's key, so that a
  // dispatcher holding a stale event of an earlier registration of the same
  // (embedded) source fails its CAS. An invocation starts only from "this
  // generation, no other bit but kNamed", so none starts after Deregister or
  // while another runs.
  static constexpr uint64_t kInvoking = 1;      // the handler runs
  static constexpr uint64_t kSilenced = 2;      // disarmed; invoker re-arms
  static constexpr uint64_t kRemoved = 4;       // Deregister began
  static constexpr uint64_t kDeregistered = 8;  // Deregister's handshake
  static constexpr uint64_t kFinished = 16;     // overlapped invocation ended
  static constexpr uint64_t kReleased = 32;     // free for a new registration
  static constexpr uint64_t kNamed = 64;        // registered under a user token
  static constexpr uint64_t kFlags = (uint64_t{1} << 32) - 1;
  // kInvoking or kSilenced: an invocation has not finished with the source
  // (a silenced one re-arms it after clearing kInvoking). Whoever of the
  // invoker and Deregister comes second (sees the other's bit) takes the
  // slow path through the ReleaseStripe.
  static constexpr uint64_t kBusy = kInvoking | kSilenced;

  // The gate of a registration under `key` that nothing uses.
  static uint64_t IdleGate(Token key) {
    return uint64_t{static_cast<uint32_t>(key.value())} << 32;
  }
  static bool SameGeneration(uint64_t gate, Token key) {
    return (gate & ~kFlags) == IdleGate(key);
  }

  std::atomic<uint64_t> gate{kReleased};
  EventHandler* const handler;

  // --- Per registration (see the struct comment). ------------------------
  Token key;         // generation tag reported by the poller, never reused
  Token user_token;  // what the user registered (or `key`, unnamed)
  int fd = -1;
  uint16_t set = 0;  // index of the poller it is registered with

  // Orders every epoll_ctl for this source (re-arming, silencing,
  // Reregister) against Deregister: once kRemoved is set under this lock,
  // nobody touches the fd.
  Interest interest ABSL_GUARDED_BY(state_mu) = Interest::None();
  // The descriptor number now belongs to a newer registration (this one's fd
  // was closed before Deregister and reused): never touch it again.
  bool fd_lost ABSL_GUARDED_BY(state_mu) = false;
  // 4 bytes (a futex word), not std::mutex's 40: every registration pays.
  CompactMutex state_mu;
};

// A Source for a plain EventHandler: allocated with the shared_ptr that keeps
// the handler alive (the loop's references alias this block).
struct OwnedSource {
  explicit OwnedSource(std::shared_ptr<EventHandler> owned)
      : source(owned.get()), handler(std::move(owned)) {}
  Source source;
  const std::shared_ptr<EventHandler> handler;
};

// Reaches the Source a RegisteredHandler carries.
struct EmbeddedSourceAccess {
  static Source& Of(RegisteredHandler& handler);
};

// The slow path's state for `source`: a mutex and condition variable of one
// of 64 stripes, and what must run when an overlapped invocation ends, keyed
// by source: present means "the invoker releases the source", the callback
// (possibly empty) is the Deregister's on_released.
struct ReleaseStripe {
  Mutex mu;
  CondVar cv;
  absl::flat_hash_map<const Source*, absl::AnyInvocable<void()>> waiting
      ABSL_GUARDED_BY(mu);
};
ReleaseStripe& ReleaseStripeFor(const Source* source);

// A timer of the loop. Shared by the id table, the wheel's callback and a
// batch that is about to run it.
struct LoopTimer {
  LoopTimer(uint64_t id, bool repeating, absl::AnyInvocable<void()> fn)
      : id(id), repeating(repeating), fn(std::move(fn)) {}
  const uint64_t id;  // EventLoop::TimerId::value()
  const bool repeating;
  // kCancelled: Cancel returned true (or the loop dropped it); kRunning: an
  // invocation runs; kStarted: a one-shot's only invocation has started.
  static constexpr uint32_t kCancelled = 1;
  static constexpr uint32_t kRunning = 2;
  static constexpr uint32_t kStarted = 4;
  std::atomic<uint32_t> state{0};
  absl::AnyInvocable<void()> fn;  // run by one thread at a time
};

// One poller (an epoll set) and the state its owner publishes for the
// standby thread. (Which thread owns it is LoopImpl::set_owner_.)
struct PollSet {
  std::unique_ptr<Poller> poller;
  std::unique_ptr<Waker> waker;

  // Written by the owner, read by the standby; own cache line.
  // activity: odd while the owner runs a handler (or a timer callback or a
  // task), incremented at every start and end. A standby that sees the same
  // odd value twice, takeover_delay apart, takes the set over with a CAS
  // from that value, which the owner's end-of-handler CAS then fails on.
  alignas(kCacheLine) std::atomic<uint64_t> activity{0};
  // The owner is inside Poll (idle), for the standby's decision to sleep.
  std::atomic<bool> in_poll{false};
  // Set 0 only: the deadline (steady-clock ns) its owner's Poll waits for,
  // INT64_MAX for no timeout, kAwake when it is not waiting; RunAfter,
  // RunInLoop and a task runner giving tasks back wake the poll only when
  // needed.
  std::atomic<int64_t> sleeping_until{INT64_MIN};
  static constexpr int64_t kAwake = INT64_MIN;
};

// One thread of the loop (index 0 is the one inside Run()).
struct LoopThread {
  LoopThread(int index, size_t events_capacity)
      : index(index), events(events_capacity) {}
  const int index;
  std::thread thread;  // empty for index 0

  // The batch being run: polled events, then due timers, up to `size`;
  // entries before `cursor` are taken. Private to the owner except during a
  // takeover, when the taker copies the rest under roles_mu_ (the owner is
  // then provably inside a handler, and touches the batch again only under
  // roles_mu_, in LeaveTakenOver): a hand-off the analysis cannot express,
  // hence no annotation.
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
