// The state a TcpServer shares with its connections and loop callbacks.
// Internal: not part of the API.
#ifndef MILL_IO_NET_INTERNAL_SERVER_CORE_H_
#define MILL_IO_NET_INTERNAL_SERVER_CORE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "net/connection.h"
#include "net/tcp_listener.h"
#include "net/tcp_server.h"
#include "poll/event.h"
#include "poll/token.h"
#include "reactor/event_handler.h"
#include "reactor/event_loop.h"

namespace mill {
namespace net_internal {

// Tokens for the loop, unique in the process (bit 62 set).
Token NextToken();

// Depth of server callbacks on this thread (Stop() from inside one, in pool
// mode, is deferred to the loop thread).
int& CallbackDepth();

// Marks the current thread as running `conn`'s handler (so Close() from a
// callback is carried out when the handler returns) and as inside a server
// callback.
class HandlerScope {
 public:
  explicit HandlerScope(Connection* conn);
  ~HandlerScope();
  HandlerScope(const HandlerScope&) = delete;
  HandlerScope& operator=(const HandlerScope&) = delete;

 private:
  Connection* const conn_;
  const std::thread::id previous_;
};

// What the loop calls for a connection; shares ownership of it until the
// registration's last invocation.
class ConnectionHandler final : public EventHandler {
 public:
  explicit ConnectionHandler(std::shared_ptr<Connection> conn)
      : conn_(std::move(conn)) {}
  void HandleEvent(const Event& event) override { conn_->HandleEvent(event); }

 private:
  const std::shared_ptr<Connection> conn_;
};

struct ServerCore : std::enable_shared_from_this<ServerCore> {
  ServerCore(EventLoop* loop, TcpServerCallbacks callbacks,
             TcpServerOptions options);
  ~ServerCore();

  // The listener's handler: accepts up to max_accepts_per_event.
  void OnAcceptable();
  void Adopt(int fd, const SocketAddress& peer);
  // Accepts one pending connection through the spare descriptor and closes
  // it. False when the spare could not be reopened.
  bool ShedOneWithReserve();
  void PauseAccepting();
  // Called by Connection::Teardown once the socket is closed.
  void OnClosed(const ConnectionPtr& conn, CloseReason reason,
                const absl::Status& status);
  void StopNow();

  EventLoop* const loop;
  const TcpServerCallbacks callbacks;
  const TcpServerOptions options;
  const size_t low_water;  // effective low-water mark

  TcpListener listener;  // owned by the listener handler after Create
  Token listener_token;
  int reserve_fd = -1;  // touched only by the listener handler and StopNow

  mutable std::mutex mu;
  absl::flat_hash_map<uint64_t, ConnectionPtr> connections;  // Guarded by mu.
  bool stopping = false;                                     // Guarded by mu.
  bool listener_registered = false;                          // Guarded by mu.

  std::atomic<uint64_t> next_id{1};
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> refused{0};
  std::atomic<uint64_t> refused_no_descriptor{0};
  std::atomic<uint64_t> accept_errors{0};
  std::atomic<uint64_t> accept_pauses{0};
  std::atomic<uint64_t> bytes_read{0};
  std::atomic<uint64_t> bytes_written{0};
  std::atomic<uint64_t> high_water_events{0};
  std::atomic<uint64_t> rate_limit_pauses{0};
  std::atomic<uint64_t> closed_by[kCloseReasonCount] = {};
};

}  // namespace net_internal
}  // namespace mill

#endif  // MILL_IO_NET_INTERNAL_SERVER_CORE_H_
