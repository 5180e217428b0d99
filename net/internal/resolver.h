// Resolver: host names to addresses for every TcpClient (and so for every
// ConnectionPool, which connects through its TcpClient), off the event
// loop. Internal: not part of the API.
//
// One process-wide instance (Shared()) serves all clients of all loops:
// getaddrinfo(3) is a process-wide, blocking facility, so a per-loop
// resolver would only multiply threads and caches. On top of it:
//  * lookups run on the resolver's own worker threads (started with the
//    first name that is not cached), never on a loop thread;
//  * in-flight deduplication: concurrent requests for one name share one
//    getaddrinfo call (a pool opening 100 connections to "db:5432" asks
//    once);
//  * a small TTL cache: an answer is reused for positive_ttl (30 s), a
//    failure for negative_ttl (5 s, so a name that does not resolve is not
//    asked again at reconnect rate); at most max_entries names, the entry
//    expiring soonest evicted first. Names are cached without the port;
//    each request gets its own port set.
// Tests build their own instance with a fake lookup and clock.
//
// Thread-safety: thread-safe. A callback runs on the calling thread, inside
// Resolve(), for a cached name, else on a resolver worker; callbacks may
// call back into the resolver. Ownership: the shared instance is never
// destroyed; an owned instance's destructor joins its workers after
// delivering every queued lookup.
#ifndef MILL_IO_NET_INTERNAL_RESOLVER_H_
#define MILL_IO_NET_INTERNAL_RESOLVER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/mutex.h"
#include "net/socket_address.h"

namespace mill {
class ThreadPool;

namespace net_internal {

// Splits "host:port" / "[v6]:port"; false when malformed.
bool SplitHostPort(absl::string_view text, std::string* host, uint16_t* port);

// `address` with its port replaced.
SocketAddress WithPort(const SocketAddress& address, uint16_t port);

class Resolver {
 public:
  using Addresses = std::vector<SocketAddress>;
  using Result = absl::StatusOr<Addresses>;
  using Callback = absl::AnyInvocable<void(Result result)>;
  // Resolves `host` to its addresses (port 0), in the order to try them.
  using LookupFunction = std::function<Result(const std::string& host)>;
  // Identifies one Resolve() waiting for its answer; 0 is never one.
  using Ticket = uint64_t;

  struct Options {
    absl::Duration positive_ttl = absl::Seconds(30);
    absl::Duration negative_ttl = absl::Seconds(5);
    size_t max_entries = 256;
    // Worker threads: how many distinct names may be looked up at once
    // (one slow DNS server should not hold up every other name).
    int workers = 4;
    LookupFunction lookup;            // GetAddrInfo when empty
    std::function<int64_t()> now_ns;  // MonotonicNanos when empty
  };

  struct Stats {
    uint64_t lookups = 0;     // calls of the lookup function
    uint64_t cache_hits = 0;  // answered from the cache
    uint64_t joined = 0;      // shared a lookup already in flight
    size_t cached = 0;        // names in the cache now
  };

  // The process-wide instance every TcpClient uses.
  static std::shared_ptr<Resolver> Shared();

  // getaddrinfo(3) for a TCP connect, reordered as RFC 8305 §4 asks:
  // address families alternate, starting with the first (preferred) one.
  // NotFound for a name that does not exist, Unavailable for a temporary
  // failure (EAI_AGAIN).
  static Result GetAddrInfo(const std::string& host);

  explicit Resolver(Options options);
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // Calls `done` exactly once with the addresses of `host`, each with
  // `port`, unless Cancel() returns true first. From the cache, `done` runs
  // before Resolve returns, which then returns 0; otherwise Resolve returns
  // the ticket to cancel with.
  Ticket Resolve(absl::string_view host, uint16_t port, Callback done)
      ABSL_LOCKS_EXCLUDED(mu_);

  // True if `done` will never run (it is destroyed here, or by the worker
  // holding the answer). False if it ran
  // or is running; when it is running on another thread, Cancel waits for
  // it to return (unless called from inside one of this resolver's
  // callbacks, which must not wait for each other), so the state it uses
  // may be freed once Cancel returned.
  bool Cancel(Ticket ticket) ABSL_LOCKS_EXCLUDED(mu_);

  Stats stats() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Waiter {
    Ticket ticket;
    uint16_t port;
    Callback done;
  };
  struct CacheEntry {
    Result result;
    int64_t expires_ns;
  };

  int64_t Now() const;
  void Lookup(const std::string& host) ABSL_LOCKS_EXCLUDED(mu_);
  void CacheLocked(const std::string& host, const Result& result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static Result ForPort(const Result& result, uint16_t port);

  const Options options_;

  mutable Mutex mu_;
  CondVar delivered_;  // with mu_: delivering_ lost a ticket
  Ticket next_ticket_ ABSL_GUARDED_BY(mu_) = 1;
  // Names being looked up -> who waits for them, in arrival order.
  absl::flat_hash_map<std::string, std::vector<Waiter>> flights_
      ABSL_GUARDED_BY(mu_);
  // Waiting tickets -> their name in flights_.
  absl::flat_hash_map<Ticket, std::string> waiting_ ABSL_GUARDED_BY(mu_);
  // Tickets taken out of their flight by the worker that got the answer,
  // not delivered yet.
  absl::flat_hash_set<Ticket> answered_ ABSL_GUARDED_BY(mu_);
  // Tickets whose callback runs now (on a worker).
  absl::flat_hash_set<Ticket> delivering_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, CacheEntry> cache_ ABSL_GUARDED_BY(mu_);
  Stats stats_ ABSL_GUARDED_BY(mu_);
  // Created with the first lookup; never replaced afterwards.
  std::unique_ptr<ThreadPool> workers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace net_internal
}  // namespace mill

#endif  // MILL_IO_NET_INTERNAL_RESOLVER_H_
