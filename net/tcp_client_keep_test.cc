// Tests of TcpClient::KeepConnected's reporting and reset rules: a StatusOr
// for a malformed target, CurrentConnection, on_attempt_failed for every
// failed connect and every connection that closed before min_uptime, and
// the backoff resetting only after min_uptime (a server that accepts and
// drops at once is redialled ever more slowly). Scheduled waits and the
// uptime clock go through the client's test hooks. Both dispatch modes.
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "net/testing/client_fixture.h"

namespace mill {
namespace net_testing {
namespace {

INSTANTIATE_TEST_SUITE_P(
    Modes, TcpClientTest,
    ::testing::Values(DispatchMode::kPool, DispatchMode::kDirect),
    [](const ::testing::TestParamInfo<DispatchMode>& info) {
      return info.param == DispatchMode::kPool ? "Pool" : "Direct";
    });

// What on_attempt_failed and the backoff hook saw, in order.
struct Observed {
  std::mutex mu;
  std::vector<absl::Status> errors;
  std::vector<int> attempts;
  std::vector<size_t> waits_before;  // waits scheduled when it ran
  std::vector<absl::Duration> waits;

  size_t failures() {
    std::lock_guard<std::mutex> lock(mu);
    return errors.size();
  }
  size_t scheduled() {
    std::lock_guard<std::mutex> lock(mu);
    return waits.size();
  }
};

net_internal::ClientHooks RecordWaits(Observed* seen) {
  net_internal::ClientHooks hooks;
  hooks.backoff_scheduled = [seen](absl::Duration delay) {
    std::lock_guard<std::mutex> lock(seen->mu);
    seen->waits.push_back(delay);
  };
  return hooks;
}

KeepConnectedOptions Options(Observed* seen, absl::Duration min_uptime) {
  KeepConnectedOptions options;
  options.backoff.initial = absl::Milliseconds(1);
  options.backoff.multiplier = 2.0;
  options.backoff.max = absl::Seconds(1);
  options.backoff.jitter = 0.0;
  options.backoff.min_uptime = min_uptime;
  options.on_attempt_failed = [seen](const absl::Status& error, int attempt) {
    std::lock_guard<std::mutex> lock(seen->mu);
    seen->errors.push_back(error);
    seen->attempts.push_back(attempt);
    seen->waits_before.push_back(seen->waits.size());
  };
  return options;
}

// A server that accepts and closes at once (a FIN, so the client's connect
// itself succeeds and the connection then ends with peer_closed).
std::unique_ptr<TcpServer> DroppingServer(EventLoop* loop) {
  TcpServerCallbacks cb;
  cb.on_connect = [](const ConnectionPtr& c) { c->Close(); };
  absl::StatusOr<std::unique_ptr<TcpServer>> server =
      TcpServer::Create(loop, SocketAddress::LoopbackIPv4(0), std::move(cb));
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? std::move(*server) : nullptr;
}

TEST_P(TcpClientTest, KeepConnectedRefusesAMalformedTargetWithAStatus) {
  MakeClient();
  for (const char* target : {"no-port", "host:", ":80", "[::1:80"}) {
    absl::StatusOr<TcpClient::ConnectId> id = client_->KeepConnected(target);
    ASSERT_FALSE(id.ok()) << target;
    EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(id.status().message(), target))
        << id.status();
  }
  EXPECT_EQ(client_->stats().connects_started, 0u);
}

// Each refused connect is reported with its number, before the wait for
// the next one is scheduled.
TEST_P(TcpClientTest, KeepConnectedReportsEveryFailedAttempt) {
  Observed seen;
  MakeClient({}, {}, RecordWaits(&seen));
  absl::StatusOr<TcpClient::ConnectId> id =
      client_->KeepConnected(absl::StrCat("127.0.0.1:", UnusedPort()),
                             Options(&seen, absl::Seconds(1)));
  ASSERT_TRUE(id.ok()) << id.status();
  // Each failure's wait is scheduled right after it is reported.
  ASSERT_TRUE(
      WaitFor([&] { return seen.failures() >= 4 && seen.scheduled() >= 4; }));
  EXPECT_EQ(client_->CurrentConnection(*id), nullptr);
  EXPECT_TRUE(client_->StopKeepingConnected(*id));
  // (Not under seen.mu while calling the client: the backoff hook takes
  // seen.mu under the keeper's lock.)
  std::lock_guard<std::mutex> lock(seen.mu);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(seen.attempts[i], static_cast<int>(i) + 1);
    EXPECT_EQ(seen.errors[i].code(), absl::StatusCode::kUnavailable)
        << seen.errors[i];
    EXPECT_EQ(seen.waits_before[i], i);  // ran before its wait
    EXPECT_EQ(seen.waits[i], absl::Milliseconds(1) * (1 << i));
  }
}

TEST_P(TcpClientTest, CurrentConnectionIsTheOpenKeptConnection) {
  MakeClient();
  KeepConnectedOptions options;
  options.backoff.initial = absl::Milliseconds(1);
  options.backoff.min_uptime = absl::ZeroDuration();
  absl::StatusOr<TcpClient::ConnectId> id = client_->KeepConnected(
      absl::StrCat("127.0.0.1:", port_), std::move(options));
  ASSERT_TRUE(id.ok()) << id.status();
  ConnectionPtr first;
  ASSERT_TRUE(WaitFor([&] {
    first = client_->CurrentConnection(*id);
    return first != nullptr;
  }));
  EXPECT_EQ(first->peer_address().port(), port_);
  EXPECT_FALSE(first->is_closed());
  EXPECT_EQ(client_->CurrentConnection(*id + 1000), nullptr);
  // Closed: no longer current; the reconnect becomes current.
  first->Abort();
  ConnectionPtr second;
  ASSERT_TRUE(WaitFor([&] {
    second = client_->CurrentConnection(*id);
    return second != nullptr;
  }));
  EXPECT_NE(second->id(), first->id());
  // No longer kept: none, though the connection stays open.
  EXPECT_TRUE(client_->StopKeepingConnected(*id, /*close=*/false));
  EXPECT_EQ(client_->CurrentConnection(*id), nullptr);
  EXPECT_FALSE(second->is_closed());
}

// A server that accepts and drops at once: each connection is a failure,
// so the waits grow instead of redialling every `initial` forever.
TEST_P(TcpClientTest, KeepConnectedBacksOffFromAServerThatDropsAtOnce) {
  std::unique_ptr<TcpServer> dropping = DroppingServer(loop_.get());
  ASSERT_NE(dropping, nullptr);
  Observed seen;
  MakeClient({}, {}, RecordWaits(&seen));
  // No connection of this test lives an hour.
  absl::StatusOr<TcpClient::ConnectId> id = client_->KeepConnected(
      absl::StrCat("127.0.0.1:", dropping->local_address().port()),
      Options(&seen, absl::Hours(1)));
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(
      WaitFor([&] { return seen.failures() >= 5 && seen.scheduled() >= 5; }));
  EXPECT_TRUE(client_->StopKeepingConnected(*id));
  EXPECT_GE(connects_.load(), 5);
  std::lock_guard<std::mutex> lock(seen.mu);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(seen.attempts[i], static_cast<int>(i) + 1);
    EXPECT_EQ(seen.waits[i], absl::Milliseconds(1) * (1 << i));
    EXPECT_EQ(seen.errors[i].code(), absl::StatusCode::kUnavailable);
    EXPECT_TRUE(absl::StrContains(seen.errors[i].message(),
                                  "before min_uptime 1h (peer_closed)"))
        << seen.errors[i];
  }
}

// The same server, but every connection "lasts" 2 s on the keeper's clock:
// past min_uptime, so each close resets the backoff and nothing fails.
TEST_P(TcpClientTest, KeepConnectedResetsTheBackoffAfterMinUptime) {
  std::unique_ptr<TcpServer> dropping = DroppingServer(loop_.get());
  ASSERT_NE(dropping, nullptr);
  Observed seen;
  net_internal::ClientHooks hooks = RecordWaits(&seen);
  auto clock = std::make_shared<std::atomic<int64_t>>(0);
  hooks.now_nanos = [clock] {
    return clock->fetch_add(2'000'000'000) + 2'000'000'000;
  };
  MakeClient({}, {}, std::move(hooks));
  absl::StatusOr<TcpClient::ConnectId> id = client_->KeepConnected(
      absl::StrCat("127.0.0.1:", dropping->local_address().port()),
      Options(&seen, absl::Seconds(1)));
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(WaitFor([&] { return seen.scheduled() >= 4; }));
  EXPECT_TRUE(client_->StopKeepingConnected(*id));
  std::lock_guard<std::mutex> lock(seen.mu);
  EXPECT_TRUE(seen.errors.empty()) << seen.errors.front();
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(seen.waits[i], absl::Milliseconds(1)) << i;
  }
}

}  // namespace
}  // namespace net_testing
}  // namespace mill
