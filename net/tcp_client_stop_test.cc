// Tests of TcpClient: Stop() (also while a connect completes), cancels
// landing between an attempt's recording and its Start (defect 4), and the
// resolver the clients share. Both dispatch modes.
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

// --- Cancels that land while an attempt is being started (defect 4) ------
//
// StartAttempt records the attempt, releases the lock and starts the
// connection. A cancel (Cancel, the deadline, Stop, a pool's Drain through
// Cancel) that lands in between must not tear the connection down under its
// Start: the attempt is abandoned once Start returned, so no on_connect runs
// for a connection nobody will get (or, if the connect completed, on_close
// follows it), nothing stays registered, and Stop's wait ends.

enum class WindowCancel { kCancel, kDeadline, kStop };

struct WindowCase {
  WindowCancel cancel;
  bool reachable;  // the echo server (connects at once) or a black hole
};

class TcpClientStartWindowTest : public TcpClientTest {
 protected:
  void Run(WindowCase c) {
    BlackholeListener blackhole;
    std::atomic<int> opened{0}, closed{0}, windows{0};
    ConnectionCallbacks cb;
    cb.on_connect = [&](const ConnectionPtr&) { ++opened; };
    cb.on_close = [&](const ConnectionPtr&, CloseReason, const absl::Status&) {
      ++closed;
    };
    std::vector<std::unique_ptr<ConnectResult>> results;
    std::atomic<ConnectResult*> current{nullptr};
    std::thread stopper;
    net_internal::ClientHooks hooks;
    hooks.before_start = [&](uint64_t id, const ConnectionPtr&) {
      ++windows;
      switch (c.cancel) {
        case WindowCancel::kCancel:
          EXPECT_TRUE(client_->Cancel(id));
          break;
        case WindowCancel::kDeadline:
          // The deadline fires on the loop meanwhile.
          EXPECT_TRUE(WaitFor([&] { return current.load()->calls() == 1; }));
          break;
        case WindowCancel::kStop:
          // Stop() waits for this attempt: it must run elsewhere.
          stopper = std::thread([&] { client_->Stop(); });
          EXPECT_TRUE(WaitFor([&] { return current.load()->calls() == 1; }));
          break;
      }
    };
    MakeClient({}, cb, std::move(hooks));
    const SocketAddress target =
        c.reachable ? SocketAddress::LoopbackIPv4(port_) : blackhole.address();
    // The deadline must not pass before the attempt reaches the window (it
    // would finish the request first, also correctly): on a slow machine,
    // again with more time.
    std::vector<absl::Duration> timeouts = {absl::Seconds(30)};
    if (c.cancel == WindowCancel::kDeadline) {
      timeouts = {absl::Milliseconds(5), absl::Milliseconds(100),
                  absl::Seconds(1), absl::Seconds(5)};
    }
    for (absl::Duration timeout : timeouts) {
      results.push_back(std::make_unique<ConnectResult>());
      current = results.back().get();
      // A numeric target: the attempt starts inside Connect, on this thread.
      client_->Connect(target, current.load()->Callback(), timeout);
      if (windows.load() > 0) break;
      EXPECT_EQ(current.load()->Wait().status().code(),
                absl::StatusCode::kDeadlineExceeded);
    }
    ConnectResult& result = *current.load();
    if (stopper.joinable()) stopper.join();
    EXPECT_EQ(windows.load(), 1);
    const absl::StatusCode expected = c.cancel == WindowCancel::kDeadline
                                          ? absl::StatusCode::kDeadlineExceeded
                                          : absl::StatusCode::kCancelled;
    EXPECT_EQ(result.Wait().status().code(), expected);
    if (!c.reachable) {
      // Never connected: no on_connect, ever (Start has returned).
      EXPECT_EQ(opened.load(), 0);
    }
    // An on_connect (the connect completed meanwhile) is followed by
    // on_close; the server sees the connection go.
    EXPECT_TRUE(WaitFor([&] { return opened.load() == closed.load(); }))
        << opened.load() << " opened, " << closed.load() << " closed";
    EXPECT_TRUE(WaitFor([&] { return server_->connection_count() == 0; }));
    client_->Stop();  // returns: nothing live is left
    EXPECT_EQ(opened.load(), closed.load());
    EXPECT_EQ(client_->connection_count(), 0u);
    EXPECT_EQ(client_->stats().pending, 0u);
    EXPECT_EQ(result.calls(), 1);
    client_.reset();  // before the hooks' state goes
  }
};

INSTANTIATE_TEST_SUITE_P(
    Modes, TcpClientStartWindowTest,
    ::testing::Values(DispatchMode::kPool, DispatchMode::kDirect),
    [](const ::testing::TestParamInfo<DispatchMode>& info) {
      return info.param == DispatchMode::kPool ? "Pool" : "Direct";
    });

TEST_P(TcpClientStartWindowTest, CancelToUnreachable) {
  Run({WindowCancel::kCancel, false});
}
TEST_P(TcpClientStartWindowTest, CancelToReachable) {
  Run({WindowCancel::kCancel, true});
}
TEST_P(TcpClientStartWindowTest, DeadlineToUnreachable) {
  Run({WindowCancel::kDeadline, false});
}
TEST_P(TcpClientStartWindowTest, StopToUnreachable) {
  Run({WindowCancel::kStop, false});
}
TEST_P(TcpClientStartWindowTest, StopToReachable) {
  Run({WindowCancel::kStop, true});
}

// Defect 3: a connect that completes after Stop() began (here: while Stop
// is between marking the client stopping and cancelling what is pending)
// must not be adopted as open, or Stop would never close it and wait
// forever. It is closed (kStopped) and its callback gets Cancelled.
TEST_P(TcpClientTest, ConnectCompletingWhileStoppingIsClosed) {
  std::atomic<bool> connecting{false}, stop_begun{false};
  std::mutex mu;
  std::vector<CloseReason> reasons;
  ConnectResult result;
  ConnectionCallbacks cb;
  cb.on_connect = [&](const ConnectionPtr&) {
    // Hold the completion until Stop() has begun.
    connecting = true;
    EXPECT_TRUE(WaitFor([&] { return stop_begun.load(); }));
  };
  cb.on_close = [&](const ConnectionPtr&, CloseReason r, const absl::Status&) {
    std::lock_guard<std::mutex> lock(mu);
    reasons.push_back(r);
  };
  net_internal::ClientHooks hooks;
  hooks.stop_begun = [&] {
    if (stop_begun.exchange(true)) return;  // the first Stop() only
    // The connect completes now, inside Stop.
    EXPECT_TRUE(WaitFor([&] { return result.calls() == 1; }));
  };
  MakeClient({}, cb, std::move(hooks));
  client_->Connect(SocketAddress::LoopbackIPv4(port_), result.Callback());
  ASSERT_TRUE(WaitFor([&] { return connecting.load(); }));
  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    client_->Stop();
    stopped = true;
  });
  const bool returned = WaitFor([&] { return stopped.load(); });
  EXPECT_TRUE(returned) << "Stop() did not return";
  if (!returned) {
    absl::StatusOr<ConnectionPtr> leaked = result.Wait();
    if (leaked.ok()) (*leaked)->Close();  // lets Stop() return
  }
  stopper.join();
  EXPECT_EQ(result.Wait().status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(client_->connection_count(), 0u);
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(reasons, std::vector<CloseReason>{CloseReason::kStopped});
  }
  EXPECT_TRUE(WaitFor([&] { return server_->connection_count() == 0; }));
  client_.reset();  // before the hooks' state goes
}

// --- The shared resolver -----------------------------------------------

// Two clients (say, two pools) connecting to one name at once cause one
// lookup; a later connect is answered from the cache.
TEST_P(TcpClientTest, ClientsShareOneLookupOfAName) {
  std::atomic<int> lookups{0};
  std::atomic<bool> release{false};
  net_internal::Resolver::Options options;
  options.lookup =
      [&](const std::string& host) -> net_internal::Resolver::Result {
    ++lookups;
    EXPECT_EQ(host, "service.test");
    EXPECT_TRUE(WaitFor([&] { return release.load(); }));
    return net_internal::Resolver::Addresses{SocketAddress::LoopbackIPv4(0)};
  };
  auto resolver = std::make_shared<net_internal::Resolver>(options);
  net_internal::ClientHooks hooks;
  hooks.resolver = resolver;
  MakeClient({}, {}, hooks);
  absl::StatusOr<std::unique_ptr<TcpClient>> other =
      net_internal::TcpClientAccess::Create(loop_.get(), {}, {}, hooks);
  ASSERT_TRUE(other.ok()) << other.status();
  const std::string target = absl::StrCat("service.test:", port_);
  ConnectResult first, second, third;
  client_->Connect(target, first.Callback());
  (*other)->Connect(target, second.Callback());
  EXPECT_TRUE(WaitFor([&] { return resolver->stats().joined == 1; }));
  release = true;
  for (ConnectResult* r : {&first, &second}) {
    absl::StatusOr<ConnectionPtr> c = r->Wait();
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ((*c)->peer_address(), SocketAddress::LoopbackIPv4(port_));
  }
  client_->Connect(target, third.Callback());
  ASSERT_TRUE(third.Wait().ok());
  EXPECT_EQ(lookups.load(), 1);
  EXPECT_EQ(resolver->stats().cache_hits, 1u);
  EXPECT_EQ(client_->stats().resolutions, 2u);
  EXPECT_EQ((*other)->stats().resolutions, 1u);
  other->reset();
}

// By default every client uses the one process-wide resolver.
TEST_P(TcpClientTest, ClientsUseTheProcessWideResolver) {
  MakeClient();
  std::shared_ptr<net_internal::Resolver> shared =
      net_internal::Resolver::Shared();
  const net_internal::Resolver::Stats before = shared->stats();
  const std::string target = absl::StrCat("localhost:", port_);
  ConnectResult first, second;
  client_->Connect(target, first.Callback());
  ASSERT_TRUE(first.Wait().ok());
  absl::StatusOr<std::unique_ptr<TcpClient>> other =
      TcpClient::Create(loop_.get(), {});
  ASSERT_TRUE(other.ok());
  (*other)->Connect(target, second.Callback());
  ASSERT_TRUE(second.Wait().ok());
  const net_internal::Resolver::Stats after = shared->stats();
  EXPECT_LE(after.lookups - before.lookups, 1u);  // 0: cached earlier
  EXPECT_GE(after.cache_hits - before.cache_hits, 1u);
  other->reset();
}

}  // namespace
}  // namespace net_testing
}  // namespace mill
