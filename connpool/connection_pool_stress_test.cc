// Concurrency tests of ConnectionPool (meant for TSan as much as for the
// default build), in both dispatch modes, against local echo TcpServers:
// many threads acquiring, echoing and releasing (from the test threads and
// from inside on_data) over two endpoints under tight limits, with stats()
// read concurrently and its invariants checked; and a Drain racing
// acquirers. Bounded in iterations, so they finish in seconds under TSan.
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "connpool/connection_pool.h"
#include "connpool/testing/pool_test_fixture.h"
#include "gtest/gtest.h"
#include "net/byte_buffer.h"
#include "net/connection.h"
#include "reactor/event_loop.h"

namespace mill {
namespace {

using connpool_testing::AcquireResult;
using connpool_testing::PoolFixture;
using connpool_testing::Sink;
using connpool_testing::WaitFor;

class StressTest : public PoolFixture {};

INSTANTIATE_TEST_SUITE_P(Modes, StressTest, connpool_testing::EveryMode(),
                         connpool_testing::ModeName);

// One request whose lease is released from inside on_data once the echo is
// complete (the proxy's pattern).
struct InCallbackRequest {
  std::mutex mu;
  std::condition_variable cv;
  std::string expected;
  std::string got;
  Lease lease;
  bool done = false;
  bool ok = false;
};

TEST_P(StressTest, ManyThreadsAcquireEchoAndReleaseUnderTightLimits) {
  const std::string endpoints[2] = {StartServer(), StartServer()};
  ConnectionPoolOptions options;
  options.max_connections = 4;
  options.max_connections_per_endpoint = 3;
  options.max_idle_per_endpoint = 2;
  MakePool(options);
  constexpr int kThreads = 6;
  constexpr int kIterations = 150;
  std::atomic<int> failures{0};
  std::atomic<bool> stop_watching{false};
  std::atomic<int> bad_stats{0};
  std::thread watcher([&] {
    while (!stop_watching.load()) {
      ConnectionPoolStats s = pool_->stats();
      if (s.open > 4 || s.active + s.idle + s.connecting != s.open ||
          s.idle > 4) {
        ++bad_stats;
      }
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kIterations; ++i) {
        const std::string& ep = endpoints[(t + i) % 2];
        const std::string message = absl::StrCat("[", t, ":", i, "]");
        if (t % 2 == 0) {
          // Released from the test thread, sometimes as not reusable, or
          // dropped.
          auto sink = Sink::Make();
          absl::StatusOr<Lease> lease =
              AcquireSync(ep, sink->Callbacks(), absl::Seconds(60));
          if (!lease.ok() || !Echo(*lease, *sink, message)) {
            ++failures;
            continue;
          }
          if (i % 7 == 3) continue;  // dropped: closes
          pool_->Release(*std::move(lease), /*reusable=*/i % 5 != 0);
        } else {
          // Released from inside on_data.
          auto request = std::make_shared<InCallbackRequest>();
          request->expected = message;
          auto cb = std::make_shared<LeaseCallbacks>();
          ConnectionPool* pool = pool_.get();
          cb->on_data = [request, pool](const ConnectionPtr&, ByteBuffer& in) {
            Lease lease;
            {
              std::lock_guard<std::mutex> lock(request->mu);
              request->got.append(in.data(), in.size());
              in.Consume(in.size());
              if (request->got.size() < request->expected.size()) return;
              request->ok = request->got == request->expected;
              request->done = true;
              lease = std::move(request->lease);
              request->cv.notify_all();
            }
            pool->Release(std::move(lease), /*reusable=*/true);
          };
          auto result = AcquireResult::Make();
          pool_->Acquire(
              ep, absl::Now() + absl::Seconds(60),
              [request, message](absl::StatusOr<Lease> lease) {
                if (!lease.ok()) {
                  std::lock_guard<std::mutex> lock(request->mu);
                  request->done = true;
                  request->cv.notify_all();
                  return;
                }
                ConnectionPtr conn = lease->connection();
                {
                  std::lock_guard<std::mutex> lock(request->mu);
                  request->lease = *std::move(lease);
                }
                (void)conn->Send(message);
              },
              cb);
          std::unique_lock<std::mutex> lock(request->mu);
          if (!request->cv.wait_for(lock, std::chrono::seconds(60),
                                    [&] { return request->done; }) ||
              !request->ok) {
            ++failures;
          }
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  stop_watching = true;
  watcher.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(bad_stats.load(), 0);
  ASSERT_TRUE(WaitFor([&] {
    ConnectionPoolStats s = pool_->stats();
    return s.active == 0 && s.connecting == 0;
  }));
  ConnectionPoolStats s = pool_->stats();
  EXPECT_EQ(s.acquired, static_cast<uint64_t>(kThreads * kIterations));
  EXPECT_EQ(s.pending, 0u);
  EXPECT_EQ(s.failed_queue_full + s.failed_deadline + s.failed_connect +
                s.failed_closed,
            0u);
  EXPECT_GT(s.reused, 0u);
  EXPECT_LE(s.open, 4u);
  // Every connection opened is open or was closed, once.
  uint64_t closed = 0;
  for (uint64_t n : s.closed_by) closed += n;
  EXPECT_EQ(s.created, closed + s.open);
  uint64_t histogram = 0;
  for (uint64_t n : s.wait_histogram) histogram += n;
  EXPECT_EQ(histogram, s.acquired);
}

TEST_P(StressTest, DrainRacingAcquirers) {
  const std::string ep = StartServer();
  ConnectionPoolOptions options;
  options.max_connections_per_endpoint = 3;
  MakePool(options);
  std::atomic<int> leases{0};
  std::atomic<int> refused{0};
  std::atomic<int> unexpected{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (;;) {
        absl::StatusOr<Lease> lease =
            AcquireSync(ep, nullptr, absl::Seconds(60));
        if (lease.ok()) {
          ++leases;
          pool_->Release(*std::move(lease), true);
          continue;
        }
        const absl::StatusCode code = lease.status().code();
        if (code == absl::StatusCode::kFailedPrecondition) {
          ++refused;
          return;  // drained or draining: done
        }
        if (code != absl::StatusCode::kUnavailable) ++unexpected;
      }
    });
  }
  ASSERT_TRUE(WaitFor([&] { return leases.load() >= 20; }));
  std::atomic<int> drained{0};
  pool_->Drain([&] { ++drained; });
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(unexpected.load(), 0);
  EXPECT_EQ(refused.load(), 4);
  ASSERT_TRUE(WaitFor([&] { return drained.load() == 1; }));
  ConnectionPoolStats s = pool_->stats();
  EXPECT_EQ(s.open, 0u);
  EXPECT_EQ(s.pending, 0u);
  uint64_t closed = 0;
  for (uint64_t n : s.closed_by) closed += n;
  EXPECT_EQ(s.created, closed);
  EXPECT_TRUE(WaitFor([&] { return server().connection_count() == 0; }));
}

}  // namespace
}  // namespace mill
