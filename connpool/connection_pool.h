// ConnectionPool: a pool of outbound TCP connections on an EventLoop, keyed by
// endpoint ("host:port", resolved and connected by a TcpClient the pool
// owns) and by the layer they speak (plain TCP, or a TLS configuration: see
// the Acquire that takes a layer), in the manner of libcurl's connection
// cache, Go's http.Transport and nginx's upstream keepalive.
//
//   Acquire(endpoint, options, done)    hands out an idle connection of that
//       endpoint (most recently used first), or opens a new one within the
//       limits, or queues the request (bounded queue, FIFO per endpoint)
//       for up to options.timeout (steady clock).
//   lease.Release(reusable)             returns the connection to the idle
//       set (or straight to the oldest request waiting for its endpoint), or
//       closes it. Dropping a Lease without Release closes the connection.
//
// Two ways to hold a lease:
//   - yourself: `done` gets the Lease by value, LeaseCallbacks (shared,
//     allocation-free per request) get the connection's events;
//   - kept by the pool: Acquire(endpoint or EndpointSet, options, ready,
//     LeaseHandlers): `ready` gets a Lease*, each handler the Lease&, so the
//     handler that sees the end of a response releases it there, with no
//     shared state of yours.
// Either way, a response timeout (AcquireOptions or ConnectionPoolOptions)
// bounds the wait for input after each Lease::Send (DeadlineExceeded to
// on_close; the connection is aborted, never reused).
// An EndpointSet (connpool/endpoint_set.h) picks the endpoint per request:
// round robin or power of two choices, failed endpoints skipped with
// backoff. Names are resolved by TcpClient through the process's shared
// resolver and its cache. The wall-clock Acquire(endpoint, absl::Time
// deadline, ...) overloads remain; they convert the deadline to a steady
// timeout once, at the call.
//
// Limits: connections per endpoint, connections in total, idle connections
// per endpoint, requests waiting. Connections that are connecting count
// against the connection limits. When the total limit is reached and a
// request for an endpoint without idle connections waits, the least recently
// used idle connection of another endpoint is closed to make room.
//
// Expiry: an idle connection unused for idle_timeout is closed; every
// connection gets a lifetime drawn at random in
// [max_lifetime * (1 - lifetime_jitter), max_lifetime] (so connections opened
// together do not all expire together) and is closed once past it: while
// idle, or when released (never while leased). Expiry is checked when a
// connection would be handed out and by a sweep timer on the loop.
//
// Liveness: while a connection is idle the pool owns its callbacks: input or
// EOF from the peer (or its close) marks it dead and closes it. Before a
// reused connection is handed out, it is checked once more (no unread input,
// no EOF, and Connection::Probe(): open, and nothing waiting on the socket;
// one recv(MSG_PEEK) system call, see check_liveness).
// A connection that fails the check is closed ("dead on reuse", counted) and
// the pool tries the next idle one or opens a new one, so a server closing an
// idle keep-alive connection never fails a request that was not sent yet.
//
// A request that WAS sent on a reused connection the server closed at that
// very moment fails with the connection's on_close (kPeerClosed / kReset)
// before a response arrived. The pool cannot know whether the server
// processed it. Retry only idempotent requests, and only once, on a fresh
// connection: Lease::reused() tells a reused connection from a fresh one (a
// fresh connection failing is a real error, not a stale keep-alive).
//
// Callbacks of a leased connection go to the lease holder (LeaseCallbacks
// or LeaseHandlers given to Acquire): on_data with the connection's input
// buffer, on_peer_shutdown, on_high_water, on_low_water, on_close. They start
// after Acquire's `done` received the lease and returned, and none starts after
// Release() returns (one already running when Release is called from another
// thread may finish after it; the connection returns to the pool once it has).
// Released from inside one of its own callbacks (say on_data, once the response
// is complete), the connection is back in the pool when Release returns, and
// may already have been handed to a waiting request: do not touch it after
// Release, and consume the response before (unread input makes it not
// reusable). The pool keeps its own bookkeeping in the connection's context
// (Connection::SetContext): do not replace it on a pooled connection; keep
// per-request state in the LeaseCallbacks' closures instead.
//
// Draining: Drain() stops handing out connections: from then on Acquire fails
// with FailedPrecondition, queued requests fail with Unavailable, idle
// connections are closed, leased ones stay usable and are closed when
// released; when the last connection has closed the pool is drained (the
// callback runs) and stays closed.
//
// Threading: Acquire's `done` runs exactly once:
//   - before Acquire returns, on the calling thread, when it is answered at
//     once: an idle connection was handed out, or the request failed
//     (draining, queue full, deadline already passed, malformed endpoint);
//   - otherwise where the answer came from, which is one of:
//     the thread that released a connection for it (or, if Release came
//     from another thread while one of that connection's callbacks was
//     running, that callback's thread right after it), inside the
//     connection's Dispatch exclusion (see Connection::Dispatch);
//     where the loop runs handlers, for a connection that finished
//     connecting (or failed to) and for a deadline that passed;
//     the thread calling Drain(), CancelAcquire() or the destructor.
// A `done` that gets a lease runs inside that connection's Dispatch
// exclusion: none of the lease's callbacks runs before `done` returns (a
// server that speaks first is heard after `done` has the lease), and a
// Dispatch on that connection from inside `done` runs after it.
// Health-check hooks run on the thread handing out / releasing the
// connection, excluded from that connection's callbacks (they may read
// conn->input()). Neither `done` nor the hooks may block.
//
// Thread-safety: every member may be called from any thread, including from
// inside the pool's and the connections' callbacks, except the destructor.
//
// Ownership: the pool borrows the EventLoop, which must outlive it; destroy
// the pool before the loop, and not from inside its callbacks. The pool owns
// its TcpClient and, while they are open, the connections. A Lease shares
// ownership of its connection; leases may outlive the pool (the destructor
// closes every connection, leased ones included: their holders get on_close
// with CloseReason::kStopped, and Release then does nothing).
#ifndef MILL_IO_CONNPOOL_CONNECTION_POOL_H_
#define MILL_IO_CONNPOOL_CONNECTION_POOL_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "connpool/endpoint_set.h"
#include "connpool/pool_stats.h"
#include "net/byte_buffer.h"
#include "net/connection.h"
#include "net/connection_layer.h"
#include "net/tcp_client.h"
#include "reactor/event_loop.h"

namespace mill {

namespace connpool_internal {
class PoolCore;
struct Entry;
class LeaseSlot;
}  // namespace connpool_internal

class Lease;

// The callbacks of a leased connection, like ConnectionCallbacks (minus
// on_connect: a lease is handed over open). Every one is optional. Without
// on_data, input stays in the buffer until consumed (from a Dispatch task,
// say); as for any Connection, a buffer that reaches max_input_bytes closes
// the connection (kInputOverflow) unless the holder paused reading; without
// on_peer_shutdown, the pool closes the connection on EOF (after
// pending output), as a Connection does without one. on_close runs when the
// connection closes while leased (not after Release).
struct LeaseCallbacks {
  std::function<void(const ConnectionPtr&, ByteBuffer& input)> on_data;
  std::function<void(const ConnectionPtr&)> on_peer_shutdown;
  std::function<void(const ConnectionPtr&, size_t pending)> on_high_water;
  std::function<void(const ConnectionPtr&)> on_low_water;
  // Everything sent has been written (see ConnectionCallbacks).
  std::function<void(const ConnectionPtr&)> on_write_complete;
  std::function<void(const ConnectionPtr&, CloseReason, const absl::Status&)>
      on_close;
};

struct ConnectionPoolOptions {
  // The pool's TcpClient: connection options (backpressure, input bound,
  // socket options, the connection's own idle timeout) and connect timeout.
  TcpClientOptions client;

  // Open (and connecting) connections per endpoint and in total; at least 1.
  size_t max_connections_per_endpoint = 16;
  size_t max_connections = 256;
  // Idle connections kept per endpoint (0: none; every release closes).
  size_t max_idle_per_endpoint = 8;
  // Requests waiting for a connection, in total and per endpoint. A request
  // that cannot be served and cannot open a connection fails at once with
  // ResourceExhausted when either is reached (0: never wait).
  size_t max_pending = 1024;
  size_t max_pending_per_endpoint = std::numeric_limits<size_t>::max();

  // An idle connection unused this long is closed. Zero: never.
  absl::Duration idle_timeout = absl::Seconds(60);
  // Lifetime of a connection (zero: unlimited), shortened at random by up to
  // lifetime_jitter (in [0, 1]) of itself.
  absl::Duration max_lifetime = absl::ZeroDuration();
  double lifetime_jitter = 0.1;
  // How often the loop looks for expired idle connections (they are also
  // checked whenever one would be handed out). Zero: a quarter of the
  // shorter of idle_timeout and the shortest lifetime, within [10 ms, 1 s].
  absl::Duration sweep_interval = absl::ZeroDuration();

  // Connection::Probe() before handing out a reused connection (one
  // recv(MSG_PEEK) system call). Without it only what the loop already saw
  // (EOF, input, close) is checked.
  bool check_liveness = true;
  // Optional hooks: a non-OK status rejects the connection, which is closed
  // (kHealthCheck). check_on_acquire runs before a reused connection is
  // handed out (the pool then tries the next one); check_on_release when a
  // connection is released as reusable.
  std::function<absl::Status(const ConnectionPtr&)> check_on_acquire;
  std::function<absl::Status(const ConnectionPtr&)> check_on_release;

  // The response timeout of every Acquire that does not set its own
  // (AcquireOptions::response_timeout, which says what it is). Zero: none.
  absl::Duration response_timeout = absl::ZeroDuration();

  // Seed of the lifetime jitter (tests); 0: random.
  uint64_t random_seed = 0;
};

// The options of one Acquire.
struct AcquireOptions {
  // How long the request may wait for a connection, measured on the steady
  // clock from the call (the loop's timers are steady: a wall-clock step
  // neither fires nor stalls it). InfiniteDuration: no limit; zero or less:
  // an idle connection at once or DeadlineExceeded.
  absl::Duration timeout = absl::InfiniteDuration();
  // The layer to connect over (see the Acquire that takes a layer): unset,
  // the pool's own (options.client.layer); set to null, plain TCP.
  std::optional<std::shared_ptr<const ConnectionLayer>> layer;
  // Once the holder sent a request (Lease::Send), input must arrive within
  // this; otherwise the connection is aborted, the lease's on_close (handlers
  // or callbacks) gets kClosedLocally with DeadlineExceeded ("no response
  // within ..."), and it never returns to the pool. The clock
  // restarts at every Lease::Send and stops at the first input after it
  // (on_data) or when the lease ends. Sends made on the Connection itself
  // do not start it. With LeaseCallbacks it costs a small allocation per
  // Acquire (a wrapper around them). Zero: ConnectionPoolOptions::
  // response_timeout; InfiniteDuration: none.
  absl::Duration response_timeout = absl::ZeroDuration();
};

// The callbacks of a lease the pool holds for you (the Acquire that takes
// LeaseHandlers): like LeaseCallbacks, but each receives the Lease itself,
// so that the code that sees the end of a response can release it there
// (lease.Release(true)) without parking the lease in shared state. Every
// one is optional; move-only captures are fine (they are called, never
// copied). They run excluded from one another as LeaseCallbacks do.
struct LeaseHandlers {
  absl::AnyInvocable<void(Lease& lease, ByteBuffer& input)> on_data;
  absl::AnyInvocable<void(Lease& lease)> on_peer_shutdown;
  absl::AnyInvocable<void(Lease& lease, size_t pending)> on_high_water;
  absl::AnyInvocable<void(Lease& lease)> on_low_water;
  absl::AnyInvocable<void(Lease& lease)> on_write_complete;
  // The connection closed while leased (not after Release): a peer close,
  // an error, the pool's destruction (kStopped) or the response timeout
  // (kClosedLocally, DeadlineExceeded).
  absl::AnyInvocable<void(Lease& lease, CloseReason reason,
                          const absl::Status& status)>
      on_close;
};

// A leased connection: move-only. Use it through connection() / -> (or
// Send, which also starts the response timeout), give it back with
// lease.Release(reusable) (or ConnectionPool::Release). Destroying (or
// assigning over) a lease that was not released releases it as not
// reusable (the connection closes, kNotReusable): a lease dropped in the
// middle of a request leaves the connection in an unknown protocol state.
// A lease may outlive its pool: releasing it then closes the connection
// (the pool's destruction closed it already).
//
// Held by the pool (LeaseHandlers), the lease reaches its own callbacks:
//
//   mill::LeaseHandlers handlers;
//   handlers.on_data = [parser = std::make_unique<Parser>()](
//                          mill::Lease& lease, mill::ByteBuffer& in) {
//     if (parser->Feed(in) == Parser::kComplete) lease.Release(true);
//   };
//   handlers.on_close = [](mill::Lease&, mill::CloseReason,
//                          const absl::Status& why) { Fail(why); };
//   mill::AcquireOptions options;
//   options.timeout = absl::Seconds(1);            // steady clock
//   options.response_timeout = absl::Seconds(5);   // per request
//   pool->Acquire("10.0.0.7:8080", options,
//       [](absl::StatusOr<mill::Lease*> lease) {
//         if (!lease.ok()) { Fail(lease.status()); return; }
//         (void)(*lease)->Send("GET / HTTP/1.1\r\nHost: up\r\n\r\n");
//       },                                          // the pool keeps it
//       std::move(handlers));
//
// Held by you (LeaseCallbacks): Acquire's callback gets the Lease by value;
// keep it until the response is complete, then release it.
class Lease {
 public:
  Lease() = default;
  Lease(Lease&& other) noexcept = default;
  Lease& operator=(Lease&& other) noexcept;
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  ~Lease();

  // False for a default-constructed, moved-from or released lease.
  explicit operator bool() const { return conn_ != nullptr; }
  const ConnectionPtr& connection() const { return conn_; }
  Connection* operator->() const { return conn_.get(); }
  Connection& operator*() const { return *conn_; }

  // Gives the connection back: see ConnectionPool::Release. The lease is
  // empty afterwards; nothing for an empty lease. Needs no pool at hand.
  void Release(bool reusable) {
    if (conn_ != nullptr) ReleaseNow(reusable);
  }
  // Connection::Send, and (with a response timeout) starts the response
  // timeout. FailedPrecondition on an empty lease.
  absl::Status Send(absl::string_view data);

  // True when the connection was in the pool before this lease (idle, or
  // just released by another holder), so it may have gone stale; false for
  // a connection opened for this request (and handed over at once).
  bool reused() const { return reused_; }
  // The lifetime drawn for this connection (InfiniteDuration without
  // max_lifetime): it is closed once it is idle or released after
  // created + lifetime.
  absl::Duration lifetime() const;

 private:
  friend class connpool_internal::PoolCore;
  friend class connpool_internal::LeaseSlot;
  friend class ConnectionPool;
  Lease(connpool_internal::PoolCore* core,
        std::shared_ptr<connpool_internal::Entry> entry, ConnectionPtr conn,
        bool reused)
      : core_(core),
        entry_(std::move(entry)),
        conn_(std::move(conn)),
        reused_(reused) {}
  void ReleaseNow(bool reusable);

  // Alive as long as the connection (its callbacks hold it), which conn_
  // keeps alive.
  connpool_internal::PoolCore* core_ = nullptr;
  std::shared_ptr<connpool_internal::Entry> entry_;
  ConnectionPtr conn_;
  // The pool-held lease's record (LeaseHandlers), which holds this lease:
  // weak, so that the two do not keep each other alive.
  std::weak_ptr<connpool_internal::LeaseSlot> slot_;
  bool reused_ = false;
};

// What Acquire delivers: a lease, or why there is none.
using AcquireCallback = absl::AnyInvocable<void(absl::StatusOr<Lease> lease)>;
// What an Acquire with LeaseHandlers delivers: the lease the pool holds for
// you (valid until it is released or its connection closed; its handlers
// get the same one), or why there is none.
using LeaseReadyCallback =
    absl::AnyInvocable<void(absl::StatusOr<Lease*> lease)>;

// The pool. Create it for a loop, Acquire/Release from anywhere:
//
//   mill::ConnectionPoolOptions options;
//   options.max_connections_per_endpoint = 32;
//   options.idle_timeout = absl::Seconds(30);
//   auto pool = mill::ConnectionPool::Create(loop, options);
//   mill::AcquireOptions acquire;
//   acquire.timeout = absl::Seconds(2);
//   (*pool)->Acquire("upstream:80", acquire, OnReady, std::move(handlers));
//   // or, spread over a set of endpoints:
//   auto set = mill::EndpointSet::Create({"a:80", "b:80", "c:80"});
//   (*pool)->Acquire(*set, acquire, OnReady, MakeHandlers());
//
// Errors given to Acquire's callback:
//   ResourceExhausted   the queue is full (max_pending)
//   DeadlineExceeded    the deadline passed before a connection was free
//                       (after the hand-over, the response timeout's
//                       DeadlineExceeded comes to the lease's on_close)
//   FailedPrecondition  the pool is draining or drained
//   Unavailable         the pool started draining while the request waited
//   Cancelled           CancelAcquire
//   InvalidArgument     at once: an endpoint with a space in it (no
//                       "host:port" has one), a server-side layer, a
//                       negative response_timeout, a null EndpointSet
//   the connect error   the connect that would have served it failed
//                       (Unavailable, DeadlineExceeded, NotFound,
//                       InvalidArgument for a malformed endpoint: see
//                       TcpClient); a failed connect fails the oldest
//                       request of its endpoint
class ConnectionPool {
 public:
  // Identifies a queued Acquire; 0 when it was answered at once.
  using RequestId = uint64_t;

  // InvalidArgument for a null loop or bad options.
  static absl::StatusOr<std::unique_ptr<ConnectionPool>> Create(
      EventLoop* loop, ConnectionPoolOptions options = {});

  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  // Fails waiting requests (Unavailable), closes every connection (leased
  // ones too) and waits until they are closed. Not from inside callbacks.
  ~ConnectionPool();

  // Asks for a connection to `endpoint` ("host:port", "a.b.c.d:port",
  // "[v6]:port") by `deadline` (absl::InfiniteFuture(): no deadline). `done`
  // runs exactly once (see the file comment for where). `callbacks` (may be
  // null) receive the leased connection's events.
  RequestId Acquire(absl::string_view endpoint, absl::Time deadline,
                    AcquireCallback done,
                    std::shared_ptr<const LeaseCallbacks> callbacks = nullptr);
  // As above, for a connection over `layer` (null: plain TCP) instead of
  // options.client.layer. Connections are pooled by endpoint *and* layer: a
  // request is never handed a connection another layer opened, even to the
  // same endpoint (another CA, client certificate, ALPN list, or plain
  // TCP), and the per-endpoint limits count each (endpoint, layer) pair on
  // its own (stats().endpoints too). Layers are told apart by identity:
  // share one TlsClientContext per configuration (a new one per request
  // would never reuse a connection). The pool holds `layer` while the pair
  // has connections or requests. InvalidArgument at once for a server-side
  // layer.
  RequestId Acquire(absl::string_view endpoint,
                    const std::shared_ptr<const ConnectionLayer>& layer,
                    absl::Time deadline, AcquireCallback done,
                    std::shared_ptr<const LeaseCallbacks> callbacks = nullptr);
  // (The two above take a wall-clock deadline, converted once, at the call,
  // to a timeout on the steady clock; prefer the forms below.)

  // As above, with a timeout on the steady clock, the layer and the
  // response timeout in `options`.
  RequestId Acquire(absl::string_view endpoint, const AcquireOptions& options,
                    AcquireCallback done,
                    std::shared_ptr<const LeaseCallbacks> callbacks = nullptr);
  // The pool holds the lease for you: `ready` gets a pointer to it and each
  // of `handlers` gets it by reference (see Lease). `ready` runs where
  // `done` would (see the file comment), exactly once.
  RequestId Acquire(absl::string_view endpoint, const AcquireOptions& options,
                    LeaseReadyCallback ready, LeaseHandlers handlers);
  // As above, on an endpoint of `set` chosen by its balancing policy (see
  // EndpointSet). InvalidArgument at once for a null set.
  RequestId Acquire(const std::shared_ptr<EndpointSet>& set,
                    const AcquireOptions& options, LeaseReadyCallback ready,
                    LeaseHandlers handlers);

  // Withdraws a queued request: its callback runs with Cancelled on this
  // thread before this returns. False if it is no longer queued.
  bool CancelAcquire(RequestId id);

  // Gives a lease back: `reusable` returns the connection to the idle set
  // (or to the oldest request waiting for its endpoint) unless it cannot be
  // reused (closed, EOF, unread input, rejected by check_on_release, past
  // its lifetime, over the idle limit, draining); otherwise closes it after
  // pending output. Does nothing for an empty lease. Equivalent to letting
  // the lease go out of scope when `reusable` is false.
  void Release(Lease lease, bool reusable);

  // Starts draining (see the file comment); `on_drained` runs once when the
  // last connection has closed: on the thread that closed it (a loop
  // handler, or the releasing thread) or, if nothing is open, on this thread
  // before Drain returns. Later calls add callbacks (run at once once
  // drained).
  void Drain(absl::AnyInvocable<void()> on_drained = nullptr);
  bool draining() const;  // Drain() was called
  bool drained() const;   // ... and every connection has closed

  ConnectionPoolStats stats() const;
  // The underlying TcpClient's counters (connects, bytes, closes).
  TcpClientStats client_stats() const;

 private:
  ConnectionPool(EventLoop* loop,
                 std::shared_ptr<connpool_internal::PoolCore> core,
                 std::unique_ptr<TcpClient> client,
                 std::shared_ptr<const ConnectionLayer> client_layer,
                 absl::Duration response_timeout);

  RequestId AcquireOver(absl::string_view endpoint,
                        const std::shared_ptr<const ConnectionLayer>& layer,
                        absl::Duration timeout, AcquireCallback done,
                        std::shared_ptr<const LeaseCallbacks> callbacks);
  // The effective response timeout (zero: none); InvalidArgument if
  // negative.
  absl::StatusOr<absl::Duration> ResponseTimeout(
      const AcquireOptions& options) const;
  RequestId AcquireHeld(absl::string_view endpoint,
                        const AcquireOptions& options, LeaseReadyCallback ready,
                        LeaseHandlers handlers,
                        std::shared_ptr<EndpointSet> set, size_t index);

  EventLoop* const loop_;
  const absl::Duration response_timeout_;  // options'
  const std::shared_ptr<connpool_internal::PoolCore> core_;
  std::unique_ptr<TcpClient> client_;
  const std::shared_ptr<const ConnectionLayer> client_layer_;  // options'
};

}  // namespace mill

#endif  // MILL_IO_CONNPOOL_CONNECTION_POOL_H_
