// ConnectionPool and Lease: the public face of PoolCore (the I/O shell,
// connpool/internal/pool_core.h) and PoolState (the books,
// connpool/internal/pool_state.h).
#include "connpool/connection_pool.h"

#include <memory>
#include <utility>

#include "connpool/internal/pool_core.h"

namespace mill {

Lease& Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    if (conn_ != nullptr) ReleaseNow(/*reusable=*/false);
    core_ = other.core_;
    entry_ = std::move(other.entry_);
    conn_ = std::move(other.conn_);
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

void Lease::ReleaseNow(bool reusable) {
  std::shared_ptr<connpool_internal::Entry> entry = std::move(entry_);
  ConnectionPtr conn = std::move(conn_);
  entry_ = nullptr;
  conn_ = nullptr;
  // `conn` keeps the connection, and so the core, alive here.
  core_->Release(std::move(entry), conn, reusable);
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
  TcpClientOptions client_options = options.client;
  auto core =
      std::make_shared<connpool_internal::PoolCore>(loop, std::move(options));
  absl::StatusOr<std::unique_ptr<TcpClient>> client =
      TcpClient::Create(loop, core->MakeClientCallbacks(), client_options);
  if (!client.ok()) return client.status();
  core->AttachClient(client->get());
  return std::unique_ptr<ConnectionPool>(
      new ConnectionPool(std::move(core), *std::move(client)));
}

ConnectionPool::ConnectionPool(
    std::shared_ptr<connpool_internal::PoolCore> core,
    std::unique_ptr<TcpClient> client)
    : core_(std::move(core)), client_(std::move(client)) {}

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
  return core_->Acquire(endpoint, deadline, std::move(done),
                        std::move(callbacks));
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
