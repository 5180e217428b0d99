// Adopted descriptors: a connected socket (one end of a socketpair) made a
// Connection by TcpClient::Adopt, a listening socket served by
// TcpServer::Adopt, and the clear errors for descriptors of the wrong kind.
// Both dispatch modes.
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "net/socket_address.h"
#include "net/tcp_client.h"
#include "net/tcp_listener.h"
#include "net/tcp_server.h"
#include "net/testing/echo_clients.h"
#include "net/testing/unix_fixture.h"
#include "net/unix_credentials.h"

namespace mill {
namespace {

using net_testing::EchoOnce;
using net_testing::RoundTrip;
using net_testing::UnixTest;
using net_testing::WaitFor;

bool IsOpen(int fd) { return ::fcntl(fd, F_GETFD) >= 0; }

// A descriptor of each wrong kind, closed on destruction.
struct WrongKinds {
  WrongKinds() {
    int p[2];
    EXPECT_EQ(::pipe2(p, O_CLOEXEC), 0);
    pipe_read = p[0];
    pipe_write = p[1];
    datagram = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    unconnected = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  }
  ~WrongKinds() {
    for (int fd : {pipe_read, pipe_write, datagram, unconnected}) ::close(fd);
  }
  int pipe_read = -1;
  int pipe_write = -1;
  int datagram = -1;
  int unconnected = -1;
};

void ExpectInvalid(const absl::Status& status, absl::string_view says) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), says))
      << status << " should say '" << says << "'";
}

INSTANTIATE_TEST_SUITE_P(Modes, UnixTest,
                         ::testing::Values(DispatchMode::kPool,
                                           DispatchMode::kDirect),
                         net_testing::ModeName);

TEST_P(UnixTest, AdoptsOneEndOfASocketpair) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  const int ours = sv[0];
  const int theirs = sv[1];
  timeval tv = {10, 0};
  ASSERT_EQ(setsockopt(theirs, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);

  absl::StatusOr<PeerCredentials> who_on_connect =
      absl::UnknownError("on_connect did not run");
  ConnectionCallbacks callbacks;
  callbacks.on_connect = [&who_on_connect](const ConnectionPtr& c) {
    who_on_connect = GetPeerCredentials(*c);  // on this thread, in Adopt
  };
  TcpClientOptions options;
  options.connection.socket.no_delay = true;  // skipped on a Unix socket
  TcpClient* client = MakeClient(options, callbacks);
  ASSERT_NE(client, nullptr);
  absl::StatusOr<ConnectionPtr> conn = client->Adopt(ours);
  ASSERT_TRUE(conn.ok()) << conn.status();
  ASSERT_TRUE(who_on_connect.ok()) << who_on_connect.status();
  EXPECT_EQ(who_on_connect->pid, ::getpid());
  EXPECT_EQ(who_on_connect->uid, ::getuid());
  EXPECT_TRUE((*conn)->peer_address().is_unix());
  EXPECT_EQ((*conn)->peer_address().ToString(), "unix:");  // unnamed
  EXPECT_EQ(client->connection_count(), 1u);
  EXPECT_TRUE(::fcntl(ours, F_GETFL) & O_NONBLOCK);

  // Both directions through the adopted connection.
  ASSERT_EQ(::send(theirs, "ping", 4, MSG_NOSIGNAL), 4);
  EXPECT_TRUE(WaitFor([&] { return received() == "ping"; })) << received();
  ASSERT_TRUE((*conn)->Send("pong").ok());
  char buf[8] = {};
  ASSERT_EQ(::recv(theirs, buf, sizeof(buf), 0), 4);
  EXPECT_EQ(std::string(buf, 4), "pong");

  // The client owns it: Stop closes it, the other end reads EOF.
  client->Stop();
  EXPECT_EQ(::recv(theirs, buf, sizeof(buf), 0), 0);
  EXPECT_EQ(client->connection_count(), 0u);
  ::close(theirs);
}

TEST_P(UnixTest, ClientAdoptRejectsWrongDescriptorsAndLeavesThemOpen) {
  TcpClient* client = MakeClient();
  ASSERT_NE(client, nullptr);
  WrongKinds wrong;
  ExpectInvalid(client->Adopt(-1).status(), "bad descriptor");
  ExpectInvalid(client->Adopt(wrong.pipe_read).status(), "is not a socket");
  ExpectInvalid(client->Adopt(wrong.datagram).status(), "SOCK_DGRAM");
  ExpectInvalid(client->Adopt(wrong.unconnected).status(), "not connected");
  absl::StatusOr<TcpListener> listener =
      TcpListener::Bind(UnixAddress("l.sock"));
  ASSERT_TRUE(listener.ok()) << listener.status();
  ExpectInvalid(client->Adopt(listener->fd()).status(), "listening socket");
  for (int fd :
       {wrong.pipe_read, wrong.datagram, wrong.unconnected, listener->fd()}) {
    EXPECT_TRUE(IsOpen(fd)) << fd;
  }
  EXPECT_EQ(client->connection_count(), 0u);
}

TEST_P(UnixTest, ClientAdoptAfterStopIsCancelled) {
  TcpClient* client = MakeClient();
  ASSERT_NE(client, nullptr);
  client->Stop();
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  absl::StatusOr<ConnectionPtr> conn = client->Adopt(sv[0]);
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.status().code(), absl::StatusCode::kCancelled);
  char c;
  EXPECT_EQ(::recv(sv[1], &c, 1, 0), 0);  // sv[0] was closed
  ::close(sv[1]);
}

TEST_P(UnixTest, ServerAdoptsAListeningUnixSocket) {
  const SocketAddress address = UnixAddress("adopted.sock");
  absl::StatusOr<TcpListener> listener = TcpListener::Bind(address);
  ASSERT_TRUE(listener.ok()) << listener.status();
  const int fd = listener->Release();
  absl::StatusOr<std::unique_ptr<TcpServer>> server =
      TcpServer::Adopt(loop_.get(), fd, EchoCallbacks());
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ((*server)->local_address(), address);
  EXPECT_EQ(EchoOnce(address, "adopted"), "adopted");
  servers_.push_back(*std::move(server));
}

TEST_P(UnixTest, ServerAdoptsAListeningTcpSocket) {
  // As a parent process would hand one down: blocking, inheritable.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  const SocketAddress loopback = SocketAddress::LoopbackIPv4(0);
  ASSERT_EQ(::bind(fd, loopback.sockaddr_ptr(), loopback.sockaddr_len()), 0);
  ASSERT_EQ(::listen(fd, 16), 0);
  absl::StatusOr<std::unique_ptr<TcpServer>> server =
      TcpServer::Adopt(loop_.get(), fd, EchoCallbacks());
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_TRUE(::fcntl(fd, F_GETFD) & FD_CLOEXEC);
  EXPECT_TRUE(::fcntl(fd, F_GETFL) & O_NONBLOCK);
  const uint16_t port = (*server)->local_address().port();
  EXPECT_NE(port, 0);
  absl::StatusOr<net_testing::TestClient> client =
      net_testing::TestClient::Connect(port);
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE(client->SendAll("tcp adopted").ok());
  EXPECT_EQ(client->RecvExactly(11), "tcp adopted");
  servers_.push_back(*std::move(server));
}

TEST_P(UnixTest, ServerAdoptRejectsWrongDescriptorsAndLeavesThemOpen) {
  WrongKinds wrong;
  auto adopt = [this](int fd) {
    return TcpServer::Adopt(loop_.get(), fd, EchoCallbacks()).status();
  };
  ExpectInvalid(adopt(-1), "bad descriptor");
  ExpectInvalid(adopt(wrong.pipe_write), "is not a socket");
  ExpectInvalid(adopt(wrong.datagram), "SOCK_DGRAM");
  ExpectInvalid(adopt(wrong.unconnected), "is not listening");
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  ExpectInvalid(adopt(sv[0]), "is not listening");
  for (int fd : {wrong.pipe_write, wrong.datagram, wrong.unconnected, sv[0]}) {
    EXPECT_TRUE(IsOpen(fd)) << fd;
  }
  ::close(sv[0]);
  ::close(sv[1]);
  EXPECT_EQ(TcpServer::Adopt(nullptr, wrong.unconnected, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace mill
