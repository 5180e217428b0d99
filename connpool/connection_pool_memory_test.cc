// What an idle pooled connection costs in process memory beyond the
// connection itself: N connections opened by a plain TcpClient, then N
// idle in a ConnectionPool (same options, same server), heap in use
// measured with mallinfo2(3) around each; the difference per connection
// must be at most 240 bytes (issue 16: an idle pooled connection at most
// 640 B, of which the client connection is about 400; the pool's own part
// is its 112-byte Entry chunk, measured 66-181 B here). Prints the
// figures.
//
// Tagged no_asan / no_tsan: the sanitizers' allocators do not report
// through mallinfo2 (and add their own redzones and shadow).
#include <malloc.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "connpool/connection_pool.h"
#include "connpool/testing/pool_test_fixture.h"
#include "gtest/gtest.h"
#include "net/connection.h"
#include "net/socket_address.h"
#include "net/tcp_client.h"
#include "net/tcp_server.h"
#include "reactor/event_loop.h"

namespace mill {
namespace {

using connpool_testing::AcquireResult;
using connpool_testing::PoolFixture;
using connpool_testing::WaitFor;

int64_t HeapInUse() {
  const struct mallinfo2 info = mallinfo2();
  return static_cast<int64_t>(info.uordblks + info.hblkhd);
}

class MemoryTest : public PoolFixture {};

INSTANTIATE_TEST_SUITE_P(Modes, MemoryTest, connpool_testing::EveryMode(),
                         connpool_testing::ModeName);

TEST_P(MemoryTest, IdlePooledConnectionCostsAtMost240BytesMoreThanAClient) {
  constexpr int kConnections = 256;
  const std::string ep = StartServer();
  const SocketAddress address = server().local_address();
  ConnectionOptions connection_options;  // the same for both

  // A plain client's connections: heap per open connection. Measured
  // twice; the first round pays one-time growth (the loop's registry, the
  // server's connection map, the timer slab) that later rounds reuse.
  auto plain_round = [&]() -> int64_t {
    TcpClientOptions client_options;
    client_options.connection = connection_options;
    absl::StatusOr<std::unique_ptr<TcpClient>> client =
        TcpClient::Create(pool_loop_.get(), {}, client_options);
    EXPECT_TRUE(client.ok());
    std::atomic<int> done{0};
    std::vector<ConnectionPtr> conns(kConnections);
    const int64_t before = HeapInUse();
    for (int i = 0; i < kConnections; ++i) {
      (*client)->Connect(address, [&, i](absl::StatusOr<ConnectionPtr> c) {
        if (c.ok()) conns[i] = *c;
        ++done;
      });
    }
    EXPECT_TRUE(WaitFor([&] { return done.load() == kConnections; }));
    EXPECT_TRUE(
        WaitFor([&] { return server().connection_count() == kConnections; }));
    absl::SleepFor(absl::Milliseconds(50));  // timers and tasks settle
    const int64_t after = HeapInUse();
    conns.clear();
    (*client)->Stop();
    EXPECT_TRUE(WaitFor([&] { return server().connection_count() == 0; }));
    return (after - before) / kConnections;
  };
  const int64_t warm_up = plain_round();
  const int64_t plain_per_connection = plain_round();

  // The same number idle in a pool, also measured twice: the first pool
  // pays one-time growth of its own (the pool's tables; on io_uring the
  // poller's per-descriptor table when the pool's descriptors reach a
  // number the plain rounds did not), which later pools reuse.
  ConnectionPoolOptions options;
  options.client.connection = connection_options;
  options.max_connections = kConnections;
  options.max_connections_per_endpoint = kConnections;
  options.max_idle_per_endpoint = kConnections;
  options.idle_timeout = absl::ZeroDuration();
  auto pool_round = [&]() -> int64_t {
    MakePool(options);
    const int64_t before = HeapInUse();
    {
      std::vector<std::shared_ptr<AcquireResult>> results;
      for (int i = 0; i < kConnections; ++i) {
        auto r = AcquireResult::Make();
        pool_->Acquire(ep, absl::InfiniteFuture(),
                       AcquireResult::CallbackOf(r));
        results.push_back(r);
      }
      std::vector<Lease> leases;
      for (auto& r : results) {
        absl::StatusOr<Lease> lease = r->Take();
        EXPECT_TRUE(lease.ok()) << lease.status();
        if (lease.ok()) leases.push_back(*std::move(lease));
      }
      for (Lease& lease : leases) pool_->Release(std::move(lease), true);
    }
    EXPECT_TRUE(WaitFor([&] { return pool_->stats().idle == kConnections; }));
    EXPECT_TRUE(
        WaitFor([&] { return server().connection_count() == kConnections; }));
    absl::SleepFor(absl::Milliseconds(50));
    const int64_t after = HeapInUse();
    EXPECT_EQ(pool_->stats().created, static_cast<uint64_t>(kConnections));
    return (after - before) / kConnections;
  };
  const int64_t pool_warm_up = pool_round();
  pool_.reset();
  ASSERT_TRUE(WaitFor([&] { return server().connection_count() == 0; }));
  const int64_t pooled_per_connection = pool_round();
  const int64_t extra = pooled_per_connection - plain_per_connection;
  std::printf(
      "heap per connection (client + server side): plain client %lld B "
      "(first round %lld B), idle in the pool %lld B (first pool %lld B), "
      "pool's extra %lld B\n",
      static_cast<long long>(plain_per_connection),
      static_cast<long long>(warm_up),
      static_cast<long long>(pooled_per_connection),
      static_cast<long long>(pool_warm_up), static_cast<long long>(extra));
  EXPECT_LE(extra, 240);
}

}  // namespace
}  // namespace mill
