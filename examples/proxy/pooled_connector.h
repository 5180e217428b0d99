// PooledConnector: the proxy's UpstreamConnector on //connpool's
// ConnectionPool: keep-alive upstream connections keyed by upstream
// ("host:port"), most recently used first, checked alive before reuse
// (ConnectionPool's liveness check), with the pool's limits, idle timeout
// and drain. A lease's callbacks go to the exchange that holds it (the
// UpstreamHandler), through LeaseCallbacks made once per handler.
//
// The pool hands out an idle connection whenever it has one, so a retry
// after a stale connection gets one that has just passed the liveness check,
// or a new one (see the retry rule in proxy.h).
//
// TLS: upstreams given as https:// get connections over the TLS layer passed
// to Create, plain ones plain TCP, from the same pool: it keys connections
// by endpoint and layer, so plain and TLS connections to one HOST:PORT never
// meet. A certificate that does not verify fails the connect (Unavailable,
// with OpenSSL's reason), before any request byte.
//
// Thread-safety: thread-safe. Ownership: owns the pool (destroy before the
// loop); links hold leases and must be released before the connector is
// destroyed (the proxy's sessions release theirs when their clients close).
#ifndef MILL_IO_EXAMPLES_PROXY_POOLED_CONNECTOR_H_
#define MILL_IO_EXAMPLES_PROXY_POOLED_CONNECTOR_H_

#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "connpool/connection_pool.h"
#include "examples/proxy/upstream.h"
#include "net/connection_layer.h"
#include "reactor/event_loop.h"

namespace mill::proxy {

class PooledConnector : public UpstreamConnector {
 public:
  // `tls` (null: no TLS upstreams) is the layer of https:// upstreams.
  static absl::StatusOr<std::unique_ptr<PooledConnector>> Create(
      EventLoop* loop, ConnectionPoolOptions options,
      std::shared_ptr<const ConnectionLayer> tls = nullptr);

  void Acquire(Upstream& upstream, absl::Time deadline,
               std::shared_ptr<UpstreamHandler> handler,
               AcquireCallback done) override;
  // Drains the pool: idle connections close, leased ones when released.
  void Stop() override;

  ConnectionPoolStats stats() const;

 private:
  PooledConnector(std::unique_ptr<ConnectionPool> pool,
                  std::shared_ptr<const ConnectionLayer> tls)
      : pool_(std::move(pool)), tls_(std::move(tls)) {}

  std::unique_ptr<ConnectionPool> pool_;
  const std::shared_ptr<const ConnectionLayer> tls_;  // null: none
};

}  // namespace mill::proxy

#endif  // MILL_IO_EXAMPLES_PROXY_POOLED_CONNECTOR_H_
