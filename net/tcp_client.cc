#include "net/tcp_client.h"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/errno_status.h"
#include "net/internal/connection_config.h"
#include "net/internal/server_core.h"
#include "net/internal/socket_util.h"
#include "threadpool/thread_pool.h"

namespace mill {
namespace net_internal {
namespace {

// Splits "host:port" / "[v6]:port"; false when malformed.
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

absl::Status GaiStatus(int rc, absl::string_view host) {
  const std::string what = absl::StrCat("getaddrinfo(", host, "): ");
  switch (rc) {
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
    case EAI_FAIL:
      return absl::NotFoundError(absl::StrCat(what, gai_strerror(rc)));
    case EAI_AGAIN:
      return absl::UnavailableError(absl::StrCat(what, gai_strerror(rc)));
    case EAI_SYSTEM:
      return ErrnoStatus(errno, absl::StrCat("getaddrinfo(", host, ")"));
    default:
      return absl::UnknownError(absl::StrCat(what, gai_strerror(rc)));
  }
}

// getaddrinfo's answer, reordered as RFC 8305 §4 asks: alternate address
// families, starting with the family of the first (preferred) address.
absl::StatusOr<std::vector<SocketAddress>> Resolve(const std::string& host,
                                                   uint16_t port) {
  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  addrinfo* result = nullptr;
  const std::string service = std::to_string(port);
  int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &result);
  if (rc == EAI_BADFLAGS || (rc == EAI_NONAME && host == "localhost")) {
    // AI_ADDRCONFIG hides loopback-only hosts on machines without a
    // configured address; ask again without it.
    hints.ai_flags = 0;
    rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &result);
  }
  if (rc != 0) return GaiStatus(rc, host);
  std::vector<SocketAddress> first_family, other_family;
  int preferred = -1;
  for (addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
    absl::StatusOr<SocketAddress> address =
        SocketAddress::FromSockaddr(ai->ai_addr, ai->ai_addrlen);
    if (!address.ok()) continue;
    if (preferred < 0) preferred = address->family();
    std::vector<SocketAddress>& list =
        address->family() == preferred ? first_family : other_family;
    if (std::find(list.begin(), list.end(), *address) == list.end()) {
      list.push_back(*address);
    }
  }
  freeaddrinfo(result);
  std::vector<SocketAddress> ordered;
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

}  // namespace

// One Connect() in progress.
struct PendingConnect {
  uint64_t id = 0;
  std::string target;  // for messages
  ConnectCallback done;
  absl::Duration timeout;
  std::vector<SocketAddress> addresses;
  size_t next = 0;                      // next address to try
  std::vector<ConnectionPtr> attempts;  // connecting now
  absl::Status last_error;
  bool resolving = false;
  bool finished = false;
  EventLoop::TimerId deadline_timer;
  EventLoop::TimerId stagger_timer;
};

// One KeepConnected() target.
struct Keeper {
  uint64_t id = 0;
  std::string target;
  BackoffPolicy backoff;
  int failures = 0;         // consecutive, for the backoff
  uint64_t connect_id = 0;  // Connect() in progress, if any
  uint64_t connection_id = 0;
  ConnectionPtr connection;
  EventLoop::TimerId retry_timer;
  bool stopped = false;
};

class ClientCore final : public ConnectionOwner,
                         public std::enable_shared_from_this<ClientCore> {
 public:
  ClientCore(EventLoop* loop, ConnectionCallbacks callbacks,
             TcpClientOptions options)
      : ConnectionOwner(std::make_shared<ConnectionConfig>(
            loop, std::move(callbacks), options.connection)),
        loop_(loop),
        options_(std::move(options)),
        random_(std::random_device{}()) {}

  uint64_t Connect(std::vector<SocketAddress> addresses,
                   std::string resolve_host, uint16_t resolve_port,
                   std::string target, ConnectCallback done,
                   absl::Duration timeout);
  bool Cancel(uint64_t id, absl::Status why);
  uint64_t KeepConnected(std::string target, BackoffPolicy backoff);
  bool StopKeeping(uint64_t id, bool close);
  void Stop();
  void ShutdownResolver();

  std::vector<ConnectionPtr> Connections() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<ConnectionPtr> result;
    result.reserve(open_.size());
    for (const auto& entry : open_) result.push_back(entry.second);
    return result;
  }
  size_t connection_count() const {
    std::lock_guard<std::mutex> lock(mu_);
    return open_.size();
  }
  TcpClientStats stats() const;

  void OnConnectDone(const ConnectionPtr& conn,
                     const absl::Status& status) override;
  void OnClosed(const ConnectionPtr& conn, CloseReason reason,
                const absl::Status& status) override;
  void OnCloseCallbackDone() override {
    std::lock_guard<std::mutex> lock(mu_);
    --closing_;
    closed_cv_.notify_all();
  }

 private:
  using PendingPtr = std::shared_ptr<PendingConnect>;

  void StartAttempt(const PendingPtr& request);
  void OnResolved(uint64_t id,
                  absl::StatusOr<std::vector<SocketAddress>> addresses);
  // Finishes `request` (mu_ held): takes what must run after unlocking.
  struct Finish {
    ConnectCallback done;
    std::vector<ConnectionPtr> abandoned;
    EventLoop::TimerId timers[2];
  };
  Finish FinishLocked(PendingConnect& request);
  void RunFinish(Finish finish, absl::StatusOr<ConnectionPtr> result);
  // Runs `fn` where the loop runs things, or here once the loop stopped.
  void Post(absl::AnyInvocable<void()> fn);
  ThreadPool* Resolver();

  void OnKeeperResult(uint64_t keeper_id, absl::StatusOr<ConnectionPtr> r);
  void ScheduleReconnect(Keeper& keeper);  // mu_ held
  void StartKeeperConnect(uint64_t keeper_id);
  absl::Duration BackoffDelay(const BackoffPolicy& policy, int failures);

  EventLoop* const loop_;
  const TcpClientOptions options_;

  mutable std::mutex mu_;
  std::condition_variable closed_cv_;
  bool stopping_ = false;
  uint64_t next_request_id_ = 1;
  uint64_t next_connection_id_ = 1;
  absl::flat_hash_map<uint64_t, PendingPtr> pending_;
  absl::flat_hash_map<uint64_t, uint64_t> attempt_owner_;  // conn -> request
  absl::flat_hash_map<uint64_t, ConnectionPtr> open_;
  size_t live_ = 0;     // started connections not yet closed
  size_t closing_ = 0;  // on_close calls under way
  absl::flat_hash_map<uint64_t, std::shared_ptr<Keeper>> keepers_;
  absl::flat_hash_map<uint64_t, uint64_t> kept_by_;  // conn -> keeper
  std::mt19937_64 random_;

  std::once_flag resolver_once_;
  std::unique_ptr<ThreadPool> resolver_;

  uint64_t connects_started_ = 0;
  uint64_t connects_succeeded_ = 0;
  uint64_t connects_failed_ = 0;
  uint64_t attempts_ = 0;
  uint64_t resolutions_ = 0;
};

ThreadPool* ClientCore::Resolver() {
  std::call_once(resolver_once_, [this] {
    ThreadPoolOptions pool_options;
    pool_options.workers = 1;
    pool_options.name_prefix = "mill-resolve-";
    resolver_ = std::make_unique<ThreadPool>(pool_options);
  });
  return resolver_.get();
}

void ClientCore::ShutdownResolver() {
  // Joins a getaddrinfo still running (bounded by the resolver's own
  // timeouts); afterwards no resolver task holds a reference to us.
  std::call_once(resolver_once_, [] {});
  if (resolver_ != nullptr) resolver_->Shutdown();
}

void ClientCore::Post(absl::AnyInvocable<void()> fn) {
  // RunInLoop runs inline on the loop thread; refused once stopped.
  auto shared = std::make_shared<absl::AnyInvocable<void()>>(std::move(fn));
  if (!loop_->RunInLoop([shared] { (*shared)(); }).ok()) (*shared)();
}

uint64_t ClientCore::Connect(std::vector<SocketAddress> addresses,
                             std::string resolve_host, uint16_t resolve_port,
                             std::string target, ConnectCallback done,
                             absl::Duration timeout) {
  auto request = std::make_shared<PendingConnect>();
  request->target = std::move(target);
  request->done = std::move(done);
  request->timeout =
      timeout > absl::ZeroDuration() ? timeout : options_.connect_timeout;
  request->addresses = std::move(addresses);
  request->resolving = !resolve_host.empty();
  uint64_t id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    id = next_request_id_++;
    request->id = id;
    ++connects_started_;
    if (stopping_) {
      ++connects_failed_;
      Finish finish{std::move(request->done), {}, {}};
      Post([this, self = shared_from_this(), f = std::move(finish),
            target = request->target]() mutable {
        RunFinish(std::move(f),
                  absl::CancelledError(absl::StrCat(
                      "connect to ", target, ": the client is stopped")));
      });
      return id;
    }
    pending_.emplace(id, request);
    std::weak_ptr<ClientCore> weak = weak_from_this();
    request->deadline_timer = loop_->RunAfter(
        request->timeout,
        [weak, id, timeout = request->timeout, target = request->target] {
          if (std::shared_ptr<ClientCore> self = weak.lock()) {
            self->Cancel(id, absl::DeadlineExceededError(absl::StrCat(
                                 "connect to ", target, ": timed out after ",
                                 absl::FormatDuration(timeout))));
          }
        });
  }
  if (request->resolving) {
    std::weak_ptr<ClientCore> weak = weak_from_this();
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++resolutions_;
    }
    absl::Status submitted = Resolver()->Submit(
        [weak, id, host = std::move(resolve_host), port = resolve_port] {
          absl::StatusOr<std::vector<SocketAddress>> addresses =
              Resolve(host, port);
          if (std::shared_ptr<ClientCore> self = weak.lock()) {
            self->OnResolved(id, std::move(addresses));
          }
        });
    if (!submitted.ok()) {
      Cancel(id, absl::CancelledError("the client is stopped"));
    }
    return id;
  }
  StartAttempt(request);
  return id;
}

void ClientCore::OnResolved(
    uint64_t id, absl::StatusOr<std::vector<SocketAddress>> addresses) {
  PendingPtr request;
  absl::Status error;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pending_.find(id);
    if (it == pending_.end()) return;  // cancelled or timed out meanwhile
    request = it->second;
    request->resolving = false;
    if (!addresses.ok()) {
      error = addresses.status();
    } else {
      request->addresses = *std::move(addresses);
    }
  }
  if (!error.ok()) {
    Cancel(id, std::move(error));
    return;
  }
  StartAttempt(request);
}

void ClientCore::StartAttempt(const PendingPtr& request) {
  SocketAddress address;
  uint64_t conn_id;
  bool more;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (request->finished || request->next >= request->addresses.size()) {
      return;
    }
    address = request->addresses[request->next++];
    more = request->next < request->addresses.size();
    conn_id = next_connection_id_++;
    ++attempts_;
  }
  absl::StatusOr<TcpStream> stream =
      TcpStream::Connect(address, options_.connection.socket);
  if (!stream.ok()) {
    // Failed at once (ENETUNREACH, EMFILE...): as if the attempt failed.
    absl::Status status = stream.status();
    bool start_next = false;
    Finish finish;
    bool finished = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (request->finished) return;
      request->last_error = status;
      if (request->next < request->addresses.size()) {
        start_next = true;
      } else if (request->attempts.empty()) {
        finish = FinishLocked(*request);
        finished = true;
        ++connects_failed_;
      }
    }
    if (start_next) StartAttempt(request);
    if (finished) RunFinish(std::move(finish), status);
    return;
  }
  ConnectionPtr conn =
      ConnectionAccess::Create(shared_from_this(), conn_id, /*outbound=*/true,
                               *std::move(stream), address);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (request->finished) return;  // conn's destructor closes the socket
    request->attempts.push_back(conn);
    attempt_owner_.emplace(conn_id, request->id);
    ++live_;
    if (more) {
      // RFC 8305: the next address gets its turn after attempt_delay unless
      // this attempt answers (or fails) first.
      std::weak_ptr<ClientCore> weak = weak_from_this();
      std::weak_ptr<PendingConnect> weak_request = request;
      if (request->stagger_timer.valid()) loop_->Cancel(request->stagger_timer);
      request->stagger_timer =
          loop_->RunAfter(options_.attempt_delay, [weak, weak_request] {
            std::shared_ptr<ClientCore> self = weak.lock();
            PendingPtr req = weak_request.lock();
            if (self != nullptr && req != nullptr) self->StartAttempt(req);
          });
    }
  }
  ConnectionAccess::Start(conn);
}

ClientCore::Finish ClientCore::FinishLocked(PendingConnect& request) {
  Finish finish;
  request.finished = true;
  pending_.erase(request.id);
  finish.done = std::move(request.done);
  finish.abandoned = std::move(request.attempts);
  request.attempts.clear();
  for (const ConnectionPtr& conn : finish.abandoned) {
    attempt_owner_.erase(conn->id());
  }
  finish.timers[0] = std::exchange(request.deadline_timer, {});
  finish.timers[1] = std::exchange(request.stagger_timer, {});
  return finish;
}

void ClientCore::RunFinish(Finish finish,
                           absl::StatusOr<ConnectionPtr> result) {
  for (EventLoop::TimerId timer : finish.timers) {
    if (timer.valid()) loop_->Cancel(timer);
  }
  for (const ConnectionPtr& conn : finish.abandoned) {
    ConnectionAccess::FailConnect(
        conn, absl::CancelledError("another address connected first"));
  }
  if (!finish.done) return;
  if (result.ok()) {
    finish.done(std::move(result));
  } else {
    finish.done(DeepCopy(result.status()));
  }
}

bool ClientCore::Cancel(uint64_t id, absl::Status why) {
  Finish finish;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pending_.find(id);
    if (it == pending_.end()) return false;
    PendingPtr request = it->second;
    finish = FinishLocked(*request);
    ++connects_failed_;
  }
  RunFinish(std::move(finish), std::move(why));
  return true;
}

void ClientCore::OnConnectDone(const ConnectionPtr& conn,
                               const absl::Status& status) {
  Finish finish;
  bool finished = false;
  bool start_next = false;
  PendingPtr request;
  absl::Status error;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto owner = attempt_owner_.find(conn->id());
    if (owner != attempt_owner_.end()) {
      auto it = pending_.find(owner->second);
      attempt_owner_.erase(owner);
      if (it != pending_.end()) request = it->second;
    }
    if (request != nullptr) {
      auto& attempts = request->attempts;
      attempts.erase(std::remove(attempts.begin(), attempts.end(), conn),
                     attempts.end());
      if (status.ok()) {
        finish = FinishLocked(*request);
        finished = true;
        open_.emplace(conn->id(), conn);
        ++connects_succeeded_;
      } else {
        request->last_error = absl::Status(
            status.code(), absl::StrCat("connect to ", request->target, " (",
                                        conn->peer_address().ToString(),
                                        "): ", status.message()));
        if (request->next < request->addresses.size()) {
          start_next = true;  // at once: no need to wait for the stagger
        } else if (request->attempts.empty() && !request->resolving) {
          error = request->last_error;
          finish = FinishLocked(*request);
          finished = true;
          ++connects_failed_;
        }
      }
    }
  }
  if (request == nullptr) {
    // Its request finished (Cancel, timeout, another address won) while
    // this attempt was completing. If it opened (on_connect ran) nobody
    // will get it: close it (on_close follows), or it would stay open
    // unowned and Stop() would wait for it forever.
    if (status.ok()) {
      ConnectionAccess::Close(conn, CloseReason::kClosedLocally,
                              absl::OkStatus());
    }
    return;
  }
  if (start_next) StartAttempt(request);
  if (!finished) return;
  if (status.ok()) {
    RunFinish(std::move(finish), conn);
  } else {
    RunFinish(std::move(finish), std::move(error));
  }
}

void ClientCore::OnClosed(const ConnectionPtr& conn, CloseReason reason,
                          const absl::Status& status) {
  std::lock_guard<std::mutex> lock(mu_);
  open_.erase(conn->id());
  attempt_owner_.erase(conn->id());
  if (live_ > 0) --live_;
  ++closing_;
  auto kept = kept_by_.find(conn->id());
  if (kept != kept_by_.end()) {
    auto keeper = keepers_.find(kept->second);
    kept_by_.erase(kept);
    if (keeper != keepers_.end() && !keeper->second->stopped && !stopping_) {
      keeper->second->connection = nullptr;
      keeper->second->connection_id = 0;
      ScheduleReconnect(*keeper->second);
    }
  }
  closed_cv_.notify_all();
}

// --- Reconnecting
// -----------------------------------------------------------------

absl::Duration ClientCore::BackoffDelay(const BackoffPolicy& policy,
                                        int failures) {
  double delay = absl::ToDoubleSeconds(policy.initial);
  const double cap = absl::ToDoubleSeconds(policy.max);
  for (int i = 0; i < failures && delay < cap; ++i) delay *= policy.multiplier;
  delay = std::min(delay, cap);
  const double jitter = std::clamp(policy.jitter, 0.0, 1.0);
  std::uniform_real_distribution<double> spread(1.0 - jitter, 1.0 + jitter);
  return absl::Seconds(delay * spread(random_));
}

uint64_t ClientCore::KeepConnected(std::string target, BackoffPolicy backoff) {
  auto keeper = std::make_shared<Keeper>();
  keeper->target = std::move(target);
  keeper->backoff = backoff;
  {
    std::lock_guard<std::mutex> lock(mu_);
    keeper->id = next_request_id_++;
    if (stopping_) return keeper->id;
    keepers_.emplace(keeper->id, keeper);
  }
  StartKeeperConnect(keeper->id);
  return keeper->id;
}

void ClientCore::StartKeeperConnect(uint64_t keeper_id) {
  std::string target;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = keepers_.find(keeper_id);
    if (it == keepers_.end() || it->second->stopped || stopping_) return;
    it->second->retry_timer = EventLoop::TimerId();
    target = it->second->target;
  }
  std::string host;
  uint16_t port = 0;
  std::weak_ptr<ClientCore> weak = weak_from_this();
  ConnectCallback done = [weak, keeper_id](absl::StatusOr<ConnectionPtr> r) {
    if (std::shared_ptr<ClientCore> self = weak.lock()) {
      self->OnKeeperResult(keeper_id, std::move(r));
    }
  };
  absl::StatusOr<SocketAddress> numeric = SocketAddress::Parse(target);
  uint64_t connect_id;
  if (numeric.ok()) {
    connect_id = Connect({*numeric}, "", 0, target, std::move(done),
                         absl::ZeroDuration());
  } else if (SplitHostPort(target, &host, &port)) {
    connect_id =
        Connect({}, host, port, target, std::move(done), absl::ZeroDuration());
  } else {
    return;  // validated by KeepConnected's caller
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = keepers_.find(keeper_id);
  if (it != keepers_.end() && pending_.contains(connect_id)) {
    it->second->connect_id = connect_id;
  }
}

void ClientCore::OnKeeperResult(uint64_t keeper_id,
                                absl::StatusOr<ConnectionPtr> result) {
  ConnectionPtr to_close;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = keepers_.find(keeper_id);
    if (it == keepers_.end()) {
      if (result.ok()) to_close = *result;
    } else {
      Keeper& keeper = *it->second;
      keeper.connect_id = 0;
      if (result.ok()) {
        if (keeper.stopped || stopping_) {
          to_close = *result;
        } else if ((*result)->is_closed()) {
          ScheduleReconnect(keeper);  // closed before we saw it
        } else {
          keeper.failures = 0;
          keeper.connection = *result;
          keeper.connection_id = (*result)->id();
          kept_by_[keeper.connection_id] = keeper_id;
        }
      } else if (!keeper.stopped && !stopping_) {
        ++keeper.failures;
        ScheduleReconnect(keeper);
      }
    }
  }
  if (to_close != nullptr) to_close->Close();
}

void ClientCore::ScheduleReconnect(Keeper& keeper) {
  const absl::Duration delay = BackoffDelay(keeper.backoff, keeper.failures);
  std::weak_ptr<ClientCore> weak = weak_from_this();
  const uint64_t id = keeper.id;
  keeper.retry_timer = loop_->RunAfter(delay, [weak, id] {
    if (std::shared_ptr<ClientCore> self = weak.lock()) {
      self->StartKeeperConnect(id);
    }
  });
}

bool ClientCore::StopKeeping(uint64_t id, bool close) {
  std::shared_ptr<Keeper> keeper;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = keepers_.find(id);
    if (it == keepers_.end()) return false;
    keeper = it->second;
    keepers_.erase(it);
    keeper->stopped = true;
    if (keeper->connection_id != 0) kept_by_.erase(keeper->connection_id);
  }
  if (keeper->retry_timer.valid()) loop_->Cancel(keeper->retry_timer);
  if (keeper->connect_id != 0) {
    Cancel(keeper->connect_id, absl::CancelledError("no longer kept"));
  }
  if (close && keeper->connection != nullptr) keeper->connection->Close();
  return true;
}

// --- Stopping
// ---------------------------------------------------------------------

void ClientCore::Stop() {
  std::vector<uint64_t> requests, keepers;
  std::vector<ConnectionPtr> open;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    for (const auto& entry : pending_) requests.push_back(entry.first);
    for (const auto& entry : keepers_) keepers.push_back(entry.first);
    for (const auto& entry : open_) open.push_back(entry.second);
  }
  for (uint64_t id : keepers) StopKeeping(id, /*close=*/false);
  for (uint64_t id : requests) {
    Cancel(id, absl::CancelledError("the client stopped"));
  }
  for (const ConnectionPtr& conn : open) {
    ConnectionAccess::Close(conn, CloseReason::kStopped, absl::OkStatus());
  }
  if (InsideConnectionCallbacks())
    return;  // cannot wait for other callbacks here
  std::unique_lock<std::mutex> lock(mu_);
  closed_cv_.wait(
      lock, [this] { return open_.empty() && live_ == 0 && closing_ == 0; });
}

TcpClientStats ClientCore::stats() const {
  const ConnectionCounters& counters = config().counters;
  TcpClientStats s;
  {
    std::lock_guard<std::mutex> lock(mu_);
    s.connects_started = connects_started_;
    s.connects_succeeded = connects_succeeded_;
    s.connects_failed = connects_failed_;
    s.attempts = attempts_;
    s.resolutions = resolutions_;
    s.pending = pending_.size();
    s.active = open_.size();
  }
  s.bytes_read = counters.bytes_read.load(std::memory_order_relaxed);
  s.bytes_written = counters.bytes_written.load(std::memory_order_relaxed);
  for (int i = 0; i < kCloseReasonCount; ++i) {
    s.closed_by[i] = counters.closed_by[i].load(std::memory_order_relaxed);
  }
  return s;
}

}  // namespace net_internal

// --- TcpClient
// ----------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<TcpClient>> TcpClient::Create(
    EventLoop* loop, ConnectionCallbacks callbacks, TcpClientOptions options) {
  if (loop == nullptr) {
    return absl::InvalidArgumentError("TcpClient::Create: null loop");
  }
  if (absl::Status s =
          net_internal::ValidateConnectionOptions(options.connection);
      !s.ok()) {
    return s;
  }
  if (options.connect_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "TcpClientOptions::connect_timeout must be positive");
  }
  if (options.attempt_delay < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "TcpClientOptions::attempt_delay must not be negative");
  }
  return std::unique_ptr<TcpClient>(
      new TcpClient(std::make_shared<net_internal::ClientCore>(
          loop, std::move(callbacks), std::move(options))));
}

TcpClient::TcpClient(std::shared_ptr<net_internal::ClientCore> core)
    : core_(std::move(core)) {}

TcpClient::~TcpClient() {
  core_->Stop();
  core_->ShutdownResolver();
}

TcpClient::ConnectId TcpClient::Connect(const SocketAddress& address,
                                        ConnectCallback done,
                                        absl::Duration timeout) {
  return core_->Connect({address}, "", 0, address.ToString(), std::move(done),
                        timeout);
}

TcpClient::ConnectId TcpClient::Connect(absl::string_view host_port,
                                        ConnectCallback done,
                                        absl::Duration timeout) {
  absl::StatusOr<SocketAddress> numeric = SocketAddress::Parse(host_port);
  if (numeric.ok()) {
    return core_->Connect({*numeric}, "", 0, std::string(host_port),
                          std::move(done), timeout);
  }
  std::string host;
  uint16_t port = 0;
  if (!net_internal::SplitHostPort(host_port, &host, &port)) {
    // No socket, no loop involvement: an immediate, synchronous answer.
    if (done) {
      done(absl::InvalidArgumentError(absl::StrCat(
          "TcpClient::Connect: '", host_port, "' is not host:port")));
    }
    return 0;
  }
  return core_->Connect({}, host, port, std::string(host_port), std::move(done),
                        timeout);
}

TcpClient::ConnectId TcpClient::Connect(std::vector<SocketAddress> addresses,
                                        ConnectCallback done,
                                        absl::Duration timeout) {
  if (addresses.empty()) {
    if (done) {
      done(absl::InvalidArgumentError("TcpClient::Connect: no address"));
    }
    return 0;
  }
  std::string target = addresses.front().ToString();
  if (addresses.size() > 1) {
    absl::StrAppend(&target, " (+", addresses.size() - 1, " more)");
  }
  return core_->Connect(std::move(addresses), "", 0, std::move(target),
                        std::move(done), timeout);
}

bool TcpClient::Cancel(ConnectId id) {
  return core_->Cancel(id, absl::CancelledError("connect cancelled"));
}

TcpClient::ConnectId TcpClient::KeepConnected(absl::string_view host_port,
                                              BackoffPolicy backoff) {
  std::string host;
  uint16_t port = 0;
  if (!SocketAddress::Parse(host_port).ok() &&
      !net_internal::SplitHostPort(host_port, &host, &port)) {
    return 0;
  }
  return core_->KeepConnected(std::string(host_port), backoff);
}

bool TcpClient::StopKeepingConnected(ConnectId id, bool close) {
  return core_->StopKeeping(id, close);
}

void TcpClient::Stop() { core_->Stop(); }

std::vector<ConnectionPtr> TcpClient::Connections() const {
  return core_->Connections();
}

size_t TcpClient::connection_count() const { return core_->connection_count(); }

TcpClientStats TcpClient::stats() const { return core_->stats(); }

}  // namespace mill
