#include "connpool/connection_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "base/monotonic_clock.h"
#include "connpool/internal/intrusive_list.h"

namespace mill {
namespace connpool_internal {
namespace {

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

int64_t ToNanos(absl::Duration d) {
  if (d == absl::InfiniteDuration()) return kNever;
  return absl::ToInt64Nanoseconds(d);
}

}  // namespace

// Tags of the lists an Entry or a Waiter can be on.
struct ByEndpoint {};  // its endpoint's idle list / wait queue
struct ByAge {};       // the pool's idle list (LRU order) / wait queue

struct Endpoint;

// Where a connection is in the pool.
enum class EntryState : uint8_t {
  kChecking,  // opened or taken from the idle set; being checked/handed out
  kLeased,    // a lease holds it (or was released; the hand-back is due)
  kIdle,      // in the idle set
  kDetached,  // no longer counted: closing or closed
};

// The pool's bookkeeping for one connection, kept in the connection's
// context (so its callbacks find it without a lookup) and shared with its
// lease: two list links, the connection, times (created, expiry, idle
// since), use count, state, the holder's callbacks. Nothing else is
// allocated per idle connection.
struct Entry : ListNode<ByEndpoint>, ListNode<ByAge> {
  explicit Entry(PoolCore* core) : core(core) {}

  PoolCore* const core;  // alive while the connection is: see PoolCore
  // Set before the entry is shared, then read-only.
  int64_t created_ns = 0;
  int64_t expires_ns = kNever;

  // Guarded by the core's mutex.
  ConnectionPtr conn;  // reset on close (breaks conn -> context -> entry)
  Endpoint* endpoint = nullptr;  // null once detached
  int64_t idle_since_ns = 0;     // set only with an idle timeout
  uint32_t uses = 0;             // leases so far
  EntryState state = EntryState::kChecking;
  bool has_been_idle = false;  // a fresh connection until it is
  // Taken from the idle set by an Acquire and not settled yet: counted in
  // its endpoint's `rechecking` (see Endpoint).
  bool rechecking = false;

  // The holder's callbacks. Written only inside the connection's Dispatch
  // exclusion (with std::atomic_store), read there without a lock, and with
  // std::atomic_load by on_high_water (which runs on the sending thread).
  std::shared_ptr<const LeaseCallbacks> callbacks;
  // False from the moment Release is called: no holder callback starts.
  std::atomic<bool> holder_active{false};
};

// The per-connection budget (see the memory test): 120 bytes on LP64, 136
// with make_shared's control block.
static_assert(sizeof(Entry) <= 128, "keep the per-connection entry small");

// A queued Acquire.
struct Waiter : ListNode<ByEndpoint>, ListNode<ByAge> {
  uint64_t id = 0;
  Endpoint* endpoint = nullptr;
  AcquireCallback done;
  std::shared_ptr<const LeaseCallbacks> callbacks;
  int64_t start_ns = 0;
  // absl::InfiniteFuture() for none. Checked when a failed hand-over would
  // requeue the waiter, so a late deadline timer cannot keep it waiting.
  absl::Time deadline = absl::InfiniteFuture();
  EventLoop::TimerId timer;
  // Taken off the queues to be handed a connection being checked; the
  // deadline timer then only notes that it fired.
  bool claimed = false;
  bool timer_fired = false;
};

struct Endpoint {
  explicit Endpoint(std::string key) : key(std::move(key)) {}
  const std::string key;
  size_t open = 0;        // counted connections (connecting included)
  size_t connecting = 0;  // connects in progress
  // Idle connections an Acquire took whose check is still due (queued
  // behind a callback of theirs still running, typically the one that
  // released them): each will serve a waiter unless it proves dead, so
  // they count like connects in progress and no extra connect starts.
  size_t rechecking = 0;
  size_t claimed = 0;  // claimed waiters: keep the record alive
  bool erase_listed = false;
  IntrusiveList<Entry, ByEndpoint> idle;      // front: most recently used
  IntrusiveList<Waiter, ByEndpoint> waiters;  // front: oldest
};

// An Acquire on this thread trying an idle connection inline (see
// PoolCore::Acquire): the Dispatch task recognises it and fills `lease`.
struct InlineHandOff {
  const Entry* entry = nullptr;
  const std::shared_ptr<const LeaseCallbacks>* callbacks = nullptr;
  bool ran = false;
  std::optional<Lease> lease;
};
thread_local InlineHandOff* t_handoff = nullptr;

// The connection whose callback the pool is running user code for on this
// thread (a holder's callback, or a waiter's `done`): we are inside its
// Dispatch exclusion, so a Release or hand-out of that connection from the
// user code runs inline instead of being queued behind the callback.
thread_local const Connection* t_in_callbacks_of = nullptr;

class UserCodeScope {
 public:
  explicit UserCodeScope(const Connection* conn)
      : previous_(std::exchange(t_in_callbacks_of, conn)) {}
  ~UserCodeScope() { t_in_callbacks_of = previous_; }
  UserCodeScope(const UserCodeScope&) = delete;
  UserCodeScope& operator=(const UserCodeScope&) = delete;

 private:
  const Connection* const previous_;
};

// The pool's state, shared by the ConnectionPool, the TcpClient's callbacks
// (so it lives as long as any of its connections: a Connection keeps its
// creator's callbacks, which hold this, alive), timers (weakly) and connect
// callbacks. Entries, tasks and leases therefore use a plain PoolCore*. It owns
// no connection and not the client: the ConnectionPool owns the client, so the
// client is never destroyed on a callback thread.
class PoolCore : public std::enable_shared_from_this<PoolCore> {
 public:
  PoolCore(EventLoop* loop, ConnectionPoolOptions options);

  ConnectionCallbacks MakeClientCallbacks();
  void AttachClient(TcpClient* client);
  // Waits until no thread is inside a client call; then none starts.
  void DetachClient();
  // Waits until the on_close of every connection that opened has returned
  // (TcpClient::Stop returns a little before that).
  void WaitForCloses();

  uint64_t Acquire(absl::string_view key, absl::Time deadline,
                   AcquireCallback done,
                   std::shared_ptr<const LeaseCallbacks> callbacks);
  bool CancelAcquire(uint64_t id);
  void Release(std::shared_ptr<Entry> entry, const ConnectionPtr& conn,
               bool reusable);
  void Drain(absl::AnyInvocable<void()> on_drained, const absl::Status& why);
  bool draining() const {
    std::lock_guard<std::mutex> lock(mu_);
    return draining_;
  }
  bool drained() const {
    std::lock_guard<std::mutex> lock(mu_);
    return drained_;
  }
  ConnectionPoolStats Stats() const;

 private:
  // What a locked section decided, carried out after unlocking.
  struct Actions {
    struct Connect {
      Endpoint* endpoint;
      std::string key;
      uint64_t seq;
    };
    std::vector<ConnectionPtr> close;
    std::vector<EventLoop::TimerId> cancel_timers;
    std::vector<Connect> connects;
    std::vector<TcpClient::ConnectId> cancel_connects;
    std::vector<std::pair<std::unique_ptr<Waiter>, absl::Status>> fail;
    std::vector<absl::AnyInvocable<void()>> drained;
    std::vector<Endpoint*> maybe_erase;
    bool pump = false;
    bool arm_sweep = false;
  };

  // --- Client callbacks (a connection's callback context) ---
  static std::shared_ptr<Entry> EntryOf(const ConnectionPtr& conn) {
    return conn->GetContext<Entry>();
  }
  void OnConnect(const ConnectionPtr& conn);
  void OnData(const ConnectionPtr& conn, ByteBuffer& input);
  void OnPeerShutdown(const ConnectionPtr& conn);
  void OnHighWater(const ConnectionPtr& conn, size_t pending);
  void OnLowWater(const ConnectionPtr& conn);
  void OnClose(const ConnectionPtr& conn, CloseReason reason,
               const absl::Status& status);
  void OnConnectDone(Endpoint* endpoint, uint64_t seq,
                     absl::StatusOr<ConnectionPtr> result);

  // --- Dispatch tasks (excluded from the connection's callbacks) ---
  static void HandOffTask(const ConnectionPtr& conn);
  void PlaceFresh(const std::shared_ptr<Entry>& entry,
                  const ConnectionPtr& conn);
  void Recheck(const std::shared_ptr<Entry>& entry, const ConnectionPtr& conn);
  void FinishRelease(const std::shared_ptr<Entry>& entry,
                     const ConnectionPtr& conn);
  // Gives a connection in state `expected` back to the pool: to the oldest
  // waiter of its endpoint, or the idle set; closes it when draining or
  // when `reject` says why. Nothing if its state changed (it closed).
  void Place(const std::shared_ptr<Entry>& entry, const ConnectionPtr& conn,
             EntryState expected, bool fresh,
             std::optional<PoolCloseReason> reject = std::nullopt);
  // The clock, when expiry needs it.
  int64_t ExpiryClock() const {
    return idle_timeout_ns_ > 0 || max_lifetime_ns_ > 0 ? MonotonicNanos() : 0;
  }
  // Checks (reused) and hands `entry` to a holder. On failure the entry is
  // detached and `waiter`, if any, requeued (or failed) in the same locked
  // section; returns nullopt. On success a claimed `waiter` is taken off
  // the books into *owned.
  std::optional<Lease> HandOut(const std::shared_ptr<Entry>& entry,
                               const ConnectionPtr& conn,
                               const std::shared_ptr<const LeaseCallbacks>& cb,
                               bool reused, int64_t wait_ns, Waiter* waiter,
                               std::unique_ptr<Waiter>* owned = nullptr);

  // --- Locked helpers (mu_ held) ---
  Endpoint* FindEndpointLocked(absl::string_view key);
  Endpoint* GetEndpointLocked(absl::string_view key);
  Entry* PopIdleLocked(Endpoint* ep, int64_t now, Actions& a);
  void PushIdleLocked(Entry* e, int64_t now, Actions& a);
  void DetachLocked(Entry* e, PoolCloseReason reason, Actions& a,
                    bool close = true);
  void StartConnectLocked(Endpoint* ep, Actions& a);
  void SettleRecheckLocked(Entry* e);
  void PumpLocked(Actions& a);
  std::unique_ptr<Waiter> TakeWaiterLocked(Waiter* w, Actions& a);
  void RequeueLocked(Waiter* w, Actions& a);
  void RecordWaitLocked(int64_t wait_ns);
  // Ends every locked section: pump, endpoint clean-up, drained check.
  void FinishLocked(Actions& a);

  void RunActions(Actions& a);
  void StartConnect(Actions::Connect& c);
  void ArmSweep();
  void Sweep();
  void OnWaiterDeadline(uint64_t id);
  TcpClient* UseClient();
  void DoneWithClient();

  bool Expired(const Entry& e, int64_t now) const {
    return now >= e.expires_ns;
  }
  bool IdleTooLong(const Entry& e, int64_t now) const {
    return idle_timeout_ns_ > 0 && now - e.idle_since_ns >= idle_timeout_ns_;
  }

  EventLoop* const loop_;
  const ConnectionPoolOptions options_;
  const int64_t idle_timeout_ns_;
  const int64_t max_lifetime_ns_;
  const absl::Duration sweep_interval_;

  mutable std::mutex mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<Endpoint>> endpoints_;
  IntrusiveList<Entry, ByAge> idle_by_age_;  // front: most recently idle
  IntrusiveList<Waiter, ByAge> waiters_;     // front: oldest
  absl::flat_hash_map<uint64_t, std::unique_ptr<Waiter>> waiter_by_id_;
  // Connects in progress: pool sequence -> TcpClient id (0 until known).
  absl::flat_hash_map<uint64_t, TcpClient::ConnectId> connects_;
  std::vector<absl::AnyInvocable<void()>> drained_callbacks_;
  std::mt19937_64 random_;
  uint64_t next_waiter_id_ = 1;
  uint64_t next_connect_seq_ = 1;
  size_t total_open_ = 0;
  size_t connecting_ = 0;
  bool draining_ = false;
  bool drained_ = false;
  bool sweep_armed_ = false;
  absl::Status drain_status_;

  // The client, while attached; client_users_ counts threads inside a
  // client call (DetachClient waits for them).
  TcpClient* client_ = nullptr;  // Guarded by mu_.
  size_t client_users_ = 0;      // Guarded by mu_.
  std::condition_variable client_cv_;
  // Entries whose connection's on_close has not returned yet (mu_).
  size_t live_entries_ = 0;
  std::condition_variable closes_cv_;

  // Counters (mu_).
  ConnectionPoolStats counters_;
  int64_t wait_total_ns_ = 0;
  int64_t wait_max_ns_ = 0;
};

namespace {

absl::Duration DefaultSweepInterval(const ConnectionPoolOptions& o) {
  if (o.sweep_interval > absl::ZeroDuration()) return o.sweep_interval;
  absl::Duration shortest = absl::InfiniteDuration();
  if (o.idle_timeout > absl::ZeroDuration()) shortest = o.idle_timeout;
  if (o.max_lifetime > absl::ZeroDuration()) {
    shortest = std::min(shortest, o.max_lifetime * (1.0 - o.lifetime_jitter));
  }
  if (shortest == absl::InfiniteDuration()) return absl::Seconds(1);
  return std::clamp(shortest / 4, absl::Milliseconds(10), absl::Seconds(1));
}

}  // namespace

PoolCore::PoolCore(EventLoop* loop, ConnectionPoolOptions options)
    : loop_(loop),
      options_(std::move(options)),
      idle_timeout_ns_(options_.idle_timeout > absl::ZeroDuration()
                           ? ToNanos(options_.idle_timeout)
                           : 0),
      max_lifetime_ns_(options_.max_lifetime > absl::ZeroDuration()
                           ? ToNanos(options_.max_lifetime)
                           : 0),
      sweep_interval_(DefaultSweepInterval(options_)),
      random_(options_.random_seed != 0 ? options_.random_seed
                                        : std::random_device{}()) {}

ConnectionCallbacks PoolCore::MakeClientCallbacks() {
  std::shared_ptr<PoolCore> self = shared_from_this();
  ConnectionCallbacks cb;
  cb.on_connect = [self](const ConnectionPtr& c) { self->OnConnect(c); };
  cb.on_data = [self](const ConnectionPtr& c, ByteBuffer& in) {
    self->OnData(c, in);
  };
  cb.on_peer_shutdown = [self](const ConnectionPtr& c) {
    self->OnPeerShutdown(c);
  };
  cb.on_high_water = [self](const ConnectionPtr& c, size_t pending) {
    self->OnHighWater(c, pending);
  };
  cb.on_low_water = [self](const ConnectionPtr& c) { self->OnLowWater(c); };
  cb.on_close = [self](const ConnectionPtr& c, CloseReason r,
                       const absl::Status& s) { self->OnClose(c, r, s); };
  return cb;
}

void PoolCore::AttachClient(TcpClient* client) {
  std::lock_guard<std::mutex> lock(mu_);
  client_ = client;
}

void PoolCore::DetachClient() {
  std::unique_lock<std::mutex> lock(mu_);
  client_ = nullptr;
  client_cv_.wait(lock, [this] { return client_users_ == 0; });
}

void PoolCore::WaitForCloses() {
  std::unique_lock<std::mutex> lock(mu_);
  closes_cv_.wait(lock, [this] { return live_entries_ == 0; });
}

TcpClient* PoolCore::UseClient() {
  std::lock_guard<std::mutex> lock(mu_);
  if (client_ != nullptr) ++client_users_;
  return client_;
}

void PoolCore::DoneWithClient() {
  std::lock_guard<std::mutex> lock(mu_);
  if (--client_users_ == 0) client_cv_.notify_all();
}

// --- Acquire --------------------------------------------------------------

uint64_t PoolCore::Acquire(absl::string_view key, absl::Time deadline,
                           AcquireCallback done,
                           std::shared_ptr<const LeaseCallbacks> callbacks) {
  const int64_t start = MonotonicNanos();
  for (;;) {
    Actions a;
    absl::Status failure;
    uint64_t queued_id = 0;
    Entry* candidate = nullptr;
    ConnectionPtr conn;
    {
      std::lock_guard<std::mutex> lock(mu_);
      Endpoint* ep = FindEndpointLocked(key);
      if (draining_) {
        ++counters_.failed_closed;
        failure = absl::FailedPreconditionError(
            drained_ ? "ConnectionPool::Acquire: the pool is drained"
                     : "ConnectionPool::Acquire: the pool is draining");
      } else if (ep != nullptr &&
                 (candidate = PopIdleLocked(ep, start, a)) != nullptr) {
        conn = candidate->conn;
        candidate->rechecking = true;
        ++ep->rechecking;
      } else if (deadline <= absl::Now()) {
        ++counters_.failed_deadline;
        failure = absl::DeadlineExceededError(
            absl::StrCat("ConnectionPool::Acquire(", key,
                         "): the deadline passed with no idle connection"));
      } else {
        if (ep == nullptr) ep = GetEndpointLocked(key);
        const bool room_here = ep->open < options_.max_connections_per_endpoint;
        const bool room_total =
            total_open_ < options_.max_connections || !idle_by_age_.empty();
        const bool can_connect = room_here && room_total;
        const bool need_connect =
            ep->waiters.size() + 1 > ep->connecting + ep->rechecking;
        if (!can_connect &&
            (waiter_by_id_.size() >= options_.max_pending ||
             ep->waiters.size() >= options_.max_pending_per_endpoint)) {
          ++counters_.failed_queue_full;
          failure = absl::ResourceExhaustedError(absl::StrCat(
              "ConnectionPool::Acquire(", key, "): ",
              room_here ? "max_connections" : "max_connections_per_endpoint",
              " reached and ", waiter_by_id_.size(),
              " requests already waiting"));
          if (!ep->erase_listed) {
            ep->erase_listed = true;
            a.maybe_erase.push_back(ep);
          }
        } else {
          auto waiter = std::make_unique<Waiter>();
          Waiter* w = waiter.get();
          w->id = queued_id = next_waiter_id_++;
          w->endpoint = ep;
          w->done = std::move(done);
          w->callbacks = std::move(callbacks);
          w->start_ns = start;
          w->deadline = deadline;
          ep->waiters.push_back(w);
          waiters_.push_back(w);
          waiter_by_id_.emplace(w->id, std::move(waiter));
          if (deadline != absl::InfiniteFuture()) {
            std::weak_ptr<PoolCore> weak = weak_from_this();
            const uint64_t id = w->id;
            w->timer = loop_->RunAfter(deadline - absl::Now(), [weak, id] {
              if (std::shared_ptr<PoolCore> self = weak.lock()) {
                self->OnWaiterDeadline(id);
              }
            });
          }
          if (can_connect && need_connect) {
            if (total_open_ >= options_.max_connections) {
              DetachLocked(idle_by_age_.back(), PoolCloseReason::kEvicted, a);
            }
            StartConnectLocked(ep, a);
          }
        }
      }
      FinishLocked(a);
    }
    RunActions(a);
    if (!failure.ok()) {
      // Not moved: the branch that moves `done` into a waiter returns below.
      done(std::move(failure));  // NOLINT(bugprone-use-after-move)
      return 0;
    }
    if (queued_id != 0) return queued_id;

    // An idle connection: check it and install the callbacks excluded from
    // its callbacks. Inline unless one of them is running right now (the
    // tail of the callback that released it, or input or a close arriving);
    // then the task runs after it, on its thread, and settles the
    // connection itself, while this request tries the next idle one or
    // queues. Queued, it does not open a connection for itself: the one
    // being rechecked counts as coming (Endpoint::rechecking) and serves
    // the oldest waiter unless it proves dead.
    InlineHandOff ctx;
    ctx.entry = candidate;
    ctx.callbacks = &callbacks;
    InlineHandOff* const outer = t_handoff;
    t_handoff = &ctx;
    if (t_in_callbacks_of == conn.get()) {
      HandOffTask(conn);  // already excluded: called from its callback
    } else {
      conn->Dispatch([](const ConnectionPtr& c) { HandOffTask(c); });
    }
    t_handoff = outer;
    if (ctx.lease.has_value()) {
      done(*std::move(ctx.lease));
      return 0;
    }
    // Dead (already closed and counted) or busy: try again.
  }
}

void PoolCore::HandOffTask(const ConnectionPtr& conn) {
  std::shared_ptr<Entry> entry = EntryOf(conn);
  InlineHandOff* ctx = t_handoff;
  if (entry != nullptr && ctx != nullptr && !ctx->ran &&
      ctx->entry == entry.get()) {
    ctx->ran = true;
    // Handed out at once: counted as no wait.
    ctx->lease = entry->core->HandOut(entry, conn, *ctx->callbacks,
                                      /*reused=*/true, /*wait_ns=*/0,
                                      /*waiter=*/nullptr);
    return;
  }
  // Deferred: the acquirer moved on; settle the connection ourselves.
  if (entry != nullptr) entry->core->Recheck(entry, conn);
}

std::optional<Lease> PoolCore::HandOut(
    const std::shared_ptr<Entry>& entry, const ConnectionPtr& conn,
    const std::shared_ptr<const LeaseCallbacks>& cb, bool reused,
    int64_t wait_ns, Waiter* waiter, std::unique_ptr<Waiter>* owned) {
  std::optional<PoolCloseReason> reject;
  if (reused) {
    // Unread input, then the socket (one MSG_PEEK) or, without the
    // liveness check, what the connection already knows.
    const bool dead =
        !conn->input().empty() ||
        (options_.check_liveness
             ? !conn->Probe().ok()
             : conn->is_closed() || !conn->can_send() || conn->input_ended());
    if (dead) reject = PoolCloseReason::kDeadOnReuse;
    if (!reject && options_.check_on_acquire &&
        !options_.check_on_acquire(conn).ok()) {
      reject = PoolCloseReason::kHealthCheck;
    }
  } else if (conn->is_closed() || !conn->can_send()) {
    reject = PoolCloseReason::kError;
  }
  Actions a;
  if (reject) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (entry->state == EntryState::kChecking) {
        DetachLocked(entry.get(), *reject, a);  // settles a recheck too
      }
      if (waiter != nullptr) RequeueLocked(waiter, a);
      FinishLocked(a);
    }
    RunActions(a);
    return std::nullopt;
  }
  std::atomic_store(&entry->callbacks, cb);
  entry->holder_active.store(true, std::memory_order_release);
  {
    std::lock_guard<std::mutex> lock(mu_);
    SettleRecheckLocked(entry.get());
    entry->state = EntryState::kLeased;
    ++entry->uses;
    ++counters_.acquired;
    if (reused) ++counters_.reused;
    RecordWaitLocked(wait_ns);
    if (waiter != nullptr) *owned = TakeWaiterLocked(waiter, a);
    FinishLocked(a);
  }
  RunActions(a);
  return Lease(entry, conn, reused);
}

void PoolCore::RecordWaitLocked(int64_t wait_ns) {
  const int64_t wait = std::max<int64_t>(0, wait_ns);
  wait_total_ns_ += wait;
  wait_max_ns_ = std::max(wait_max_ns_, wait);
  int bucket = 0;
  while (bucket < ConnectionPoolStats::kWaitBuckets - 1 &&
         absl::Nanoseconds(wait) >= WaitBucketLimit(bucket)) {
    ++bucket;
  }
  ++counters_.wait_histogram[bucket];
}

bool PoolCore::CancelAcquire(uint64_t id) {
  Actions a;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = waiter_by_id_.find(id);
    if (it == waiter_by_id_.end() || it->second->claimed) return false;
    ++counters_.cancelled;
    a.fail.emplace_back(TakeWaiterLocked(it->second.get(), a),
                        absl::CancelledError("ConnectionPool::CancelAcquire"));
    FinishLocked(a);
  }
  RunActions(a);
  return true;
}

void PoolCore::OnWaiterDeadline(uint64_t id) {
  Actions a;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = waiter_by_id_.find(id);
    if (it == waiter_by_id_.end()) return;
    Waiter* w = it->second.get();
    w->timer_fired = true;
    if (w->claimed) return;  // settled when the check finishes
    ++counters_.failed_deadline;
    a.fail.emplace_back(TakeWaiterLocked(w, a),
                        absl::DeadlineExceededError(absl::StrCat(
                            "ConnectionPool::Acquire(", w->endpoint->key,
                            "): no connection before the deadline")));
    FinishLocked(a);
  }
  RunActions(a);
}

// --- Release --------------------------------------------------------------

void PoolCore::Release(std::shared_ptr<Entry> entry, const ConnectionPtr& conn,
                       bool reusable) {
  entry->holder_active.store(false, std::memory_order_release);
  if (!reusable) {
    Actions a;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (entry->state != EntryState::kLeased) return;  // closed meanwhile
      DetachLocked(entry.get(), PoolCloseReason::kNotReusable, a);
      FinishLocked(a);
    }
    RunActions(a);
    return;
  }
  // Back to the pool excluded from the holder's callbacks: after the one
  // running (if any) returns, and before any later one; at once when called
  // from the holder's own callback (already excluded). Until then it stays
  // kLeased: nobody else can take it.
  if (t_in_callbacks_of == conn.get()) {
    FinishRelease(entry, conn);
    return;
  }
  conn->Dispatch([entry = std::move(entry)](const ConnectionPtr& c) {
    entry->core->FinishRelease(entry, c);
  });
}

void PoolCore::FinishRelease(const std::shared_ptr<Entry>& entry,
                             const ConnectionPtr& conn) {
  // The holder's closures go now (not under any lock: they may hold
  // leases of their own).
  std::atomic_store(&entry->callbacks, std::shared_ptr<const LeaseCallbacks>());
  if (conn->is_closed()) return;  // on_close (due or done) accounts for it
  std::optional<PoolCloseReason> reject;
  if (!conn->input().empty() || !conn->can_send()) {
    reject = PoolCloseReason::kNotReusable;  // unread input / closing
  } else if (conn->input_ended()) {
    reject = PoolCloseReason::kError;  // the peer half-closed
  } else if (options_.check_on_release &&
             !options_.check_on_release(conn).ok()) {
    reject = PoolCloseReason::kHealthCheck;
  } else if (max_lifetime_ns_ > 0 && Expired(*entry, MonotonicNanos())) {
    reject = PoolCloseReason::kLifetime;
  }
  Place(entry, conn, EntryState::kLeased, /*fresh=*/false, reject);
}

void PoolCore::Recheck(const std::shared_ptr<Entry>& entry,
                       const ConnectionPtr& conn) {
  if (conn->is_closed()) return;  // on_close accounts for it
  std::optional<PoolCloseReason> reject;
  if (!conn->input().empty() || conn->input_ended() || !conn->can_send()) {
    reject = PoolCloseReason::kDeadWhileIdle;
  }
  Place(entry, conn, EntryState::kChecking, /*fresh=*/false, reject);
}

void PoolCore::PlaceFresh(const std::shared_ptr<Entry>& entry,
                          const ConnectionPtr& conn) {
  // Closing already: its on_close (due) accounts for it.
  if (conn->is_closed()) return;
  Place(entry, conn, EntryState::kChecking, /*fresh=*/true);
}

void PoolCore::Place(const std::shared_ptr<Entry>& entry,
                     const ConnectionPtr& conn, EntryState expected, bool fresh,
                     std::optional<PoolCloseReason> reject) {
  const int64_t now = ExpiryClock();
  Actions a;
  Waiter* waiter = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (entry->state != expected) return;  // closed (and counted) meanwhile
    SettleRecheckLocked(entry.get());
    Endpoint* ep = entry->endpoint;
    if (reject) {
      DetachLocked(entry.get(), *reject, a);
    } else if (draining_) {
      DetachLocked(entry.get(), PoolCloseReason::kDrain, a);
    } else if (!ep->waiters.empty()) {
      waiter = ep->waiters.pop_front();
      waiters_.erase(waiter);
      waiter->claimed = true;
      ++ep->claimed;
      entry->state = EntryState::kChecking;
    } else {
      PushIdleLocked(entry.get(), now, a);
    }
    FinishLocked(a);
  }
  RunActions(a);
  if (waiter == nullptr) return;
  std::unique_ptr<Waiter> owned;
  std::optional<Lease> lease =
      HandOut(entry, conn, waiter->callbacks, /*reused=*/!fresh,
              MonotonicNanos() - waiter->start_ns, waiter, &owned);
  if (!lease.has_value()) return;  // detached; the waiter was requeued
  UserCodeScope scope(conn.get());
  owned->done(*std::move(lease));
  // Bytes that came before the holder did (a server that speaks first).
  if (fresh && entry->holder_active.load(std::memory_order_acquire) &&
      !conn->input().empty()) {
    std::shared_ptr<const LeaseCallbacks> cb = entry->callbacks;
    if (cb != nullptr && cb->on_data) cb->on_data(conn, conn->input());
  }
}

// --- Connects -------------------------------------------------------------

void PoolCore::StartConnectLocked(Endpoint* ep, Actions& a) {
  ++ep->open;
  ++ep->connecting;
  ++total_open_;
  ++connecting_;
  const uint64_t seq = next_connect_seq_++;
  connects_.emplace(seq, 0);
  a.connects.push_back(Actions::Connect{ep, ep->key, seq});
}

void PoolCore::StartConnect(Actions::Connect& c) {
  TcpClient* client = UseClient();
  if (client == nullptr) {
    OnConnectDone(c.endpoint, c.seq,
                  absl::CancelledError("the connection pool is shut down"));
    return;
  }
  std::shared_ptr<PoolCore> self = shared_from_this();
  Endpoint* ep = c.endpoint;
  const uint64_t seq = c.seq;
  const TcpClient::ConnectId id = client->Connect(
      c.key, [self, ep, seq](absl::StatusOr<ConnectionPtr> result) {
        self->OnConnectDone(ep, seq, std::move(result));
      });
  bool cancel = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = connects_.find(seq);
    if (it != connects_.end()) {
      it->second = id;
      cancel = draining_;  // Drain() could not see the id yet
    }
  }
  if (cancel && id != 0) client->Cancel(id);
  DoneWithClient();
}

void PoolCore::OnConnect(const ConnectionPtr& conn) {
  // Every connection that opens gets its entry here, before any other of
  // its callbacks (on_close included) can run; it counts for nothing until
  // OnConnectDone gives it an endpoint. (An attempt that opened after its
  // connect was cancelled never gets that far: TcpClient closes it.)
  auto entry = std::make_shared<Entry>(this);
  entry->state = EntryState::kDetached;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++live_entries_;
  }
  conn->SetContext(std::move(entry));
}

void PoolCore::OnConnectDone(Endpoint* ep, uint64_t seq,
                             absl::StatusOr<ConnectionPtr> result) {
  Actions a;
  std::shared_ptr<Entry> entry;
  ConnectionPtr conn;
  bool place = false;
  if (result.ok()) entry = EntryOf(*result);
  {
    std::lock_guard<std::mutex> lock(mu_);
    connects_.erase(seq);
    --ep->connecting;
    --connecting_;
    if (!result.ok()) {
      ++counters_.connect_failures;
      --ep->open;
      --total_open_;
      if (!draining_ && !ep->waiters.empty()) {
        ++counters_.failed_connect;
        a.fail.emplace_back(TakeWaiterLocked(ep->waiters.front(), a),
                            result.status());
      }
      a.pump = true;
      if (!ep->erase_listed) {
        ep->erase_listed = true;
        a.maybe_erase.push_back(ep);
      }
    } else {
      conn = *std::move(result);
      ++counters_.created;
      if (draining_) {
        --ep->open;
        --total_open_;
        ++counters_.closed_by[static_cast<int>(PoolCloseReason::kDrain)];
        a.close.push_back(conn);
        if (!ep->erase_listed) {
          ep->erase_listed = true;
          a.maybe_erase.push_back(ep);
        }
      } else if (entry == nullptr) {
        // Closed before we got here (its on_close cleared the context).
        --ep->open;
        --total_open_;
        ++counters_.closed_by[static_cast<int>(PoolCloseReason::kError)];
        if (!ep->erase_listed) {
          ep->erase_listed = true;
          a.maybe_erase.push_back(ep);
        }
      } else {
        place = true;
        entry->conn = conn;
        entry->endpoint = ep;
        entry->state = EntryState::kChecking;
        entry->created_ns = MonotonicNanos();
        if (max_lifetime_ns_ > 0) {
          std::uniform_real_distribution<double> unit(0.0, 1.0);
          const double cut = options_.lifetime_jitter * unit(random_);
          entry->expires_ns =
              entry->created_ns +
              static_cast<int64_t>(static_cast<double>(max_lifetime_ns_) *
                                   (1.0 - cut));
        }
      }
    }
    FinishLocked(a);
  }
  RunActions(a);
  if (place) {
    // TcpClient runs this on the new connection's handler thread right
    // after on_connect, so this Dispatch queues behind it: the callbacks
    // are installed before any on_data.
    conn->Dispatch([entry = std::move(entry)](const ConnectionPtr& c) {
      entry->core->PlaceFresh(entry, c);
    });
  }
}

// --- Connection callbacks -------------------------------------------------

void PoolCore::OnData(const ConnectionPtr& conn, ByteBuffer& input) {
  std::shared_ptr<Entry> entry = EntryOf(conn);
  if (entry == nullptr) return;
  if (entry->holder_active.load(std::memory_order_acquire)) {
    // A copy: the holder may release (and a new holder replace these)
    // from inside.
    std::shared_ptr<const LeaseCallbacks> cb = entry->callbacks;
    if (cb != nullptr && cb->on_data) {
      UserCodeScope scope(conn.get());
      cb->on_data(conn, input);
    }
    return;
  }
  Actions a;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Input while idle: the protocol is out of step; never reuse it. In
    // the other states the input stays and the next check sees it.
    if (entry->state == EntryState::kIdle) {
      DetachLocked(entry.get(), PoolCloseReason::kDeadWhileIdle, a);
    }
    FinishLocked(a);
  }
  RunActions(a);
}

void PoolCore::OnPeerShutdown(const ConnectionPtr& conn) {
  std::shared_ptr<Entry> entry = EntryOf(conn);
  if (entry != nullptr &&
      entry->holder_active.load(std::memory_order_acquire)) {
    std::shared_ptr<const LeaseCallbacks> cb = entry->callbacks;
    if (cb != nullptr && cb->on_peer_shutdown) {
      UserCodeScope scope(conn.get());
      cb->on_peer_shutdown(conn);
      return;
    }
  } else if (entry != nullptr) {
    Actions a;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (entry->state == EntryState::kIdle) {
        DetachLocked(entry.get(), PoolCloseReason::kDeadWhileIdle, a,
                     /*close=*/false);
      }
      FinishLocked(a);
    }
    RunActions(a);
  }
  // What a Connection does without on_peer_shutdown: flush, then close
  // (Shutdown after the peer's EOF closes with kPeerClosed).
  conn->Shutdown();
}

void PoolCore::OnHighWater(const ConnectionPtr& conn, size_t pending) {
  std::shared_ptr<Entry> entry = EntryOf(conn);
  if (entry == nullptr ||
      !entry->holder_active.load(std::memory_order_acquire)) {
    return;
  }
  std::shared_ptr<const LeaseCallbacks> cb =
      std::atomic_load(&entry->callbacks);
  if (cb != nullptr && cb->on_high_water) cb->on_high_water(conn, pending);
}

void PoolCore::OnLowWater(const ConnectionPtr& conn) {
  std::shared_ptr<Entry> entry = EntryOf(conn);
  if (entry == nullptr ||
      !entry->holder_active.load(std::memory_order_acquire)) {
    return;
  }
  std::shared_ptr<const LeaseCallbacks> cb = entry->callbacks;
  if (cb != nullptr && cb->on_low_water) {
    UserCodeScope scope(conn.get());
    cb->on_low_water(conn);
  }
}

void PoolCore::OnClose(const ConnectionPtr& conn, CloseReason reason,
                       const absl::Status& status) {
  std::shared_ptr<Entry> entry = EntryOf(conn);
  if (entry == nullptr) return;
  const bool holder =
      entry->holder_active.exchange(false, std::memory_order_acq_rel);
  std::shared_ptr<const LeaseCallbacks> cb = std::atomic_exchange(
      &entry->callbacks, std::shared_ptr<const LeaseCallbacks>());
  Actions a;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::optional<PoolCloseReason> why;
    switch (entry->state) {
      case EntryState::kIdle:
        why = reason == CloseReason::kIdleTimeout
                  ? PoolCloseReason::kIdleTimeout
                  : PoolCloseReason::kDeadWhileIdle;
        break;
      case EntryState::kChecking:
        why = entry->has_been_idle ? PoolCloseReason::kDeadOnReuse
                                   : PoolCloseReason::kError;
        break;
      case EntryState::kLeased:
        why = reason == CloseReason::kClosedLocally
                  ? PoolCloseReason::kNotReusable
                  : PoolCloseReason::kError;
        break;
      case EntryState::kDetached:
        break;
    }
    if (why) {
      if (reason == CloseReason::kStopped) why = PoolCloseReason::kDrain;
      DetachLocked(entry.get(), *why, a, /*close=*/false);
    }
    entry->conn.reset();
    FinishLocked(a);
  }
  RunActions(a);
  conn->SetContext(nullptr);
  if (holder && cb != nullptr && cb->on_close) {
    UserCodeScope scope(conn.get());
    cb->on_close(conn, reason, status);
  }
  cb = nullptr;  // the holder's closures go before the pool may be gone
  std::lock_guard<std::mutex> lock(mu_);
  if (--live_entries_ == 0) closes_cv_.notify_all();
}

// --- Drain ----------------------------------------------------------------

void PoolCore::Drain(absl::AnyInvocable<void()> on_drained,
                     const absl::Status& why) {
  Actions a;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (drained_) {
      if (on_drained) a.drained.push_back(std::move(on_drained));
    } else {
      if (on_drained) drained_callbacks_.push_back(std::move(on_drained));
      if (!draining_) {
        draining_ = true;
        drain_status_ = why;
        while (Waiter* w = waiters_.front()) {
          ++counters_.failed_closed;
          a.fail.emplace_back(TakeWaiterLocked(w, a), why);
        }
        while (Entry* e = idle_by_age_.back()) {
          DetachLocked(e, PoolCloseReason::kDrain, a);
        }
        for (const auto& connect : connects_) {
          if (connect.second != 0) a.cancel_connects.push_back(connect.second);
        }
      }
    }
    FinishLocked(a);
  }
  RunActions(a);
}

// --- Locked helpers ---------------------------------------------------------

Endpoint* PoolCore::FindEndpointLocked(absl::string_view key) {
  auto it = endpoints_.find(key);
  return it == endpoints_.end() ? nullptr : it->second.get();
}

Endpoint* PoolCore::GetEndpointLocked(absl::string_view key) {
  auto it = endpoints_.find(key);
  if (it != endpoints_.end()) return it->second.get();
  auto ep = std::make_unique<Endpoint>(std::string(key));
  Endpoint* raw = ep.get();
  endpoints_.emplace(raw->key, std::move(ep));
  return raw;
}

Entry* PoolCore::PopIdleLocked(Endpoint* ep, int64_t now, Actions& a) {
  while (Entry* e = ep->idle.front()) {
    if (IdleTooLong(*e, now)) {
      DetachLocked(e, PoolCloseReason::kIdleTimeout, a);
    } else if (Expired(*e, now)) {
      DetachLocked(e, PoolCloseReason::kLifetime, a);
    } else {
      ep->idle.erase(e);
      idle_by_age_.erase(e);
      e->state = EntryState::kChecking;
      return e;
    }
  }
  return nullptr;
}

void PoolCore::PushIdleLocked(Entry* e, int64_t now, Actions& a) {
  Endpoint* ep = e->endpoint;
  e->state = EntryState::kIdle;
  e->idle_since_ns = now;
  e->has_been_idle = true;
  ep->idle.push_front(e);
  idle_by_age_.push_front(e);
  while (ep->idle.size() > options_.max_idle_per_endpoint) {
    DetachLocked(ep->idle.back(), PoolCloseReason::kEvicted, a);
  }
  if ((idle_timeout_ns_ > 0 || max_lifetime_ns_ > 0) && !sweep_armed_ &&
      !idle_by_age_.empty()) {
    sweep_armed_ = true;
    a.arm_sweep = true;
  }
  // Requests of other endpoints blocked by max_connections may need it
  // closed to make room.
  if (!waiters_.empty()) a.pump = true;
}

void PoolCore::SettleRecheckLocked(Entry* e) {
  if (!e->rechecking) return;
  e->rechecking = false;
  --e->endpoint->rechecking;
}

void PoolCore::DetachLocked(Entry* e, PoolCloseReason reason, Actions& a,
                            bool close) {
  SettleRecheckLocked(e);
  Endpoint* ep = e->endpoint;
  if (e->state == EntryState::kIdle) {
    ep->idle.erase(e);
    idle_by_age_.erase(e);
  }
  e->state = EntryState::kDetached;
  e->endpoint = nullptr;
  --ep->open;
  --total_open_;
  ++counters_.closed_by[static_cast<int>(reason)];
  if (close && e->conn != nullptr) a.close.push_back(e->conn);
  a.pump = true;
  if (!ep->erase_listed) {
    ep->erase_listed = true;
    a.maybe_erase.push_back(ep);
  }
}

void PoolCore::PumpLocked(Actions& a) {
  if (draining_) return;
  for (Waiter* w = waiters_.front(); w != nullptr; w = waiters_.next(w)) {
    Endpoint* ep = w->endpoint;
    if (ep->waiters.size() <= ep->connecting + ep->rechecking) {
      continue;  // enough coming
    }
    if (ep->open >= options_.max_connections_per_endpoint) continue;
    if (total_open_ >= options_.max_connections) {
      // Its endpoint has no idle connection (it would have been handed
      // one): close another endpoint's least recently used one.
      Entry* victim = idle_by_age_.back();
      if (victim == nullptr) break;
      DetachLocked(victim, PoolCloseReason::kEvicted, a);
    }
    StartConnectLocked(ep, a);
  }
}

std::unique_ptr<Waiter> PoolCore::TakeWaiterLocked(Waiter* w, Actions& a) {
  Endpoint* ep = w->endpoint;
  if (static_cast<ListNode<ByEndpoint>*>(w)->linked()) ep->waiters.erase(w);
  if (static_cast<ListNode<ByAge>*>(w)->linked()) waiters_.erase(w);
  if (w->claimed) {
    w->claimed = false;
    --ep->claimed;
  }
  if (w->timer.valid() && !w->timer_fired) a.cancel_timers.push_back(w->timer);
  auto it = waiter_by_id_.find(w->id);
  std::unique_ptr<Waiter> owned = std::move(it->second);
  waiter_by_id_.erase(it);
  if (!ep->erase_listed) {
    ep->erase_listed = true;
    a.maybe_erase.push_back(ep);
  }
  return owned;
}

void PoolCore::RequeueLocked(Waiter* w, Actions& a) {
  if (draining_ || w->timer_fired || w->deadline <= absl::Now()) {
    if (draining_) {
      ++counters_.failed_closed;
    } else {
      ++counters_.failed_deadline;
    }
    absl::Status why = draining_
                           ? drain_status_
                           : absl::DeadlineExceededError(absl::StrCat(
                                 "ConnectionPool::Acquire(", w->endpoint->key,
                                 "): no connection before the deadline"));
    a.fail.emplace_back(TakeWaiterLocked(w, a), why);
    return;
  }
  // Back at the head of the queues: it was the oldest.
  Endpoint* ep = w->endpoint;
  w->claimed = false;
  --ep->claimed;
  ep->waiters.push_front(w);
  waiters_.push_front(w);
  a.pump = true;  // the dead connection's slot can open a new one
}

void PoolCore::FinishLocked(Actions& a) {
  if (a.pump) {
    // One pass is enough: an eviction inside it (which asks for another)
    // only made room for the connect it starts.
    PumpLocked(a);
    a.pump = false;
  }
  for (Endpoint* ep : a.maybe_erase) {
    ep->erase_listed = false;
    if (ep->open == 0 && ep->waiters.empty() && ep->claimed == 0) {
      endpoints_.erase(ep->key);
    }
  }
  a.maybe_erase.clear();
  if (draining_ && !drained_ && total_open_ == 0) {
    drained_ = true;
    for (auto& cb : drained_callbacks_) a.drained.push_back(std::move(cb));
    drained_callbacks_.clear();
  }
}

void PoolCore::RunActions(Actions& a) {
  for (EventLoop::TimerId timer : a.cancel_timers) loop_->Cancel(timer);
  for (const ConnectionPtr& conn : a.close) conn->Close();
  if (a.arm_sweep) ArmSweep();
  for (Actions::Connect& c : a.connects) StartConnect(c);
  if (!a.cancel_connects.empty()) {
    if (TcpClient* client = UseClient()) {
      for (TcpClient::ConnectId id : a.cancel_connects) client->Cancel(id);
      DoneWithClient();
    }
  }
  for (auto& failed : a.fail) failed.first->done(std::move(failed.second));
  for (auto& cb : a.drained) {
    if (cb) cb();
  }
}

// --- Sweep ----------------------------------------------------------------

void PoolCore::ArmSweep() {
  std::weak_ptr<PoolCore> weak = weak_from_this();
  const EventLoop::TimerId id = loop_->RunAfter(sweep_interval_, [weak] {
    if (std::shared_ptr<PoolCore> self = weak.lock()) self->Sweep();
  });
  if (!id.valid()) {
    std::lock_guard<std::mutex> lock(mu_);
    sweep_armed_ = false;  // the loop stopped: expiry at acquire only
  }
}

void PoolCore::Sweep() {
  Actions a;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t now = MonotonicNanos();
    Entry* e = idle_by_age_.back();
    while (e != nullptr) {
      Entry* younger = idle_by_age_.prev(e);
      if (IdleTooLong(*e, now)) {
        DetachLocked(e, PoolCloseReason::kIdleTimeout, a);
      } else if (Expired(*e, now)) {
        DetachLocked(e, PoolCloseReason::kLifetime, a);
      } else if (max_lifetime_ns_ == 0) {
        break;  // oldest first: the rest were idle for less time
      }
      e = younger;
    }
    sweep_armed_ = !idle_by_age_.empty();
    a.arm_sweep = sweep_armed_;
    FinishLocked(a);
  }
  RunActions(a);
}

// --- Stats ----------------------------------------------------------------

ConnectionPoolStats PoolCore::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  ConnectionPoolStats s = counters_;
  s.idle = idle_by_age_.size();
  s.connecting = connecting_;
  s.open = total_open_;
  s.active = total_open_ - s.idle - connecting_;
  s.pending = waiter_by_id_.size();
  s.endpoints = endpoints_.size();
  s.wait_total = absl::Nanoseconds(wait_total_ns_);
  s.wait_max = absl::Nanoseconds(wait_max_ns_);
  return s;
}

}  // namespace connpool_internal

// --- Public API -------------------------------------------------------------

absl::string_view PoolCloseReasonName(PoolCloseReason reason) {
  switch (reason) {
    case PoolCloseReason::kIdleTimeout:
      return "idle_timeout";
    case PoolCloseReason::kLifetime:
      return "lifetime";
    case PoolCloseReason::kDeadOnReuse:
      return "dead_on_reuse";
    case PoolCloseReason::kDeadWhileIdle:
      return "dead_while_idle";
    case PoolCloseReason::kHealthCheck:
      return "health_check";
    case PoolCloseReason::kNotReusable:
      return "not_reusable";
    case PoolCloseReason::kError:
      return "error";
    case PoolCloseReason::kEvicted:
      return "evicted";
    case PoolCloseReason::kDrain:
      return "drain";
  }
  return "unknown";
}

std::ostream& operator<<(std::ostream& os, PoolCloseReason reason) {
  return os << PoolCloseReasonName(reason);
}

absl::Duration WaitBucketLimit(int bucket) {
  static constexpr int64_t kLimitsUs[] = {100, 1000, 10000, 100000, 1000000};
  if (bucket < 0) return absl::ZeroDuration();
  if (bucket >= static_cast<int>(sizeof(kLimitsUs) / sizeof(kLimitsUs[0]))) {
    return absl::InfiniteDuration();
  }
  return absl::Microseconds(kLimitsUs[bucket]);
}

Lease& Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    if (conn_ != nullptr) ReleaseNow(/*reusable=*/false);
    entry_ = std::move(other.entry_);
    conn_ = std::move(other.conn_);
    reused_ = other.reused_;
  }
  return *this;
}

Lease::~Lease() {
  if (conn_ != nullptr) ReleaseNow(/*reusable=*/false);
}

absl::Duration Lease::lifetime() const {
  if (entry_ == nullptr || entry_->expires_ns == connpool_internal::kNever) {
    return absl::InfiniteDuration();
  }
  return absl::Nanoseconds(entry_->expires_ns - entry_->created_ns);
}

void Lease::ReleaseNow(bool reusable) {
  std::shared_ptr<connpool_internal::Entry> entry = std::move(entry_);
  ConnectionPtr conn = std::move(conn_);
  entry_ = nullptr;
  conn_ = nullptr;
  // The core outlives every connection (the client's callbacks hold it),
  // and `conn` keeps this connection alive here.
  connpool_internal::PoolCore* core = entry->core;
  core->Release(std::move(entry), conn, reusable);
}

absl::StatusOr<std::unique_ptr<ConnectionPool>> ConnectionPool::Create(
    EventLoop* loop, ConnectionPoolOptions options) {
  if (loop == nullptr) {
    return absl::InvalidArgumentError("ConnectionPool::Create: null loop");
  }
  if (options.max_connections_per_endpoint < 1 || options.max_connections < 1) {
    return absl::InvalidArgumentError(
        "ConnectionPoolOptions: max_connections and "
        "max_connections_per_endpoint must be at least 1");
  }
  if (!(options.lifetime_jitter >= 0.0 && options.lifetime_jitter <= 1.0)) {
    return absl::InvalidArgumentError(
        "ConnectionPoolOptions::lifetime_jitter must be in [0, 1]");
  }
  if (options.idle_timeout < absl::ZeroDuration() ||
      options.max_lifetime < absl::ZeroDuration() ||
      options.sweep_interval < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "ConnectionPoolOptions: idle_timeout, max_lifetime and "
        "sweep_interval must not be negative");
  }
  TcpClientOptions client_options = options.client;
  auto core =
      std::make_shared<connpool_internal::PoolCore>(loop, std::move(options));
  absl::StatusOr<std::unique_ptr<TcpClient>> client =
      TcpClient::Create(loop, core->MakeClientCallbacks(), client_options);
  if (!client.ok()) return client.status();
  core->AttachClient(client->get());
  return std::unique_ptr<ConnectionPool>(
      new ConnectionPool(std::move(core), *std::move(client)));
}

ConnectionPool::ConnectionPool(
    std::shared_ptr<connpool_internal::PoolCore> core,
    std::unique_ptr<TcpClient> client)
    : core_(std::move(core)), client_(std::move(client)) {}

ConnectionPool::~ConnectionPool() {
  core_->Drain(nullptr,
               absl::UnavailableError("the connection pool is shutting down"));
  core_->DetachClient();
  client_->Stop();  // closes leased connections too (kStopped)
  core_->WaitForCloses();
  client_.reset();
}

ConnectionPool::RequestId ConnectionPool::Acquire(
    absl::string_view endpoint, absl::Time deadline, AcquireCallback done,
    std::shared_ptr<const LeaseCallbacks> callbacks) {
  return core_->Acquire(endpoint, deadline, std::move(done),
                        std::move(callbacks));
}

bool ConnectionPool::CancelAcquire(RequestId id) {
  return core_->CancelAcquire(id);
}

void ConnectionPool::Release(Lease lease, bool reusable) {
  if (lease) lease.ReleaseNow(reusable);
}

void ConnectionPool::Drain(absl::AnyInvocable<void()> on_drained) {
  core_->Drain(std::move(on_drained),
               absl::UnavailableError("the connection pool is draining"));
}

bool ConnectionPool::draining() const { return core_->draining(); }
bool ConnectionPool::drained() const { return core_->drained(); }

ConnectionPoolStats ConnectionPool::stats() const { return core_->Stats(); }

TcpClientStats ConnectionPool::client_stats() const { return client_->stats(); }

}  // namespace mill
