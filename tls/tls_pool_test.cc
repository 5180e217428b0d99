// TLS connections through //connpool: idle connections are reused (the
// liveness probe sees through session tickets), new connections to the same
// endpoint resume the cached session, and a certificate that does not
// verify fails the Acquire with the reason.
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>

#include "absl/strings/match.h"
#include "connpool/connection_pool.h"
#include "gtest/gtest.h"
#include "net/testing/echo_clients.h"
#include "tls/testing/tls_fixture.h"

namespace mill {
namespace tls_testing {
namespace {

class TlsPoolTest : public TlsTest {
 protected:
  void TearDown() override {
    pool_.reset();
    TlsTest::TearDown();
  }

  void MakePool(std::shared_ptr<TlsClientContext> context, size_t max_idle) {
    ConnectionPoolOptions options;
    options.client.layer = std::move(context);
    options.max_idle_per_endpoint = max_idle;
    absl::StatusOr<std::unique_ptr<ConnectionPool>> pool =
        ConnectionPool::Create(loop_.get(), options);
    ASSERT_TRUE(pool.ok()) << pool.status();
    pool_ = *std::move(pool);
  }

  // Acquires (over `layer` instead of the pool's when set), sends
  // `message`, waits for its echo; returns the lease.
  absl::StatusOr<Lease> RoundTrip(
      const std::string& endpoint, const std::string& message,
      std::optional<std::shared_ptr<const ConnectionLayer>> layer =
          std::nullopt) {
    struct State {
      std::mutex mu;
      std::condition_variable cv;
      std::optional<absl::StatusOr<Lease>> lease;
      std::string echoed;
    };
    auto state = std::make_shared<State>();
    auto callbacks = std::make_shared<LeaseCallbacks>();
    callbacks->on_data = [state](const ConnectionPtr&, ByteBuffer& in) {
      std::lock_guard<std::mutex> lock(state->mu);
      state->echoed.append(in.view().data(), in.size());
      in.Consume(in.size());
      state->cv.notify_all();
    };
    auto done = [state, message](absl::StatusOr<Lease> lease) {
      if (lease.ok()) (void)(*lease)->Send(message);
      std::lock_guard<std::mutex> lock(state->mu);
      state->lease = lease.ok() ? std::move(lease)
                                : absl::StatusOr<Lease>(Copy(lease.status()));
      state->cv.notify_all();
    };
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    if (layer.has_value()) {
      pool_->Acquire(endpoint, *std::move(layer), deadline, std::move(done),
                     callbacks);
    } else {
      pool_->Acquire(endpoint, deadline, std::move(done), callbacks);
    }
    std::unique_lock<std::mutex> lock(state->mu);
    if (!state->cv.wait_for(lock, std::chrono::seconds(30), [&] {
          return state->lease.has_value() &&
                 (!state->lease->ok() ||
                  state->echoed.size() >= message.size());
        })) {
      return absl::DeadlineExceededError("no lease or no echo");
    }
    return std::move(*state->lease);
  }

  std::unique_ptr<ConnectionPool> pool_;
};

TEST_P(TlsPoolTest, IdleConnectionsAreReused) {
  TcpServer* server = StartServer(ServerContext(), Echo());
  MakePool(ClientContext(), /*max_idle=*/8);
  const std::string endpoint = Target(server, "localhost");
  absl::StatusOr<Lease> first = RoundTrip(endpoint, "one");
  ASSERT_TRUE(first.ok()) << first.status();
  const uint64_t id = (*first)->id();
  pool_->Release(*std::move(first), /*reusable=*/true);
  // A release from outside the connection's callbacks completes once the
  // one running (a session ticket being read, say) returns.
  ASSERT_TRUE(net_testing::WaitFor([&] { return pool_->stats().idle == 1; }));
  absl::StatusOr<Lease> second = RoundTrip(endpoint, "two");
  ASSERT_TRUE(second.ok()) << second.status();
  // The server's session tickets arrived while it was idle: application
  // data would make it dead on reuse, tickets must not.
  EXPECT_TRUE(second->reused());
  EXPECT_EQ((*second)->id(), id);
  pool_->Release(*std::move(second), /*reusable=*/true);
  EXPECT_EQ(server->stats().accepted, 1u)
      << "created " << pool_->stats().created << " reused "
      << pool_->stats().reused << " client attempts "
      << pool_->client_stats().attempts << " connects "
      << pool_->client_stats().connects_started;
}

TEST_P(TlsPoolTest, NewConnectionsToTheEndpointResume) {
  TcpServer* server = StartServer(ServerContext(), Echo());
  std::shared_ptr<TlsClientContext> context = ClientContext();
  MakePool(context, /*max_idle=*/0);  // every release closes
  const std::string endpoint = Target(server, "localhost");
  absl::StatusOr<Lease> first = RoundTrip(endpoint, "one");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(TlsInfoOf(**first)->resumed);
  pool_->Release(*std::move(first), /*reusable=*/true);
  ASSERT_TRUE(net_testing::WaitFor([&] { return pool_->stats().open == 0; }));
  absl::StatusOr<Lease> second = RoundTrip(endpoint, "two");
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_FALSE(second->reused());
  EXPECT_TRUE(TlsInfoOf(**second)->resumed);
  pool_->Release(*std::move(second), /*reusable=*/true);
  EXPECT_EQ(server->stats().accepted, 2u);
}

// The pool keys connections by endpoint and layer: an idle connection of one
// TLS configuration is never handed to a request for another, even to the
// same endpoint, and each configuration reuses its own.
TEST_P(TlsPoolTest, ConnectionsArePooledByEndpointAndLayer) {
  TlsServerOptions server_options = ServerOptions();
  server_options.alpn = {"h2", "http/1.1"};
  TcpServer* server = StartServer(ServerContext(server_options), Echo());
  TlsClientOptions h2 = ClientOptions();
  h2.alpn = {"h2"};
  TlsClientOptions http1 = ClientOptions();
  http1.alpn = {"http/1.1"};
  std::shared_ptr<TlsClientContext> h2_context = ClientContext(h2);
  std::shared_ptr<TlsClientContext> http1_context = ClientContext(http1);
  MakePool(h2_context, /*max_idle=*/8);
  const std::string endpoint = Target(server, "localhost");

  absl::StatusOr<Lease> a = RoundTrip(endpoint, "a");
  ASSERT_TRUE(a.ok()) << a.status();
  const uint64_t h2_id = (*a)->id();
  EXPECT_EQ(TlsInfoOf(**a)->alpn, "h2");
  pool_->Release(*std::move(a), /*reusable=*/true);
  ASSERT_TRUE(net_testing::WaitFor([&] { return pool_->stats().idle == 1; }));

  absl::StatusOr<Lease> b = RoundTrip(endpoint, "b", http1_context);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_FALSE(b->reused()) << "handed the other configuration's connection";
  EXPECT_EQ(TlsInfoOf(**b)->alpn, "http/1.1");
  const uint64_t http1_id = (*b)->id();
  pool_->Release(*std::move(b), /*reusable=*/true);
  ASSERT_TRUE(net_testing::WaitFor([&] { return pool_->stats().idle == 2; }));
  EXPECT_EQ(pool_->stats().endpoints, 2u);

  // Each configuration gets its own back; naming the pool's own layer is
  // the same as naming none.
  absl::StatusOr<Lease> c = RoundTrip(endpoint, "c", http1_context);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->reused());
  EXPECT_EQ((*c)->id(), http1_id);
  absl::StatusOr<Lease> d = RoundTrip(endpoint, "d", h2_context);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->reused());
  EXPECT_EQ((*d)->id(), h2_id);
  pool_->Release(*std::move(c), /*reusable=*/true);
  pool_->Release(*std::move(d), /*reusable=*/true);
  EXPECT_EQ(server->stats().accepted, 2u);
}

// Plain TCP (a null layer) and TLS to one endpoint never meet: with a plain
// connection idle, a TLS request opens its own (and here fails its
// handshake, as the server speaks clear text) instead of being handed it.
TEST_P(TlsPoolTest, PlainAndTlsConnectionsNeverMeet) {
  TcpServer* plain = StartServer(nullptr, Echo());
  MakePool(ClientContext(), /*max_idle=*/8);
  const std::string endpoint = Target(plain, "localhost");
  absl::StatusOr<Lease> clear = RoundTrip(endpoint, "clear", nullptr);
  ASSERT_TRUE(clear.ok()) << clear.status();
  EXPECT_FALSE(TlsInfoOf(**clear).ok());
  pool_->Release(*std::move(clear), /*reusable=*/true);
  ASSERT_TRUE(net_testing::WaitFor([&] { return pool_->stats().idle == 1; }));
  absl::StatusOr<Lease> tls = RoundTrip(endpoint, "tls");
  EXPECT_FALSE(tls.ok());
  EXPECT_EQ(pool_->stats().idle, 1u);
  EXPECT_EQ(pool_->stats().reused, 0u);
}

TEST_P(TlsPoolTest, RefusesServerLayersAndNonEndpoints) {
  TcpServer* server = StartServer(ServerContext(), Echo());
  MakePool(ClientContext(), /*max_idle=*/8);
  for (int server_layer = 0; server_layer < 2; ++server_layer) {
    absl::Status status;
    const ConnectionPool::RequestId id = pool_->Acquire(
        server_layer ? Target(server) : Target(server) + " x",
        server_layer ? std::shared_ptr<const ConnectionLayer>(ServerContext())
                     : nullptr,
        absl::InfiniteFuture(),
        [&status](absl::StatusOr<Lease> lease) { status = lease.status(); });
    EXPECT_EQ(id, 0u);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  }
  EXPECT_EQ(pool_->client_stats().connects_started, 0u);
}

TEST_P(TlsPoolTest, UnverifiedUpstreamFailsTheAcquire) {
  absl::StatusOr<CertFiles> wrong = Pki().pki.WrongNameLeaf("pool_wrong");
  ASSERT_TRUE(wrong.ok());
  TlsServerOptions options;
  options.certificates = {{wrong->cert_file, wrong->key_file, {}}};
  TcpServer* server = StartServer(ServerContext(options), Echo());
  MakePool(ClientContext(), 8);
  absl::StatusOr<Lease> lease =
      RoundTrip(Target(server, "localhost"), "never sent");
  ASSERT_FALSE(lease.ok());
  EXPECT_TRUE(
      absl::StrContains(lease.status().message(), "certificate verify failed"))
      << lease.status();
  EXPECT_EQ(server->stats().bytes_read, 0u);  // nothing reached it in clear
}

INSTANTIATE_TEST_SUITE_P(AllModes, TlsPoolTest,
                         reactor_testing::EveryLoopMode(),
                         reactor_testing::LoopConfigName);

}  // namespace
}  // namespace tls_testing
}  // namespace mill
