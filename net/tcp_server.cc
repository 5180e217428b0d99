#include "net/tcp_server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "net/internal/server_core.h"
#include "net/internal/socket_util.h"

namespace mill {
namespace net_internal {

Token NextToken() {
  static std::atomic<uint64_t> next{TcpServer::kTokenBase};
  return Token(next.fetch_add(1, std::memory_order_relaxed));
}

int& CallbackDepth() {
  static thread_local int depth = 0;
  return depth;
}

HandlerScope::HandlerScope(Connection* conn)
    : conn_(conn),
      previous_(conn->handler_thread_.exchange(std::this_thread::get_id(),
                                               std::memory_order_acq_rel)) {
  ++CallbackDepth();
}

HandlerScope::~HandlerScope() {
  --CallbackDepth();
  conn_->handler_thread_.store(previous_, std::memory_order_release);
}

namespace {

int OpenReserve() { return ::open("/dev/null", O_RDONLY | O_CLOEXEC); }

}  // namespace

ServerCore::ServerCore(EventLoop* loop, TcpServerCallbacks callbacks,
                       TcpServerOptions options)
    : loop(loop),
      callbacks(std::move(callbacks)),
      options(std::move(options)),
      low_water(std::min(this->options.low_water_mark,
                         this->options.high_water_mark)) {}

ServerCore::~ServerCore() { CloseFd(reserve_fd); }

void ServerCore::OnAcceptable() {
  const int limit = std::max(1, options.max_accepts_per_event);
  for (int i = 0; i < limit; ++i) {
    sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    const int fd = ::accept4(listener.fd(), reinterpret_cast<sockaddr*>(&ss),
                             &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      absl::StatusOr<SocketAddress> peer =
          SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ss), len);
      Adopt(fd, peer.ok() ? *peer : SocketAddress());
      continue;
    }
    switch (errno) {
      case EAGAIN:
#if EWOULDBLOCK != EAGAIN
      case EWOULDBLOCK:
#endif
        return;
      case EINTR:
      case ECONNABORTED:
      case EPROTO:
        continue;  // that connection is gone; try the next
      case EMFILE:
      case ENFILE:
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
  if (reserve_fd < 0) reserve_fd = OpenReserve();  // freed since last time?
  if (reserve_fd < 0) return false;
  CloseFd(reserve_fd);
  reserve_fd = -1;
  const int fd = ::accept4(listener.fd(), nullptr, nullptr, SOCK_CLOEXEC);
  const int accept_errno = errno;
  if (fd >= 0) {
    CloseFd(fd);
    refused_no_descriptor.fetch_add(1, std::memory_order_relaxed);
    closed_by[static_cast<int>(CloseReason::kRefused)].fetch_add(
        1, std::memory_order_relaxed);
  }
  reserve_fd = OpenReserve();
  if (fd < 0 && accept_errno != EAGAIN && accept_errno != EWOULDBLOCK &&
      accept_errno != ECONNABORTED) {
    return false;  // still failing: another thread took the descriptor
  }
  return reserve_fd >= 0;
}

void ServerCore::PauseAccepting() {
  {
    std::lock_guard<std::mutex> lock(mu);
    if (stopping || !listener_registered) return;
  }
  accept_pauses.fetch_add(1, std::memory_order_relaxed);
  // A listening socket never reports PRIORITY: this parks the registration.
  (void)loop->Reregister(listener_token, Interest::Priority());
  std::weak_ptr<ServerCore> weak = weak_from_this();
  (void)loop->RunAfter(options.accept_retry_delay, [weak] {
    std::shared_ptr<ServerCore> self = weak.lock();
    if (self == nullptr) return;
    std::lock_guard<std::mutex> lock(self->mu);
    if (self->stopping || !self->listener_registered) return;
    (void)self->loop->Reregister(self->listener_token, Interest::Readable());
  });
}

void ServerCore::Adopt(int fd, const SocketAddress& peer) {
  TcpStream stream = *TcpStream::Adopt(fd);  // fd >= 0: cannot fail here
  // Socket options are best effort: a failure is not worth a refusal.
  if (options.connection.no_delay) (void)stream.SetNoDelay(true);
  if (options.connection.keep_alive) (void)stream.SetKeepAlive(true);

  std::vector<std::shared_ptr<TokenBucket>> buckets;
  if (options.read_rate_per_connection > 0) {
    const uint64_t burst =
        options.read_burst_per_connection > 0
            ? options.read_burst_per_connection
            : std::max<uint64_t>(1, loop->options().read_budget);
    buckets.push_back(std::make_shared<TokenBucket>(
        options.read_rate_per_connection, burst, options.rate_limit_clock));
  }
  if (options.global_read_limit != nullptr) {
    buckets.push_back(options.global_read_limit);
  }

  const uint64_t id = next_id.fetch_add(1, std::memory_order_relaxed);
  ConnectionPtr conn(new Connection(shared_from_this(), id, NextToken(),
                                    std::move(stream), peer,
                                    RateLimiter(std::move(buckets))));
  {
    std::lock_guard<std::mutex> lock(mu);
    if (stopping) return;  // conn's destructor closes the socket
    if (options.max_connections > 0 &&
        connections.size() >= options.max_connections) {
      refused.fetch_add(1, std::memory_order_relaxed);
      closed_by[static_cast<int>(CloseReason::kRefused)].fetch_add(
          1, std::memory_order_relaxed);
      return;  // closed at once by conn's destructor
    }
    connections.emplace(id, conn);
  }
  accepted.fetch_add(1, std::memory_order_relaxed);
  if (callbacks.on_connect) {
    try {
      HandlerScope scope(conn.get());
      callbacks.on_connect(conn);
    } catch (...) {
      // Not registered yet: close it here; the loop reports the exception.
      conn->Teardown(CloseReason::kError,
                     absl::InternalError("on_connect threw"));
      throw;
    }
  }
  bool stopped;
  {
    std::lock_guard<std::mutex> lock(mu);
    stopped = stopping;  // Stop() from inside on_connect
  }
  if (stopped) {
    conn->Teardown(CloseReason::kServerStopped, absl::OkStatus());
    return;
  }
  conn->FinishAccept();
}

void ServerCore::OnClosed(const ConnectionPtr& conn, CloseReason reason,
                          const absl::Status& status) {
  {
    std::lock_guard<std::mutex> lock(mu);
    connections.erase(conn->id());
  }
  closed_by[static_cast<int>(reason)].fetch_add(1, std::memory_order_relaxed);
  if (callbacks.on_close) callbacks.on_close(conn, reason, status);
}

void ServerCore::StopNow() {
  bool deregister_listener;
  {
    std::lock_guard<std::mutex> lock(mu);
    stopping = true;
    deregister_listener = std::exchange(listener_registered, false);
  }
  if (deregister_listener) {
    // Waits for an accept in flight; after this no connection is added.
    (void)loop->Deregister(listener_token);
    listener.Close();
    CloseFd(reserve_fd);
    reserve_fd = -1;
  }
  std::vector<ConnectionPtr> open;
  {
    std::lock_guard<std::mutex> lock(mu);
    open.reserve(connections.size());
    for (const auto& entry : connections) open.push_back(entry.second);
  }
  for (const ConnectionPtr& conn : open) {
    conn->Teardown(CloseReason::kServerStopped, absl::OkStatus());
  }
}

}  // namespace net_internal

// --- TcpServer
// ------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<TcpServer>> TcpServer::Create(
    EventLoop* loop, const SocketAddress& address, TcpServerCallbacks callbacks,
    TcpServerOptions options) {
  if (loop == nullptr) {
    return absl::InvalidArgumentError("TcpServer::Create: null loop");
  }
  if (options.idle_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "TcpServerOptions::idle_timeout must not be negative");
  }
  if (options.read_rate_per_connection < 0) {
    return absl::InvalidArgumentError(
        "TcpServerOptions::read_rate_per_connection must not be negative");
  }
  if (options.accept_retry_delay <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "TcpServerOptions::accept_retry_delay must be positive");
  }
  absl::StatusOr<TcpListener> listener =
      TcpListener::Bind(address, options.listener);
  if (!listener.ok()) return listener.status();
  absl::StatusOr<SocketAddress> bound = listener->local_address();
  if (!bound.ok()) return bound.status();

  auto core = std::make_shared<net_internal::ServerCore>(
      loop, std::move(callbacks), std::move(options));
  core->listener = std::move(*listener);
  core->reserve_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (core->reserve_fd < 0) {
    return net_internal::ErrnoStatus(errno, "open(/dev/null) for the spare");
  }
  core->listener_token = net_internal::NextToken();
  {
    std::lock_guard<std::mutex> lock(core->mu);
    core->listener_registered = true;
  }
  // The handler keeps the core alive until the listener is deregistered.
  absl::Status status = loop->Register(
      core->listener.fd(), core->listener_token, Interest::Readable(),
      [core](const Event&) { core->OnAcceptable(); });
  if (!status.ok()) {
    std::lock_guard<std::mutex> lock(core->mu);
    core->listener_registered = false;
    return status;
  }
  return std::unique_ptr<TcpServer>(new TcpServer(std::move(core), *bound));
}

TcpServer::TcpServer(std::shared_ptr<net_internal::ServerCore> core,
                     SocketAddress local_address)
    : core_(std::move(core)), local_address_(local_address) {}

TcpServer::~TcpServer() { core_->StopNow(); }

void TcpServer::Stop() {
  if (net_internal::CallbackDepth() > 0 &&
      core_->loop->options().dispatch_mode == DispatchMode::kPool) {
    // Inside a handler on a worker: Deregister of other connections would
    // wait for their handlers, which may be doing the same. The loop thread
    // runs no handler in pool mode, so it can wait safely.
    std::shared_ptr<net_internal::ServerCore> core = core_;
    if (core_->loop->RunInLoop([core] { core->StopNow(); }).ok()) return;
  }
  core_->StopNow();
}

size_t TcpServer::Broadcast(absl::string_view data) {
  size_t sent = 0;
  for (const ConnectionPtr& conn : Connections()) {
    if (conn->Send(data).ok()) ++sent;
  }
  return sent;
}

std::vector<ConnectionPtr> TcpServer::Connections() const {
  std::vector<ConnectionPtr> result;
  std::lock_guard<std::mutex> lock(core_->mu);
  result.reserve(core_->connections.size());
  for (const auto& entry : core_->connections) result.push_back(entry.second);
  return result;
}

size_t TcpServer::connection_count() const {
  std::lock_guard<std::mutex> lock(core_->mu);
  return core_->connections.size();
}

TcpServerStats TcpServer::stats() const {
  const net_internal::ServerCore& c = *core_;
  TcpServerStats s;
  s.accepted = c.accepted.load(std::memory_order_relaxed);
  s.refused = c.refused.load(std::memory_order_relaxed);
  s.refused_no_descriptor =
      c.refused_no_descriptor.load(std::memory_order_relaxed);
  s.accept_errors = c.accept_errors.load(std::memory_order_relaxed);
  s.accept_pauses = c.accept_pauses.load(std::memory_order_relaxed);
  s.active = connection_count();
  s.bytes_read = c.bytes_read.load(std::memory_order_relaxed);
  s.bytes_written = c.bytes_written.load(std::memory_order_relaxed);
  s.high_water_events = c.high_water_events.load(std::memory_order_relaxed);
  s.rate_limit_pauses = c.rate_limit_pauses.load(std::memory_order_relaxed);
  for (int i = 0; i < kCloseReasonCount; ++i) {
    s.closed_by[i] = c.closed_by[i].load(std::memory_order_relaxed);
  }
  return s;
}

}  // namespace mill
