// Keeper: the KeepConnected() targets of one TcpClient. Internal: not part
// of the API.
//
// Built on the client's own Connect (as a user would build it): one
// connect at a time per target; a failure schedules the next one after the
// backoff delay, a success holds the connection until it closes, which
// schedules the next connect: after the initial delay if it stayed open
// min_uptime, else as one more failure. The n-th consecutive failure waits
// min(max, initial * multiplier^(n-1)) scaled by a uniform factor in
// [1 - jitter, 1 + jitter]. on_attempt_failed runs unlocked between a
// failure and the scheduling of the next attempt.
//
// Thread-safety: thread-safe; the retry timers and connect results come
// from the loop. Lock order: this lock, then ConnectAttempts', then
// ClientCore's. Ownership: owned by the ClientCore, which outlives it.
#ifndef MILL_IO_NET_INTERNAL_KEEPER_H_
#define MILL_IO_NET_INTERNAL_KEEPER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/mutex.h"
#include "net/connection.h"
#include "net/tcp_client.h"
#include "reactor/event_loop.h"

namespace mill {
namespace net_internal {

class ClientCore;

// InvalidArgument unless initial > 0, max >= initial, multiplier >= 1,
// jitter in [0, 1] and min_uptime >= 0 (each finite).
absl::Status ValidateBackoffPolicy(const BackoffPolicy& policy);

// The wait after the `failures`-th consecutive failure (0: after a close),
// `uniform` in [0, 1] choosing the jitter factor. `policy` is valid.
absl::Duration BackoffDelay(const BackoffPolicy& policy, int failures,
                            double uniform);

class Keeper {
 public:
  explicit Keeper(ClientCore* core);
  Keeper(const Keeper&) = delete;
  Keeper& operator=(const Keeper&) = delete;

  // Starts keeping `target` ("host:port") connected. InvalidArgument for a
  // malformed target or policy, Cancelled once stopped.
  absl::StatusOr<uint64_t> Keep(absl::string_view target,
                                KeepConnectedOptions options)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The open connection kept for `id`, or null.
  ConnectionPtr Current(uint64_t id) ABSL_LOCKS_EXCLUDED(mu_);
  bool StopKeeping(uint64_t id, bool close) ABSL_LOCKS_EXCLUDED(mu_);
  // Stops every target (their connections stay open) and refuses new ones.
  void StopAll() ABSL_LOCKS_EXCLUDED(mu_);

  // From the ClientCore: `conn` closed (it may be one of ours).
  void OnClosed(const ConnectionPtr& conn, CloseReason reason,
                const absl::Status& status) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  using FailureCallback =
      absl::AnyInvocable<void(const absl::Status& error, int attempt)>;

  struct Target {
    uint64_t id = 0;
    std::string target;
    BackoffPolicy backoff;
    int failures = 0;         // consecutive
    uint64_t round = 0;       // connects started
    bool round_done = false;  // the latest connect delivered its result
    uint64_t connect_id = 0;  // the connect in progress, if known
    ConnectionPtr connection;
    int64_t connected_at_ns = 0;  // when `connection` opened
    EventLoop::TimerId retry_timer;
    // Shared so that it can run unlocked while StopKeeping drops the target.
    std::shared_ptr<FailureCallback> on_attempt_failed;
  };

  void StartConnect(uint64_t id) ABSL_LOCKS_EXCLUDED(mu_);
  void OnResult(uint64_t id, uint64_t round,
                absl::StatusOr<ConnectionPtr> result) ABSL_LOCKS_EXCLUDED(mu_);
  // Counts a failure of round `round`, runs on_attempt_failed unlocked,
  // then schedules the next connect unless the target went meanwhile.
  void Fail(uint64_t id, uint64_t round, const absl::Status& error)
      ABSL_LOCKS_EXCLUDED(mu_);
  void ScheduleLocked(Target& target) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t NowNanos() const;

  ClientCore* const core_;

  Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<uint64_t, std::unique_ptr<Target>> targets_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, uint64_t> kept_by_  // connection -> target
      ABSL_GUARDED_BY(mu_);
  std::mt19937_64 random_ ABSL_GUARDED_BY(mu_);
};

}  // namespace net_internal
}  // namespace mill

#endif  // MILL_IO_NET_INTERNAL_KEEPER_H_
