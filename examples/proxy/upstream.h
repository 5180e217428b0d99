// The proxy's view of its upstream connections: a set of upstream servers,
// a choice among them (round robin or least loaded), and lent connections
// (UpstreamLink) from a pool of keep-alive connections, whose callbacks are
// routed to the exchange that holds the link.
//
// Thread-safety: UpstreamSet and UpstreamConnector are thread-safe. A link
// is used by one exchange at a time (under the exchange's session lock).
// Ownership: the connector owns its pool; a link returns its connection to
// the pool exactly once (Release, or its destructor: not reusable).
#ifndef MILL_IO_EXAMPLES_PROXY_UPSTREAM_H_
#define MILL_IO_EXAMPLES_PROXY_UPSTREAM_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "net/byte_buffer.h"
#include "net/connection.h"
#include "net/socket_address.h"

namespace mill::proxy {

// One upstream server.
struct Upstream {
  std::string host_port;  // "127.0.0.1:8080", as given (without a scheme)
  bool tls = false;       // given as https://: spoken to over verified TLS
  SocketAddress address;  // resolved once at startup
  // The pool's key: address.ToString() for plain upstreams; for TLS ones
  // host_port, so that the TLS layer verifies the certificate against the
  // HOST given (the pool resolves it, off the loop and cached).
  std::string endpoint;
  // Exchanges in flight on it (least-loaded balancing).
  std::atomic<int> in_flight{0};
};

enum class Balance { kRoundRobin, kLeastLoaded };

// The upstream servers and the balancing rule.
class UpstreamSet {
 public:
  // Parses "UPSTREAM[,UPSTREAM...]", each "[http://|https://]HOST:PORT"
  // (numeric addresses or names, resolved here, once, also for https:// so
  // that a bad name fails at startup). InvalidArgument / NotFound name the
  // bad entry.
  static absl::StatusOr<std::unique_ptr<UpstreamSet>> Parse(
      absl::string_view list, Balance balance);

  size_t size() const { return upstreams_.size(); }
  Upstream& at(size_t i) { return *upstreams_[i]; }
  // The index to try first for a new exchange.
  size_t Pick();

 private:
  UpstreamSet(std::vector<std::unique_ptr<Upstream>> upstreams, Balance balance)
      : upstreams_(std::move(upstreams)), balance_(balance) {}

  std::vector<std::unique_ptr<Upstream>> upstreams_;
  const Balance balance_;
  std::atomic<uint64_t> next_{0};
};

// What an exchange gets from its upstream connection while it holds the
// link (the connection's callbacks, routed by the pool to the lease holder).
class UpstreamHandler {
 public:
  virtual ~UpstreamHandler() = default;
  virtual void OnUpstreamData(const ConnectionPtr& conn, ByteBuffer& input) = 0;
  virtual void OnUpstreamPeerShutdown(const ConnectionPtr& conn) = 0;
  virtual void OnUpstreamLowWater(const ConnectionPtr& conn) = 0;
  virtual void OnUpstreamClose(const ConnectionPtr& conn, CloseReason reason,
                               const absl::Status& status) = 0;

  // The connector's own per-handler state (e.g. a pool's lease callbacks,
  // made once rather than per request). Only UpstreamConnector::Acquire
  // touches it, and a handler has one Acquire in flight at a time.
  std::shared_ptr<const void> connector_state;
};

// A connection lent to one exchange.
class UpstreamLink {
 public:
  virtual ~UpstreamLink() = default;
  virtual const ConnectionPtr& connection() const = 0;
  // True when the connection served an earlier exchange (it may have gone
  // stale meanwhile: see the retry rule in proxy.h).
  virtual bool reused() const = 0;
  // Gives the connection back: to the idle set when `reusable`, else it is
  // closed. Once only; callbacks stop reaching the handler.
  virtual void Release(bool reusable) = 0;
};

using AcquireCallback =
    std::function<void(absl::StatusOr<std::unique_ptr<UpstreamLink>>)>;

// Lends connections to upstreams.
class UpstreamConnector {
 public:
  virtual ~UpstreamConnector() = default;
  // Lends a connection to `upstream`: an idle pooled one (checked alive) or
  // a new one. `done` runs once, on any thread, with the link or the error
  // (Unavailable when the upstream cannot be reached, DeadlineExceeded past
  // `deadline`, ResourceExhausted when too many requests wait). The handler
  // receives the connection's callbacks until the link is released.
  virtual void Acquire(Upstream& upstream, absl::Time deadline,
                       std::shared_ptr<UpstreamHandler> handler,
                       AcquireCallback done) = 0;
  // Closes idle connections and stops; links still out close on release.
  virtual void Stop() = 0;
};

}  // namespace mill::proxy

#endif  // MILL_IO_EXAMPLES_PROXY_UPSTREAM_H_
