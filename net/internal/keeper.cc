#include "net/internal/keeper.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/monotonic_clock.h"
#include "net/internal/client_core.h"
#include "net/internal/resolver.h"
#include "net/internal/socket_util.h"

namespace mill {
namespace net_internal {

absl::Status ValidateBackoffPolicy(const BackoffPolicy& policy) {
  if (policy.initial <= absl::ZeroDuration() ||
      policy.initial == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("BackoffPolicy::initial must be positive and finite, not ",
                     absl::FormatDuration(policy.initial)));
  }
  if (policy.max < policy.initial || policy.max == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("BackoffPolicy::max must be finite and at least initial (",
                     absl::FormatDuration(policy.initial), "), not ",
                     absl::FormatDuration(policy.max)));
  }
  if (!std::isfinite(policy.multiplier) || policy.multiplier < 1.0) {
    return absl::InvalidArgumentError(
        absl::StrCat("BackoffPolicy::multiplier must be at least 1, not ",
                     policy.multiplier));
  }
  if (!(policy.jitter >= 0.0 && policy.jitter <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "BackoffPolicy::jitter must be in [0, 1], not ", policy.jitter));
  }
  if (policy.min_uptime < absl::ZeroDuration() ||
      policy.min_uptime == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "BackoffPolicy::min_uptime must be finite and not negative, not ",
        absl::FormatDuration(policy.min_uptime)));
  }
  return absl::OkStatus();
}

absl::Duration BackoffDelay(const BackoffPolicy& policy, int failures,
                            double uniform) {
  const int n = std::max(failures - 1, 0);
  // Duration * double saturates at InfiniteDuration instead of overflowing.
  const absl::Duration base =
      std::min(policy.initial * std::pow(policy.multiplier, n), policy.max);
  const double factor =
      1.0 - policy.jitter + 2.0 * policy.jitter * std::clamp(uniform, 0.0, 1.0);
  return base * factor;
}

Keeper::Keeper(ClientCore* core)
    : core_(core), random_(std::random_device{}()) {}

absl::StatusOr<uint64_t> Keeper::Keep(absl::string_view target,
                                      KeepConnectedOptions options) {
  const BackoffPolicy& policy = options.backoff;
  std::string host;
  uint16_t port = 0;
  if (!SocketAddress::Parse(target).ok() &&
      !SplitHostPort(target, &host, &port)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TcpClient::KeepConnected: '", target, "' is not host:port"));
  }
  if (absl::Status s = ValidateBackoffPolicy(policy); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("TcpClient::KeepConnected: ", s.message()));
  }
  auto kept = std::make_unique<Target>();
  kept->id = core_->NextId();
  kept->target = std::string(target);
  kept->backoff = policy;
  if (options.on_attempt_failed) {
    kept->on_attempt_failed =
        std::make_shared<FailureCallback>(std::move(options.on_attempt_failed));
  }
  const uint64_t id = kept->id;
  {
    MutexLock lock(&mu_);
    if (stopped_) {
      return absl::CancelledError(
          "TcpClient::KeepConnected: the client is stopped");
    }
    targets_.emplace(id, std::move(kept));
  }
  StartConnect(id);
  return id;
}

void Keeper::StartConnect(uint64_t id) {
  std::string target;
  uint64_t round;
  {
    MutexLock lock(&mu_);
    auto it = targets_.find(id);
    if (it == targets_.end() || stopped_) return;
    Target& kept = *it->second;
    kept.retry_timer = EventLoop::TimerId();
    target = kept.target;
    round = ++kept.round;
    kept.round_done = false;
  }
  std::weak_ptr<ClientCore> weak = core_->weak_from_this();
  const uint64_t connect_id = core_->ConnectTo(
      target,
      [weak, id, round](absl::StatusOr<ConnectionPtr> result) {
        if (std::shared_ptr<ClientCore> self = weak.lock()) {
          self->keeper().OnResult(id, round, std::move(result));
        }
      },
      absl::ZeroDuration());
  MutexLock lock(&mu_);
  auto it = targets_.find(id);
  // Unless its result came first (then it is no longer in progress).
  if (it != targets_.end() && it->second->round == round &&
      !it->second->round_done) {
    it->second->connect_id = connect_id;
  }
}

void Keeper::OnResult(uint64_t id, uint64_t round,
                      absl::StatusOr<ConnectionPtr> result) {
  ConnectionPtr to_close;
  absl::Status failure;
  {
    MutexLock lock(&mu_);
    auto it = targets_.find(id);
    if (it == targets_.end() || stopped_) {
      if (result.ok()) to_close = *std::move(result);
    } else {
      Target& kept = *it->second;
      if (kept.round == round) {
        kept.round_done = true;
        kept.connect_id = 0;
      }
      if (result.ok()) {
        // The backoff resets only once it stayed up min_uptime (OnClosed).
        kept.connection = *result;
        kept.connected_at_ns = NowNanos();
        // Its close (always after this callback) schedules the reconnect.
        kept_by_[kept.connection->id()] = id;
      } else {
        failure = result.status();
      }
    }
  }
  if (to_close != nullptr) to_close->Close();
  if (!failure.ok()) Fail(id, round, failure);
}

void Keeper::Fail(uint64_t id, uint64_t round, const absl::Status& error) {
  std::shared_ptr<FailureCallback> callback;
  int attempt = 0;
  {
    MutexLock lock(&mu_);
    auto it = targets_.find(id);
    if (it == targets_.end() || stopped_ || it->second->round != round) return;
    Target& kept = *it->second;
    attempt = ++kept.failures;
    callback = kept.on_attempt_failed;
  }
  // Unlocked: it may call the client. Nothing else schedules this target
  // meanwhile (no connect in flight, no connection), so it runs alone.
  // A deep copy: the user may keep it on another thread while the client
  // drops its own (Debian's Abseil is not TSan-instrumented, and a shared
  // Status's reference count would then read as a race).
  if (callback != nullptr) (*callback)(DeepCopy(error), attempt);
  MutexLock lock(&mu_);
  auto it = targets_.find(id);
  if (it == targets_.end() || stopped_ || it->second->round != round ||
      it->second->retry_timer.valid()) {
    return;
  }
  ScheduleLocked(*it->second);
}

ConnectionPtr Keeper::Current(uint64_t id) {
  MutexLock lock(&mu_);
  auto it = targets_.find(id);
  if (it == targets_.end()) return nullptr;
  const ConnectionPtr& conn = it->second->connection;
  // Closed but its OnClosed not seen yet: no longer current.
  if (conn == nullptr || conn->is_closed()) return nullptr;
  return conn;
}

int64_t Keeper::NowNanos() const {
  return core_->hooks().now_nanos ? core_->hooks().now_nanos()
                                  : MonotonicNanos();
}

void Keeper::ScheduleLocked(Target& kept) {
  double uniform;
  if (core_->hooks().jitter_uniform) {
    uniform = core_->hooks().jitter_uniform();
  } else {
    uniform = std::uniform_real_distribution<double>(0.0, 1.0)(random_);
  }
  const absl::Duration delay =
      BackoffDelay(kept.backoff, kept.failures, uniform);
  if (core_->hooks().backoff_scheduled) core_->hooks().backoff_scheduled(delay);
  std::weak_ptr<ClientCore> weak = core_->weak_from_this();
  const uint64_t id = kept.id;
  kept.retry_timer = core_->loop()->RunAfter(delay, [weak, id] {
    if (std::shared_ptr<ClientCore> self = weak.lock()) {
      self->keeper().StartConnect(id);
    }
  });
}

void Keeper::OnClosed(const ConnectionPtr& conn, CloseReason reason,
                      const absl::Status& status) {
  ConnectionPtr dropped;  // released after the lock
  uint64_t id = 0;
  uint64_t round = 0;
  absl::Status failure;
  {
    MutexLock lock(&mu_);
    if (kept_by_.empty()) return;
    auto kept_by = kept_by_.find(conn->id());
    if (kept_by == kept_by_.end()) return;
    id = kept_by->second;
    kept_by_.erase(kept_by);
    auto it = targets_.find(id);
    if (it == targets_.end() || stopped_) return;
    Target& kept = *it->second;
    dropped = std::move(kept.connection);
    const absl::Duration uptime =
        absl::Nanoseconds(NowNanos() - kept.connected_at_ns);
    if (uptime >= kept.backoff.min_uptime) {
      kept.failures = 0;
      ScheduleLocked(kept);
      return;
    }
    round = kept.round;
    failure = absl::UnavailableError(
        absl::StrCat("connection to ", kept.target, " closed after ",
                     absl::FormatDuration(uptime), ", before min_uptime ",
                     absl::FormatDuration(kept.backoff.min_uptime), " (",
                     CloseReasonName(reason), status.ok() ? "" : ": ",
                     status.message(), ")"));
  }
  Fail(id, round, failure);
}

bool Keeper::StopKeeping(uint64_t id, bool close) {
  std::unique_ptr<Target> kept;
  {
    MutexLock lock(&mu_);
    auto it = targets_.find(id);
    if (it == targets_.end()) return false;
    kept = std::move(it->second);
    targets_.erase(it);
    if (kept->connection != nullptr) kept_by_.erase(kept->connection->id());
  }
  // Unlocked: Cancel waits for a running retry, which takes mu_.
  if (kept->retry_timer.valid()) core_->loop()->Cancel(kept->retry_timer);
  if (kept->connect_id != 0) {
    core_->attempts().Cancel(kept->connect_id,
                             absl::CancelledError("no longer kept"));
  }
  if (close && kept->connection != nullptr) kept->connection->Close();
  return true;
}

void Keeper::StopAll() {
  std::vector<uint64_t> ids;
  {
    MutexLock lock(&mu_);
    stopped_ = true;
    ids.reserve(targets_.size());
    for (const auto& entry : targets_) ids.push_back(entry.first);
  }
  for (uint64_t id : ids) StopKeeping(id, /*close=*/false);
}

}  // namespace net_internal
}  // namespace mill
