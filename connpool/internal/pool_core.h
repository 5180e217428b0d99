// Internal to //connpool: PoolCore, the ConnectionPool's I/O shell around
// PoolState (the books). It owns the state under its mutex and does what the
// state decides: opens connections through the pool's TcpClient, checks and
// hands them over excluded from their callbacks (Connection::Dispatch),
// routes a leased connection's callbacks to its holder, closes, arms the
// deadline and sweep timers, and answers requests.
//
//   pool_core.cc         Acquire, the hand-over, Release, the effects
//   pool_core_events.cc  the connections' callbacks, connects, the sweep,
//                        Drain, the client's lifetime
//
// Re-entrancy (mill::CallScope): kHolderCode marks the pool running a
// holder's code (a LeaseCallbacks callback, or Acquire's `done`) for a
// connection, inside that connection's Dispatch exclusion, so that a
// Release or hand-out of it from there runs inline instead of queueing
// behind the callback; kInlineHandOff marks an Acquire handing out an idle
// connection on its own thread, so that the Dispatch task it posts knows
// whether it runs inline (hand to this acquirer) or later (settle it);
// kReleasing lets Release's task, run inline, use the releasing frame's
// entry instead of looking it up.
//
// Thread-safety: every member may be called from any thread; mu_ guards the
// state and the shell's own bookkeeping, and is never held while user code,
// a connection or the client runs (the loop's timer calls excepted).
// Ownership: shared by the ConnectionPool, the TcpClient's callbacks (so it
// lives as long as any of its connections: a Connection keeps its creator's
// callbacks, which hold this, alive), timers (weakly) and connect callbacks.
// Entries, tasks and leases therefore use a plain PoolCore*. It owns no
// connection and not the client (the ConnectionPool does, so that the
// client is never destroyed on a callback thread).
#ifndef MILL_IO_CONNPOOL_INTERNAL_POOL_CORE_H_
#define MILL_IO_CONNPOOL_INTERNAL_POOL_CORE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/call_scope.h"
#include "base/mutex.h"
#include "connpool/connection_pool.h"
#include "connpool/internal/pool_state.h"
#include "net/byte_buffer.h"
#include "net/connection.h"
#include "net/connection_layer.h"
#include "net/tcp_client.h"
#include "reactor/event_loop.h"

namespace mill {
namespace connpool_internal {

// Keys: the Connection. The pool runs a holder's code for it.
inline constexpr CallScopeKind kHolderCode{"connpool: holder code"};
// Keys: the Entry; data: the acquirer's InlineHandOff.
inline constexpr CallScopeKind kInlineHandOff{"connpool: inline hand-off"};
// Keys: the Connection; data: the releasing frame's std::shared_ptr<Entry>
// (a connection has one entry for its life, so any such scope for it
// carries the right one).
inline constexpr CallScopeKind kReleasing{"connpool: release"};

// The pool's record of one connection: the state's entry plus the holder's
// callbacks. Kept in the connection's context (so its callbacks find it
// without a lookup; one allocation with its shared_ptr block) and shared
// with its lease. Nothing else is allocated per idle connection.
struct Entry final : PoolEntry {
  // False from the moment Release is called: no holder callback starts.
  std::atomic<bool> holder_active{false};
  // The holder's callbacks. Written only inside the connection's Dispatch
  // exclusion (with std::atomic_store), read there without a lock, and with
  // std::atomic_load by on_high_water (which runs on the sending thread).
  std::shared_ptr<const LeaseCallbacks> callbacks;
};
// What an idle connection costs the pool (see connection_pool_memory_test
// and bench/idle_memory.py): 88 bytes on LP64, 104 with make_shared's
// control block (a 112-byte heap chunk).
static_assert(sizeof(Entry) <= 88, "keep the per-connection entry small");

class PoolCore : public std::enable_shared_from_this<PoolCore> {
 public:
  PoolCore(EventLoop* loop, ConnectionPoolOptions options);

  ConnectionCallbacks MakeClientCallbacks();
  void AttachClient(TcpClient* client) ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until no thread is inside a client call; then none starts.
  void DetachClient() ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until the on_close of every connection that opened has returned
  // (TcpClient::Stop returns a little before that).
  void WaitForCloses() ABSL_LOCKS_EXCLUDED(mu_);

  // Pool keys: the endpoint for the client's own layer; for another layer
  // (a per-Acquire one, null for plain TCP) the endpoint, kLayerMark and
  // the layer's address, with the layer as the key's context (held while
  // the key has connections or requests, so its address names it alone).
  static constexpr char kLayerMark = ' ';
  // `timeout` runs on the state's steady clock from this call.
  uint64_t Acquire(
      absl::string_view key, absl::Duration timeout, AcquireCallback done,
      std::shared_ptr<const LeaseCallbacks> callbacks,
      const std::shared_ptr<const ConnectionLayer>& layer = nullptr)
      ABSL_LOCKS_EXCLUDED(mu_);
  bool CancelAcquire(uint64_t id) ABSL_LOCKS_EXCLUDED(mu_);
  void Release(std::shared_ptr<Entry> entry, const ConnectionPtr& conn,
               bool reusable) ABSL_LOCKS_EXCLUDED(mu_);
  void Drain(absl::AnyInvocable<void()> on_drained, const absl::Status& why)
      ABSL_LOCKS_EXCLUDED(mu_);
  bool draining() const ABSL_LOCKS_EXCLUDED(mu_);
  bool drained() const ABSL_LOCKS_EXCLUDED(mu_);
  ConnectionPoolStats Stats() const ABSL_LOCKS_EXCLUDED(mu_);
  absl::Duration LeaseLifetime(const Entry& entry) const
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // A queued Acquire.
  struct Waiter final : PoolWaiter {
    AcquireCallback done;
    std::shared_ptr<const LeaseCallbacks> callbacks;
    EventLoop::TimerId timer;  // set under mu_ right after Enqueue
  };
  // An Acquire handing out an idle connection on its thread (see
  // kInlineHandOff): the Dispatch task fills it in when it runs inline.
  struct InlineHandOff {
    AcquireCallback* done;
    const std::shared_ptr<const LeaseCallbacks>* callbacks;
    bool ran = false;     // the task ran inline (whatever it found)
    bool handed = false;  // ... and `done` got the lease
  };
  // What a locked section decided: the state's effects, with the
  // connections to close and the drained callbacks taken under the lock.
  struct Actions {
    Effects fx;
    std::vector<ConnectionPtr> close;
    std::vector<absl::AnyInvocable<void()>> drained;
  };

  static std::shared_ptr<Entry> EntryOf(const ConnectionPtr& conn) {
    return conn->GetContext<Entry>();
  }

  // --- pool_core.cc: the hand-over ---
  // The Dispatch task of an inline hand-out (`token`: the acquirer's
  // InlineHandOff, compared, never followed unless it is this thread's).
  void HandOffTask(const ConnectionPtr& conn, const void* token);
  // Checks `entry` (reused: liveness and check_on_acquire) and leases it.
  // On failure it is detached and `claimed` (if any) requeued or failed;
  // nullopt. On success `claimed` is off the books, in *owned.
  std::optional<Lease> HandOut(const std::shared_ptr<Entry>& entry,
                               const ConnectionPtr& conn,
                               const std::shared_ptr<const LeaseCallbacks>& cb,
                               bool reused, Waiter* claimed,
                               std::unique_ptr<Waiter>* owned)
      ABSL_LOCKS_EXCLUDED(mu_);
  void FinishRelease(const std::shared_ptr<Entry>& entry,
                     const ConnectionPtr& conn) ABSL_LOCKS_EXCLUDED(mu_);
  void Recheck(const std::shared_ptr<Entry>& entry, const ConnectionPtr& conn)
      ABSL_LOCKS_EXCLUDED(mu_);
  void PlaceFresh(const std::shared_ptr<Entry>& entry,
                  const ConnectionPtr& conn) ABSL_LOCKS_EXCLUDED(mu_);
  // Gives a connection back (see PoolState::Place); when a waiter claims
  // it, hands it over and runs the waiter's `done` (excluded from the
  // connection's callbacks: the caller runs inside them).
  void Place(const std::shared_ptr<Entry>& entry, const ConnectionPtr& conn,
             Return how, std::optional<PoolCloseReason> reject)
      ABSL_LOCKS_EXCLUDED(mu_);
  void ArmDeadlineLocked(Waiter* w, int64_t delay_ns)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Resolves the effects' connection handles and takes the drained
  // callbacks, before the lock is released. (Inline: the hand-out and
  // return fast paths have nothing to resolve or run.)
  void ResolveLocked(Actions& a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (a.fx.lists() != nullptr || a.fx.drained) ResolveAllLocked(a);
  }
  void ResolveAllLocked(Actions& a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RunActions(Actions& a) ABSL_LOCKS_EXCLUDED(mu_) {
    if (a.fx.lists() != nullptr || a.fx.arm_sweep || !a.drained.empty()) {
      RunAllActions(a);
    }
  }
  void RunAllActions(Actions& a) ABSL_LOCKS_EXCLUDED(mu_);
  void CancelTimer(const Waiter& w);

  // --- pool_core_events.cc ---
  void OnConnect(const ConnectionPtr& conn) ABSL_LOCKS_EXCLUDED(mu_);
  void OnData(const ConnectionPtr& conn, ByteBuffer& input)
      ABSL_LOCKS_EXCLUDED(mu_);
  void OnPeerShutdown(const ConnectionPtr& conn) ABSL_LOCKS_EXCLUDED(mu_);
  void OnHighWater(const ConnectionPtr& conn, size_t pending);
  void OnLowWater(const ConnectionPtr& conn);
  void OnWriteComplete(const ConnectionPtr& conn);
  void OnClose(const ConnectionPtr& conn, CloseReason reason,
               const absl::Status& status) ABSL_LOCKS_EXCLUDED(mu_);
  void OnConnectDone(uint64_t seq, absl::StatusOr<ConnectionPtr> result)
      ABSL_LOCKS_EXCLUDED(mu_);
  void OnWaiterDeadline(uint64_t id) ABSL_LOCKS_EXCLUDED(mu_);
  void StartConnect(const Effects::Connect& c) ABSL_LOCKS_EXCLUDED(mu_);
  void ArmSweep() ABSL_LOCKS_EXCLUDED(mu_);
  void Sweep() ABSL_LOCKS_EXCLUDED(mu_);
  TcpClient* UseClient() ABSL_LOCKS_EXCLUDED(mu_);
  void DoneWithClient() ABSL_LOCKS_EXCLUDED(mu_);

  EventLoop* const loop_;
  const ConnectionPoolOptions options_;
  const absl::Duration sweep_interval_;

  mutable Mutex mu_;
  PoolState state_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::AnyInvocable<void()>> drained_callbacks_
      ABSL_GUARDED_BY(mu_);
  // The client, while attached; client_users_ counts threads inside a
  // client call (DetachClient waits for them).
  TcpClient* client_ ABSL_GUARDED_BY(mu_) = nullptr;
  size_t client_users_ ABSL_GUARDED_BY(mu_) = 0;
  CondVar client_cv_;
  // Entries whose connection's on_close has not returned yet.
  size_t live_entries_ ABSL_GUARDED_BY(mu_) = 0;
  CondVar closes_cv_;
};

}  // namespace connpool_internal
}  // namespace mill

#endif  // MILL_IO_CONNPOOL_INTERNAL_POOL_CORE_H_
