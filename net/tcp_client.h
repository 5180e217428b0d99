// TcpClient: opens outbound TCP (or Unix-domain: "unix:/path",
// "unix:@name", never resolved) connections on an EventLoop, and adopts
// connected sockets made elsewhere (Adopt). The result is
// the same Connection a TcpServer hands out (same callbacks, output
// backpressure, input bound, idle timeout and read-rate limits), so client
// and server code share everything after the connect.
//
// Connecting never blocks the loop: the socket connects in non-blocking
// mode and is watched by the loop; a host name is resolved with
// getaddrinfo(3) off the loop, by one resolver every client in the process
// shares (concurrent lookups of one name share one call; answers are cached
// for 30 s, failures for 5 s), and every address it returns is tried in
// turn, IPv6 and IPv4 interleaved, a new attempt starting attempt_delay
// after the previous one unless that one answered first (RFC 8305, "Happy
// Eyeballs"). The first connection to succeed wins; the others are
// abandoned.
//
// Errors (absl::Status with the errno text), delivered to the callback:
//   Unavailable       refused (ECONNREFUSED), host or network unreachable
//   DeadlineExceeded  the connect timeout passed (or ETIMEDOUT)
//   NotFound          the name does not resolve
//   InvalidArgument   a malformed "host:port"
//   Cancelled         Cancel() or Stop() before the connect finished
//   others            as absl::ErrnoToStatus maps the errno
//
// Reconnecting: KeepConnected() holds one connection to a target open,
// reconnecting with exponential backoff and jitter whenever it fails or
// closes (until StopKeepingConnected() or Stop()); a connection that closes
// before BackoffPolicy::min_uptime counts as a failure, and every failure
// reaches KeepConnectedOptions::on_attempt_failed.
//
// Stop() cancels what is pending and closes what is open; a connect that
// completes while Stop runs is closed too (its callback gets Cancelled), so
// once Stop returned no connection of the client is open or opening.
//
// Threading: callbacks run where the loop runs handlers (a worker in pool
// mode, the loop thread in direct mode), as for a TcpServer. The connect
// callback runs exactly once per Connect(): for a success on the new
// connection's handler thread right after on_connect (before any on_data);
// for a failure where the failure was noticed (a handler, a timer, the
// resolver, or the thread calling Cancel/Stop).
//
// Thread-safety: every member may be called from any thread, including from
// inside callbacks. Stop() never deadlocks: outside any connection callback
// it returns once every connection is closed; inside one it does not wait.
//
// Ownership: the client borrows the EventLoop, which must outlive it, and
// owns the connections it made while they are open (user code may keep
// ConnectionPtrs longer). Destroy the client before the loop.
#ifndef MILL_IO_NET_TCP_CLIENT_H_
#define MILL_IO_NET_TCP_CLIENT_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "net/connection.h"
#include "net/connection_layer.h"
#include "net/socket_address.h"
#include "reactor/event_loop.h"

namespace mill {

namespace net_internal {
class ClientCore;
struct TcpClientAccess;
}  // namespace net_internal

// Exponential backoff with jitter between reconnect attempts: the wait after
// the n-th consecutive failure (n = 1, 2, ...) is
// min(max, initial * multiplier^(n-1)), then scaled by a random factor in
// [1 - jitter, 1 + jitter], so clients restarted together spread out; after
// a close the first reconnect waits about `initial`. Valid: initial > 0,
// max >= initial (both finite), multiplier >= 1, jitter in [0, 1],
// min_uptime >= 0 (finite).
struct BackoffPolicy {
  absl::Duration initial = absl::Milliseconds(100);
  absl::Duration max = absl::Seconds(30);
  double multiplier = 2.0;
  double jitter = 0.2;  // in [0, 1]
  // A connection counts as a success, resetting the backoff, only once it
  // stayed open this long; one that closes sooner is a failure (the next
  // wait grows). Without it, a server that accepts and drops at once is
  // redialled every `initial` forever. 1 s is far above a connect plus an
  // immediate drop (a handshake completes inside the connect) and short
  // enough that a healthy connection resets the backoff almost at once.
  // Zero: every connection resets it.
  absl::Duration min_uptime = absl::Seconds(1);
};

// How KeepConnected() keeps a target connected.
struct KeepConnectedOptions {
  BackoffPolicy backoff;
  // Runs after every failed connect, and after every connection that closed
  // before backoff.min_uptime (then Unavailable naming its uptime and close
  // reason), with the error and the number of consecutive failures
  // (1, 2, ...: the n of BackoffPolicy). Runs where the failure was noticed,
  // before the next attempt is scheduled, so never concurrently with itself
  // for one target; it may call the client (StopKeepingConnected too).
  absl::AnyInvocable<void(const absl::Status& error, int attempt)>
      on_attempt_failed;
};

// ConnectionOptions with TCP_NODELAY on: the default for outbound
// connections (a request must not wait for Nagle's algorithm to see the
// reply to an earlier one: hiredis, Netty and Go do the same).
inline ConnectionOptions OutboundConnectionOptions() {
  ConnectionOptions options;
  options.socket.no_delay = true;
  return options;
}

struct TcpClientOptions {
  // Applied to every connection the client opens. TCP_NODELAY is on; turn
  // it off with `connection.socket.no_delay = false` (a client that sends
  // many tiny writes and wants the kernel to coalesce them).
  ConnectionOptions connection = OutboundConnectionOptions();
  // Default limit on one Connect(), resolution and every attempt included.
  absl::Duration connect_timeout = absl::Seconds(10);
  // Delay before starting the next address while earlier attempts are still
  // connecting (RFC 8305 recommends 250 ms).
  absl::Duration attempt_delay = absl::Milliseconds(250);
  // The protocol connections speak over TCP (null: plain TCP), e.g. a
  // TlsClientContext (//tls). A connect completes once the layer's
  // handshake did (within the connect timeout); a failed handshake is the
  // connect's error. The layer learns the name connected to: the host of
  // "host:port", or the address itself.
  std::shared_ptr<const ConnectionLayer> layer;
};

// Counters, readable at any time.
struct TcpClientStats {
  uint64_t connects_started = 0;    // Connect() calls (and reconnects)
  uint64_t connects_succeeded = 0;  // delivered an open connection
  uint64_t connects_failed = 0;     // delivered an error (cancels included)
  uint64_t attempts = 0;            // sockets that started connecting
  uint64_t resolutions = 0;         // names looked up (cache hits too)
  size_t pending = 0;               // Connect() calls still in progress
  size_t active = 0;                // open connections
  uint64_t bytes_read = 0;
  uint64_t bytes_written = 0;
  uint64_t write_calls = 0;  // system calls that wrote output
  // Closed connections by CloseReason (connections that opened).
  std::array<uint64_t, kCloseReasonCount> closed_by{};

  uint64_t closed(CloseReason reason) const {
    return closed_by[static_cast<int>(reason)];
  }
};

// What Connect() delivers: the open connection or the error.
using ConnectCallback =
    absl::AnyInvocable<void(absl::StatusOr<ConnectionPtr> result)>;

// Opens connections:
//
//   mill::ConnectionCallbacks cb;
//   cb.on_data = [](const mill::ConnectionPtr& c, mill::ByteBuffer& in) {
//     Handle(in.view());
//     in.Consume(in.size());
//   };
//   auto client = mill::TcpClient::Create(loop, cb);
//   (*client)->Connect("example.com:80",
//       [](absl::StatusOr<mill::ConnectionPtr> c) {
//         if (!c.ok()) { Log(c.status()); return; }
//         (*c)->Send("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n");
//       });
class TcpClient {
 public:
  // Identifies one Connect() (or KeepConnected()); 0 is never valid.
  using ConnectId = uint64_t;

  // InvalidArgument for a null loop or bad options.
  static absl::StatusOr<std::unique_ptr<TcpClient>> Create(
      EventLoop* loop, ConnectionCallbacks callbacks,
      TcpClientOptions options = {});

  TcpClient(const TcpClient&) = delete;
  TcpClient& operator=(const TcpClient&) = delete;

  // Stop(). Not from inside this client's callbacks.
  ~TcpClient();

  // Connects to `address` within `timeout` (the options' connect_timeout
  // when zero). `done` runs exactly once (see the file comment).
  ConnectId Connect(const SocketAddress& address, ConnectCallback done,
                    absl::Duration timeout = absl::ZeroDuration());
  // Connects to "host:port", "a.b.c.d:port" or "[v6]:port"; names are
  // resolved off the loop. A malformed target fails at once: `done` runs
  // with InvalidArgument before Connect returns 0.
  ConnectId Connect(absl::string_view host_port, ConnectCallback done,
                    absl::Duration timeout = absl::ZeroDuration());
  // As above, over `layer` instead of TcpClientOptions::layer (null: plain
  // TCP), so that one client reaches servers that need different TLS
  // settings (another CA, client certificate, ALPN list). The client holds
  // `layer` until the connect finishes; the connections it made hold what
  // they need. A server-side layer fails at once with InvalidArgument.
  ConnectId Connect(absl::string_view host_port,
                    std::shared_ptr<const ConnectionLayer> layer,
                    ConnectCallback done,
                    absl::Duration timeout = absl::ZeroDuration());
  // Tries `addresses` in order, staggered by attempt_delay (as for the
  // addresses of a resolved name). InvalidArgument at once when empty.
  ConnectId Connect(std::vector<SocketAddress> addresses, ConnectCallback done,
                    absl::Duration timeout = absl::ZeroDuration());

  // Makes a Connection of `fd`, an already connected stream socket (one end
  // of a socketpair(2), a socket inherited from a parent): AF_INET, AF_INET6
  // or AF_UNIX. It gets the client's callbacks and options (TCP options are
  // skipped on Unix sockets), speaks plain bytes (no layer: TLS is not
  // started on it), and is the client's like the ones it connected
  // (Connections(), Stop()). on_connect runs on this thread before Adopt
  // returns. `fd` is made non-blocking and close-on-exec.
  // Errors: InvalidArgument for a descriptor that is not a socket, not a
  // stream socket, of another family, listening, or not connected (the
  // caller keeps `fd` then); Cancelled after Stop() (`fd` is closed, as a
  // connect completing during Stop is).
  absl::StatusOr<ConnectionPtr> Adopt(int fd);

  // Cancels a Connect() in progress: its callback runs with Cancelled on
  // this thread before Cancel returns. False if `id` is unknown or already
  // finished (then the callback ran or is running elsewhere).
  bool Cancel(ConnectId id);

  // Keeps one connection to `host_port` open, reconnecting with
  // `options.backoff` after every failure or close, until
  // StopKeepingConnected(id) or Stop(). The connections come through the
  // client's callbacks (on_connect, ...). InvalidArgument for a malformed
  // target or an invalid policy (see BackoffPolicy), Cancelled after
  // Stop(); nothing is started then.
  absl::StatusOr<ConnectId> KeepConnected(absl::string_view host_port,
                                          KeepConnectedOptions options = {});
  absl::StatusOr<ConnectId> KeepConnected(absl::string_view host_port,
                                          BackoffPolicy backoff);
  // The open connection KeepConnected(id) holds, or null (reconnecting,
  // stopped, or `id` unknown).
  ConnectionPtr CurrentConnection(ConnectId id) const;
  // Stops reconnecting; closes the current connection (kClosedLocally)
  // when `close` is set. False if `id` is unknown.
  bool StopKeepingConnected(ConnectId id, bool close = true);

  // Cancels every pending Connect(), stops reconnecting and closes every
  // open connection (kStopped). Idempotent. Connect() after Stop() fails
  // with Cancelled.
  void Stop();

  // The open connections (a snapshot).
  std::vector<ConnectionPtr> Connections() const;
  size_t connection_count() const;

  TcpClientStats stats() const;

 private:
  friend struct net_internal::TcpClientAccess;  // creation with test hooks

  explicit TcpClient(std::shared_ptr<net_internal::ClientCore> core);

  std::shared_ptr<net_internal::ClientCore> core_;
};

}  // namespace mill

#endif  // MILL_IO_NET_TCP_CLIENT_H_
