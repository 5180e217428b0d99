// Internal to //connpool: PoolState, the connection pool's books without
// sockets, loops or locks. It knows each endpoint's connections (idle,
// leased, being checked, connecting), the limits, the idle lists (most
// recently used first per endpoint, and least recently used overall for
// eviction and expiry), the queue of waiting requests with their deadlines,
// expiry (idle timeout, lifetime with jitter) and the counters, all on an
// injected clock.
//
// Every operation updates the books and says in an Effects what must happen
// outside them: connections to close, connects to start or cancel, requests
// to fail, the sweep timer to arm. The I/O shell (PoolCore) calls it under
// its mutex and carries the effects out after unlocking.
//
// Connections appear as PoolEntry records carrying an opaque handle (the
// shell's Connection*; a test's fake); requests as PoolWaiter objects the
// state owns while they wait.
//
// Totals (open, connecting) are derived from the per-endpoint counts, never
// kept beside them.
//
// Thread-safety: none (the caller's lock). Ownership: the state owns its
// endpoints and queued waiters; entries belong to the caller, who keeps each
// alive while the state counts it (until it is detached).
#ifndef MILL_IO_CONNPOOL_INTERNAL_POOL_STATE_H_
#define MILL_IO_CONNPOOL_INTERNAL_POOL_STATE_H_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "connpool/internal/intrusive_list.h"
#include "connpool/pool_stats.h"

namespace mill {
namespace connpool_internal {

// "No deadline" / "no expiry" on the state's clock.
inline constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

// Monotonic nanoseconds. The production clock is std::chrono::steady_clock
// (SteadyPoolClock()); tests drive a fake one.
class PoolClock {
 public:
  virtual ~PoolClock() = default;
  virtual int64_t NowNanos() const = 0;
};
const PoolClock* SteadyPoolClock();

struct PoolLimits {
  size_t max_connections_per_endpoint = 16;
  size_t max_connections = 256;
  size_t max_idle_per_endpoint = 8;
  size_t max_pending = 1024;
  size_t max_pending_per_endpoint = std::numeric_limits<size_t>::max();
  int64_t idle_timeout_ns = 0;  // 0: never
  int64_t max_lifetime_ns = 0;  // 0: unlimited
  double lifetime_jitter = 0.0;
  uint64_t random_seed = 0;  // 0: random
};

// Tags of the lists an entry or a waiter can be on.
struct ByEndpoint {};  // its endpoint's idle list / queue (or claimed list)
struct ByAge {};       // the pool's idle list (LRU order) / queue

struct Endpoint;

enum class EntryState : uint8_t {
  kDetached,    // not counted: not attached yet, closing or closed
  kChecking,    // opened, or claimed by a waiter: being checked, handed out
  kRechecking,  // taken from the idle set by an Acquire; check pending
  kLeased,      // a lease holds it (or was released; the return is due)
  kIdle,        // in the idle set
};

// One connection's record. Only the state reads and writes its fields.
class PoolEntry : public ListNode<ByEndpoint>, public ListNode<ByAge> {
 public:
  PoolEntry() = default;

 private:
  friend class PoolState;
  Endpoint* endpoint_ = nullptr;  // null while detached
  void* handle_ = nullptr;        // the shell's connection, until closed
  int64_t idle_since_ns_ = 0;     // set only with an idle timeout
  int64_t expires_ns_ = kNever;
  // Where in [max_lifetime * (1 - jitter), max_lifetime] its lifetime lies
  // (0: the longest), so that the lifetime is computed again, not stored.
  uint32_t lifetime_cut_ = 0;
  EntryState state_ = EntryState::kDetached;
  bool been_idle_ = false;  // a close while being checked is "dead on reuse"
};

// A queued request. The shell derives its own (the callback, the deadline
// timer); the state owns it from Enqueue until it hands it back (served,
// failed or cancelled).
class PoolWaiter : public ListNode<ByEndpoint>, public ListNode<ByAge> {
 public:
  PoolWaiter() = default;
  virtual ~PoolWaiter() = default;

  uint64_t id() const { return id_; }
  // The deadline timer fired (DeadlinePassed) while it was queued or
  // claimed: the shell must not cancel that timer.
  bool deadline_passed() const { return deadline_passed_; }

 private:
  friend class PoolState;
  uint64_t id_ = 0;
  Endpoint* endpoint_ = nullptr;
  int64_t start_ns_ = 0;
  int64_t deadline_ns_ = kNever;
  bool deadline_passed_ = false;
};

struct Endpoint {
  Endpoint(std::string k, std::shared_ptr<const void> c)
      : key(std::move(k)), context(std::move(c)) {}
  const std::string key;
  // The shell's, opaque (the layer its connections are opened with): held
  // while the endpoint exists, given back with each connect to start.
  const std::shared_ptr<const void> context;
  size_t open = 0;        // counted connections, connecting ones included
  size_t connecting = 0;  // connects in progress
  // Idle connections an Acquire took whose check is still due (queued
  // behind a callback of theirs): each will serve a waiter unless it
  // proves dead, so they count like connects in progress.
  size_t rechecking = 0;
  bool erase_listed = false;
  IntrusiveList<PoolEntry, ByEndpoint> idle;      // front: most recent
  IntrusiveList<PoolWaiter, ByEndpoint> waiters;  // front: oldest
  // Waiters handed a connection that is being checked (off the queues).
  IntrusiveList<PoolWaiter, ByEndpoint> claimed;
};

// What an operation decided, for the shell to carry out unlocked. The
// lists are built only when something is in them (the hand-out and return
// fast paths decide nothing of the kind), so that an empty Effects costs a
// pointer.
class Effects {
 public:
  struct Connect {
    std::string key;
    uint64_t seq;  // the state's name for it (ConnectIssued, ConnectFailed)
    std::shared_ptr<const void> context;  // the endpoint's
  };
  struct Lists {
    std::vector<void*> close;  // handles of connections to close
    std::vector<Connect> connects;
    std::vector<uint64_t> cancel_connects;  // ids given to ConnectIssued
    // Requests answered with an error (the shell cancels their timers).
    std::vector<std::pair<std::unique_ptr<PoolWaiter>, absl::Status>> fail;
    // The state's own: endpoints to erase if nothing is left in them.
    std::vector<Endpoint*> maybe_erase;
  };

  // Null when every list is empty.
  Lists* lists() const { return lists_.get(); }
  bool arm_sweep = false;  // run Sweep() after the sweep interval
  bool drained = false;    // draining, and the last connection went

 private:
  friend class PoolState;
  Lists& Add() {
    if (lists_ == nullptr) lists_ = std::make_unique<Lists>();
    return *lists_;
  }
  bool pump = false;  // a slot may have freed: see whether waiters can use it
  std::unique_ptr<Lists> lists_;
};

// How a connection comes back to Place().
enum class Return : uint8_t {
  kFresh,      // just connected (EntryState::kChecking)
  kReleased,   // released by its holder (kLeased)
  kRechecked,  // taken by an Acquire that moved on (kRechecking)
};

// How a connection ended (Closed()).
enum class ConnectionEnd : uint8_t {
  kClosedLocally,  // Close() / Abort() on our side
  kIdleTimeout,    // the connection's own idle timeout
  kStopped,        // the client stopped (the pool's destruction)
  kOther,          // the peer or an error
};

class PoolState {
 public:
  // `clock` must outlive the state.
  PoolState(const PoolLimits& limits, const PoolClock* clock);
  ~PoolState();
  PoolState(const PoolState&) = delete;
  PoolState& operator=(const PoolState&) = delete;

  int64_t Now() const { return clock_->NowNanos(); }
  bool draining() const { return draining_; }
  bool drained() const { return drained_; }

  // --- Acquire ---
  // The most recently used idle connection of `key` that has not expired
  // (expired ones are detached on the way), now kRechecking; null if none
  // or draining.
  PoolEntry* TakeIdle(absl::string_view key, Effects& fx);
  // After TakeIdle found none: queues the waiter `make()` returns (starting
  // a connect if the limits allow and none is coming for it) and returns
  // it, or fails (draining, deadline passed, queue full). `deadline_ns` is
  // on this state's clock (kNever: none). `context` is kept with `key`'s
  // endpoint when this creates it.
  absl::StatusOr<PoolWaiter*> Enqueue(
      absl::string_view key, int64_t deadline_ns,
      absl::FunctionRef<std::unique_ptr<PoolWaiter>()> make, Effects& fx,
      std::shared_ptr<const void> context = nullptr);
  // The waiter's deadline timer fired: fails it unless it is claimed (then
  // a failed hand-over fails it instead of requeueing).
  void DeadlinePassed(uint64_t id, Effects& fx);
  // Withdraws a queued (not claimed) waiter; false if there is none.
  bool Cancel(uint64_t id, Effects& fx);

  // --- Hand-out (after the shell's checks) ---
  // `e` (checking or rechecking) passed: it is leased. Returns `claimed`
  // (may be null: an inline hand-out) taken off the books, or nothing when
  // `e` was detached meanwhile: then it is like Rejected.
  struct Leasing {
    bool leased = false;
    std::unique_ptr<PoolWaiter> waiter;
  };
  Leasing Leased(PoolEntry* e, PoolWaiter* claimed, bool reused, Effects& fx);
  // `e` failed its check: detached (closed) for `reason`; `claimed` goes
  // back to the head of its queue, or fails if its deadline passed or the
  // pool is draining.
  void Rejected(PoolEntry* e, PoolCloseReason reason, PoolWaiter* claimed,
                Effects& fx);

  // --- Return to the pool ---
  // Gives `e` back (if still in the state `how` implies): detached for
  // `reject`, for its lifetime (kReleased) or for draining; else claimed by
  // the oldest waiter of its endpoint (returned; `e` is then kChecking), or
  // idle.
  PoolWaiter* Place(PoolEntry* e, Return how,
                    std::optional<PoolCloseReason> reject, Effects& fx);
  // Released as not reusable: detached (closed) unless it closed already.
  void ReleaseNotReusable(PoolEntry* e, Effects& fx);

  // --- Connection events ---
  // Input, EOF or an error while idle: detached as dead (closed only if
  // `close`); false if it was not idle.
  bool DeadWhileIdle(PoolEntry* e, bool close, Effects& fx);
  // Its on_close: detached (not closed again); the handle is forgotten.
  void Closed(PoolEntry* e, ConnectionEnd end, Effects& fx);

  // --- Connects (Effects::connects) ---
  // The connect `seq` got the client's id `id` (to cancel it on Drain);
  // true when it must be cancelled now (draining began before).
  bool ConnectIssued(uint64_t seq, uint64_t id);
  void ConnectFailed(uint64_t seq, const absl::Status& status, Effects& fx);
  // Connected: `e` (null if it closed already) gets `handle` and its
  // lifetime. True when the shell must Place it (kFresh); otherwise it
  // was counted as closed (and is in the close list when draining).
  bool ConnectSucceeded(uint64_t seq, PoolEntry* e, void* handle, Effects& fx);

  // --- Expiry and shutdown ---
  // Closes expired idle connections; fx.arm_sweep says whether to sweep
  // again.
  void Sweep(Effects& fx);
  // The sweep timer could not be armed (the loop stopped).
  void SweepNotArmed() { sweep_armed_ = false; }
  // Fails every queued waiter with `why`, closes idle connections, cancels
  // connects; from then on nothing is handed out. Once nothing is open
  // fx.drained is set (once).
  void Drain(const absl::Status& why, Effects& fx);

  // --- Queries ---
  ConnectionPoolStats Stats() const;
  // The lifetime drawn for `e` (kNever without max_lifetime).
  int64_t LifetimeNanos(const PoolEntry& e) const;
  EntryState StateOf(const PoolEntry& e) const { return e.state_; }
  void* HandleOf(const PoolEntry& e) const { return e.handle_; }

 private:
  struct PendingConnect {
    Endpoint* endpoint;
    uint64_t id;  // the client's (0 until ConnectIssued)
  };

  Endpoint* FindEndpoint(absl::string_view key) const;
  Endpoint* GetEndpoint(absl::string_view key,
                        std::shared_ptr<const void> context);
  size_t TotalOpen() const;
  bool expiry() const {
    return limits_.idle_timeout_ns > 0 || limits_.max_lifetime_ns > 0;
  }
  bool IdleTooLong(const PoolEntry& e, int64_t now) const {
    return limits_.idle_timeout_ns > 0 &&
           now - e.idle_since_ns_ >= limits_.idle_timeout_ns;
  }
  static bool Expired(const PoolEntry& e, int64_t now) {
    return now >= e.expires_ns_;
  }
  static bool Claimed(const PoolWaiter& w) {
    return !static_cast<const ListNode<ByAge>&>(w).linked();
  }

  void SetState(PoolEntry* e, EntryState state);
  void PushIdle(PoolEntry* e, Effects& fx);
  void UnlinkIdle(PoolEntry* e);
  void Detach(PoolEntry* e, PoolCloseReason reason, Effects& fx,
              bool close = true);
  void StartConnect(Endpoint* ep, Effects& fx);
  Endpoint* EndConnect(uint64_t seq);
  std::unique_ptr<PoolWaiter> TakeWaiter(PoolWaiter* w, Effects& fx);
  void Requeue(PoolWaiter* w, Effects& fx);
  void Pump(Effects& fx);
  void RecordWait(int64_t wait_ns);
  static void MarkForErase(Endpoint* ep, Effects& fx);
  // A hash map that grew for a burst (thousands of waiters or connects at
  // once) keeps its slots after they went: give them back once it is empty.
  template <typename Map>
  static void ReleaseIfEmpty(Map& map) {
    if (map.empty() && map.capacity() > 128) Map().swap(map);
  }
  // Ends every operation: pump, endpoint clean-up, drained check.
  void Finish(Effects& fx) {
    if (fx.pump || fx.lists_ != nullptr || draining_) FinishAll(fx);
  }
  void FinishAll(Effects& fx);

  const PoolLimits limits_;
  const PoolClock* const clock_;

  absl::flat_hash_map<std::string, std::unique_ptr<Endpoint>> endpoints_;
  IntrusiveList<PoolEntry, ByAge> idle_by_age_;  // front: most recent
  IntrusiveList<PoolWaiter, ByAge> queue_;       // front: oldest
  // Every waiter the state owns: queued and claimed.
  absl::flat_hash_map<uint64_t, std::unique_ptr<PoolWaiter>> waiters_;
  absl::flat_hash_map<uint64_t, PendingConnect> connects_;
  std::mt19937_64 random_;
  uint64_t next_waiter_id_ = 1;
  uint64_t next_connect_seq_ = 1;
  bool draining_ = false;
  bool drained_ = false;
  bool sweep_armed_ = false;
  absl::Status drain_status_;

  ConnectionPoolStats counters_;  // the counters; sizes are derived
  int64_t wait_total_ns_ = 0;
  int64_t wait_max_ns_ = 0;
};

}  // namespace connpool_internal
}  // namespace mill

#endif  // MILL_IO_CONNPOOL_INTERNAL_POOL_STATE_H_
