// Unix-domain sockets in //net: SocketAddress's Unix forms, servers and
// clients on filesystem paths and abstract names (both dispatch modes), the
// stale-socket-file policy, and peer credentials.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "net/socket_address.h"
#include "net/tcp_client.h"
#include "net/tcp_listener.h"
#include "net/tcp_server.h"
#include "net/testing/client_fixture.h"
#include "net/testing/echo_clients.h"
#include "net/testing/unix_fixture.h"
#include "net/unix_credentials.h"

namespace mill {
namespace {

using net_testing::EchoOnce;
using net_testing::UnixTest;
using net_testing::WaitFor;

TEST(UnixAddressTest, KeepsTheIpSize) {
  // Every connection keeps its peer's address: Unix paths live out of line.
  EXPECT_EQ(sizeof(SocketAddress), 28u);
}

TEST(UnixAddressTest, ParsesAndPrintsPathsAndAbstractNames) {
  absl::StatusOr<SocketAddress> path = SocketAddress::Parse("unix:/tmp/a.sock");
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_TRUE(path->is_unix());
  EXPECT_FALSE(path->is_abstract());
  EXPECT_EQ(path->family(), AF_UNIX);
  EXPECT_EQ(path->port(), 0);
  EXPECT_EQ(path->unix_path(), "/tmp/a.sock");
  EXPECT_EQ(path->ToString(), "unix:/tmp/a.sock");
  EXPECT_EQ(path->sockaddr_len(),
            offsetof(sockaddr_un, sun_path) + sizeof("/tmp/a.sock"));

  absl::StatusOr<SocketAddress> abstract = SocketAddress::Parse("unix:@svc");
  ASSERT_TRUE(abstract.ok()) << abstract.status();
  EXPECT_TRUE(abstract->is_abstract());
  EXPECT_EQ(abstract->unix_path(), "svc");
  EXPECT_EQ(abstract->ToString(), "unix:@svc");
  // Leading NUL, then exactly the name's bytes.
  EXPECT_EQ(abstract->sockaddr_len(), offsetof(sockaddr_un, sun_path) + 4);
  EXPECT_EQ(*SocketAddress::AbstractUnix("svc"), *abstract);

  EXPECT_NE(*path, *abstract);
  EXPECT_EQ(*path, *SocketAddress::Unix("/tmp/a.sock"));
  EXPECT_NE(*path, *SocketAddress::Unix("/tmp/b.sock"));
  EXPECT_NE(*path, SocketAddress::LoopbackIPv4(0));
  // IP forms are unchanged.
  EXPECT_EQ(SocketAddress::Parse("127.0.0.1:80")->ToString(), "127.0.0.1:80");
}

TEST(UnixAddressTest, CopiesAndMovesShareOneBlock) {
  SocketAddress original = *SocketAddress::Unix("/run/x.sock");
  SocketAddress copy = original;
  SocketAddress assigned = SocketAddress::LoopbackIPv4(1);
  assigned = copy;
  SocketAddress moved = std::move(copy);
  EXPECT_EQ(moved, original);
  EXPECT_EQ(assigned, original);
  EXPECT_EQ(moved.sockaddr_ptr(), original.sockaddr_ptr());  // shared
  assigned = SocketAddress::LoopbackIPv6(9);  // drops its reference
  EXPECT_EQ(assigned.ToString(), "[::1]:9");
  EXPECT_EQ(original.ToString(), "unix:/run/x.sock");
}

TEST(UnixAddressTest, RejectsTooLongEmptyAndNulPaths) {
  const std::string longest(SocketAddress::kMaxUnixPathLength, 'a');
  EXPECT_TRUE(SocketAddress::Unix("/" + longest.substr(1)).ok());
  absl::StatusOr<SocketAddress> too_long = SocketAddress::Unix(longest + "a");
  ASSERT_FALSE(too_long.ok());
  EXPECT_EQ(too_long.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(too_long.status().message(), "108 bytes"))
      << too_long.status();
  EXPECT_TRUE(absl::StrContains(too_long.status().message(), "at most 107"));
  EXPECT_FALSE(SocketAddress::Parse("unix:@" + longest + "b").ok());
  EXPECT_TRUE(SocketAddress::AbstractUnix(longest).ok());
  EXPECT_FALSE(SocketAddress::Parse("unix:").ok());
  EXPECT_FALSE(SocketAddress::Parse("unix:@").ok());
  EXPECT_FALSE(SocketAddress::Unix(std::string("/a\0b", 4)).ok());
  // Abstract names may hold any byte.
  EXPECT_TRUE(SocketAddress::AbstractUnix(std::string("a\0b", 3)).ok());
}

TEST(UnixAddressTest, FromSockaddrReadsNamedAndUnnamed) {
  sockaddr_un un = {};
  un.sun_family = AF_UNIX;
  absl::StatusOr<SocketAddress> unnamed = SocketAddress::FromSockaddr(
      reinterpret_cast<sockaddr*>(&un), sizeof(sa_family_t));
  ASSERT_TRUE(unnamed.ok()) << unnamed.status();
  EXPECT_TRUE(unnamed->is_unix());
  EXPECT_EQ(unnamed->ToString(), "unix:");
  EXPECT_EQ(unnamed->sockaddr_len(), sizeof(sa_family_t));
  // As the kernel reports a path: the full structure, NUL-padded.
  std::strcpy(un.sun_path, "/tmp/k.sock");
  absl::StatusOr<SocketAddress> named =
      SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&un), sizeof(un));
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_EQ(*named, *SocketAddress::Unix("/tmp/k.sock"));
}

INSTANTIATE_TEST_SUITE_P(Modes, UnixTest,
                         ::testing::Values(DispatchMode::kPool,
                                           DispatchMode::kDirect),
                         net_testing::ModeName);

TEST_P(UnixTest, ServesAFilesystemPathWithTcpOptionsSkipped) {
  const SocketAddress address = UnixAddress("echo.sock");
  TcpServerOptions options;
  options.connection.socket.no_delay = true;  // TCP-only: skipped, not fatal
  options.connection.socket.keep_alive = true;
  absl::StatusOr<TcpServer*> server = StartServer(address, options);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ((*server)->local_address(), address);
  EXPECT_EQ((*server)->local_address().ToString(), "unix:" + Path("echo.sock"));
  struct stat st;
  ASSERT_EQ(::lstat(Path("echo.sock").c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(EchoOnce(address, "hello over a path"), "hello over a path");

  // The client, by "unix:PATH" (never resolved), with TCP options too.
  TcpClientOptions client_options;
  client_options.connection.socket.no_delay = true;
  client_options.connection.socket.keep_alive = true;
  TcpClient* client = MakeClient(client_options);
  ASSERT_NE(client, nullptr);
  net_testing::ConnectResult result;
  EXPECT_NE(client->Connect(address.ToString(), result.Callback()), 0u);
  absl::StatusOr<ConnectionPtr> conn = result.Wait();
  ASSERT_TRUE(conn.ok()) << conn.status();
  EXPECT_EQ((*conn)->peer_address(), address);
  ASSERT_TRUE((*conn)->Send("client says hi").ok());
  EXPECT_TRUE(WaitFor([&] { return received() == "client says hi"; }))
      << received();
  EXPECT_EQ(client->stats().resolutions, 0u);
}

TEST_P(UnixTest, ServesAnAbstractName) {
  absl::StatusOr<SocketAddress> address =
      SocketAddress::AbstractUnix(UniqueAbstractName("echo"));
  ASSERT_TRUE(address.ok());
  absl::StatusOr<TcpServer*> server = StartServer(*address);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ((*server)->local_address(), *address);
  EXPECT_TRUE((*server)->local_address().is_abstract());
  EXPECT_EQ(EchoOnce(*address, "abstract"), "abstract");
  // The name is taken while the server lives (no file to be stale).
  absl::StatusOr<TcpServer*> second = StartServer(*address);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition)
      << second.status();
  EXPECT_TRUE(
      absl::StrContains(second.status().message(), "Address already in use"))
      << second.status();
}

TEST_P(UnixTest, ClientFailsOnAMissingPath) {
  TcpClient* client = MakeClient();
  ASSERT_NE(client, nullptr);
  net_testing::ConnectResult result;
  client->Connect("unix:" + Path("nobody.sock"), result.Callback());
  absl::StatusOr<ConnectionPtr> conn = result.Wait();
  ASSERT_FALSE(conn.ok());
  EXPECT_TRUE(absl::StrContains(conn.status().message(), "nobody.sock"))
      << conn.status();
}

TEST_P(UnixTest, RemovesAStaleSocketFile) {
  const SocketAddress address = UnixAddress("stale.sock");
  {
    // A server that died without removing its file.
    absl::StatusOr<TcpListener> dead = TcpListener::Bind(address);
    ASSERT_TRUE(dead.ok()) << dead.status();
  }
  ASSERT_EQ(::access(Path("stale.sock").c_str(), F_OK), 0);
  absl::StatusOr<TcpServer*> server = StartServer(address);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ(EchoOnce(address, "fresh"), "fresh");
}

TEST_P(UnixTest, DoesNotTakeOverALiveSocket) {
  const SocketAddress address = UnixAddress("live.sock");
  absl::StatusOr<TcpServer*> first = StartServer(address);
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<TcpServer*> second = StartServer(address);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kAlreadyExists)
      << second.status();
  EXPECT_TRUE(absl::StrContains(second.status().message(), "not taken over"));
  // The first one still serves on its file.
  EXPECT_EQ(EchoOnce(address, "still mine"), "still mine");
  EXPECT_TRUE(WaitFor([&] { return (*first)->stats().accepted >= 2; }));
}

TEST_P(UnixTest, NeverRemovesAFileThatIsNotASocket) {
  const std::string path = Path("data.txt");
  const int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ::close(fd);
  absl::StatusOr<TcpServer*> server = StartServer(UnixAddress("data.txt"));
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kFailedPrecondition)
      << server.status();
  struct stat st;
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
}

TEST_P(UnixTest, PeerCredentialsAreThisProcess) {
  const SocketAddress address = UnixAddress("cred.sock");
  ASSERT_TRUE(StartServer(address).ok());
  EXPECT_EQ(EchoOnce(address, "who"), "who");
  ASSERT_TRUE(WaitFor([&] { return credentials().size() == 1; }));
  const absl::StatusOr<PeerCredentials> who = credentials()[0];
  ASSERT_TRUE(who.ok()) << who.status();
  EXPECT_EQ(who->pid, ::getpid());
  EXPECT_EQ(who->uid, ::getuid());
  EXPECT_EQ(who->gid, ::getgid());
}

TEST_P(UnixTest, PeerCredentialsFailOnTcp) {
  absl::StatusOr<TcpServer*> server =
      StartServer(SocketAddress::LoopbackIPv4(0));
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<net_testing::TestClient> client =
      net_testing::TestClient::Connect((*server)->local_address().port());
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE(WaitFor([&] { return credentials().size() == 1; }));
  const absl::StatusOr<PeerCredentials> who = credentials()[0];
  ASSERT_FALSE(who.ok());
  EXPECT_EQ(who.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(who.status().message(), "not a Unix-domain"))
      << who.status();
}

}  // namespace
}  // namespace mill
