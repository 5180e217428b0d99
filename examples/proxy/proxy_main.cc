// proxy: an HTTP/1.1 reverse proxy on Mill-IO (see proxy.h for the rules).
//
//   bazel run //examples:proxy -- --port=8000
//       --upstream=127.0.0.1:8080,127.0.0.1:8081 --balance=least_loaded
//
// Every request is forwarded to one of the --upstream servers (round robin,
// or the one with the fewest exchanges in flight) over a pool of keep-alive
// upstream connections, and the response streamed back; keep-alive and
// pipelining to the client, answers in order. Bodies stream both ways with
// backpressure, so memory per connection stays bounded by the high-water
// marks whatever the message sizes.
//
// TLS, both sides: --tls-cert=CERT.pem --tls-key=KEY.pem terminates TLS from
// clients (ALPN "http/1.1"; both or neither). An upstream given as
// https://HOST:PORT is spoken to over TLS, its certificate verified against
// --upstream-ca (or the system trust store) and HOST; such upstreams use a
// pool of their own, so plain and TLS connections are never mixed up. One
// whose certificate does not verify gets no request: the client gets 502
// and stderr says why (at most a line a second).
//
// Prints "listening on ADDRESS:PORT" once it accepts connections; exits 0
// on SIGINT/SIGTERM after closing every connection; bad flags print a
// message on stderr and exit 2.
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "connpool/connection_pool.h"
#include "examples/common/server_main.h"
#include "examples/common/tls_flags.h"
#include "examples/proxy/pooled_connector.h"
#include "examples/proxy/proxy.h"
#include "examples/proxy/upstream.h"
#include "net/tcp_server.h"
#include "reactor/event_loop.h"

ABSL_FLAG(int, port, 8000, "TCP port (0: let the kernel pick a free one)");
ABSL_FLAG(std::string, upstream, "",
          "upstream servers, [http://|https://]HOST:PORT[,...] (required); "
          "https:// ones are spoken to over TLS, verifying HOST");
ABSL_FLAG(std::string, upstream_ca, "",
          "PEM file of the CAs that https:// upstreams' certificates must "
          "chain to (empty: the system trust store)");
ABSL_FLAG(std::string, balance, "round_robin",
          "how to pick an upstream: round_robin or least_loaded");
ABSL_FLAG(absl::Duration, upstream_timeout, absl::Seconds(30),
          "504 when an upstream sends nothing for this long while a "
          "response is owed (0: no limit)");
ABSL_FLAG(absl::Duration, connect_timeout, absl::Seconds(5),
          "limit on opening an upstream connection");
ABSL_FLAG(bool, upstream_keepalive, true,
          "reuse upstream connections (false: a new one per request, "
          "\"Connection: close\" upstream)");
ABSL_FLAG(int, max_idle_upstream, 128,
          "idle keep-alive connections kept per upstream");
ABSL_FLAG(int, max_upstream_connections, 1024,
          "open connections per upstream at most; requests beyond wait for "
          "one (bounded by --max_waiting, then 503)");
ABSL_FLAG(int, max_waiting, 4096,
          "requests waiting for an upstream connection at most (then 503)");
ABSL_FLAG(absl::Duration, upstream_idle_timeout, absl::Seconds(60),
          "close pooled upstream connections without traffic for this long");
ABSL_FLAG(int, max_header_bytes, 8 * 1024,
          "largest request header section accepted; larger ones get 431");
ABSL_FLAG(absl::Duration, idle_timeout, absl::Seconds(60),
          "close client connections without traffic for this long (0: never)");
ABSL_FLAG(absl::Duration, header_timeout, absl::Seconds(10),
          "a request head must be complete this long after its first byte, "
          "else 408 (0: no limit)");
ABSL_FLAG(absl::Duration, body_timeout, absl::Seconds(30),
          "a request body must be complete this long after its head, else "
          "408 (0: no limit)");
ABSL_FLAG(absl::Duration, linger_timeout, absl::Seconds(2),
          "after an error response, how long to keep discarding the "
          "client's bytes before closing");
ABSL_FLAG(int, high_water_kib, 1024,
          "output queue (KiB) at which a side stops being fed; reading "
          "resumes at a quarter of it");

int main(int argc, char** argv) {
  mill::examples::ServerProgram program(
      "proxy",
      "HTTP/1.1 reverse proxy on Mill-IO.\n  proxy --port=8000 "
      "--upstream=[https://]127.0.0.1:8080[,...] --mode=pool|direct "
      "[--tls-cert=CERT.pem --tls-key=KEY.pem] [--upstream-ca=CA.pem]",
      FLAGS_port, FLAGS_idle_timeout);
  if (!program.ParseCommandLine(argc, argv)) return program.exit_code();
  const mill::examples::ServerSetup& setup = program.setup();

  mill::proxy::Balance balance;
  const std::string balance_flag = absl::GetFlag(FLAGS_balance);
  if (balance_flag == "round_robin") {
    balance = mill::proxy::Balance::kRoundRobin;
  } else if (balance_flag == "least_loaded") {
    balance = mill::proxy::Balance::kLeastLoaded;
  } else {
    return program.Fail(
        absl::StrCat("--balance must be 'round_robin' or "
                     "'least_loaded', got '",
                     balance_flag, "'"));
  }
  if (absl::GetFlag(FLAGS_upstream).empty()) {
    return program.Fail(
        "--upstream=[http://|https://]HOST:PORT[,...] is required");
  }
  absl::StatusOr<std::unique_ptr<mill::proxy::UpstreamSet>> upstreams =
      mill::proxy::UpstreamSet::Parse(absl::GetFlag(FLAGS_upstream), balance);
  if (!upstreams.ok()) return program.Fail(upstreams.status().message());

  // Client side: TLS termination.
  absl::StatusOr<std::shared_ptr<const mill::ConnectionLayer>> server_tls =
      mill::examples::ServerTlsFromFlags({"http/1.1"});
  if (!server_tls.ok()) return program.Fail(server_tls.status().message());
  // Upstream side: one TLS client context for every https:// upstream (it
  // verifies each against its own HOST).
  bool any_tls_upstream = false;
  for (size_t i = 0; i < (*upstreams)->size(); ++i) {
    any_tls_upstream |= (*upstreams)->at(i).tls;
  }
  const std::string upstream_ca = absl::GetFlag(FLAGS_upstream_ca);
  std::shared_ptr<const mill::ConnectionLayer> client_tls;
  if (any_tls_upstream) {
    absl::StatusOr<std::shared_ptr<const mill::ConnectionLayer>> context =
        mill::examples::ClientTls(upstream_ca, {"http/1.1"});
    if (!context.ok()) return program.Fail(context.status().message());
    client_tls = *std::move(context);
  } else if (!upstream_ca.empty()) {
    // Most likely a forgotten https://: refuse rather than go plaintext.
    return program.Fail("--upstream-ca needs an https:// --upstream");
  }

  mill::proxy::ProxyOptions options;
  const int max_header_bytes = absl::GetFlag(FLAGS_max_header_bytes);
  const int max_idle = absl::GetFlag(FLAGS_max_idle_upstream);
  const int high_water_kib = absl::GetFlag(FLAGS_high_water_kib);
  if (max_header_bytes < 1) {
    return program.Fail("--max_header_bytes must be at least 1");
  }
  if (max_idle < 0) {
    return program.Fail("--max_idle_upstream must not be negative");
  }
  const int max_upstream = absl::GetFlag(FLAGS_max_upstream_connections);
  const int max_waiting = absl::GetFlag(FLAGS_max_waiting);
  if (max_upstream < 1) {
    return program.Fail("--max_upstream_connections must be at least 1");
  }
  if (max_waiting < 0) {
    return program.Fail("--max_waiting must not be negative");
  }
  if (high_water_kib < 4) {
    return program.Fail("--high_water_kib must be at least 4");
  }
  options.max_header_bytes = static_cast<size_t>(max_header_bytes);
  options.upstream_timeout = absl::GetFlag(FLAGS_upstream_timeout);
  options.connect_timeout = absl::GetFlag(FLAGS_connect_timeout);
  options.header_timeout = absl::GetFlag(FLAGS_header_timeout);
  options.body_timeout = absl::GetFlag(FLAGS_body_timeout);
  options.linger_timeout = absl::GetFlag(FLAGS_linger_timeout);
  // Why upstreams fail (a certificate that does not verify, say), at most
  // one line a second: a dead upstream fails every request.
  static std::atomic<int64_t> next_error_log_ns{0};
  options.on_upstream_error = [](const mill::proxy::Upstream& upstream,
                                 const absl::Status& error) {
    const int64_t now = absl::GetCurrentTimeNanos();
    int64_t next = next_error_log_ns.load(std::memory_order_relaxed);
    if (now < next ||
        !next_error_log_ns.compare_exchange_strong(
            next, now + absl::ToInt64Nanoseconds(absl::Seconds(1)))) {
      return;
    }
    std::fprintf(stderr, "proxy: upstream %s%s: %s\n",
                 upstream.tls ? "https://" : "", upstream.host_port.c_str(),
                 std::string(error.message()).c_str());
  };
  options.upstream_keepalive = absl::GetFlag(FLAGS_upstream_keepalive);
  for (absl::Duration d :
       {options.upstream_timeout, options.header_timeout, options.body_timeout,
        options.linger_timeout, absl::GetFlag(FLAGS_upstream_idle_timeout)}) {
    if (d < absl::ZeroDuration()) {
      return program.Fail("timeouts must not be negative");
    }
  }
  if (options.connect_timeout <= absl::ZeroDuration()) {
    return program.Fail("--connect_timeout must be positive");
  }
  const size_t high_water = static_cast<size_t>(high_water_kib) << 10;
  options.high_water_mark = high_water;

  mill::EventLoop* const loop = program.CreateLoop();
  if (loop == nullptr) return program.exit_code();

  // Both sides: the same marks, and an input bound of a few parse slices
  // (the parsers keep nothing but the head, itself bounded).
  mill::ConnectionOptions connection;
  connection.socket.no_delay = true;
  connection.high_water_mark = high_water;
  connection.low_water_mark = high_water / 4;
  connection.max_input_bytes = 256 << 10;

  mill::ConnectionPoolOptions pool_options;
  pool_options.client.connection = connection;
  pool_options.client.connect_timeout = options.connect_timeout;
  pool_options.max_connections_per_endpoint = static_cast<size_t>(max_upstream);
  pool_options.max_connections =
      static_cast<size_t>(max_upstream) * (*upstreams)->size();
  pool_options.max_idle_per_endpoint = static_cast<size_t>(max_idle);
  pool_options.max_pending = static_cast<size_t>(max_waiting);
  pool_options.idle_timeout = absl::GetFlag(FLAGS_upstream_idle_timeout);
  absl::StatusOr<std::unique_ptr<mill::proxy::PooledConnector>> connector =
      mill::proxy::PooledConnector::Create(loop, pool_options, client_tls);
  if (!connector.ok()) return program.Fail(connector.status().ToString());

  mill::proxy::ReverseProxy proxy(loop, upstreams->get(), connector->get(),
                                  options);
  mill::TcpServerOptions server_options;
  server_options.connection = connection;
  server_options.connection.idle_timeout = setup.idle_timeout;
  server_options.max_connections = setup.max_connections;
  server_options.layer = *server_tls;  // null: plain TCP
  if (!program.Listen(proxy.ClientCallbacks(), server_options)) {
    return program.exit_code();
  }

  // Clients first (Serve destroys the server; their sessions release
  // links), then the upstream side; the program destroys the loop last.
  const int exit_code = program.Serve();
  (*connector)->Stop();
  const mill::proxy::ProxyStats stats = proxy.stats();
  const mill::ConnectionPoolStats pool = (*connector)->stats();
  std::fprintf(stderr,
               "proxy: %llu requests, %llu responses, %llu retries, "
               "%llu 502, %llu 503, %llu 504, %llu client errors; upstream "
               "connections "
               "%llu opened, %llu reuses\n",
               static_cast<unsigned long long>(stats.requests),
               static_cast<unsigned long long>(stats.responses),
               static_cast<unsigned long long>(stats.retries),
               static_cast<unsigned long long>(stats.bad_gateway),
               static_cast<unsigned long long>(stats.service_unavailable),
               static_cast<unsigned long long>(stats.gateway_timeout),
               static_cast<unsigned long long>(stats.client_errors),
               static_cast<unsigned long long>(pool.created),
               static_cast<unsigned long long>(pool.reused));
  std::string closed;
  for (int i = 0; i < mill::kPoolCloseReasonCount; ++i) {
    if (pool.closed_by[i] == 0) continue;
    absl::StrAppend(
        &closed, closed.empty() ? "" : ", ",
        mill::PoolCloseReasonName(static_cast<mill::PoolCloseReason>(i)), " ",
        pool.closed_by[i]);
  }
  if (!closed.empty()) {
    std::fprintf(stderr, "proxy: upstream connections closed: %s\n",
                 closed.c_str());
  }
  return exit_code;
}
