// The state a TcpServer shares with its connections and its listener's
// handler. Internal: not part of the API.
#ifndef MILL_IO_NET_INTERNAL_SERVER_CORE_H_
#define MILL_IO_NET_INTERNAL_SERVER_CORE_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "base/mutex.h"
#include "net/connection.h"
#include "net/internal/connection_config.h"
#include "net/internal/connection_list.h"
#include "net/tcp_listener.h"
#include "net/tcp_server.h"
#include "reactor/event_loop.h"

namespace mill {
namespace net_internal {

class ServerCore final : public ConnectionOwner,
                         public std::enable_shared_from_this<ServerCore> {
 public:
  ServerCore(EventLoop* loop, ConnectionCallbacks callbacks,
             TcpServerOptions options);
  ~ServerCore() override;

  // Registers the listener (after `listener` is set).
  absl::Status Start();

  // The listener's handler: accepts up to max_accepts_per_event.
  void OnAcceptable();
  // Closes the listener and every connection (kStopped); waits for them to
  // finish closing unless called from inside a connection callback.
  void StopNow() ABSL_LOCKS_EXCLUDED(mu);

  // A handshaking connection opened, or failed its handshake.
  void OnConnectDone(const ConnectionPtr& conn,
                     const absl::Status& status) override;
  void OnClosed(const ConnectionPtr& conn, CloseReason reason,
                const absl::Status& status) override;
  void OnCloseCallbackDone() override;

  EventLoop* const loop;
  const TcpServerOptions options;

  bool is_unix = false;  // a Unix-domain listener: no TCP options
  TcpListener listener;  // used by the listener handler; closed on release

  mutable Mutex mu;
  ConnectionList connections ABSL_GUARDED_BY(mu);

  std::atomic<uint64_t> next_id{1};
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> refused{0};
  std::atomic<uint64_t> refused_no_descriptor{0};
  std::atomic<uint64_t> accept_errors{0};
  std::atomic<uint64_t> accept_pauses{0};
  std::atomic<uint64_t> handshakes_failed{0};

 private:
  void Adopt(int fd, const SocketAddress& peer);
  // Accepts one pending connection through the spare descriptor and closes
  // it. False when the spare could not be reopened.
  bool ShedOneWithReserve();
  void PauseAccepting();

  CondVar closed_cv_;  // with mu: connections shrank
  bool stopping_ ABSL_GUARDED_BY(mu) = false;
  size_t closing_ ABSL_GUARDED_BY(mu) = 0;  // on_close calls under way
  bool listener_released_ ABSL_GUARDED_BY(mu) = true;
  // Valid while the listener is registered.
  Registration listener_registration_ ABSL_GUARDED_BY(mu);
  int reserve_fd_ = -1;  // the listener handler's (or the release's)
};

}  // namespace net_internal
}  // namespace mill

#endif  // MILL_IO_NET_INTERNAL_SERVER_CORE_H_
