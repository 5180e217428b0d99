// ClientPoolConnector: an UpstreamConnector on a TcpClient with a small
// keep-alive pool per upstream: idle connections are kept most recently
// used first, checked with Connection::Probe() before reuse (a connection
// the upstream closed, or with unexpected bytes waiting, is discarded, never
// lent), closed after idle_timeout, and at most max_idle per upstream are
// kept. Callbacks of a lent connection are routed to the exchange that
// holds it; an idle connection that receives bytes or EOF is closed.
//
// Thread-safety: thread-safe. Ownership: borrows the loop; owns the
// TcpClient and thereby the connections (Stop() closes them).
#ifndef MILL_IO_EXAMPLES_PROXY_CLIENT_POOL_H_
#define MILL_IO_EXAMPLES_PROXY_CLIENT_POOL_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "examples/proxy/upstream.h"
#include "net/connection.h"
#include "net/tcp_client.h"
#include "reactor/event_loop.h"

namespace mill::proxy {

struct ClientPoolOptions {
  // Per upstream connection: socket options, backpressure marks, input bound.
  ConnectionOptions connection;
  size_t max_idle_per_upstream = 64;
  absl::Duration idle_timeout = absl::Seconds(30);
};

struct ClientPoolStats {
  uint64_t created = 0;
  uint64_t reused = 0;
  uint64_t dead_on_reuse = 0;  // failed the liveness check
  size_t idle = 0;
};

class ClientPoolConnector : public UpstreamConnector {
 public:
  static absl::StatusOr<std::unique_ptr<ClientPoolConnector>> Create(
      EventLoop* loop, ClientPoolOptions options);
  ~ClientPoolConnector() override;

  void Acquire(Upstream& upstream, absl::Time deadline, bool fresh,
               std::shared_ptr<UpstreamHandler> handler,
               AcquireCallback done) override;
  void Stop() override;

  ClientPoolStats stats() const;

  struct Core;

 private:
  explicit ClientPoolConnector(std::shared_ptr<Core> core)
      : core_(std::move(core)) {}
  std::shared_ptr<Core> core_;
};

}  // namespace mill::proxy

#endif  // MILL_IO_EXAMPLES_PROXY_CLIENT_POOL_H_
