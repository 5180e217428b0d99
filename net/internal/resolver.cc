#include "net/internal/resolver.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <utility>

#include "absl/base/attributes.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/call_scope.h"
#include "base/monotonic_clock.h"
#include "net/internal/socket_types.h"
#include "net/internal/sys_socket.h"
#include "threadpool/thread_pool.h"

namespace mill {
namespace net_internal {
namespace {

// Inside one of a resolver's callbacks (key: the resolver).
ABSL_CONST_INIT const CallScopeKind kResolverCallback{"resolver callback"};

}  // namespace

bool SplitHostPort(absl::string_view text, std::string* host, uint16_t* port) {
  absl::string_view host_part;
  absl::string_view port_part;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == absl::string_view::npos || close + 1 >= text.size() ||
        text[close + 1] != ':') {
      return false;
    }
    host_part = text.substr(1, close - 1);
    port_part = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos) return false;
    host_part = text.substr(0, colon);
    port_part = text.substr(colon + 1);
    if (host_part.find(':') != absl::string_view::npos) return false;
  }
  uint32_t value;
  if (host_part.empty() || !absl::SimpleAtoi(port_part, &value) ||
      value > 65535) {
    return false;
  }
  *host = std::string(host_part);
  *port = static_cast<uint16_t>(value);
  return true;
}

SocketAddress WithPort(const SocketAddress& address, uint16_t port) {
  sockaddr_storage storage{};
  const socklen_t len = address.sockaddr_len();
  std::memcpy(&storage, address.sockaddr_ptr(), len);
  if (address.is_ipv6()) {
    reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port = htons(port);
  } else {
    reinterpret_cast<sockaddr_in*>(&storage)->sin_port = htons(port);
  }
  absl::StatusOr<SocketAddress> result =
      SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&storage), len);
  return result.ok() ? *result : address;  // (always ok: same family)
}

// --- Lookup
// ---------------------------------------------------------------------

Resolver::Result Resolver::GetAddrInfo(const std::string& host) {
  absl::StatusOr<std::vector<SocketAddress>> found = LookUpHost(host);
  if (!found.ok()) return found.status();
  Addresses first_family, other_family;
  int preferred = -1;
  for (const SocketAddress& address : *found) {
    if (preferred < 0) preferred = address.family();
    Addresses& list =
        address.family() == preferred ? first_family : other_family;
    if (std::find(list.begin(), list.end(), address) == list.end()) {
      list.push_back(address);
    }
  }
  Addresses ordered;
  for (size_t i = 0; i < std::max(first_family.size(), other_family.size());
       ++i) {
    if (i < first_family.size()) ordered.push_back(first_family[i]);
    if (i < other_family.size()) ordered.push_back(other_family[i]);
  }
  if (ordered.empty()) {
    return absl::NotFoundError(
        absl::StrCat("getaddrinfo(", host, "): no IPv4 or IPv6 address"));
  }
  return ordered;
}

// --- Resolver
// -------------------------------------------------------------------

std::shared_ptr<Resolver> Resolver::Shared() {
  // Never destroyed: lookups may still run at exit, and clients of static
  // storage duration may outlive any destruction order we could pick.
  static Resolver* const shared = new Resolver(Options());
  return std::shared_ptr<Resolver>(std::shared_ptr<Resolver>(), shared);
}

Resolver::Resolver(Options options) : options_(std::move(options)) {}

Resolver::~Resolver() {
  ThreadPool* workers;
  {
    MutexLock lock(&mu_);
    workers = workers_.get();
  }
  // Runs the queued lookups (delivering their answers), then joins.
  if (workers != nullptr) workers->Shutdown();
}

int64_t Resolver::Now() const {
  return options_.now_ns ? options_.now_ns() : MonotonicNanos();
}

Resolver::Result Resolver::ForPort(const Result& result, uint16_t port) {
  if (!result.ok()) return result.status();
  Addresses addresses;
  addresses.reserve(result->size());
  for (const SocketAddress& address : *result) {
    addresses.push_back(WithPort(address, port));
  }
  return addresses;
}

Resolver::Ticket Resolver::Resolve(absl::string_view host, uint16_t port,
                                   Callback done) {
  std::string name(host);
  ThreadPool* workers;
  Ticket ticket;
  {
    MutexLock lock(&mu_);
    auto cached = cache_.find(name);
    if (cached != cache_.end()) {
      if (cached->second.expires_ns > Now()) {
        ++stats_.cache_hits;
        Result result = ForPort(cached->second.result, port);
        lock.Unlock();
        CallScope scope(kResolverCallback, this);
        done(std::move(result));
        return 0;
      }
      cache_.erase(cached);
    }
    ticket = next_ticket_++;
    auto [flight, first] = flights_.try_emplace(name);
    flight->second.push_back(Waiter{ticket, port, std::move(done)});
    waiting_.emplace(ticket, name);
    if (!first) {
      ++stats_.joined;
      return ticket;
    }
    ++stats_.lookups;
    if (workers_ == nullptr) {
      ThreadPoolOptions pool_options;
      pool_options.workers = std::max(1, options_.workers);
      pool_options.name_prefix = "mill-resolve-";
      workers_ = std::make_unique<ThreadPool>(pool_options);
    }
    workers = workers_.get();
  }
  if (!workers->Submit([this, name] { Lookup(name); }).ok()) {
    Lookup(name);  // shutting down: answer here
  }
  return ticket;
}

void Resolver::Lookup(const std::string& host) {
  const Result result =
      options_.lookup ? options_.lookup(host) : GetAddrInfo(host);
  std::vector<Waiter> batch;
  std::vector<Callback> dropped;  // cancelled meanwhile; freed unlocked
  std::exception_ptr error;
  MutexLock lock(&mu_);
  CacheLocked(host, result);
  // The flight is over: a request from now on is answered from the cache
  // or starts a new lookup, never joins this answer.
  auto flight = flights_.find(host);
  if (flight != flights_.end()) {
    batch = std::move(flight->second);
    flights_.erase(flight);
  }
  for (const Waiter& waiter : batch) {
    waiting_.erase(waiter.ticket);
    answered_.insert(waiter.ticket);
  }
  for (Waiter& waiter : batch) {
    if (answered_.erase(waiter.ticket) == 0) {  // cancelled meanwhile
      dropped.push_back(std::move(waiter.done));
      continue;
    }
    delivering_.insert(waiter.ticket);
    lock.Unlock();
    {
      CallScope scope(kResolverCallback, this);
      try {
        waiter.done(ForPort(result, waiter.port));
      } catch (...) {
        // Deliver to the others first; the worker pool reports it.
        if (!error) error = std::current_exception();
      }
      waiter.done = nullptr;  // its captures go before Cancel may return
    }
    lock.Lock();
    delivering_.erase(waiter.ticket);
    delivered_.NotifyAll();
  }
  lock.Unlock();
  dropped.clear();
  batch.clear();
  if (error) std::rethrow_exception(error);
}

void Resolver::CacheLocked(const std::string& host, const Result& result) {
  const absl::Duration ttl =
      result.ok() ? options_.positive_ttl : options_.negative_ttl;
  if (ttl <= absl::ZeroDuration() || options_.max_entries == 0) return;
  const int64_t now = Now();
  if (!cache_.contains(host) && cache_.size() >= options_.max_entries) {
    for (auto it = cache_.begin(); it != cache_.end();) {
      if (it->second.expires_ns <= now) {
        cache_.erase(it++);
      } else {
        ++it;
      }
    }
    if (cache_.size() >= options_.max_entries) {
      auto soonest = std::min_element(
          cache_.begin(), cache_.end(), [](const auto& a, const auto& b) {
            return a.second.expires_ns < b.second.expires_ns;
          });
      cache_.erase(soonest);
    }
  }
  cache_.insert_or_assign(
      host, CacheEntry{result, now + absl::ToInt64Nanoseconds(ttl)});
}

bool Resolver::Cancel(Ticket ticket) {
  if (ticket == 0) return false;
  Callback dropped;  // destroyed after the lock is released
  MutexLock lock(&mu_);
  auto waiting = waiting_.find(ticket);
  if (waiting != waiting_.end()) {
    auto flight = flights_.find(waiting->second);
    if (flight != flights_.end()) {
      std::vector<Waiter>& waiters = flight->second;
      auto it =
          std::find_if(waiters.begin(), waiters.end(),
                       [&](const Waiter& w) { return w.ticket == ticket; });
      if (it != waiters.end()) {
        dropped = std::move(it->done);
        waiters.erase(it);
      }
    }
    waiting_.erase(waiting);
    return true;
  }
  // Answered, not delivered yet: the worker skips it.
  if (answered_.erase(ticket) > 0) return true;
  // Callbacks waiting for each other could wait forever.
  if (CallScope::Active(kResolverCallback, this)) return false;
  while (delivering_.contains(ticket)) delivered_.Wait(&mu_);
  return false;
}

Resolver::Stats Resolver::stats() const {
  MutexLock lock(&mu_);
  Stats stats = stats_;
  stats.cached = cache_.size();
  return stats;
}

}  // namespace net_internal
}  // namespace mill
