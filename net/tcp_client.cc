// TcpClient: the public face. The work is done by net_internal::ClientCore
// (the connections' owner, Stop), ConnectAttempts (Connect: lookup, RFC 8305
// attempts, timeout, cancel), Keeper (KeepConnected) and the shared
// Resolver.
#include "net/tcp_client.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "net/internal/client_core.h"
#include "net/internal/connection_config.h"
#include "net/internal/socket_types.h"
#include "net/internal/socket_util.h"

namespace mill {
namespace net_internal {

absl::StatusOr<std::unique_ptr<TcpClient>> TcpClientAccess::Create(
    EventLoop* loop, ConnectionCallbacks callbacks, TcpClientOptions options,
    ClientHooks hooks) {
  if (loop == nullptr) {
    return absl::InvalidArgumentError("TcpClient::Create: null loop");
  }
  if (options.layer != nullptr && options.layer->is_server()) {
    return absl::InvalidArgumentError(
        "TcpClientOptions::layer is a server-side layer (use the client "
        "context)");
  }
  if (absl::Status s = ValidateConnectionOptions(options.connection); !s.ok()) {
    return s;
  }
  if (options.connect_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "TcpClientOptions::connect_timeout must be positive");
  }
  if (options.attempt_delay < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "TcpClientOptions::attempt_delay must not be negative");
  }
  return std::unique_ptr<TcpClient>(new TcpClient(std::make_shared<ClientCore>(
      loop, std::move(callbacks), std::move(options), std::move(hooks))));
}

}  // namespace net_internal

absl::StatusOr<std::unique_ptr<TcpClient>> TcpClient::Create(
    EventLoop* loop, ConnectionCallbacks callbacks, TcpClientOptions options) {
  return net_internal::TcpClientAccess::Create(loop, std::move(callbacks),
                                               std::move(options), {});
}

TcpClient::TcpClient(std::shared_ptr<net_internal::ClientCore> core)
    : core_(std::move(core)) {}

TcpClient::~TcpClient() { core_->Stop(); }

TcpClient::ConnectId TcpClient::Connect(const SocketAddress& address,
                                        ConnectCallback done,
                                        absl::Duration timeout) {
  return core_->ConnectTo({address}, address.ToString(), std::move(done),
                          timeout);
}

TcpClient::ConnectId TcpClient::Connect(absl::string_view host_port,
                                        ConnectCallback done,
                                        absl::Duration timeout) {
  return core_->ConnectTo(host_port, std::move(done), timeout);
}

TcpClient::ConnectId TcpClient::Connect(
    absl::string_view host_port, std::shared_ptr<const ConnectionLayer> layer,
    ConnectCallback done, absl::Duration timeout) {
  if (layer != nullptr && layer->is_server()) {
    if (done) {
      done(absl::InvalidArgumentError(absl::StrCat(
          "TcpClient::Connect(", host_port,
          "): a server-side layer (use the client side, TlsClientContext)")));
    }
    return 0;
  }
  return core_->ConnectTo(host_port, std::move(done), timeout,
                          std::move(layer));
}

TcpClient::ConnectId TcpClient::Connect(std::vector<SocketAddress> addresses,
                                        ConnectCallback done,
                                        absl::Duration timeout) {
  if (addresses.empty()) {
    if (done) {
      done(absl::InvalidArgumentError("TcpClient::Connect: no address"));
    }
    return 0;
  }
  std::string target = addresses.front().ToString();
  if (addresses.size() > 1) {
    absl::StrAppend(&target, " (+", addresses.size() - 1, " more)");
  }
  return core_->ConnectTo(std::move(addresses), std::move(target),
                          std::move(done), timeout);
}

absl::StatusOr<ConnectionPtr> TcpClient::Adopt(int fd) {
  absl::Status status = net_internal::CheckStreamSocket(fd, /*listening=*/false,
                                                        "TcpClient::Adopt");
  if (!status.ok()) return status;
  sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  int err = net_internal::kNoSocketError;
  if (net_internal::GetPeerName(fd, reinterpret_cast<sockaddr*>(&ss), &len,
                                &err) != 0) {
    if (net_internal::ClassifySocketError(err) ==
        net_internal::SocketErrorKind::kNotConnected) {
      return absl::InvalidArgumentError(absl::StrCat(
          "TcpClient::Adopt: descriptor ", fd, " is not connected"));
    }
    return net_internal::SocketErrorStatus(err,
                                           "TcpClient::Adopt: getpeername");
  }
  absl::StatusOr<SocketAddress> peer =
      SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ss), len);
  if (!peer.ok()) return peer.status();
  if (status = net_internal::SetCloseOnExec(fd); !status.ok()) return status;
  absl::StatusOr<TcpStream> stream =
      TcpStream::Adopt(fd, core_->options().connection.socket);
  if (!stream.ok()) return stream.status();  // released: the caller's
  core_->AddLive();
  ConnectionPtr conn = net_internal::ConnectionAccess::Create(
      core_, core_->NextId(), /*outbound=*/false, *std::move(stream), *peer);
  if (!core_->Adopt(conn)) {
    conn.reset();  // never started: its destructor closes the socket
    core_->DropLive();
    return absl::CancelledError("TcpClient::Adopt: the client is stopped");
  }
  net_internal::ConnectionAccess::Start(conn);  // on_connect, registration
  return conn;
}

bool TcpClient::Cancel(ConnectId id) {
  return core_->attempts().Cancel(id,
                                  absl::CancelledError("connect cancelled"));
}

absl::StatusOr<TcpClient::ConnectId> TcpClient::KeepConnected(
    absl::string_view host_port, KeepConnectedOptions options) {
  return core_->keeper().Keep(host_port, std::move(options));
}

absl::StatusOr<TcpClient::ConnectId> TcpClient::KeepConnected(
    absl::string_view host_port, BackoffPolicy backoff) {
  KeepConnectedOptions options;
  options.backoff = backoff;
  return KeepConnected(host_port, std::move(options));
}

ConnectionPtr TcpClient::CurrentConnection(ConnectId id) const {
  return core_->keeper().Current(id);
}

bool TcpClient::StopKeepingConnected(ConnectId id, bool close) {
  return core_->keeper().StopKeeping(id, close);
}

void TcpClient::Stop() { core_->Stop(); }

std::vector<ConnectionPtr> TcpClient::Connections() const {
  return core_->Connections();
}

size_t TcpClient::connection_count() const { return core_->connection_count(); }

TcpClientStats TcpClient::stats() const { return core_->stats(); }

}  // namespace mill
