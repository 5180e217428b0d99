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

  // Acquires, sends `message`, waits for its echo; returns the lease.
  absl::StatusOr<Lease> RoundTrip(const std::string& endpoint,
                                  const std::string& message) {
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
    pool_->Acquire(
        endpoint, absl::Now() + absl::Seconds(20),
        [state, message](absl::StatusOr<Lease> lease) {
          if (lease.ok()) (void)(*lease)->Send(message);
          std::lock_guard<std::mutex> lock(state->mu);
          state->lease = lease.ok()
                             ? std::move(lease)
                             : absl::StatusOr<Lease>(Copy(lease.status()));
          state->cv.notify_all();
        },
        callbacks);
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
