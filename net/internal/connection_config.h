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
#include "absl/time/time.h"
#include "net/connection.h"
#include "net/internal/idle_tracker.h"
#include "net/socket_address.h"
#include "net/tcp_stream.h"
#include "poll/event.h"
#include "reactor/event_loop.h"

namespace mill {
namespace net_internal {

// Totals over every connection of one owner.
struct ConnectionCounters {
  std::atomic<uint64_t> bytes_read{0};
  std::atomic<uint64_t> bytes_written{0};
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

// The owners' access to Connection's private lifecycle.
struct ConnectionAccess {
  // `stream` is accepted (kOpen) or, when `outbound`, connecting (or just
  // connected: kConnecting until its first writable event confirms it; its
  // socket options were applied by TcpStream::Connect).
  static ConnectionPtr Create(std::shared_ptr<ConnectionOwner> owner,
                              uint64_t id, bool outbound, TcpStream stream,
                              SocketAddress peer);
  // Runs on_connect and registers (kOpen), or registers for the connect's
  // completion (kConnecting). Call once, right after Create.
  static void Start(const ConnectionPtr& conn);
  // Fails a connect still in progress with `status` (OnConnectDone gets it);
  // does nothing once the connect finished. From any thread.
  static void FailConnect(const ConnectionPtr& conn, absl::Status status);
  // Closes at once with `reason` (on_close runs for an open connection).
  static void Close(const ConnectionPtr& conn, CloseReason reason,
                    absl::Status status);

  // For the IdleTracker.
  static int64_t LastActivityNanos(const Connection& conn);
  static std::weak_ptr<Connection> WeakOf(Connection& conn);
  static void IdleExpired(const ConnectionPtr& conn);
};

}  // namespace net_internal
}  // namespace mill

#endif  // MILL_IO_NET_INTERNAL_CONNECTION_CONFIG_H_
