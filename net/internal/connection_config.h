// What a Connection gets from whoever creates it (TcpServer, TcpClient): the
// shared callbacks and options, the counters it adds to, and the owner it
// reports to. Internal: not part of the API.
#ifndef MILL_IO_NET_INTERNAL_CONNECTION_CONFIG_H_
#define MILL_IO_NET_INTERNAL_CONNECTION_CONFIG_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/call_scope.h"
#include "net/connection.h"
#include "net/connection_layer.h"
#include "net/internal/idle_tracker.h"
#include "net/socket_address.h"
#include "net/tcp_stream.h"
#include "poll/event.h"
#include "ratelimit/rate_limit_group.h"
#include "reactor/event_loop.h"

namespace mill {
namespace net_internal {

// The scope of a connection's callbacks (and Dispatch tasks), keyed by the
// connection: a Close() from inside them is carried out when they return,
// and a TcpServer or TcpClient Stop() from inside any cannot wait for the
// others.
extern const CallScopeKind kConnectionCallbacks;
inline bool InsideConnectionCallbacks() {
  return CallScope::AnyActive(kConnectionCallbacks);
}

// Totals over every connection of one owner.
struct ConnectionCounters {
  std::atomic<uint64_t> bytes_read{0};
  std::atomic<uint64_t> bytes_written{0};
  // Calls that wrote output (write/writev/sendmsg, sendfile).
  std::atomic<uint64_t> write_calls{0};
  // Bytes the read path copied after reading (reads larger than the input
  // buffer's free room, growth): 0 when every read lands in place.
  std::atomic<uint64_t> input_bytes_copied{0};
  std::atomic<uint64_t> high_water_events{0};
  std::atomic<uint64_t> rate_limit_pauses{0};
  std::array<std::atomic<uint64_t>, kCloseReasonCount> closed_by{};

  void CountClose(CloseReason reason) {
    closed_by[static_cast<int>(reason)].fetch_add(1, std::memory_order_relaxed);
  }
};

// Shared, immutable after creation (the counters are atomics).
struct ConnectionConfig {
  ConnectionConfig(EventLoop* loop, ConnectionCallbacks callbacks,
                   ConnectionOptions options);

  EventLoop* const loop;
  const ConnectionCallbacks callbacks;
  const ConnectionOptions options;
  const size_t low_water;  // min(low_water_mark, high_water_mark)
  mutable ConnectionCounters counters;
  // Null without an idle timeout.
  const std::shared_ptr<IdleTracker> idle;
};

// Validates options shared by servers and clients (InvalidArgument).
absl::Status ValidateConnectionOptions(const ConnectionOptions& options);

// The creator of a connection. Calls come from the connection's callback
// context (never concurrently for one connection).
class ConnectionOwner {
 public:
  explicit ConnectionOwner(std::shared_ptr<const ConnectionConfig> config)
      : config_(std::move(config)) {}
  virtual ~ConnectionOwner() = default;

  // Shared by every connection of this owner; lives as long as the owner.
  const ConnectionConfig& config() const { return *config_; }
  // A kConnecting connection finished connecting: OK (it is open and
  // on_connect ran) or the error (it is closed; no on_close follows).
  virtual void OnConnectDone(const ConnectionPtr& conn,
                             const absl::Status& status) {}
  // The socket is closed; runs just before on_close. Every OnClosed is
  // followed by one OnCloseCallbackDone once on_close returned (or threw).
  virtual void OnClosed(const ConnectionPtr& conn, CloseReason reason,
                        const absl::Status& status) = 0;
  virtual void OnCloseCallbackDone() = 0;

 private:
  const std::shared_ptr<const ConnectionConfig> config_;
};

// A connection's read-rate limits (null without any).
struct ReadLimit {
  explicit ReadLimit(std::vector<std::shared_ptr<TokenBucket>> buckets);
  RateLimiter limiter;
  // Smallest grant worth a read: min(4 KiB, the smallest burst).
  uint32_t min_grant = 4096;
  // The timer that resumes reading; guarded by the connection's lock.
  EventLoop::TimerId resume_timer;
};

template <typename T>
class ConnectionWithTransport;

// What a ConnectionLayer gets to make a connection (see
// ConnectionAccess::Create).
struct NewConnectionArgs {
  std::shared_ptr<ConnectionOwner> owner;
  uint64_t id;
  bool outbound;
  TcpStream stream;
  SocketAddress peer;
  // Outbound: the name the client connects to (the host of "host:port",
  // else the address), for TLS's SNI and certificate check.
  absl::string_view server_name;
};

// The owners' access to Connection's private lifecycle.
struct ConnectionAccess {
  // `stream` is accepted (kOpen) or, when `outbound`, connecting (or just
  // connected: kConnecting until its first writable event confirms it; its
  // socket options were applied by TcpStream::Connect). The connection
  // moves its bytes through a SocketTransport, or through `layer`'s
  // transport when given (a layer with a handshake makes an accepted
  // connection start kConnecting too).
  static ConnectionPtr Create(std::shared_ptr<ConnectionOwner> owner,
                              uint64_t id, bool outbound, TcpStream stream,
                              SocketAddress peer,
                              const ConnectionLayer* layer = nullptr,
                              absl::string_view server_name = {});
  // For layers: a connection with a transport of type T (constructed from
  // the connection and `transport_args`), in one allocation. `handshake`:
  // it opens (on_connect) only when T's FinishConnect says so.
  template <typename T, typename... Args>
  static std::shared_ptr<ConnectionWithTransport<T>> Make(
      NewConnectionArgs& args, bool handshake, Args&&... transport_args) {
    return std::make_shared<ConnectionWithTransport<T>>(
        Connection::PassKey(), std::move(args.owner), args.id, args.outbound,
        args.peer, handshake, std::forward<Args>(transport_args)...);
  }
  // Runs on_connect and starts the transport (kOpen), or starts it for the
  // connect's completion (kConnecting). Call once, right after Create. A
  // connection closed in between (Close, FailConnect) does neither: its
  // owner already heard (OnClosed / OnConnectDone).
  static void Start(const ConnectionPtr& conn);
  // Fails a connect (or handshake) still in progress with `status`
  // (OnConnectDone gets it); does nothing once it finished. From any
  // thread.
  static void FailConnect(const ConnectionPtr& conn, absl::Status status,
                          CloseReason reason = CloseReason::kError);
  // Closes at once with `reason` (on_close runs for an open connection).
  static void Close(const ConnectionPtr& conn, CloseReason reason,
                    absl::Status status);

  // For the IdleTracker.
  static int64_t LastActivityNanos(const Connection& conn);
  static std::weak_ptr<Connection> WeakOf(Connection& conn);
  static void IdleExpired(const ConnectionPtr& conn);

  // For transports.
  static ConnectionPtr SharedOf(Connection& conn) {
    return conn.shared_from_this();
  }
  static void OnTransportEvent(Connection& conn, const Event& event) {
    conn.OnTransportEvent(event);
  }
  static Transport* TransportOf(const Connection& conn) {
    return conn.transport_;
  }

  // For tests: the interest the connection has its transport report now
  // (WRITABLE while output is pending or a connect is in progress,
  // READABLE while reading is wanted and not paused, None when neither).
  static Interest WantedInterest(const Connection& conn) {
    CompactMutexLock lock(&conn.mu_);
    return conn.ComputeInterestLocked();
  }

  // For ConnectionList.
  static Connection*& Prev(Connection& conn) { return conn.list_prev_; }
  static Connection*& Next(Connection& conn) { return conn.list_next_; }
};

// A Connection and its transport in one allocation.
template <typename T>
class ConnectionWithTransport final : public Connection {
 public:
  template <typename... Args>
  ConnectionWithTransport(Connection::PassKey key,
                          std::shared_ptr<ConnectionOwner> owner, uint64_t id,
                          bool outbound, SocketAddress peer, bool handshake,
                          Args&&... transport_args)
      // The base only stores the pointer; the member is built right after.
      : Connection(key, std::move(owner), id, outbound, peer, &transport_,
                   handshake),
        transport_(this, std::forward<Args>(transport_args)...) {}

  T& transport() { return transport_; }

 private:
  T transport_;
};

}  // namespace net_internal
}  // namespace mill

#endif  // MILL_IO_NET_INTERNAL_CONNECTION_CONFIG_H_
