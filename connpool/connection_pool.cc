// ConnectionPool and Lease: the public face of PoolCore (the I/O shell,
// connpool/internal/pool_core.h) and PoolState (the books,
// connpool/internal/pool_state.h).
#include "connpool/connection_pool.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "connpool/internal/lease_slot.h"
#include "connpool/internal/pool_core.h"

namespace mill {
namespace {

// No "host:port" holds the mark that separates a pool key's layer part; an
// endpoint that did could be handed another layer's connections.
absl::Status CheckEndpoint(absl::string_view endpoint) {
  if (endpoint.find(connpool_internal::PoolCore::kLayerMark) ==
      absl::string_view::npos) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "ConnectionPool::Acquire: '", endpoint, "' is not host:port"));
}

// A wall-clock deadline as a timeout from now (measured on the steady clock
// from here on).
absl::Duration TimeoutOf(absl::Time deadline) {
  if (deadline == absl::InfiniteFuture()) return absl::InfiniteDuration();
  return deadline - absl::Now();
}

}  // namespace

Lease& Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    if (conn_ != nullptr) ReleaseNow(/*reusable=*/false);
    core_ = other.core_;
    entry_ = std::move(other.entry_);
    conn_ = std::move(other.conn_);
    slot_ = std::move(other.slot_);
    reused_ = other.reused_;
  }
  return *this;
}

Lease::~Lease() {
  if (conn_ != nullptr) ReleaseNow(/*reusable=*/false);
}

absl::Duration Lease::lifetime() const {
  if (entry_ == nullptr) return absl::InfiniteDuration();
  return core_->LeaseLifetime(*entry_);
}

absl::Status Lease::Send(absl::string_view data) {
  if (conn_ == nullptr) {
    return absl::FailedPreconditionError(
        "Lease::Send: the lease is empty (released or moved from)");
  }
  if (std::shared_ptr<connpool_internal::LeaseSlot> slot = slot_.lock()) {
    slot->WillSend();  // before sending: the answer may come at once
  }
  return conn_->Send(data);
}

void Lease::ReleaseNow(bool reusable) {
  // `slot` (if this lease is pool-held, it holds this very object) and
  // `conn` stay alive until this returns, whatever the release frees; this
  // object is not touched after the core's Release.
  std::shared_ptr<connpool_internal::LeaseSlot> slot = slot_.lock();
  slot_.reset();
  if (slot != nullptr) slot->End(absl::OkStatus());
  std::shared_ptr<connpool_internal::Entry> entry = std::move(entry_);
  ConnectionPtr conn = std::move(conn_);
  entry_ = nullptr;
  conn_ = nullptr;
  // `conn` keeps the connection, and so the core, alive here.
  connpool_internal::PoolCore* core = core_;
  core->Release(std::move(entry), conn, reusable);
}

absl::StatusOr<std::unique_ptr<ConnectionPool>> ConnectionPool::Create(
    EventLoop* loop, ConnectionPoolOptions options) {
  if (loop == nullptr) {
    return absl::InvalidArgumentError("ConnectionPool::Create: null loop");
  }
  if (options.max_connections_per_endpoint < 1 || options.max_connections < 1) {
    return absl::InvalidArgumentError(
        "ConnectionPoolOptions: max_connections and "
        "max_connections_per_endpoint must be at least 1");
  }
  if (!(options.lifetime_jitter >= 0.0 && options.lifetime_jitter <= 1.0)) {
    return absl::InvalidArgumentError(
        "ConnectionPoolOptions::lifetime_jitter must be in [0, 1]");
  }
  if (options.idle_timeout < absl::ZeroDuration() ||
      options.max_lifetime < absl::ZeroDuration() ||
      options.sweep_interval < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "ConnectionPoolOptions: idle_timeout, max_lifetime and "
        "sweep_interval must not be negative");
  }
  if (options.response_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "ConnectionPoolOptions::response_timeout must not be negative");
  }
  const absl::Duration response_timeout = options.response_timeout;
  TcpClientOptions client_options = options.client;
  auto core =
      std::make_shared<connpool_internal::PoolCore>(loop, std::move(options));
  absl::StatusOr<std::unique_ptr<TcpClient>> client =
      TcpClient::Create(loop, core->MakeClientCallbacks(), client_options);
  if (!client.ok()) return client.status();
  core->AttachClient(client->get());
  return std::unique_ptr<ConnectionPool>(
      new ConnectionPool(loop, std::move(core), *std::move(client),
                         client_options.layer, response_timeout));
}

ConnectionPool::ConnectionPool(
    EventLoop* loop, std::shared_ptr<connpool_internal::PoolCore> core,
    std::unique_ptr<TcpClient> client,
    std::shared_ptr<const ConnectionLayer> client_layer,
    absl::Duration response_timeout)
    : loop_(loop),
      response_timeout_(response_timeout),
      core_(std::move(core)),
      client_(std::move(client)),
      client_layer_(std::move(client_layer)) {}

ConnectionPool::~ConnectionPool() {
  core_->Drain(nullptr,
               absl::UnavailableError("the connection pool is shutting down"));
  core_->DetachClient();
  client_->Stop();  // closes leased connections too (kStopped)
  core_->WaitForCloses();
  client_.reset();
}

ConnectionPool::RequestId ConnectionPool::Acquire(
    absl::string_view endpoint, absl::Time deadline, AcquireCallback done,
    std::shared_ptr<const LeaseCallbacks> callbacks) {
  AcquireOptions options;
  options.timeout = TimeoutOf(deadline);
  return Acquire(endpoint, options, std::move(done), std::move(callbacks));
}

ConnectionPool::RequestId ConnectionPool::Acquire(
    absl::string_view endpoint,
    const std::shared_ptr<const ConnectionLayer>& layer, absl::Time deadline,
    AcquireCallback done, std::shared_ptr<const LeaseCallbacks> callbacks) {
  AcquireOptions options;
  options.timeout = TimeoutOf(deadline);
  options.layer = layer;
  return Acquire(endpoint, options, std::move(done), std::move(callbacks));
}

ConnectionPool::RequestId ConnectionPool::Acquire(
    absl::string_view endpoint, const AcquireOptions& options,
    AcquireCallback done, std::shared_ptr<const LeaseCallbacks> callbacks) {
  absl::StatusOr<absl::Duration> response_timeout = ResponseTimeout(options);
  if (!response_timeout.ok()) {
    done(response_timeout.status());
    return 0;
  }
  if (*response_timeout > absl::ZeroDuration()) {
    // Wrapped so that Lease::Send arms the timer and input stops it.
    auto slot = std::make_shared<connpool_internal::LeaseSlot>(
        loop_, endpoint, std::move(callbacks), *response_timeout);
    callbacks = connpool_internal::LeaseSlot::CallbacksFor(slot);
    done = connpool_internal::LeaseSlot::DoneForUser(slot, std::move(done));
  }
  return AcquireOver(endpoint,
                     options.layer.has_value() ? *options.layer : client_layer_,
                     options.timeout, std::move(done), std::move(callbacks));
}

absl::StatusOr<absl::Duration> ConnectionPool::ResponseTimeout(
    const AcquireOptions& options) const {
  absl::Duration d = options.response_timeout;
  if (d == absl::ZeroDuration()) d = response_timeout_;
  if (d == absl::InfiniteDuration()) return absl::ZeroDuration();
  if (d < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "AcquireOptions::response_timeout must not be negative");
  }
  return d;
}

ConnectionPool::RequestId ConnectionPool::Acquire(absl::string_view endpoint,
                                                  const AcquireOptions& options,
                                                  LeaseReadyCallback ready,
                                                  LeaseHandlers handlers) {
  return AcquireHeld(endpoint, options, std::move(ready), std::move(handlers),
                     nullptr, 0);
}

ConnectionPool::RequestId ConnectionPool::Acquire(
    const std::shared_ptr<EndpointSet>& set, const AcquireOptions& options,
    LeaseReadyCallback ready, LeaseHandlers handlers) {
  if (set == nullptr) {
    if (ready) {
      ready(absl::InvalidArgumentError(
          "ConnectionPool::Acquire: null EndpointSet"));
    }
    return 0;
  }
  const size_t index = set->Pick();
  return AcquireHeld(set->endpoint(index), options, std::move(ready),
                     std::move(handlers), set, index);
}

ConnectionPool::RequestId ConnectionPool::AcquireHeld(
    absl::string_view endpoint, const AcquireOptions& options,
    LeaseReadyCallback ready, LeaseHandlers handlers,
    std::shared_ptr<EndpointSet> set, size_t index) {
  absl::StatusOr<absl::Duration> response_timeout = ResponseTimeout(options);
  if (!response_timeout.ok()) {
    if (set != nullptr) set->Finish(index, absl::OkStatus());
    if (ready) ready(response_timeout.status());
    return 0;
  }
  auto slot = std::make_shared<connpool_internal::LeaseSlot>(
      loop_, endpoint, std::move(handlers), *response_timeout, std::move(set),
      index);
  std::shared_ptr<const LeaseCallbacks> callbacks =
      connpool_internal::LeaseSlot::CallbacksFor(slot);
  AcquireCallback done =
      connpool_internal::LeaseSlot::DoneFor(slot, std::move(ready));
  slot.reset();  // the wrappers hold it
  return AcquireOver(endpoint,
                     options.layer.has_value() ? *options.layer : client_layer_,
                     options.timeout, std::move(done), std::move(callbacks));
}

ConnectionPool::RequestId ConnectionPool::AcquireOver(
    absl::string_view endpoint,
    const std::shared_ptr<const ConnectionLayer>& layer, absl::Duration timeout,
    AcquireCallback done, std::shared_ptr<const LeaseCallbacks> callbacks) {
  if (layer != nullptr && layer->is_server()) {
    done(absl::InvalidArgumentError(absl::StrCat(
        "ConnectionPool::Acquire(", endpoint,
        "): a server-side layer (use the client side, TlsClientContext)")));
    return 0;
  }
  if (absl::Status s = CheckEndpoint(endpoint); !s.ok()) {
    done(std::move(s));
    return 0;
  }
  if (layer == client_layer_) {
    return core_->Acquire(endpoint, timeout, std::move(done),
                          std::move(callbacks));
  }
  const std::string key = absl::StrCat(
      endpoint, std::string(1, connpool_internal::PoolCore::kLayerMark),
      "over layer ", absl::Hex(layer.get(), absl::kZeroPad16));
  return core_->Acquire(key, timeout, std::move(done), std::move(callbacks),
                        layer);
}

bool ConnectionPool::CancelAcquire(RequestId id) {
  return core_->CancelAcquire(id);
}

void ConnectionPool::Release(Lease lease, bool reusable) {
  if (lease) lease.ReleaseNow(reusable);
}

void ConnectionPool::Drain(absl::AnyInvocable<void()> on_drained) {
  core_->Drain(std::move(on_drained),
               absl::UnavailableError("the connection pool is draining"));
}

bool ConnectionPool::draining() const { return core_->draining(); }
bool ConnectionPool::drained() const { return core_->drained(); }

ConnectionPoolStats ConnectionPool::stats() const { return core_->Stats(); }

TcpClientStats ConnectionPool::client_stats() const { return client_->stats(); }

}  // namespace mill
