// ClientCore: the state a TcpClient shares with its connections, its
// pending connects (ConnectAttempts) and its reconnecting targets (Keeper).
// Internal: not part of the API.
//
// The core is the connections' owner: it keeps the open connections (an
// intrusive list: no allocation per connection), counts the live ones (being
// started or open, until their close) and carries out Stop(). Once Stop()
// marked it stopping, no connection is adopted any more: a connect that
// completes during or after Stop is closed (kStopped) and its callback gets
// Cancelled, so Stop's wait for the live count always ends.
//
// Thread-safety: thread-safe. Lock order: Keeper, ConnectAttempts, then
// this one (its lock is the innermost; nothing is called with it held).
// Ownership: shared by the TcpClient, the connections (their owner) and the
// timers and lookups in flight (weakly); the TcpClient's destructor stops
// it: no connection is left, no lookup answer is being delivered to it, and
// a timer that still fires finds nothing to do.
#ifndef MILL_IO_NET_INTERNAL_CLIENT_CORE_H_
#define MILL_IO_NET_INTERNAL_CLIENT_CORE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/mutex.h"
#include "net/connection.h"
#include "net/internal/connect_attempts.h"
#include "net/internal/connection_config.h"
#include "net/internal/connection_list.h"
#include "net/internal/keeper.h"
#include "net/internal/resolver.h"
#include "net/tcp_client.h"
#include "reactor/event_loop.h"

namespace mill {
namespace net_internal {

// Seams for tests, set once at creation (TcpClientAccess); empty in
// production.
struct ClientHooks {
  // The resolver to use; Resolver::Shared() when null.
  std::shared_ptr<Resolver> resolver;
  // Runs in StartAttempt after the attempt of request `id` was recorded
  // and the lock released, right before the connection's Start.
  std::function<void(uint64_t id, const ConnectionPtr& conn)> before_start;
  // Runs in Stop() once the client is marked stopping, before it cancels
  // pending connects and closes open connections.
  std::function<void()> stop_begun;
  // Runs with the Keeper's lock held whenever a reconnect is scheduled.
  std::function<void(absl::Duration delay)> backoff_scheduled;
  // The jitter's uniform draw in [0, 1]; a random one when empty.
  std::function<double()> jitter_uniform;
  // The Keeper's clock for connection uptimes (MonotonicNanos when empty).
  std::function<int64_t()> now_nanos;
};

class ClientCore final : public ConnectionOwner,
                         public std::enable_shared_from_this<ClientCore> {
 public:
  ClientCore(EventLoop* loop, ConnectionCallbacks callbacks,
             TcpClientOptions options, ClientHooks hooks);
  ~ClientCore() override;

  EventLoop* loop() const { return loop_; }
  const TcpClientOptions& options() const { return options_; }
  const ClientHooks& hooks() const { return hooks_; }
  Resolver& resolver() const { return *resolver_; }
  ConnectAttempts& attempts() { return attempts_; }
  Keeper& keeper() { return keeper_; }

  // A fresh Connect / KeepConnected id (never 0).
  uint64_t NextId() { return next_id_.fetch_add(1, std::memory_order_relaxed); }

  // Connects to "host:port", "a.b.c.d:port" or "[v6]:port". A malformed
  // target runs `done` with InvalidArgument here and returns 0. `layer`
  // replaces the options' layer when set (a null one: plain TCP).
  uint64_t ConnectTo(absl::string_view host_port, ConnectCallback done,
                     absl::Duration timeout, LayerOverride layer = {});
  uint64_t ConnectTo(std::vector<SocketAddress> addresses, std::string target,
                     ConnectCallback done, absl::Duration timeout,
                     LayerOverride layer = {});

  // Connection accounting, for ConnectAttempts. AddLive before a connection
  // may be started; its OnClosed (or DropLive if it never starts) undoes it.
  void AddLive() ABSL_LOCKS_EXCLUDED(mu_);
  void DropLive() ABSL_LOCKS_EXCLUDED(mu_);
  // Records a connection that opened; false once stopping (the caller
  // closes it, kStopped).
  bool Adopt(const ConnectionPtr& conn) ABSL_LOCKS_EXCLUDED(mu_);
  // Closes a connection that opened for a request already finished.
  void CloseUnowned(const ConnectionPtr& conn) ABSL_LOCKS_EXCLUDED(mu_);

  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

  std::vector<ConnectionPtr> Connections() const ABSL_LOCKS_EXCLUDED(mu_);
  size_t connection_count() const ABSL_LOCKS_EXCLUDED(mu_);
  TcpClientStats stats() const ABSL_LOCKS_EXCLUDED(mu_);

  // ConnectionOwner:
  void OnConnectDone(const ConnectionPtr& conn,
                     const absl::Status& status) override;
  void OnClosed(const ConnectionPtr& conn, CloseReason reason,
                const absl::Status& status) override ABSL_LOCKS_EXCLUDED(mu_);
  void OnCloseCallbackDone() override ABSL_LOCKS_EXCLUDED(mu_);

 private:
  EventLoop* const loop_;
  const TcpClientOptions options_;
  const ClientHooks hooks_;
  const std::shared_ptr<Resolver> resolver_;
  std::atomic<uint64_t> next_id_{1};

  mutable Mutex mu_;
  CondVar closed_;  // with mu_: live_ or closing_ dropped
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  ConnectionList open_ ABSL_GUARDED_BY(mu_);
  // Connections being started or open, until their OnClosed.
  size_t live_ ABSL_GUARDED_BY(mu_) = 0;
  // on_close calls under way (OnClosed seen, OnCloseCallbackDone not yet).
  size_t closing_ ABSL_GUARDED_BY(mu_) = 0;

  ConnectAttempts attempts_;
  Keeper keeper_;
};

// Builds TcpClients with hooks (tests).
struct TcpClientAccess {
  static absl::StatusOr<std::unique_ptr<TcpClient>> Create(
      EventLoop* loop, ConnectionCallbacks callbacks, TcpClientOptions options,
      ClientHooks hooks);
};

}  // namespace net_internal
}  // namespace mill

#endif  // MILL_IO_NET_INTERNAL_CLIENT_CORE_H_
