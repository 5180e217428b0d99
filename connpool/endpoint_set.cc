// EndpointSet: round robin and power of two choices over endpoints, with
// backoff for endpoints that could not be reached.
#include "connpool/endpoint_set.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"

namespace mill {
namespace {

// Errors that say the endpoint itself could not be reached.
bool BlamesEndpoint(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsNotFound(status);
}

}  // namespace

absl::StatusOr<std::shared_ptr<EndpointSet>> EndpointSet::Create(
    std::vector<std::string> endpoints, EndpointSetOptions options) {
  if (endpoints.empty()) {
    return absl::InvalidArgumentError("EndpointSet: no endpoints");
  }
  for (const std::string& ep : endpoints) {
    if (ep.empty() || ep.find(' ') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("EndpointSet: '", ep, "' is not host:port"));
    }
  }
  if (options.failure_backoff < absl::ZeroDuration() ||
      options.max_failure_backoff < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "EndpointSetOptions: backoffs must not be negative");
  }
  return std::shared_ptr<EndpointSet>(
      new EndpointSet(std::move(endpoints), std::move(options)));
}

EndpointSet::EndpointSet(std::vector<std::string> endpoints,
                         EndpointSetOptions options)
    : endpoints_(std::move(endpoints)),
      options_(std::move(options)),
      state_(endpoints_.size()),
      random_(std::random_device{}()) {
  candidates_.reserve(endpoints_.size());
}

int64_t EndpointSet::NowNanos() const {
  if (options_.now_ns) return options_.now_ns();
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

uint64_t EndpointSet::RandomLocked() {
  return options_.random ? options_.random() : random_();
}

size_t EndpointSet::outstanding(size_t i) const {
  MutexLock lock(&mu_);
  return state_.at(i).outstanding;
}

bool EndpointSet::backing_off(size_t i) const {
  const int64_t now = NowNanos();
  MutexLock lock(&mu_);
  return now < state_.at(i).retry_at_ns;
}

size_t EndpointSet::Pick() {
  const int64_t now = NowNanos();
  MutexLock lock(&mu_);
  const size_t n = endpoints_.size();
  size_t pick = 0;
  if (options_.policy == BalancingPolicy::kRoundRobin) {
    // The next in turn that is not backing off (the next in turn if all
    // are).
    pick = next_ % n;
    for (size_t k = 0; k < n; ++k) {
      const size_t i = (next_ + k) % n;
      if (now >= state_[i].retry_at_ns) {
        pick = i;
        break;
      }
    }
    next_ = pick + 1;
  } else {
    candidates_.clear();
    for (size_t i = 0; i < n; ++i) {
      if (now >= state_[i].retry_at_ns) candidates_.push_back(i);
    }
    if (candidates_.empty()) {
      for (size_t i = 0; i < n; ++i) candidates_.push_back(i);
    }
    const size_t m = candidates_.size();
    if (m == 1) {
      pick = candidates_[0];
    } else {
      // Two distinct draws: the second skips over the first.
      const size_t a = RandomLocked() % m;
      size_t b = RandomLocked() % (m - 1);
      if (b >= a) ++b;
      const size_t ia = candidates_[a];
      const size_t ib = candidates_[b];
      pick = state_[ib].outstanding < state_[ia].outstanding ? ib : ia;
    }
  }
  ++state_[pick].outstanding;
  return pick;
}

void EndpointSet::Succeeded(size_t i) {
  MutexLock lock(&mu_);
  state_.at(i).failures = 0;
  state_[i].retry_at_ns = 0;
}

void EndpointSet::Finish(size_t i, const absl::Status& status) {
  const bool blame = !status.ok() && BlamesEndpoint(status) &&
                     options_.failure_backoff > absl::ZeroDuration();
  const int64_t now = blame ? NowNanos() : 0;
  MutexLock lock(&mu_);
  State& s = state_.at(i);
  if (s.outstanding > 0) --s.outstanding;
  if (!blame) return;
  // failure_backoff * 2^failures, capped (the shift is bounded so that it
  // cannot overflow).
  absl::Duration backoff = options_.failure_backoff *
                           (int64_t{1} << std::min<uint32_t>(s.failures, 30));
  backoff = std::min(backoff, std::max(options_.max_failure_backoff,
                                       options_.failure_backoff));
  ++s.failures;
  s.retry_at_ns = now + absl::ToInt64Nanoseconds(backoff);
}

}  // namespace mill
