// The pool over Unix-domain sockets: an endpoint "unix:@name" (or
// "unix:/path") is connected without resolution, pooled and reused like
// "host:port". Both dispatch modes.
#include <unistd.h>

#include <memory>
#include <random>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "connpool/connection_pool.h"
#include "connpool/testing/pool_test_fixture.h"
#include "gtest/gtest.h"
#include "net/socket_address.h"
#include "net/tcp_server.h"

namespace mill {
namespace {

using connpool_testing::PoolFixture;
using connpool_testing::Sink;

class ConnectionPoolUnixTest : public PoolFixture {
 protected:
  // An echo server on an abstract Unix name; returns "unix:@name".
  std::string StartUnixServer() {
    const std::string endpoint =
        // Random too: parallel tests share the abstract namespace, and
        // their sandboxes may give them the same pid.
        absl::StrCat("unix:@mill_pool_", ::getpid(), "_",
                     std::random_device()(), "_",
                     GetParam() == DispatchMode::kPool ? "pool" : "direct");
    TcpServerCallbacks echo;
    echo.on_data = [](const ConnectionPtr& c, ByteBuffer& in) {
      (void)c->Send(in.view());
      in.Consume(in.size());
    };
    absl::StatusOr<std::unique_ptr<TcpServer>> server = TcpServer::Create(
        server_loop_.get(), *SocketAddress::Parse(endpoint), std::move(echo));
    EXPECT_TRUE(server.ok()) << server.status();
    if (server.ok()) servers_.push_back(*std::move(server));
    return endpoint;
  }
};

INSTANTIATE_TEST_SUITE_P(Modes, ConnectionPoolUnixTest,
                         connpool_testing::EveryMode(),
                         connpool_testing::ModeName);

TEST_P(ConnectionPoolUnixTest, UnixEndpointEchoesThenIsReused) {
  const std::string ep = StartUnixServer();
  ASSERT_FALSE(servers_.empty());
  MakePool();
  auto sink = Sink::Make();
  absl::StatusOr<Lease> lease = AcquireSync(ep, sink->Callbacks());
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_FALSE(lease->reused());
  EXPECT_EQ((*lease)->peer_address().ToString(), ep);
  EXPECT_TRUE(Echo(*lease, *sink, "over unix"));
  ReleaseAndWaitIdle(*std::move(lease), 1);

  auto sink2 = Sink::Make();
  absl::StatusOr<Lease> again = AcquireSync(ep, sink2->Callbacks());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->reused());
  EXPECT_TRUE(Echo(*again, *sink2, "again"));
  EXPECT_EQ(pool_->stats().created, 1u);
  EXPECT_EQ(server().stats().accepted, 1u);
}

TEST_P(ConnectionPoolUnixTest, MissingUnixEndpointFailsWithoutResolving) {
  MakePool();
  absl::StatusOr<Lease> lease =
      AcquireSync(absl::StrCat("unix:@mill_pool_nobody_", ::getpid(), "_",
                               std::random_device()()),
                  nullptr);
  ASSERT_FALSE(lease.ok());
  // Refused by the kernel (no listener), not NotFound from a name lookup.
  EXPECT_NE(lease.status().code(), absl::StatusCode::kNotFound)
      << lease.status();
  EXPECT_TRUE(absl::StrContains(lease.status().message(), "mill_pool_nobody"))
      << lease.status();
}

}  // namespace
}  // namespace mill
