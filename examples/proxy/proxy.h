// ReverseProxy: an HTTP/1.1 reverse proxy on Mill-IO connections. Each
// client connection (accepted by a TcpServer whose callbacks the proxy
// provides) gets a session; each request in it becomes an exchange that
// borrows an upstream connection from the UpstreamConnector (a keep-alive
// pool), forwards the request, streams the response back and returns the
// connection to the pool.
//
// Ordering: a session runs one exchange at a time. A pipelined request stays
// in the client connection's input buffer until the response before it is
// complete, so responses always come back in request order and each
// upstream connection carries one request at a time.
//
// Streaming and memory: bodies are never held whole. The parser hands body
// pieces over as it parses them; the proxy sends each on at once and stops
// parsing when the receiving side's output queue reaches its high-water
// mark: the rest stays in the sending side's input buffer, that side's
// reading pauses, and both resume when the queue drains to the low-water
// mark (on_low_water). So a client that reads slowly costs at most the
// client's high-water mark plus the upstream's input bound, whatever the
// response size, and a slow upstream likewise bounds a large upload.
//
// Errors, as a client sees them:
//   400 malformed request (any http-parser error, missing Host in HTTP/1.1,
//       framing the proxy cannot follow reliably: see http_stream_parser.h),
//   431 header section over max_header_bytes, 505 HTTP major version not 1,
//   405 CONNECT; these close the client connection (lingering close).
//   408 header section or body not complete in time (then close).
//   502 no upstream reachable (connect refused/failed on every upstream in
//       turn, an https:// upstream's certificate not verified: the request
//       is never sent) or an upstream answered garbage or closed before
//       answering, or with a transfer coding an HTTP/1.0 client cannot take;
//   504 upstream_timeout passed without the upstream sending a byte of the
//       response (or, once it started, between bytes).
//   Once a response head went out, a failure can only cut the client
//   connection (the client sees a short body).
//   503 too many requests already wait for an upstream connection (the
//       pool's bounded queue); 504 also when no connection could be had
//       within connect_timeout.
// Stale connections: an idle pooled connection the upstream has closed is
// normally caught by the pool's liveness check. If a reused connection
// still fails (reset or EOF) before any response byte arrived, an
// idempotent request (GET, HEAD, PUT, DELETE, OPTIONS, TRACE) without a
// body is sent again, invisibly to the client, on the connection the pool
// gives next (one that has just passed the liveness check, or a new one);
// at most kMaxStaleRetries (2) times, and never after a failure on a
// connection opened for the request (that is a real error: 502). A request
// with a body, or a non-idempotent one, gets 502 instead (it may have been
// processed).
//
// Thread-safety: callbacks may run on any worker; each session serializes
// its own state with a mutex and never calls into a connection in a way
// that could run that connection's callbacks while holding it.
// Ownership: the proxy borrows the loop and the connector, which must
// outlive it (and every connection of the server using its callbacks).
#ifndef MILL_IO_EXAMPLES_PROXY_PROXY_H_
#define MILL_IO_EXAMPLES_PROXY_PROXY_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "examples/proxy/upstream.h"
#include "net/connection.h"
#include "reactor/event_loop.h"

namespace mill::proxy {

struct ProxyOptions {
  // Request header section limit (431), counted like examples/http.
  size_t max_header_bytes = 8 * 1024;
  // Response header section limit (502).
  size_t max_response_header_bytes = 64 * 1024;
  // A request's head must be complete within header_timeout of its first
  // byte and its body within body_timeout of the head (time spent waiting
  // on the upstream does not count); else 408. Zero: no limit.
  absl::Duration header_timeout = absl::Seconds(10);
  absl::Duration body_timeout = absl::Seconds(30);
  // An upstream that sends nothing for this long while a response is owed
  // gets the exchange a 504. Zero: no limit.
  absl::Duration upstream_timeout = absl::Seconds(30);
  // Time allowed for borrowing an upstream connection (connect included).
  absl::Duration connect_timeout = absl::Seconds(5);
  // Reuse upstream connections (keep-alive); false sends
  // "Connection: close" and opens a new connection per request.
  bool upstream_keepalive = true;
  // After an error response: keep discarding the client's bytes this long
  // before closing (so a reset does not destroy the response).
  absl::Duration linger_timeout = absl::Seconds(2);
  // Output queue level at which the proxy stops feeding a side (normally
  // the connections' high_water_mark).
  size_t high_water_mark = 1 << 20;
  // Optional: hears why a connection to an upstream could not be had
  // (refused, TLS certificate not verified, ...) before the exchange tries
  // the next upstream or answers 502/503/504. Runs on the thread that
  // learnt it, inside the exchange's session lock: must not block or call
  // into the proxy.
  std::function<void(const Upstream& upstream, const absl::Status& error)>
      on_upstream_error;
};

// Counters, readable at any time.
struct ProxyStats {
  uint64_t requests = 0;             // request heads parsed
  uint64_t responses = 0;            // final responses forwarded complete
  uint64_t retries = 0;              // stale reused connection: sent again
  uint64_t bad_gateway = 0;          // 502s generated
  uint64_t gateway_timeout = 0;      // 504s generated
  uint64_t service_unavailable = 0;  // 503s: the pool's queue was full
  uint64_t client_errors = 0;        // 400/405/408/431/505 generated
  uint64_t upstream_reused = 0;      // exchanges on a reused connection
  uint64_t upstream_fresh = 0;       // exchanges on a new connection
};

class ReverseProxy {
 public:
  ReverseProxy(EventLoop* loop, UpstreamSet* upstreams,
               UpstreamConnector* connector, ProxyOptions options);
  ReverseProxy(const ReverseProxy&) = delete;
  ReverseProxy& operator=(const ReverseProxy&) = delete;

  // The callbacks for the TcpServer that accepts the proxy's clients.
  ConnectionCallbacks ClientCallbacks();

  ProxyStats stats() const;

  struct Counters {
    std::atomic<uint64_t> requests{0}, responses{0}, retries{0}, bad_gateway{0},
        gateway_timeout{0}, service_unavailable{0}, client_errors{0},
        upstream_reused{0}, upstream_fresh{0};
  };

 private:
  EventLoop* const loop_;
  UpstreamSet* const upstreams_;
  UpstreamConnector* const connector_;
  const ProxyOptions options_;
  Counters counters_;
};

}  // namespace mill::proxy

#endif  // MILL_IO_EXAMPLES_PROXY_PROXY_H_
