// Lifecycle edges of a Connection, driven through the owners' internal
// access (ConnectionAccess) with a recording owner instead of a TcpServer or
// TcpClient, so each edge is hit deterministically: a close that lands
// before Start (issue 16 §1.4), a registration whose release reports an
// error (§1.9), a SendFile of nothing whose release calls back (§1.7).
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "net/connection.h"
#include "net/internal/connection_config.h"
#include "net/socket_address.h"
#include "net/tcp_stream.h"
#include "net/testing/socket_checks.h"
#include "reactor/event_loop.h"

namespace mill {
namespace {

using net_internal::ConnectionAccess;
using net_internal::ConnectionConfig;
using net_internal::ConnectionOwner;

// Records what a connection tells its owner.
class RecordingOwner : public ConnectionOwner {
 public:
  explicit RecordingOwner(std::shared_ptr<const ConnectionConfig> config)
      : ConnectionOwner(std::move(config)) {}

  void OnConnectDone(const ConnectionPtr&, const absl::Status& s) override {
    connect_done.fetch_add(1);
    last_connect_status_ok.store(s.ok());
  }
  void OnClosed(const ConnectionPtr&, CloseReason,
                const absl::Status&) override {
    closed.fetch_add(1);
  }
  void OnCloseCallbackDone() override { close_callbacks_done.fetch_add(1); }

  std::atomic<int> connect_done{0};
  std::atomic<bool> last_connect_status_ok{false};
  std::atomic<int> closed{0};
  std::atomic<int> close_callbacks_done{0};
};

bool WaitFor(const std::function<bool()>& pred) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    if (pred()) return true;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return pred();
}

class ConnectionLifecycleTest : public ::testing::TestWithParam<DispatchMode> {
 protected:
  void SetUp() override {
    EventLoopOptions options;
    options.workers = 3;
    options.dispatch_mode = GetParam();
    auto loop = EventLoop::Create(options);
    ASSERT_TRUE(loop.ok()) << loop.status();
    loop_ = std::move(*loop);
    runner_ = std::thread([this] { (void)loop_->Run(); });
    int fds[2];
    ASSERT_TRUE(net_testing::MakeStreamPair(fds));
    ours_ = fds[0];
    peer_ = fds[1];
  }

  void TearDown() override {
    loop_->Stop();
    runner_.join();
    net_testing::CloseDescriptor(peer_);
  }

  // A connection over our end of the socket pair, owned by `owner`.
  ConnectionPtr Make(std::shared_ptr<RecordingOwner>* owner,
                     ConnectionCallbacks callbacks, bool outbound = false) {
    auto config = std::make_shared<ConnectionConfig>(
        loop_.get(), std::move(callbacks), ConnectionOptions());
    *owner = std::make_shared<RecordingOwner>(config);
    absl::StatusOr<TcpStream> stream = TcpStream::Adopt(ours_);
    EXPECT_TRUE(stream.ok()) << stream.status();
    return ConnectionAccess::Create(*owner, 1, outbound, *std::move(stream),
                                    SocketAddress());
  }

  std::unique_ptr<EventLoop> loop_;
  std::thread runner_;
  int ours_ = -1;
  int peer_ = -1;
};

INSTANTIATE_TEST_SUITE_P(
    Modes, ConnectionLifecycleTest,
    ::testing::Values(DispatchMode::kPool, DispatchMode::kDirect),
    [](const ::testing::TestParamInfo<DispatchMode>& info) {
      return info.param == DispatchMode::kPool ? "Pool" : "Direct";
    });

// §1.4: its owner stopping between creating a connection and starting it
// used to leave Start to run on_connect on the closed connection, with no
// on_close to follow (a pool then waited forever for it).
TEST_P(ConnectionLifecycleTest, ClosedBeforeStartNeverRunsOnConnect) {
  std::atomic<int> connects{0};
  std::atomic<int> closes{0};
  ConnectionCallbacks cb;
  cb.on_connect = [&](const ConnectionPtr&) { connects.fetch_add(1); };
  cb.on_close = [&](const ConnectionPtr&, CloseReason, const absl::Status&) {
    closes.fetch_add(1);
  };
  std::shared_ptr<RecordingOwner> owner;
  ConnectionPtr conn = Make(&owner, cb);
  ConnectionAccess::Close(conn, CloseReason::kStopped, absl::OkStatus());
  ASSERT_TRUE(WaitFor([&] { return owner->close_callbacks_done.load() == 1; }));
  ConnectionAccess::Start(conn);
  EXPECT_EQ(connects.load(), 0);
  EXPECT_EQ(closes.load(), 0);  // on_close is owed only after on_connect
  EXPECT_EQ(owner->closed.load(), 1);
  EXPECT_EQ(conn->state(), ConnectionState::kClosed);
  EXPECT_EQ(loop_->stats().registered, 0u);
  // The socket is closed: the peer reads EOF.
  char byte;
  EXPECT_EQ(read(peer_, &byte, 1), 0);
}

// §1.4, the client's variant: a connect cancelled before Start is reported
// once, and Start then registers nothing (it used to register a descriptor
// that was already closed, or another connection's).
TEST_P(ConnectionLifecycleTest, ConnectCancelledBeforeStartRegistersNothing) {
  std::atomic<int> connects{0};
  ConnectionCallbacks cb;
  cb.on_connect = [&](const ConnectionPtr&) { connects.fetch_add(1); };
  std::shared_ptr<RecordingOwner> owner;
  ConnectionPtr conn = Make(&owner, cb, /*outbound=*/true);
  ConnectionAccess::FailConnect(conn, absl::CancelledError("cancelled"));
  EXPECT_EQ(owner->connect_done.load(), 1);
  EXPECT_FALSE(owner->last_connect_status_ok.load());
  ConnectionAccess::Start(conn);
  ASSERT_TRUE(WaitFor([&] { return owner->close_callbacks_done.load() == 1; }));
  EXPECT_EQ(owner->connect_done.load(), 1);
  EXPECT_EQ(connects.load(), 0);
  EXPECT_EQ(loop_->stats().registered, 0u);
}

// §1.9: a registration whose release reports an error (its descriptor was
// replaced behind the loop's back) used to finish the close twice: the
// owner heard OnClosed twice (a TcpClient then counted a live connection
// too few and its Stop returned early).
TEST_P(ConnectionLifecycleTest, CloseFinishesOnceWhenTheReleaseFails) {
  if (!net_testing::CanReplaceWithNonSocket()) {
    GTEST_SKIP() << "POSIX only: replaces the socket under its descriptor "
                    "number with dup2(2), which Windows cannot";
  }
  std::atomic<int> closes{0};
  ConnectionCallbacks cb;
  cb.on_close = [&](const ConnectionPtr&, CloseReason, const absl::Status&) {
    closes.fetch_add(1);
  };
  std::shared_ptr<RecordingOwner> owner;
  ConnectionPtr conn = Make(&owner, cb);
  ConnectionAccess::Start(conn);
  ASSERT_EQ(loop_->stats().registered, 1u);
  // Replace the socket under the registration: the poller forgets it, and
  // removing the registration fails.
  ASSERT_TRUE(net_testing::ReplaceWithNonSocket(ours_));
  ConnectionAccess::Close(conn, CloseReason::kStopped, absl::OkStatus());
  ASSERT_TRUE(WaitFor([&] { return owner->close_callbacks_done.load() >= 1; }));
  // Anything still to come would be queued on the loop: let it run.
  std::atomic<bool> flushed{false};
  ASSERT_TRUE(loop_->RunInLoop([&] { flushed = true; }).ok());
  ASSERT_TRUE(WaitFor([&] { return flushed.load(); }));
  EXPECT_EQ(owner->closed.load(), 1);
  EXPECT_EQ(owner->close_callbacks_done.load(), 1);
  EXPECT_EQ(closes.load(), 1);
}

// §1.7: SendFile of an empty range ran its release under the connection's
// lock, so a release that touched the connection deadlocked.
TEST_P(ConnectionLifecycleTest, EmptySendFileReleasesUnlocked) {
  std::shared_ptr<RecordingOwner> owner;
  ConnectionPtr conn = Make(&owner, ConnectionCallbacks());
  ConnectionAccess::Start(conn);
  std::atomic<int> released{0};
  size_t pending_seen = 99;
  absl::Status sent = conn->SendFile(0, 0, 0, [&] {
    pending_seen = conn->pending_output_bytes();  // takes the lock
    released.fetch_add(1);
  });
  EXPECT_TRUE(sent.ok()) << sent;
  EXPECT_EQ(released.load(), 1);
  EXPECT_EQ(pending_seen, 0u);
  ConnectionAccess::Close(conn, CloseReason::kStopped, absl::OkStatus());
  ASSERT_TRUE(WaitFor([&] { return owner->close_callbacks_done.load() == 1; }));
}

}  // namespace
}  // namespace mill
