#include "examples/proxy/pooled_connector.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace mill::proxy {
namespace {

// A lease as the proxy's link.
class PoolLink : public UpstreamLink {
 public:
  PoolLink(ConnectionPool* pool, Lease lease)
      : pool_(pool), conn_(lease.connection()), lease_(std::move(lease)) {}

  const ConnectionPtr& connection() const override { return conn_; }
  bool reused() const override { return lease_.reused(); }
  void Release(bool reusable) override {
    if (!lease_) return;
    pool_->Release(std::move(lease_), reusable);
  }

 private:
  ConnectionPool* const pool_;
  const ConnectionPtr conn_;
  Lease lease_;  // dropped unreleased: closes the connection (not reusable)
};

// Lease callbacks that forward to `handler` while it lives. They hold it
// weakly: the handler keeps them (connector_state), not the other way.
std::shared_ptr<const LeaseCallbacks> CallbacksFor(
    const std::shared_ptr<UpstreamHandler>& handler) {
  std::weak_ptr<UpstreamHandler> weak = handler;
  auto callbacks = std::make_shared<LeaseCallbacks>();
  callbacks->on_data = [weak](const ConnectionPtr& conn, ByteBuffer& input) {
    if (auto h = weak.lock()) h->OnUpstreamData(conn, input);
  };
  callbacks->on_peer_shutdown = [weak](const ConnectionPtr& conn) {
    if (auto h = weak.lock()) {
      h->OnUpstreamPeerShutdown(conn);
    } else {
      conn->Close();
    }
  };
  callbacks->on_low_water = [weak](const ConnectionPtr& conn) {
    if (auto h = weak.lock()) h->OnUpstreamLowWater(conn);
  };
  callbacks->on_close = [weak](const ConnectionPtr& conn, CloseReason reason,
                               const absl::Status& status) {
    if (auto h = weak.lock()) h->OnUpstreamClose(conn, reason, status);
  };
  return callbacks;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PooledConnector>> PooledConnector::Create(
    EventLoop* loop, ConnectionPoolOptions options,
    std::shared_ptr<const ConnectionLayer> tls) {
  absl::StatusOr<std::unique_ptr<ConnectionPool>> pool =
      ConnectionPool::Create(loop, std::move(options));
  if (!pool.ok()) return pool.status();
  return std::unique_ptr<PooledConnector>(
      new PooledConnector(*std::move(pool), std::move(tls)));
}

void PooledConnector::Acquire(Upstream& upstream, absl::Time deadline,
                              std::shared_ptr<UpstreamHandler> handler,
                              AcquireCallback done) {
  if (upstream.tls && tls_ == nullptr) {
    done(absl::FailedPreconditionError(
        absl::StrCat("upstream ", upstream.host_port, ": no TLS configured")));
    return;
  }
  std::shared_ptr<const LeaseCallbacks> callbacks =
      std::static_pointer_cast<const LeaseCallbacks>(handler->connector_state);
  if (callbacks == nullptr) {
    callbacks = CallbacksFor(handler);
    handler->connector_state = callbacks;
  }
  // The pool resolves "host:port" itself; for plain upstreams the proxy
  // passes the address it resolved at startup, so names are looked up once
  // (TLS upstreams pass the name, which the certificate must match).
  ConnectionPool* pool = pool_.get();
  pool->Acquire(
      upstream.endpoint, upstream.tls ? tls_ : nullptr, deadline,
      [pool, done = std::move(done)](absl::StatusOr<Lease> lease) mutable {
        if (!lease.ok()) {
          done(lease.status());
          return;
        }
        done(std::make_unique<PoolLink>(pool, *std::move(lease)));
      },
      std::move(callbacks));
}

void PooledConnector::Stop() { pool_->Drain(); }

ConnectionPoolStats PooledConnector::stats() const { return pool_->stats(); }

}  // namespace mill::proxy
