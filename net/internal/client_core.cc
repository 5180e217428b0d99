#include "net/internal/client_core.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "net/internal/server_core.h"

namespace mill {
namespace net_internal {

ClientCore::ClientCore(EventLoop* loop, ConnectionCallbacks callbacks,
                       TcpClientOptions options, ClientHooks hooks)
    : ConnectionOwner(std::make_shared<ConnectionConfig>(
          loop, std::move(callbacks), options.connection)),
      loop_(loop),
      options_(std::move(options)),
      hooks_(std::move(hooks)),
      resolver_(hooks_.resolver != nullptr ? hooks_.resolver
                                           : Resolver::Shared()),
      attempts_(this),
      keeper_(this) {}

ClientCore::~ClientCore() = default;

uint64_t ClientCore::ConnectTo(absl::string_view host_port,
                               ConnectCallback done, absl::Duration timeout,
                               LayerOverride layer) {
  absl::StatusOr<SocketAddress> numeric = SocketAddress::Parse(host_port);
  if (numeric.ok()) {
    return ConnectTo({*numeric}, std::string(host_port), std::move(done),
                     timeout, std::move(layer));
  }
  std::string host;
  uint16_t port = 0;
  if (!SplitHostPort(host_port, &host, &port)) {
    // No socket, no loop involvement: an immediate, synchronous answer.
    if (done) {
      done(absl::InvalidArgumentError(absl::StrCat(
          "TcpClient::Connect: '", host_port, "' is not host:port")));
    }
    return 0;
  }
  const uint64_t id = NextId();
  attempts_.Connect(id, {}, host, port, std::string(host_port), std::move(done),
                    timeout, std::move(layer));
  return id;
}

uint64_t ClientCore::ConnectTo(std::vector<SocketAddress> addresses,
                               std::string target, ConnectCallback done,
                               absl::Duration timeout, LayerOverride layer) {
  const uint64_t id = NextId();
  attempts_.Connect(id, std::move(addresses), "", 0, std::move(target),
                    std::move(done), timeout, std::move(layer));
  return id;
}

// --- Connection accounting
// -----------------------------------------------------

void ClientCore::AddLive() {
  MutexLock lock(&mu_);
  ++live_;
}

void ClientCore::DropLive() {
  MutexLock lock(&mu_);
  --live_;
  closed_.NotifyAll();
}

bool ClientCore::Adopt(const ConnectionPtr& conn) {
  MutexLock lock(&mu_);
  if (stopping_) return false;
  open_.PushBack(conn.get());
  return true;
}

void ClientCore::CloseUnowned(const ConnectionPtr& conn) {
  bool stopping;
  {
    MutexLock lock(&mu_);
    stopping = stopping_;
  }
  ConnectionAccess::Close(
      conn, stopping ? CloseReason::kStopped : CloseReason::kClosedLocally,
      absl::OkStatus());
}

void ClientCore::OnConnectDone(const ConnectionPtr& conn,
                               const absl::Status& status) {
  attempts_.OnConnectDone(conn, status);
}

void ClientCore::OnClosed(const ConnectionPtr& conn, CloseReason reason,
                          const absl::Status& status) {
  {
    MutexLock lock(&mu_);
    open_.Remove(conn.get());
    --live_;
    ++closing_;
    closed_.NotifyAll();
  }
  keeper_.OnClosed(conn, reason, status);  // (its lock comes before ours)
}

void ClientCore::OnCloseCallbackDone() {
  MutexLock lock(&mu_);
  --closing_;
  closed_.NotifyAll();
}

// --- Stopping
// ------------------------------------------------------------------

void ClientCore::Stop() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;  // from here on nothing is adopted
  }
  if (hooks_.stop_begun) hooks_.stop_begun();
  keeper_.StopAll();
  attempts_.StopAll();
  std::vector<ConnectionPtr> open = Connections();
  for (const ConnectionPtr& conn : open) {
    ConnectionAccess::Close(conn, CloseReason::kStopped, absl::OkStatus());
  }
  open.clear();
  // Cannot wait for other callbacks from inside one.
  if (InsideConnectionCallbacks()) return;
  MutexLock lock(&mu_);
  while (live_ != 0 || closing_ != 0) closed_.Wait(&mu_);
}

// --- Queries
// -------------------------------------------------------------------

std::vector<ConnectionPtr> ClientCore::Connections() const {
  MutexLock lock(&mu_);
  return open_.Snapshot();
}

size_t ClientCore::connection_count() const {
  MutexLock lock(&mu_);
  return open_.size();
}

TcpClientStats ClientCore::stats() const {
  TcpClientStats s;
  attempts_.AddStats(&s);
  {
    MutexLock lock(&mu_);
    s.active = open_.size();
  }
  const ConnectionCounters& counters = config().counters;
  s.bytes_read = counters.bytes_read.load(std::memory_order_relaxed);
  s.bytes_written = counters.bytes_written.load(std::memory_order_relaxed);
  s.write_calls = counters.write_calls.load(std::memory_order_relaxed);
  for (int i = 0; i < kCloseReasonCount; ++i) {
    s.closed_by[i] = counters.closed_by[i].load(std::memory_order_relaxed);
  }
  return s;
}

}  // namespace net_internal
}  // namespace mill
