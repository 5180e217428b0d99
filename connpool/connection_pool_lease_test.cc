// Tests of ConnectionPool's convenience API against real TcpServers, in
// both dispatch modes: pool-held leases whose handlers get the Lease,
// lease.Release without the pool (also after the pool is gone), move-only
// callbacks, steady-clock timeouts (AcquireOptions), the response timeout,
// and Acquire on an EndpointSet (round robin, power of two choices,
// failure backoff, names through the resolver).
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "base/mutex.h"
#include "connpool/connection_pool.h"
#include "connpool/endpoint_set.h"
#include "connpool/testing/pool_test_fixture.h"
#include "gtest/gtest.h"
#include "net/connection.h"
#include "net/socket_address.h"
#include "net/tcp_listener.h"
#include "net/tcp_server.h"
#include "reactor/event_loop.h"

namespace mill {
namespace {

using connpool_testing::AcquireResult;
using connpool_testing::PoolFixture;
using connpool_testing::Sink;
using connpool_testing::WaitFor;

// What a test's handlers report back (the test thread waits on it).
struct Report {
  Mutex mu;
  std::vector<std::string> responses ABSL_GUARDED_BY(mu);
  std::vector<absl::Status> errors ABSL_GUARDED_BY(mu);  // ready's failures
  std::vector<absl::Status> closes ABSL_GUARDED_BY(mu);  // on_close statuses
  std::vector<uint16_t> ports ABSL_GUARDED_BY(mu);       // peers leased
  ConnectionPtr conn ABSL_GUARDED_BY(mu);                // the last leased

  size_t responses_size() {
    MutexLock lock(&mu);
    return responses.size();
  }
  size_t errors_size() {
    MutexLock lock(&mu);
    return errors.size();
  }
  size_t closes_size() {
    MutexLock lock(&mu);
    return closes.size();
  }
};

// Handlers for a request/response exchange with an echo server: on_data
// collects the response in a move-only buffer and releases the lease (as
// reusable) once `expect` bytes arrived, with no state outside the lease's
// own callbacks.
LeaseHandlers EchoHandlers(std::shared_ptr<Report> report, size_t expect) {
  LeaseHandlers h;
  h.on_data = [report, expect, buf = std::make_unique<std::string>()](
                  Lease& lease, ByteBuffer& in) {
    buf->append(in.data(), in.size());
    in.Consume(in.size());
    if (buf->size() < expect) return;
    lease.Release(/*reusable=*/true);
    MutexLock lock(&report->mu);
    report->responses.push_back(std::move(*buf));
  };
  h.on_close = [report](Lease&, CloseReason, const absl::Status& status) {
    MutexLock lock(&report->mu);
    report->closes.push_back(status);
  };
  return h;
}

// `ready` that sends `request` on the lease and notes the peer's port.
LeaseReadyCallback SendOnReady(std::shared_ptr<Report> report,
                               std::string request) {
  return [report, request = std::move(request)](absl::StatusOr<Lease*> lease) {
    if (!lease.ok()) {
      MutexLock lock(&report->mu);
      report->errors.push_back(lease.status());
      return;
    }
    {
      MutexLock lock(&report->mu);
      report->ports.push_back((**lease)->peer_address().port());
    }
    EXPECT_TRUE((*lease)->Send(request).ok());
  };
}

class ConnectionPoolLeaseTest : public PoolFixture {
 protected:
  // A server that reads and never answers; returns its "127.0.0.1:port".
  std::string StartSilentServer() {
    TcpServerCallbacks silent;
    silent.on_data = [](const ConnectionPtr&, ByteBuffer& in) {
      in.Consume(in.size());
    };
    absl::StatusOr<std::unique_ptr<TcpServer>> server = TcpServer::Create(
        server_loop_.get(), SocketAddress::LoopbackIPv4(0), std::move(silent));
    EXPECT_TRUE(server.ok()) << server.status();
    servers_.push_back(std::move(*server));
    return absl::StrCat("127.0.0.1:", servers_.back()->local_address().port());
  }
  static std::string ClosedEndpoint() {
    absl::StatusOr<TcpListener> l =
        TcpListener::Bind(SocketAddress::LoopbackIPv4(0));
    EXPECT_TRUE(l.ok());
    return absl::StrCat("127.0.0.1:", l->local_address()->port());
  }  // closed on return: nobody listens there
};

INSTANTIATE_TEST_SUITE_P(Modes, ConnectionPoolLeaseTest,
                         connpool_testing::EveryMode(),
                         connpool_testing::ModeName);

TEST_P(ConnectionPoolLeaseTest, HandlersGetTheLeaseAndReleaseItThemselves) {
  const std::string ep = StartServer();
  MakePool();
  auto report = std::make_shared<Report>();
  AcquireOptions options;
  options.timeout = absl::Seconds(20);
  pool_->Acquire(ep, options, SendOnReady(report, "ping"),
                 EchoHandlers(report, 4));
  ASSERT_TRUE(WaitFor([&] { return report->responses_size() == 1; }));
  // Released from on_data as reusable: idle again, and reused next time.
  ASSERT_TRUE(WaitFor([&] { return pool_->stats().idle == 1; }));
  pool_->Acquire(ep, options, SendOnReady(report, "pong!"),
                 EchoHandlers(report, 5));
  ASSERT_TRUE(WaitFor([&] { return report->responses_size() == 2; }));
  ASSERT_TRUE(WaitFor([&] { return pool_->stats().idle == 1; }));
  MutexLock lock(&report->mu);
  EXPECT_EQ(report->responses, (std::vector<std::string>{"ping", "pong!"}));
  EXPECT_TRUE(report->closes.empty());  // no close while leased
  const ConnectionPoolStats s = pool_->stats();
  EXPECT_EQ(s.created, 1u);
  EXPECT_EQ(s.reused, 1u);
}

// on_write_complete reaches the lease's handler once the request is written
// (posted like the connection's own, never inside the Send).
TEST_P(ConnectionPoolLeaseTest, WriteCompleteReachesTheLeasesHandler) {
  const std::string ep = StartServer();
  MakePool();
  auto report = std::make_shared<Report>();
  auto completes = std::make_shared<std::atomic<int>>(0);
  LeaseHandlers handlers = EchoHandlers(report, 5);
  handlers.on_write_complete = [completes](Lease& lease) {
    EXPECT_EQ(lease->pending_output_bytes(), 0u);
    ++*completes;
  };
  AcquireOptions options;
  options.timeout = absl::Seconds(20);
  pool_->Acquire(ep, options, SendOnReady(report, "hello"),
                 std::move(handlers));
  ASSERT_TRUE(WaitFor([&] { return report->responses_size() == 1; }));
  EXPECT_TRUE(WaitFor([&] { return completes->load() >= 1; }));
}

TEST_P(ConnectionPoolLeaseTest, ReadyAndHandlersTakeMoveOnlyCaptures) {
  const std::string ep = StartServer();
  MakePool();
  auto got = std::make_shared<std::atomic<int>>(0);
  auto token = std::make_unique<int>(7);
  LeaseHandlers h;
  h.on_data = [got, token = std::make_unique<int>(35)](Lease& lease,
                                                       ByteBuffer& in) {
    in.Consume(in.size());
    got->fetch_add(*token);
    lease.Release(true);
  };
  pool_->Acquire(
      ep, AcquireOptions(),
      [got, token = std::move(token)](absl::StatusOr<Lease*> lease) {
        ASSERT_TRUE(lease.ok()) << lease.status();
        got->fetch_add(*token);
        ASSERT_TRUE((*lease)->Send("x").ok());
      },
      std::move(h));
  EXPECT_TRUE(WaitFor([&] { return got->load() == 42; }));
  // The user-held form takes a move-only callback too.
  auto result = AcquireResult::Make();
  auto marker = std::make_unique<int>(1);
  pool_->Acquire(ep, AcquireOptions(),
                 [result, marker = std::move(marker)](
                     absl::StatusOr<Lease> lease) mutable {
                   EXPECT_EQ(*marker, 1);
                   AcquireResult::CallbackOf(result)(std::move(lease));
                 });
  absl::StatusOr<Lease> lease = result->Take();
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_TRUE(lease->reused());
}

TEST_P(ConnectionPoolLeaseTest, ReleaseNeedsOnlyTheLease) {
  const std::string ep = StartServer();
  MakePool();
  absl::StatusOr<Lease> lease = AcquireSync(ep);
  ASSERT_TRUE(lease.ok()) << lease.status();
  lease->Release(/*reusable=*/true);
  EXPECT_FALSE(*lease);  // empty now
  lease->Release(true);  // nothing for an empty lease
  EXPECT_TRUE(WaitFor([&] { return pool_->stats().idle == 1; }));
  EXPECT_EQ(pool_->stats().active, 0u);
  EXPECT_EQ(lease->Send("x").code(), absl::StatusCode::kFailedPrecondition);
}

TEST_P(ConnectionPoolLeaseTest, ReleaseAfterThePoolIsGoneClosesTheConnection) {
  const std::string ep = StartServer();
  MakePool();
  auto sink = Sink::Make();
  absl::StatusOr<Lease> lease = AcquireSync(ep, sink->Callbacks());
  ASSERT_TRUE(lease.ok()) << lease.status();
  ConnectionPtr conn = lease->connection();
  pool_.reset();  // closes leased connections too
  EXPECT_TRUE(sink->WaitCloses(1));
  EXPECT_EQ(sink->last_reason(), CloseReason::kStopped);
  lease->Release(/*reusable=*/true);  // safe: the pool's core outlives it
  EXPECT_FALSE(*lease);
  EXPECT_TRUE(conn->is_closed());
}

TEST_P(ConnectionPoolLeaseTest, PoolHeldLeaseOutlivingThePoolIsClosed) {
  const std::string ep = StartSilentServer();
  MakePool();
  auto report = std::make_shared<Report>();
  pool_->Acquire(ep, AcquireOptions(), SendOnReady(report, "hello"),
                 EchoHandlers(report, 5));
  ASSERT_TRUE(WaitFor([&] {
    MutexLock lock(&report->mu);
    return report->ports.size() == 1;
  }));
  pool_.reset();
  ASSERT_EQ(report->closes_size(), 1u);  // before the destructor returned
  EXPECT_EQ(report->responses_size(), 0u);
}

TEST_P(ConnectionPoolLeaseTest, TimeoutRunsOnTheSteadyClock) {
  const std::string ep = StartServer();
  ConnectionPoolOptions pool_options;
  pool_options.max_connections = 1;
  MakePool(pool_options);
  absl::StatusOr<Lease> held = AcquireSync(ep);
  ASSERT_TRUE(held.ok());
  // No connection free: a zero timeout fails at once, a short one later.
  AcquireOptions now;
  now.timeout = absl::ZeroDuration();
  auto at_once = AcquireResult::Make();
  pool_->Acquire(ep, now, AcquireResult::CallbackOf(at_once));
  ASSERT_TRUE(at_once->ready());  // answered before Acquire returned
  EXPECT_EQ(at_once->Take().status().code(),
            absl::StatusCode::kDeadlineExceeded);
  AcquireOptions shortly;
  shortly.timeout = absl::Milliseconds(30);
  auto later = AcquireResult::Make();
  const absl::Time start = absl::Now();
  pool_->Acquire(ep, shortly, AcquireResult::CallbackOf(later));
  EXPECT_EQ(later->Take().status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(29));
  // An idle connection is handed out even with a zero timeout.
  held->Release(true);
  ASSERT_TRUE(WaitFor([&] { return pool_->stats().idle == 1; }));
  auto idle = AcquireResult::Make();
  pool_->Acquire(ep, now, AcquireResult::CallbackOf(idle));
  ASSERT_TRUE(idle->ready());
  EXPECT_TRUE(idle->Take().ok());
}

TEST_P(ConnectionPoolLeaseTest, ResponseTimeoutClosesWithDeadlineExceeded) {
  const std::string ep = StartSilentServer();
  MakePool();
  auto report = std::make_shared<Report>();
  AcquireOptions options;
  options.response_timeout = absl::Milliseconds(50);
  pool_->Acquire(ep, options, SendOnReady(report, "anyone?"),
                 EchoHandlers(report, 1));
  ASSERT_TRUE(WaitFor([&] { return report->closes_size() == 1; }));
  {
    MutexLock lock(&report->mu);
    EXPECT_EQ(report->closes[0].code(), absl::StatusCode::kDeadlineExceeded)
        << report->closes[0];
    EXPECT_TRUE(report->responses.empty());
  }
  // Never returned to the pool.
  EXPECT_TRUE(WaitFor([&] { return pool_->stats().open == 0; }));
  EXPECT_EQ(pool_->stats().idle, 0u);
}

TEST_P(ConnectionPoolLeaseTest, ResponseTimeoutAppliesToUserHeldLeases) {
  const std::string ep = StartSilentServer();
  ConnectionPoolOptions pool_options;
  pool_options.response_timeout = absl::Milliseconds(50);  // the default
  MakePool(pool_options);
  auto report = std::make_shared<Report>();
  auto callbacks = std::make_shared<LeaseCallbacks>();
  callbacks->on_close = [report](const ConnectionPtr&, CloseReason reason,
                                 const absl::Status& status) {
    EXPECT_EQ(reason, CloseReason::kClosedLocally);
    MutexLock lock(&report->mu);
    report->closes.push_back(status);
  };
  // The wall-clock overload, the pool's default response timeout.
  absl::StatusOr<Lease> lease = AcquireSync(ep, callbacks);
  ASSERT_TRUE(lease.ok()) << lease.status();
  ASSERT_TRUE(lease->Send("anyone?").ok());
  ASSERT_TRUE(WaitFor([&] { return report->closes_size() == 1; }));
  {
    MutexLock lock(&report->mu);
    EXPECT_EQ(report->closes[0].code(), absl::StatusCode::kDeadlineExceeded)
        << report->closes[0];
  }
  EXPECT_TRUE((*lease)->is_closed());
  lease->Release(/*reusable=*/true);  // closed: not reused
  EXPECT_TRUE(WaitFor([&] { return pool_->stats().open == 0; }));
  EXPECT_EQ(pool_->stats().idle, 0u);
}

TEST_P(ConnectionPoolLeaseTest, AnsweredRequestStopsTheResponseTimer) {
  const std::string ep = StartServer();
  ConnectionPoolOptions pool_options;
  pool_options.response_timeout = absl::Milliseconds(20);  // the default
  MakePool(pool_options);
  auto report = std::make_shared<Report>();
  LeaseHandlers h = EchoHandlers(report, 1);
  // Keep the lease after the answer this time: consume, do not release.
  h.on_data = [report](Lease&, ByteBuffer& in) {
    std::string got(in.view());
    in.Consume(in.size());
    MutexLock lock(&report->mu);
    report->responses.push_back(got);
  };
  pool_->Acquire(
      ep, AcquireOptions(),
      [report](absl::StatusOr<Lease*> lease) {
        ASSERT_TRUE(lease.ok());
        {
          MutexLock lock(&report->mu);
          report->conn = (*lease)->connection();
        }
        ASSERT_TRUE((*lease)->Send("a").ok());
      },
      std::move(h));
  ASSERT_TRUE(WaitFor([&] { return report->responses_size() == 1; }));
  // A loop timer three timeouts later, then a task in the connection's
  // exclusion: a response timer that had not been stopped would have fired
  // and queued its abort before that task.
  auto checked = std::make_shared<std::atomic<int>>(0);
  ConnectionPtr c;
  {
    MutexLock lock(&report->mu);
    c = report->conn;
  }
  pool_loop_->RunAfter(absl::Milliseconds(60), [c, checked] {
    c->Dispatch([checked](const ConnectionPtr& cc) {
      checked->store(cc->is_closed() ? 2 : 1);
    });
  });
  ASSERT_TRUE(WaitFor([&] { return checked->load() != 0; }));
  EXPECT_EQ(checked->load(), 1) << "the answered request was timed out";
  EXPECT_EQ(report->closes_size(), 0u);
}

TEST_P(ConnectionPoolLeaseTest, EndpointSetRoundRobinIsExactlyEven) {
  std::vector<std::string> eps = {StartServer(), StartServer(), StartServer()};
  MakePool();
  auto set = EndpointSet::Create(eps);
  ASSERT_TRUE(set.ok());
  auto report = std::make_shared<Report>();
  for (int i = 0; i < 9; ++i) {
    pool_->Acquire(*set, AcquireOptions(), SendOnReady(report, "r"),
                   EchoHandlers(report, 1));
    ASSERT_TRUE(WaitFor([&] { return report->responses_size() == i + 1u; }));
  }
  std::vector<uint16_t> want;
  for (int round = 0; round < 3; ++round) {
    for (int s = 0; s < 3; ++s)
      want.push_back(server(s).local_address().port());
  }
  MutexLock lock(&report->mu);
  EXPECT_EQ(report->ports, want);
  EXPECT_EQ(pool_->stats().created, 3u);  // one connection each, reused
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(WaitFor([&] { return (*set)->outstanding(i) == 0; }));
  }
}

TEST_P(ConnectionPoolLeaseTest, EndpointSetTwoChoicesPrefersTheLessLoaded) {
  // Silent servers: each lease stays outstanding (no answer, no release).
  std::vector<std::string> eps = {StartSilentServer(), StartSilentServer(),
                                  StartSilentServer()};
  MakePool();
  EndpointSetOptions options;
  options.policy = BalancingPolicy::kPowerOfTwoChoices;
  // Always draws endpoint 0 first, and the others in turn second.
  auto draws = std::make_shared<std::atomic<uint64_t>>(0);
  options.random = [draws] {
    const uint64_t n = draws->fetch_add(1);
    return n % 2 == 0 ? 0 : n / 2;
  };
  auto set = EndpointSet::Create(eps, options);
  ASSERT_TRUE(set.ok());
  auto report = std::make_shared<Report>();
  for (int i = 0; i < 6; ++i) {
    pool_->Acquire(*set, AcquireOptions(), SendOnReady(report, "r"),
                   EchoHandlers(report, 1));
  }
  ASSERT_TRUE(WaitFor([&] {
    MutexLock lock(&report->mu);
    return report->ports.size() == 6;
  }));
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ((*set)->outstanding(i), 2u) << i;
  ConnectionPoolStats s = pool_->stats();
  EXPECT_EQ(s.active, 6u);
  ASSERT_EQ(s.endpoints, 3u);
}

TEST_P(ConnectionPoolLeaseTest, EndpointSetSkipsAFailedEndpoint) {
  std::vector<std::string> eps = {ClosedEndpoint(), StartServer()};
  MakePool();
  EndpointSetOptions options;
  options.failure_backoff = absl::Minutes(5);  // outlasts the test
  auto set = EndpointSet::Create(eps, options);
  ASSERT_TRUE(set.ok());
  auto report = std::make_shared<Report>();
  pool_->Acquire(*set, AcquireOptions(), SendOnReady(report, "r"),
                 EchoHandlers(report, 1));
  ASSERT_TRUE(WaitFor([&] { return report->errors_size() == 1; }));
  {
    MutexLock lock(&report->mu);
    EXPECT_EQ(report->errors[0].code(), absl::StatusCode::kUnavailable)
        << report->errors[0];
  }
  EXPECT_TRUE((*set)->backing_off(0));
  for (int i = 0; i < 4; ++i) {
    pool_->Acquire(*set, AcquireOptions(), SendOnReady(report, "r"),
                   EchoHandlers(report, 1));
    ASSERT_TRUE(WaitFor([&] { return report->responses_size() == i + 1u; }));
  }
  MutexLock lock(&report->mu);
  EXPECT_EQ(report->errors.size(), 1u);
  EXPECT_EQ(report->ports,
            std::vector<uint16_t>(4, server(0).local_address().port()));
}

TEST_P(ConnectionPoolLeaseTest, EndpointNamesGoThroughTheResolver) {
  const std::string ep = StartServer();
  const std::string port = ep.substr(ep.rfind(':') + 1);
  MakePool();
  auto set = EndpointSet::Create({"localhost:" + port});
  ASSERT_TRUE(set.ok());
  auto report = std::make_shared<Report>();
  pool_->Acquire(*set, AcquireOptions(), SendOnReady(report, "named"),
                 EchoHandlers(report, 5));
  ASSERT_TRUE(WaitFor([&] {
    return report->responses_size() == 1 || report->errors_size() == 1;
  }));
  MutexLock lock(&report->mu);
  ASSERT_EQ(report->responses, std::vector<std::string>{"named"})
      << (report->errors.empty() ? absl::OkStatus() : report->errors[0]);
}

TEST_P(ConnectionPoolLeaseTest, NullSetAndNegativeResponseTimeoutAreRefused) {
  MakePool();
  auto report = std::make_shared<Report>();
  pool_->Acquire(std::shared_ptr<EndpointSet>(), AcquireOptions(),
                 SendOnReady(report, "r"), LeaseHandlers());
  AcquireOptions bad;
  bad.response_timeout = absl::Seconds(-1);
  pool_->Acquire("127.0.0.1:1", bad, SendOnReady(report, "r"), LeaseHandlers());
  MutexLock lock(&report->mu);  // both answered before Acquire returned
  ASSERT_EQ(report->errors.size(), 2u);
  EXPECT_EQ(report->errors[0].code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(report->errors[1].code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace mill
