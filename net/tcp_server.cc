#include "net/tcp_server.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "net/internal/server_core.h"
#include "net/internal/socket_types.h"
#include "net/internal/socket_util.h"

namespace mill {
namespace net_internal {
namespace {

int OpenReserve(int* err) { return OpenReserveDescriptor(err); }

}  // namespace

ServerCore::ServerCore(EventLoop* loop, ConnectionCallbacks callbacks,
                       TcpServerOptions options)
    : ConnectionOwner(std::make_shared<ConnectionConfig>(
          loop, std::move(callbacks), options.connection)),
      loop(loop),
      options(std::move(options)) {}

ServerCore::~ServerCore() { CloseFd(reserve_fd_); }

absl::Status ServerCore::Start() {
  int err = kNoSocketError;
  reserve_fd_ = OpenReserve(&err);
  if (reserve_fd_ < 0) {
    return SocketErrorStatus(err, "opening the spare descriptor");
  }
  MutexLock lock(&mu);
  // The handler keeps the core alive until the listener is released.
  std::shared_ptr<ServerCore> self = shared_from_this();
  absl::StatusOr<Registration> reg =
      loop->Register(listener.fd(), Interest::Readable(),
                     std::make_shared<CallbackHandler>(
                         [self](const Event&) { self->OnAcceptable(); }));
  if (!reg.ok()) return reg.status();
  listener_registration_ = *reg;
  listener_released_ = false;
  return absl::OkStatus();
}

void ServerCore::OnAcceptable() {
  const int limit = std::max(1, options.max_accepts_per_event);
  for (int i = 0; i < limit; ++i) {
    sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int err = kNoSocketError;
    const int fd = AcceptSocket(listener.fd(), reinterpret_cast<sockaddr*>(&ss),
                                &len, &err);
    if (fd >= 0) {
      absl::StatusOr<SocketAddress> peer =
          SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ss), len);
      Adopt(fd, peer.ok() ? *peer : SocketAddress());
      continue;
    }
    switch (ClassifySocketError(err)) {
      case SocketErrorKind::kWouldBlock:
        return;
      case SocketErrorKind::kInterrupted:
      case SocketErrorKind::kAborted:
      case SocketErrorKind::kProtocol:
        continue;  // that connection is gone; try the next
      case SocketErrorKind::kDescriptorLimit:
        // accept(2) fails with EMFILE before it looks at the queue: with
        // nobody waiting there is nothing to shed, and spending the spare
        // descriptor would risk losing it to another thread for good.
        // The listener reports again when somebody connects.
        if (!HasPendingConnection(listener.fd())) return;
        if (!ShedOneWithReserve()) {
          PauseAccepting();
          return;
        }
        continue;
      default:  // ENOBUFS, ENOMEM, EPERM (firewall)...
        accept_errors.fetch_add(1, std::memory_order_relaxed);
        PauseAccepting();
        return;
    }
  }
}

bool ServerCore::ShedOneWithReserve() {
  int err = kNoSocketError;
  if (reserve_fd_ < 0) reserve_fd_ = OpenReserve(&err);  // freed since?
  if (reserve_fd_ < 0) return false;
  CloseFd(reserve_fd_);
  reserve_fd_ = -1;
  int accept_error = kNoSocketError;
  const int fd = AcceptSocket(listener.fd(), nullptr, nullptr, &accept_error);
  if (fd >= 0) {
    CloseFd(fd);
    refused_no_descriptor.fetch_add(1, std::memory_order_relaxed);
    config().counters.CountClose(CloseReason::kRefused);
  }
  reserve_fd_ = OpenReserve(&err);
  const SocketErrorKind kind = ClassifySocketError(accept_error);
  if (fd < 0 && kind != SocketErrorKind::kWouldBlock &&
      kind != SocketErrorKind::kAborted) {
    return false;  // still failing: another thread took the descriptor
  }
  return reserve_fd_ >= 0;
}

void ServerCore::PauseAccepting() {
  Registration reg;
  {
    MutexLock lock(&mu);
    if (stopping_ || !listener_registration_.valid()) return;
    reg = listener_registration_;
  }
  accept_pauses.fetch_add(1, std::memory_order_relaxed);
  // Paused, not removed: the registration keeps its slot.
  (void)loop->Reregister(reg, Interest::None());
  std::weak_ptr<ServerCore> weak = weak_from_this();
  (void)loop->RunAfter(options.accept_retry_delay, [weak, reg] {
    std::shared_ptr<ServerCore> self = weak.lock();
    if (self == nullptr) return;
    MutexLock lock(&self->mu);
    if (self->stopping_ || !self->listener_registration_.valid()) return;
    (void)self->loop->Reregister(reg, Interest::Readable());
  });
}

void ServerCore::Adopt(int fd, const SocketAddress& peer) {
  TcpStream stream = *TcpStream::Adopt(fd);  // fd >= 0: cannot fail here
  // Socket options are best effort: a failure is not worth a refusal.
  // TCP options mean nothing on a Unix socket: skipped there.
  const TcpStreamOptions& socket_options = options.connection.socket;
  if (!is_unix && socket_options.no_delay) (void)stream.SetNoDelay(true);
  if (!is_unix && socket_options.keep_alive) (void)stream.SetKeepAlive(true);
  const uint64_t id = next_id.fetch_add(1, std::memory_order_relaxed);
  ConnectionPtr conn =
      ConnectionAccess::Create(shared_from_this(), id, /*outbound=*/false,
                               std::move(stream), peer, options.layer.get());
  {
    MutexLock lock(&mu);
    if (stopping_) return;  // conn's destructor closes the socket
    if (options.max_connections > 0 &&
        connections.size() >= options.max_connections) {
      refused.fetch_add(1, std::memory_order_relaxed);
      config().counters.CountClose(CloseReason::kRefused);
      return;  // closed at once by conn's destructor
    }
    connections.PushBack(conn.get());
  }
  accepted.fetch_add(1, std::memory_order_relaxed);
  ConnectionAccess::Start(conn);  // on_connect, then registration
  bool stopped;
  {
    MutexLock lock(&mu);
    stopped = stopping_;  // Stop() from inside on_connect
  }
  if (stopped) {
    ConnectionAccess::Close(conn, CloseReason::kStopped, absl::OkStatus());
  }
}

void ServerCore::OnConnectDone(const ConnectionPtr& conn,
                               const absl::Status& status) {
  if (status.ok()) return;
  handshakes_failed.fetch_add(1, std::memory_order_relaxed);
  config().counters.CountClose(CloseReason::kHandshakeFailed);
  if (options.on_handshake_failed) {
    options.on_handshake_failed(conn->peer_address(), status);
  }
}

void ServerCore::OnClosed(const ConnectionPtr& conn, CloseReason reason,
                          const absl::Status& status) {
  MutexLock lock(&mu);
  connections.Remove(conn.get());
  ++closing_;
}

void ServerCore::OnCloseCallbackDone() {
  MutexLock lock(&mu);
  --closing_;
  closed_cv_.NotifyAll();
}

void ServerCore::StopNow() {
  Registration listener_reg;
  {
    MutexLock lock(&mu);
    stopping_ = true;
    listener_reg = std::exchange(listener_registration_, Registration());
  }
  if (listener_reg.valid()) {
    // No waiting: the listener closes once its handler (an accept in
    // flight, which sees stopping_ and adds nothing) has returned.
    std::shared_ptr<ServerCore> self = shared_from_this();
    absl::Status status = loop->Deregister(listener_reg, [self] {
      self->listener.Close();
      CloseFd(self->reserve_fd_);
      self->reserve_fd_ = -1;
      MutexLock lock(&self->mu);
      self->listener_released_ = true;
      self->closed_cv_.NotifyAll();
    });
    if (absl::IsNotFound(status)) {  // otherwise the callback ran or will
      MutexLock lock(&mu);
      listener_released_ = true;
    }
  }
  std::vector<ConnectionPtr> open;
  {
    MutexLock lock(&mu);
    open = connections.Snapshot();
  }
  for (const ConnectionPtr& conn : open) {
    ConnectionAccess::Close(conn, CloseReason::kStopped, absl::OkStatus());
  }
  // Inside a connection callback, waiting could deadlock with callbacks on
  // other threads doing the same; those connections finish closing when
  // their callbacks return.
  if (InsideConnectionCallbacks()) return;
  MutexLock lock(&mu);
  while (!connections.empty() || closing_ != 0 || !listener_released_) {
    closed_cv_.Wait(&mu);
  }
}

}  // namespace net_internal

// --- TcpServer
// ------------------------------------------------------------------

namespace {

absl::Status ValidateServer(EventLoop* loop, const TcpServerOptions& options,
                            absl::string_view what) {
  if (loop == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": null loop"));
  }
  if (absl::Status s =
          net_internal::ValidateConnectionOptions(options.connection);
      !s.ok()) {
    return s;
  }
  if (options.layer != nullptr && !options.layer->is_server()) {
    return absl::InvalidArgumentError(
        "TcpServerOptions::layer is a client-side layer (use the server "
        "context)");
  }
  if (options.accept_retry_delay <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "TcpServerOptions::accept_retry_delay must be positive");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<TcpServer>> TcpServer::Create(
    EventLoop* loop, const SocketAddress& address, TcpServerCallbacks callbacks,
    TcpServerOptions options) {
  if (absl::Status s = ValidateServer(loop, options, "TcpServer::Create");
      !s.ok()) {
    return s;
  }
  absl::StatusOr<TcpListener> listener =
      TcpListener::Bind(address, options.listener);
  if (!listener.ok()) return listener.status();
  return Serve(loop, *std::move(listener), std::move(callbacks),
               std::move(options), /*release_on_error=*/false);
}

absl::StatusOr<std::unique_ptr<TcpServer>> TcpServer::Adopt(
    EventLoop* loop, int listening_fd, TcpServerCallbacks callbacks,
    TcpServerOptions options) {
  if (absl::Status s = ValidateServer(loop, options, "TcpServer::Adopt");
      !s.ok()) {
    return s;
  }
  absl::StatusOr<TcpListener> listener = TcpListener::Adopt(listening_fd);
  if (!listener.ok()) return listener.status();
  return Serve(loop, *std::move(listener), std::move(callbacks),
               std::move(options), /*release_on_error=*/true);
}

absl::StatusOr<std::unique_ptr<TcpServer>> TcpServer::Serve(
    EventLoop* loop, TcpListener listener, TcpServerCallbacks callbacks,
    TcpServerOptions options, bool release_on_error) {
  absl::StatusOr<SocketAddress> bound = listener.local_address();
  if (!bound.ok()) {
    if (release_on_error) listener.Release();
    return bound.status();
  }
  auto core = std::make_shared<net_internal::ServerCore>(
      loop, std::move(callbacks), std::move(options));
  core->is_unix = bound->is_unix();
  core->listener = std::move(listener);
  if (absl::Status s = core->Start(); !s.ok()) {
    if (release_on_error) core->listener.Release();  // the caller's again
    return s;
  }
  return std::unique_ptr<TcpServer>(new TcpServer(std::move(core), *bound));
}

TcpServer::TcpServer(std::shared_ptr<net_internal::ServerCore> core,
                     SocketAddress local_address)
    : core_(std::move(core)), local_address_(std::move(local_address)) {}

TcpServer::~TcpServer() { core_->StopNow(); }

void TcpServer::Stop() { core_->StopNow(); }

size_t TcpServer::Broadcast(absl::string_view data) {
  size_t sent = 0;
  for (const ConnectionPtr& conn : Connections()) {
    if (conn->Send(data).ok()) ++sent;
  }
  return sent;
}

std::vector<ConnectionPtr> TcpServer::Connections() const {
  MutexLock lock(&core_->mu);
  return core_->connections.Snapshot();
}

size_t TcpServer::connection_count() const {
  MutexLock lock(&core_->mu);
  return core_->connections.size();
}

TcpServerStats TcpServer::stats() const {
  const net_internal::ServerCore& c = *core_;
  const net_internal::ConnectionCounters& counters = c.config().counters;
  TcpServerStats s;
  s.accepted = c.accepted.load(std::memory_order_relaxed);
  s.refused = c.refused.load(std::memory_order_relaxed);
  s.refused_no_descriptor =
      c.refused_no_descriptor.load(std::memory_order_relaxed);
  s.accept_errors = c.accept_errors.load(std::memory_order_relaxed);
  s.accept_pauses = c.accept_pauses.load(std::memory_order_relaxed);
  s.handshakes_failed = c.handshakes_failed.load(std::memory_order_relaxed);
  s.active = connection_count();
  s.bytes_read = counters.bytes_read.load(std::memory_order_relaxed);
  s.bytes_written = counters.bytes_written.load(std::memory_order_relaxed);
  s.write_calls = counters.write_calls.load(std::memory_order_relaxed);
  s.input_bytes_copied =
      counters.input_bytes_copied.load(std::memory_order_relaxed);
  s.high_water_events =
      counters.high_water_events.load(std::memory_order_relaxed);
  s.rate_limit_pauses =
      counters.rate_limit_pauses.load(std::memory_order_relaxed);
  for (int i = 0; i < kCloseReasonCount; ++i) {
    s.closed_by[i] = counters.closed_by[i].load(std::memory_order_relaxed);
  }
  return s;
}

}  // namespace mill
