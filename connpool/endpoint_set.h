// EndpointSet: a list of interchangeable endpoints ("host:port", names
// included) with a balancing policy, for ConnectionPool::Acquire to pick
// one per request, so that a user does not write their own picker.
//
//   kRoundRobin          the endpoints in turn (exactly even while none is
//                        backing off)
//   kPowerOfTwoChoices   two distinct endpoints drawn at random; the one
//                        with fewer outstanding requests wins (ties: the
//                        first drawn). Outstanding: an Acquire through this
//                        set that is waiting for a connection or holds a
//                        lease (until the lease is released or its
//                        connection closes).
//
// Failed endpoints: an Acquire that fails because its endpoint could not be
// reached (Unavailable: refused, unreachable; NotFound: the name does not
// resolve) puts the endpoint on backoff: it is skipped for failure_backoff,
// doubled on each further failure up to max_failure_backoff, and forgiven by
// the first lease it hands out. While every endpoint is backing off the
// policy picks among all of them (a request is tried rather than failed
// without trying). Errors of the pool itself (queue full, draining,
// cancelled, the request's own timeout) say nothing about the endpoint.
//
// Names go through the shared resolver and its cache (the pool connects
// with TcpClient::Connect(host_port)): listing "db.internal:5432" costs one
// lookup per TTL, not one per connect.
//
// Thread-safety: every member may be called from any thread (an internal
// mutex). Ownership: share it (std::shared_ptr) between the requests that
// use it; each Acquire and lease keeps it alive. One set may serve several
// pools; its outstanding counts are then the sum over them.
#ifndef MILL_IO_CONNPOOL_ENDPOINT_SET_H_
#define MILL_IO_CONNPOOL_ENDPOINT_SET_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/mutex.h"

namespace mill {

enum class BalancingPolicy : uint8_t { kRoundRobin, kPowerOfTwoChoices };

struct EndpointSetOptions {
  BalancingPolicy policy = BalancingPolicy::kRoundRobin;
  // How long a failed endpoint is skipped; doubled per further failure up
  // to max_failure_backoff. Zero: failed endpoints are never skipped.
  absl::Duration failure_backoff = absl::Seconds(1);
  absl::Duration max_failure_backoff = absl::Seconds(30);
  // The random source of kPowerOfTwoChoices (tests inject a script); empty:
  // a std::mt19937_64 seeded from std::random_device. Called under the
  // set's mutex.
  std::function<uint64_t()> random;
  // Steady-clock nanoseconds for the backoff (tests inject a fake clock);
  // empty: std::chrono::steady_clock.
  std::function<int64_t()> now_ns;
};

// The endpoints and their balancing state. Create it once per upstream
// group and share it.
class EndpointSet {
 public:
  // InvalidArgument for an empty list, an empty endpoint or one with a
  // space in it (no "host:port" has one), negative backoffs.
  static absl::StatusOr<std::shared_ptr<EndpointSet>> Create(
      std::vector<std::string> endpoints, EndpointSetOptions options = {});

  EndpointSet(const EndpointSet&) = delete;
  EndpointSet& operator=(const EndpointSet&) = delete;

  size_t size() const { return endpoints_.size(); }
  const std::string& endpoint(size_t i) const { return endpoints_.at(i); }
  BalancingPolicy policy() const { return options_.policy; }
  // Acquires in flight plus leases held through this set, for endpoint i.
  size_t outstanding(size_t i) const ABSL_LOCKS_EXCLUDED(mu_);
  // True while endpoint i is skipped after a failure.
  bool backing_off(size_t i) const ABSL_LOCKS_EXCLUDED(mu_);

  // The balancing steps, public so that other clients than ConnectionPool
  // (and tests) can use a set: Pick() chooses an endpoint and counts one
  // request outstanding on it; Finish(i, status) ends that request (status:
  // how the acquire ended; OK for a lease that was handed out and has now
  // ended, or for an acquire that got one).
  size_t Pick() ABSL_LOCKS_EXCLUDED(mu_);
  // The request on `i` got a connection: the endpoint's failures are
  // forgiven (it stays outstanding until Finish).
  void Succeeded(size_t i) ABSL_LOCKS_EXCLUDED(mu_);
  // The request on `i` ended; a non-OK `status` that blames the endpoint
  // (Unavailable, NotFound) puts it on backoff.
  void Finish(size_t i, const absl::Status& status) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct State {
    size_t outstanding = 0;
    uint32_t failures = 0;    // in a row
    int64_t retry_at_ns = 0;  // skipped before this (steady clock)
  };

  EndpointSet(std::vector<std::string> endpoints, EndpointSetOptions options);
  int64_t NowNanos() const;
  uint64_t RandomLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::vector<std::string> endpoints_;
  const EndpointSetOptions options_;

  mutable Mutex mu_;
  std::vector<State> state_ ABSL_GUARDED_BY(mu_);
  size_t next_ ABSL_GUARDED_BY(mu_) = 0;  // round robin's turn
  std::mt19937_64 random_ ABSL_GUARDED_BY(mu_);
  std::vector<size_t> candidates_ ABSL_GUARDED_BY(mu_);  // scratch
};

}  // namespace mill

#endif  // MILL_IO_CONNPOOL_ENDPOINT_SET_H_
