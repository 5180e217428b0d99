// Connection: construction, queries, the context, and the owners' access.
// The rest is split by responsibility: connection_input.cc (starting, the
// transport's reports, the read path), connection_output.cc (Send, SendFile,
// flushing, water marks, interest), connection_close.cc (the close state
// machine, the idle timeout) and connection_executor.cc (the serial
// execution of callbacks and Dispatch tasks).
#include "net/connection.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/monotonic_clock.h"
#include "net/internal/connection_config.h"
#include "net/internal/socket_transport.h"
#include "net/internal/transport.h"

namespace mill {

absl::string_view CloseReasonName(CloseReason reason) {
  switch (reason) {
    case CloseReason::kPeerClosed:
      return "peer_closed";
    case CloseReason::kReset:
      return "reset";
    case CloseReason::kError:
      return "error";
    case CloseReason::kIdleTimeout:
      return "idle_timeout";
    case CloseReason::kClosedLocally:
      return "closed_locally";
    case CloseReason::kStopped:
      return "stopped";
    case CloseReason::kRefused:
      return "refused";
    case CloseReason::kInputOverflow:
      return "input_overflow";
    case CloseReason::kHandshakeFailed:
      return "handshake_failed";
    case CloseReason::kTruncated:
      return "truncated";
    case CloseReason::kProtocolError:
      return "protocol_error";
  }
  return "unknown";
}

std::ostream& operator<<(std::ostream& os, CloseReason reason) {
  return os << CloseReasonName(reason);
}

absl::string_view ConnectionStateName(ConnectionState state) {
  switch (state) {
    case ConnectionState::kConnecting:
      return "connecting";
    case ConnectionState::kOpen:
      return "open";
    case ConnectionState::kClosing:
      return "closing";
    case ConnectionState::kClosed:
      return "closed";
  }
  return "unknown";
}

// --- Internal plumbing ------------------------------------------------------

namespace net_internal {

const CallScopeKind kConnectionCallbacks{"connection callbacks"};

ConnectionConfig::ConnectionConfig(EventLoop* loop,
                                   ConnectionCallbacks callbacks,
                                   ConnectionOptions options)
    : loop(loop),
      callbacks(std::move(callbacks)),
      options(std::move(options)),
      low_water(std::min(this->options.low_water_mark,
                         this->options.high_water_mark)),
      idle(this->options.idle_timeout > absl::ZeroDuration()
               ? std::make_shared<IdleTracker>(loop, this->options.idle_timeout)
               : nullptr) {}

absl::Status ValidateConnectionOptions(const ConnectionOptions& options) {
  if (options.idle_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "ConnectionOptions::idle_timeout must not be negative");
  }
  if (options.read_rate < 0) {
    return absl::InvalidArgumentError(
        "ConnectionOptions::read_rate must not be negative");
  }
  if (options.max_input_bytes < 1) {
    return absl::InvalidArgumentError(
        "ConnectionOptions::max_input_bytes must be at least 1");
  }
  return absl::OkStatus();
}

ReadLimit::ReadLimit(std::vector<std::shared_ptr<TokenBucket>> buckets)
    : limiter(std::move(buckets)) {
  uint64_t smallest = min_grant;
  for (const auto& bucket : limiter.buckets()) {
    smallest = std::min<uint64_t>(smallest, bucket->burst());
  }
  min_grant = static_cast<uint32_t>(std::max<uint64_t>(smallest, 1));
}

ConnectionPtr ConnectionAccess::Create(std::shared_ptr<ConnectionOwner> owner,
                                       uint64_t id, bool outbound,
                                       TcpStream stream, SocketAddress peer,
                                       const ConnectionLayer* layer,
                                       absl::string_view server_name) {
  if (layer != nullptr) {
    return layer->NewConnection(NewConnectionArgs{
        std::move(owner), id, outbound, std::move(stream), peer, server_name});
  }
  return std::make_shared<ConnectionWithTransport<SocketTransport>>(
      Connection::PassKey(), std::move(owner), id, outbound, peer,
      /*handshake=*/false, std::move(stream));
}

int64_t ConnectionAccess::LastActivityNanos(const Connection& conn) {
  return conn.last_activity_ns_.load(std::memory_order_relaxed);
}

std::weak_ptr<Connection> ConnectionAccess::WeakOf(Connection& conn) {
  return conn.weak_from_this();
}

void ConnectionAccess::IdleExpired(const ConnectionPtr& conn) {
  conn->OnIdleExpired();
}

void ConnectionAccess::Start(const ConnectionPtr& conn) { conn->Start(); }

void ConnectionAccess::FailConnect(const ConnectionPtr& conn,
                                   absl::Status status, CloseReason reason) {
  conn->Dispatch([status = std::move(status), reason](const ConnectionPtr& c) {
    {
      CompactMutexLock lock(&c->mu_);
      if (c->phase() != Connection::Phase::kConnecting) return;
    }
    c->Teardown(reason, status);
    c->owner_->OnConnectDone(c, status);
  });
}

void ConnectionAccess::Close(const ConnectionPtr& conn, CloseReason reason,
                             absl::Status status) {
  conn->Teardown(reason, std::move(status));
}

}  // namespace net_internal

// --- Construction ------------------------------------------------------------

namespace {

std::unique_ptr<net_internal::ReadLimit> MakeReadLimit(
    const ConnectionOptions& options, const EventLoop& loop) {
  std::vector<std::shared_ptr<TokenBucket>> buckets;
  if (options.read_rate > 0) {
    const uint64_t burst =
        options.read_burst > 0
            ? options.read_burst
            : std::max<uint64_t>(1, loop.options().read_budget);
    buckets.push_back(std::make_shared<TokenBucket>(options.read_rate, burst));
  }
  if (options.shared_read_limit != nullptr) {
    buckets.push_back(options.shared_read_limit);
  }
  if (buckets.empty()) return nullptr;
  return std::make_unique<net_internal::ReadLimit>(std::move(buckets));
}

}  // namespace

Connection::Connection(PassKey,
                       std::shared_ptr<net_internal::ConnectionOwner> owner,
                       uint64_t id, bool outbound, SocketAddress peer,
                       net_internal::Transport* transport, bool handshake)
    : owner_(std::move(owner)),
      transport_(transport),
      id_(id),
      read_limit_(
          MakeReadLimit(owner_->config().options, *owner_->config().loop)),
      peer_(peer),
      // Outbound sockets start connecting (even one whose connect already
      // completed: the first writable report confirms it either way), and
      // so do accepted ones with a handshake to make first.
      phase_(outbound || handshake ? Phase::kConnecting : Phase::kOpen),
      outbound_(outbound),
      write_side_(static_cast<uint8_t>(WriteSide::kOpen)),
      input_ended_(false),
      on_close_owed_(false),
      redeliver_(false),
      above_high_water_(false),
      exec_busy_(false),
      reports_muted_(false),
      gathering_(false),
      write_complete_posted_(false) {
  last_activity_ns_.store(MonotonicNanos(), std::memory_order_relaxed);
}

Connection::~Connection() {
  if (config().idle != nullptr) config().idle->Remove(&idle_node_);
  // Normally empty: Teardown released every queued file. A connection that
  // was never started (refused) still owes its files' releases.
  net_internal::OutputQueue::Releases releases;
  {
    CompactMutexLock lock(&mu_);
    out_.Clear(&releases);
  }
  for (auto& release : releases) release();
}  // the transport (a member of the derived class) closed the socket

const net_internal::ConnectionConfig& Connection::config() const {
  return owner_->config();
}

EventLoop* Connection::loop() const { return config().loop; }

void Connection::Touch() {
  last_activity_ns_.store(MonotonicNanos(), std::memory_order_relaxed);
}

// --- Queries -----------------------------------------------------------------

SocketAddress Connection::local_address() const {
  CompactMutexLock lock(&mu_);
  if (phase() == Phase::kClosed) return SocketAddress();
  absl::StatusOr<SocketAddress> local = transport_->LocalAddress();
  return local.ok() ? *local : SocketAddress();
}

ConnectionState Connection::state() const {
  switch (phase_.load(std::memory_order_acquire)) {
    case Phase::kConnecting:
      return ConnectionState::kConnecting;
    case Phase::kOpen:
      return ConnectionState::kOpen;
    case Phase::kClosing:
      return ConnectionState::kClosing;
    default:
      return ConnectionState::kClosed;
  }
}

bool Connection::CanSendLocked() const {
  const Phase p = phase();
  return (p == Phase::kOpen || p == Phase::kConnecting) &&
         write_side() == WriteSide::kOpen;
}

bool Connection::can_send() const {
  CompactMutexLock lock(&mu_);
  return CanSendLocked();
}

bool Connection::input_ended() const {
  CompactMutexLock lock(&mu_);
  return input_ended_;
}

uint32_t Connection::pause_reasons() const {
  CompactMutexLock lock(&mu_);
  return pause_;
}

size_t Connection::pending_output_bytes() const {
  CompactMutexLock lock(&mu_);
  return out_.pending_bytes();
}

absl::Status Connection::Probe() const {
  CompactMutexLock lock(&mu_);
  if (phase() != Phase::kOpen) {
    return absl::UnavailableError(
        absl::StrCat("connection is ", ConnectionStateName(state())));
  }
  if (input_ended_) {
    return absl::UnavailableError("the peer closed the connection (EOF)");
  }
  return transport_->Probe();
}

void Connection::SetContext(std::shared_ptr<void> context) {
  {
    CompactMutexLock lock(&mu_);
    context_.swap(context);
  }
  // `context` now holds the previous one: released here, unlocked.
}

std::shared_ptr<void> Connection::GetContextVoid() const {
  CompactMutexLock lock(&mu_);
  return context_;
}

}  // namespace mill
