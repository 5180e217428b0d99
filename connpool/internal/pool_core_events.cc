// PoolCore: the connections' callbacks (routed to the holder while leased,
// the pool's own business while idle), connects, the sweep timer, Drain and
// the client's lifetime.
#include <memory>
#include <utility>

#include "connpool/internal/pool_core.h"

namespace mill {
namespace connpool_internal {
namespace {

ConnectionEnd EndOf(CloseReason reason) {
  switch (reason) {
    case CloseReason::kClosedLocally:
      return ConnectionEnd::kClosedLocally;
    case CloseReason::kIdleTimeout:
      return ConnectionEnd::kIdleTimeout;
    case CloseReason::kStopped:
      return ConnectionEnd::kStopped;
    default:
      return ConnectionEnd::kOther;
  }
}

}  // namespace

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
  cb.on_write_complete = [self](const ConnectionPtr& c) {
    self->OnWriteComplete(c);
  };
  cb.on_close = [self](const ConnectionPtr& c, CloseReason r,
                       const absl::Status& s) { self->OnClose(c, r, s); };
  return cb;
}

// --- Connects ----------------------------------------------------------------

void PoolCore::StartConnect(const Effects::Connect& c) {
  TcpClient* client = UseClient();
  if (client == nullptr) {
    OnConnectDone(c.seq,
                  absl::CancelledError("the connection pool is shut down"));
    return;
  }
  std::shared_ptr<PoolCore> self = shared_from_this();
  const uint64_t seq = c.seq;
  ConnectCallback done = [self, seq](absl::StatusOr<ConnectionPtr> result) {
    self->OnConnectDone(seq, std::move(result));
  };
  const size_t mark = c.key.find(kLayerMark);
  const TcpClient::ConnectId id =
      mark == std::string::npos
          ? client->Connect(c.key, std::move(done))
          : client->Connect(
                absl::string_view(c.key).substr(0, mark),
                std::static_pointer_cast<const ConnectionLayer>(c.context),
                std::move(done));
  bool cancel;
  {
    MutexLock lock(&mu_);
    cancel = state_.ConnectIssued(seq, id);
  }
  if (cancel && id != 0) client->Cancel(id);
  DoneWithClient();
}

void PoolCore::OnConnect(const ConnectionPtr& conn) {
  // Every connection that opens gets its entry here, before any other of
  // its callbacks (on_close included) can run; it counts for nothing until
  // OnConnectDone attaches it. (An attempt that opened after its connect
  // was cancelled never gets that far: TcpClient closes it.)
  {
    MutexLock lock(&mu_);
    ++live_entries_;
  }
  conn->SetContext(std::make_shared<Entry>());
}

void PoolCore::OnConnectDone(uint64_t seq,
                             absl::StatusOr<ConnectionPtr> result) {
  Actions a;
  ConnectionPtr conn;
  std::shared_ptr<Entry> entry;
  absl::Status error = result.status();
  if (result.ok()) {
    conn = *std::move(result);
    entry = EntryOf(conn);  // null if it closed already
  }
  bool place = false;
  {
    MutexLock lock(&mu_);
    if (conn == nullptr) {
      state_.ConnectFailed(seq, error, a.fx);
    } else {
      place = state_.ConnectSucceeded(seq, entry.get(), conn.get(), a.fx);
    }
    ResolveLocked(a);
  }
  RunActions(a);
  if (place) {
    // TcpClient runs this on the new connection's handler thread right
    // after on_connect, so this Dispatch queues behind it: the callbacks
    // are installed before any on_data.
    conn->Dispatch([this, entry = std::move(entry)](const ConnectionPtr& c) {
      PlaceFresh(entry, c);
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
      CallScope scope(kHolderCode, conn.get());
      cb->on_data(conn, input);
    }
    return;
  }
  // Input while idle: the protocol is out of step; never reuse it. In the
  // other states the input stays and the next check sees it.
  Actions a;
  {
    MutexLock lock(&mu_);
    state_.DeadWhileIdle(entry.get(), /*close=*/true, a.fx);
    ResolveLocked(a);
  }
  RunActions(a);
}

void PoolCore::OnPeerShutdown(const ConnectionPtr& conn) {
  std::shared_ptr<Entry> entry = EntryOf(conn);
  if (entry != nullptr &&
      entry->holder_active.load(std::memory_order_acquire)) {
    std::shared_ptr<const LeaseCallbacks> cb = entry->callbacks;
    if (cb != nullptr && cb->on_peer_shutdown) {
      CallScope scope(kHolderCode, conn.get());
      cb->on_peer_shutdown(conn);
      return;
    }
  } else if (entry != nullptr) {
    Actions a;
    {
      MutexLock lock(&mu_);
      state_.DeadWhileIdle(entry.get(), /*close=*/false, a.fx);
      ResolveLocked(a);
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
  if (cb != nullptr && cb->on_high_water) {
    // Runs in the connection's context like the others (never inside the
    // holder's Send).
    CallScope scope(kHolderCode, conn.get());
    cb->on_high_water(conn, pending);
  }
}

void PoolCore::OnWriteComplete(const ConnectionPtr& conn) {
  std::shared_ptr<Entry> entry = EntryOf(conn);
  if (entry == nullptr ||
      !entry->holder_active.load(std::memory_order_acquire)) {
    return;
  }
  std::shared_ptr<const LeaseCallbacks> cb = entry->callbacks;
  if (cb != nullptr && cb->on_write_complete) {
    CallScope scope(kHolderCode, conn.get());
    cb->on_write_complete(conn);
  }
}

void PoolCore::OnLowWater(const ConnectionPtr& conn) {
  std::shared_ptr<Entry> entry = EntryOf(conn);
  if (entry == nullptr ||
      !entry->holder_active.load(std::memory_order_acquire)) {
    return;
  }
  std::shared_ptr<const LeaseCallbacks> cb = entry->callbacks;
  if (cb != nullptr && cb->on_low_water) {
    CallScope scope(kHolderCode, conn.get());
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
    MutexLock lock(&mu_);
    state_.Closed(entry.get(), EndOf(reason), a.fx);
    ResolveLocked(a);
  }
  RunActions(a);
  conn->SetContext(nullptr);
  if (holder && cb != nullptr && cb->on_close) {
    CallScope scope(kHolderCode, conn.get());
    cb->on_close(conn, reason, status);
  }
  cb = nullptr;  // the holder's closures go before the pool may be gone
  MutexLock lock(&mu_);
  if (--live_entries_ == 0) closes_cv_.NotifyAll();
}

void PoolCore::OnWaiterDeadline(uint64_t id) {
  Actions a;
  {
    MutexLock lock(&mu_);
    state_.DeadlinePassed(id, a.fx);
    ResolveLocked(a);
  }
  RunActions(a);
}

// --- Sweep ----------------------------------------------------------------

void PoolCore::ArmSweep() {
  std::weak_ptr<PoolCore> weak = weak_from_this();
  const EventLoop::TimerId id = loop_->RunAfter(sweep_interval_, [weak] {
    if (std::shared_ptr<PoolCore> self = weak.lock()) self->Sweep();
  });
  if (!id.valid()) {
    MutexLock lock(&mu_);
    state_.SweepNotArmed();  // the loop stopped: expiry at acquire only
  }
}

void PoolCore::Sweep() {
  Actions a;
  {
    MutexLock lock(&mu_);
    state_.Sweep(a.fx);
    ResolveLocked(a);
  }
  RunActions(a);
}

// --- Drain, queries, the client -----------------------------------------

void PoolCore::Drain(absl::AnyInvocable<void()> on_drained,
                     const absl::Status& why) {
  Actions a;
  {
    MutexLock lock(&mu_);
    if (state_.drained()) {
      if (on_drained) a.drained.push_back(std::move(on_drained));
    } else {
      if (on_drained) drained_callbacks_.push_back(std::move(on_drained));
      state_.Drain(why, a.fx);
    }
    ResolveLocked(a);
  }
  RunActions(a);
}

bool PoolCore::draining() const {
  MutexLock lock(&mu_);
  return state_.draining();
}

bool PoolCore::drained() const {
  MutexLock lock(&mu_);
  return state_.drained();
}

ConnectionPoolStats PoolCore::Stats() const {
  MutexLock lock(&mu_);
  return state_.Stats();
}

absl::Duration PoolCore::LeaseLifetime(const Entry& entry) const {
  int64_t lifetime;
  {
    MutexLock lock(&mu_);
    lifetime = state_.LifetimeNanos(entry);
  }
  return lifetime == kNever ? absl::InfiniteDuration()
                            : absl::Nanoseconds(lifetime);
}

void PoolCore::AttachClient(TcpClient* client) {
  MutexLock lock(&mu_);
  client_ = client;
}

void PoolCore::DetachClient() {
  MutexLock lock(&mu_);
  client_ = nullptr;
  while (client_users_ != 0) client_cv_.Wait(&mu_);
}

void PoolCore::WaitForCloses() {
  MutexLock lock(&mu_);
  while (live_entries_ != 0) closes_cv_.Wait(&mu_);
}

TcpClient* PoolCore::UseClient() {
  MutexLock lock(&mu_);
  if (client_ != nullptr) ++client_users_;
  return client_;
}

void PoolCore::DoneWithClient() {
  MutexLock lock(&mu_);
  if (--client_users_ == 0) client_cv_.NotifyAll();
}

}  // namespace connpool_internal
}  // namespace mill
