// ConnectAttempts: the Connect() calls of one TcpClient in progress, from
// the name lookup to the delivered connection or error. Internal: not part
// of the API.
//
// A request resolves its name (through the shared Resolver) or takes the
// caller's addresses, then tries them as RFC 8305 ("Happy Eyeballs") asks:
// one socket at a time, the next one attempt_delay after the previous one
// unless that one failed first (then at once); the first to connect wins
// and the others are abandoned. A deadline timer bounds the whole request;
// Cancel(), the deadline, a failed lookup and StopAll() finish it early.
//
// Every way a request finishes goes through one place (FinishLocked, then
// RunFinish unlocked), so the callback runs exactly once. An attempt whose
// request finishes while its connection is being started (between
// StartAttempt's unlock and Connection Start) is never touched before Start
// returns: StartAttempt abandons it itself once Start returned, so no cancel
// can tear a connection down under its Start.
//
// Thread-safety: thread-safe; callbacks run without the lock held. Lock
// order: Keeper's lock, then this one, then ClientCore's.
// Ownership: owned by the ClientCore, which outlives it.
#ifndef MILL_IO_NET_INTERNAL_CONNECT_ATTEMPTS_H_
#define MILL_IO_NET_INTERNAL_CONNECT_ATTEMPTS_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/mutex.h"
#include "net/connection.h"
#include "net/connection_layer.h"
#include "net/internal/resolver.h"
#include "net/socket_address.h"
#include "net/tcp_client.h"
#include "reactor/event_loop.h"

namespace mill {
namespace net_internal {

class ClientCore;

// A Connect's own layer instead of TcpClientOptions::layer: unset keeps the
// options' layer; set to null, plain TCP.
using LayerOverride = std::optional<std::shared_ptr<const ConnectionLayer>>;

class ConnectAttempts {
 public:
  explicit ConnectAttempts(ClientCore* core);
  ConnectAttempts(const ConnectAttempts&) = delete;
  ConnectAttempts& operator=(const ConnectAttempts&) = delete;

  // Starts request `id`: resolves `host` (port `port`) when not empty,
  // else tries `addresses`, over `layer` (the options' when unset).
  // `target` names it in messages. After StopAll, `done` gets Cancelled
  // from the loop.
  void Connect(uint64_t id, std::vector<SocketAddress> addresses,
               absl::string_view host, uint16_t port, std::string target,
               ConnectCallback done, absl::Duration timeout,
               LayerOverride layer = {}) ABSL_LOCKS_EXCLUDED(mu_);

  // Finishes request `id` with `why` (its callback runs here). False when
  // it is unknown or already finished.
  bool Cancel(uint64_t id, absl::Status why) ABSL_LOCKS_EXCLUDED(mu_);

  // Refuses new requests and finishes every pending one with Cancelled.
  void StopAll() ABSL_LOCKS_EXCLUDED(mu_);

  // From the ClientCore: an attempt's connection finished connecting.
  void OnConnectDone(const ConnectionPtr& conn, const absl::Status& status)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Adds the request counters to `stats`.
  void AddStats(TcpClientStats* stats) const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // One Connect() in progress. Its fields are guarded by mu_ (the analysis
  // cannot name another object's mutex; only *Locked members touch them).
  struct Request {
    struct Attempt {
      ConnectionPtr conn;
      bool starting;  // created, Start not returned yet
    };
    uint64_t id = 0;
    std::string target;       // for messages
    std::string server_name;  // for the layer: the host, or the address
    // The layer its attempts' connections are made by (null: plain TCP);
    // held until the request finishes (connections keep what they need).
    std::shared_ptr<const ConnectionLayer> layer;
    ConnectCallback done;
    absl::Duration timeout;
    std::vector<SocketAddress> addresses;
    size_t next = 0;  // next address to try
    std::vector<Attempt> attempts;
    absl::Status last_error;
    Resolver::Ticket resolve_ticket = 0;
    bool resolving = false;
    bool finished = false;
    EventLoop::TimerId deadline_timer;
    EventLoop::TimerId stagger_timer;
  };
  using RequestPtr = std::shared_ptr<Request>;

  // What finishing a request leaves to do once mu_ is released.
  struct Finish {
    ConnectCallback done;
    std::vector<ConnectionPtr> abandoned;  // attempts to fail
    EventLoop::TimerId timers[2];
    Resolver::Ticket resolve_ticket = 0;
  };

  void OnResolved(uint64_t id, Resolver::Result addresses)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Starts the request's next address (only if it is `expected_next`,
  // unless kAnyNext).
  static constexpr size_t kAnyNext = ~size_t{0};
  void StartAttempt(const RequestPtr& request, size_t expected_next = kAnyNext)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Arms the stagger timer that starts the next address; returns the timer
  // it replaced, to cancel once mu_ is released.
  EventLoop::TimerId ArmStaggerLocked(const RequestPtr& request)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Finish FinishLocked(Request& request) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RunFinish(Finish finish, absl::StatusOr<ConnectionPtr> result)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Runs `fn` where the loop runs things, or here once the loop stopped.
  void Post(absl::AnyInvocable<void()> fn);

  ClientCore* const core_;

  mutable Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_connection_id_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<uint64_t, RequestPtr> pending_ ABSL_GUARDED_BY(mu_);
  // Connection id -> its request, while the attempt is connecting.
  absl::flat_hash_map<uint64_t, RequestPtr> attempt_owner_ ABSL_GUARDED_BY(mu_);
  uint64_t started_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t succeeded_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t failed_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t attempts_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t resolutions_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace net_internal
}  // namespace mill

#endif  // MILL_IO_NET_INTERNAL_CONNECT_ATTEMPTS_H_
