// Tests of the Connection shared by servers and clients, writing and
// closing side: SendFile, closing from other threads and callbacks, Stop,
// contexts, names. Both dispatch modes.
#include "net/testing/connection_fixture.h"

namespace mill {
namespace net_testing {
namespace {

INSTANTIATE_TEST_SUITE_P(Modes, ConnectionTest, BothDispatchModes(),
                         DispatchModeName);

TEST_P(ConnectionTest, SendFileStreamsInOrderAndReleasesOnce) {
  const std::string contents = Pattern(3, 3 << 20);  // 3 MiB
  TempFile file(contents);
  std::atomic<int> releases{0};
  TcpServerCallbacks cb;
  cb.on_data = [&](const ConnectionPtr& c, ByteBuffer& in) {
    in.Consume(in.size());
    ASSERT_TRUE(c->Send("head:").ok());
    ASSERT_TRUE(c->SendFile(file.fd(), 10, contents.size() - 20, [&] {
                   ++releases;
                 }).ok());
    ASSERT_TRUE(c->Send(":tail").ok());
    c->Close();
  };
  TcpServerOptions options;
  options.connection.high_water_mark = 64 << 10;  // the file is far above
  options.connection.low_water_mark = 16 << 10;
  Start(cb, options);
  TestClient client = Connect();
  ASSERT_TRUE(client.SendAll("GET").ok());
  const std::string got = client.RecvUntilEof();
  EXPECT_EQ(got.size(), contents.size() - 20 + 10);
  EXPECT_TRUE(got ==
              "head:" + contents.substr(10, contents.size() - 20) + ":tail");
  ASSERT_TRUE(WaitFor([&] { return releases.load() == 1; }));
  EXPECT_EQ(Closes(), std::vector<CloseReason>{CloseReason::kClosedLocally});
}

TEST_P(ConnectionTest, SendFilePastTheEndClosesWithAnError) {
  TempFile file("short file");
  std::atomic<int> releases{0};
  std::atomic<bool> error_close{false};
  TcpServerCallbacks cb;
  cb.on_data = [&](const ConnectionPtr& c, ByteBuffer& in) {
    in.Consume(in.size());
    (void)c->SendFile(file.fd(), 0, 1000, [&] { ++releases; });
  };
  cb.on_close = [&](const ConnectionPtr&, CloseReason r, const absl::Status&) {
    error_close = r == CloseReason::kError;
  };
  Start(cb);
  TestClient client = Connect();
  ASSERT_TRUE(client.SendAll("x").ok());
  EXPECT_TRUE(client.WaitClosed(absl::Seconds(10)));
  EXPECT_TRUE(WaitFor([&] { return error_close.load(); }));
  EXPECT_EQ(releases.load(), 1);
}

// A client that never reads: the file ranges count as pending output, so
// the server stops reading requests at the high-water mark and its memory
// holds descriptors, not file bytes.
TEST_P(ConnectionTest, QueuedFilesCountAsPendingOutput) {
  const std::string contents(1 << 20, 'f');
  TempFile file(contents);
  std::atomic<int> queued{0};
  std::atomic<int> released{0};
  TcpServerCallbacks cb;
  cb.on_data = [&](const ConnectionPtr& c, ByteBuffer& in) {
    // One "request" per byte; stop at the mark and leave the rest.
    while (!in.empty() && c->pending_output_bytes() < (size_t{256} << 10)) {
      in.Consume(1);
      ASSERT_TRUE(
          c->SendFile(file.fd(), 0, contents.size(), [&] { ++released; }).ok());
      ++queued;
    }
  };
  TcpServerOptions options;
  options.connection.high_water_mark = 256 << 10;
  options.connection.low_water_mark = 64 << 10;
  Start(cb, options);
  absl::StatusOr<TestClient> client = TestClient::Connect(port_, 4096);
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(client->SendAll(std::string(50, 'r')).ok());
  ConnectionPtr conn = ConnAt(0);
  ASSERT_TRUE(WaitFor([&] { return conn->reading_paused(); }));
  // Paused at the mark: a few files queued (the socket buffers, which the
  // kernel may grow for a while, absorb the first megabytes), then no more,
  // though 50 requests are waiting.
  int settled = -1;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (queued.load() != settled && absl::Now() < deadline) {
    settled = queued.load();
    absl::SleepFor(absl::Milliseconds(300));
  }
  EXPECT_EQ(queued.load(), settled);
  EXPECT_LT(settled, 10);
  EXPECT_GE(conn->pending_output_bytes(), size_t{256} << 10);
  EXPECT_TRUE(conn->reading_paused());
  client->Close();
  ASSERT_TRUE(WaitFor([&] { return released.load() == queued.load(); }));
}

// Issue 11 §1.7: closing a connection from another thread while its handler
// runs must not make the loop thread wait for that handler.
TEST_P(ConnectionTest, CloseFromAnotherThreadDoesNotStallOtherSources) {
  if (GetParam() == DispatchMode::kDirect) {
    GTEST_SKIP() << "direct mode runs every handler on the loop thread";
  }
  std::atomic<bool> slow_running{false};
  std::atomic<bool> slow_done{false};
  TcpServerCallbacks cb;
  cb.on_data = [&](const ConnectionPtr& c, ByteBuffer& in) {
    const std::string data(in.view());
    in.Consume(in.size());
    if (data == "sleep") {
      slow_running = true;
      absl::SleepFor(absl::Seconds(2));
      slow_done = true;
      return;
    }
    (void)c->Send(data);
  };
  Start(cb);
  TestClient a = Connect();
  ConnectionPtr conn_a = ConnAt(0);
  TestClient b = Connect();
  ASSERT_NE(ConnAt(1), nullptr);
  ASSERT_TRUE(a.SendAll("sleep").ok());
  ASSERT_TRUE(WaitFor([&] { return slow_running.load(); }));
  // From a thread that is neither a worker nor the loop.
  std::thread closer([&] { conn_a->Abort(); });
  closer.join();
  // B's round trips complete while A's handler still sleeps.
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(b.SendAll("ping").ok());
    EXPECT_EQ(b.RecvExactly(4), "ping");
  }
  EXPECT_FALSE(slow_done.load());
  EXPECT_TRUE(a.WaitClosed(absl::Seconds(10)));
}

// Issue 11 §1.2: Stop() from callbacks on two workers after loop->Stop()
// used to deadlock (each waited in Deregister for the other's handler).
TEST_P(ConnectionTest, StopFromTwoCallbacksAfterLoopStopDoesNotDeadlock) {
  std::atomic<int> arrived{0};
  std::atomic<int> stopped{0};
  TcpServerCallbacks cb;
  cb.on_data = [&](const ConnectionPtr&, ByteBuffer& in) {
    in.Consume(in.size());
    ++arrived;
    const absl::Time deadline = absl::Now() + absl::Milliseconds(500);
    while (arrived.load() < 2 && absl::Now() < deadline) {
      std::this_thread::yield();
    }
    loop_->Stop();
    server_->Stop();
    ++stopped;
  };
  Start(cb);
  TestClient a = Connect();
  TestClient b = Connect();
  ASSERT_NE(ConnAt(1), nullptr);
  ASSERT_TRUE(a.SendAll("1").ok());
  ASSERT_TRUE(b.SendAll("2").ok());
  runner_.join();  // Run() returns: nothing is stuck
  EXPECT_GE(stopped.load(), 1);
  EXPECT_EQ(server_->connection_count(), 0u);
  EXPECT_TRUE(a.WaitClosed(absl::Seconds(5)));
  EXPECT_TRUE(b.WaitClosed(absl::Seconds(5)));
}

// Issue 11 §1.8: a context's destructor ran under the connection's lock.
TEST_P(ConnectionTest, ContextDestructorMayCallBackIntoTheConnection) {
  struct CallsBack {
    std::weak_ptr<Connection> conn;
    std::atomic<int>* destroyed;
    ~CallsBack() {
      if (ConnectionPtr c = conn.lock()) {
        (void)c->pending_output_bytes();  // takes the connection's lock
        (void)c->GetContext<void>();
      }
      ++*destroyed;
    }
  };
  std::atomic<int> destroyed{0};
  TcpServerCallbacks cb;
  cb.on_connect = [&](const ConnectionPtr& c) {
    auto ctx = std::make_shared<CallsBack>();
    ctx->conn = c;
    ctx->destroyed = &destroyed;
    c->SetContext(ctx);
  };
  cb.on_data = [&](const ConnectionPtr& c, ByteBuffer& in) {
    in.Consume(in.size());
    c->SetContext(nullptr);  // replaces (and destroys) the context
    (void)c->Send("ok");
  };
  Start(cb);
  TestClient client = Connect();
  ASSERT_TRUE(client.SendAll("x").ok());
  EXPECT_EQ(client.RecvExactly(2), "ok");
  EXPECT_EQ(destroyed.load(), 1);
}

// Stop() returns only once every on_close has returned (it used to return
// when the socket was closed, with on_close still running elsewhere).
TEST_P(ConnectionTest, ServerStopWaitsForOnCloseToReturn) {
  std::atomic<int> finished{0};
  TcpServerCallbacks cb;
  cb.on_close = [&](const ConnectionPtr&, CloseReason, const absl::Status&) {
    absl::SleepFor(absl::Milliseconds(100));
    ++finished;
  };
  Start(cb);
  TestClient a = Connect();
  TestClient b = Connect();
  ASSERT_NE(ConnAt(1), nullptr);
  server_->Stop();
  EXPECT_EQ(finished.load(), 2);
}

// Closing one connection from another connection's callback must not run
// the closed one's on_close inside that callback (the caller may hold a
// lock on_close needs). In direct mode it used to, through RunInLoop's
// inline path on the loop thread (found by the proxy's author).
thread_local bool t_in_killer = false;

TEST_P(ConnectionTest, OnCloseNeverRunsInsideAnotherCallbacksClose) {
  std::atomic<int> closed_inside{0}, closed_outside{0};
  TcpServerCallbacks cb;
  cb.on_data = [&](const ConnectionPtr& c, ByteBuffer& in) {
    const std::string data(in.view());
    in.Consume(in.size());
    if (data != "kill") return;
    t_in_killer = true;  // this thread, inside the killer's callback
    for (const ConnectionPtr& other : server_->Connections()) {
      if (other != c) other->Abort();
    }
    t_in_killer = false;
  };
  cb.on_close = [&](const ConnectionPtr&, CloseReason r, const absl::Status&) {
    if (r != CloseReason::kClosedLocally) return;
    (t_in_killer ? closed_inside : closed_outside)++;
  };
  Start(cb);
  TestClient victim = Connect();
  ASSERT_NE(ConnAt(0), nullptr);
  TestClient killer = Connect();
  ASSERT_NE(ConnAt(1), nullptr);
  ASSERT_TRUE(killer.SendAll("kill").ok());
  EXPECT_TRUE(victim.WaitClosed(absl::Seconds(10)));
  ASSERT_TRUE(WaitFor([&] { return closed_outside.load() == 1; }));
  EXPECT_EQ(closed_inside.load(), 0);
}

TEST_P(ConnectionTest, StateAndCloseReasonNames) {
  TcpServerCallbacks cb;
  Start(cb);
  TestClient client = Connect();
  ConnectionPtr conn = ConnAt(0);
  ASSERT_NE(conn, nullptr);
  EXPECT_EQ(conn->state(), ConnectionState::kOpen);
  EXPECT_FALSE(conn->is_outbound());
  EXPECT_EQ(conn->local_address().port(), port_);
  ASSERT_TRUE(conn->Send("bye").ok());
  conn->Close();
  EXPECT_FALSE(conn->can_send());
  EXPECT_EQ(client.RecvUntilEof(), "bye");
  ASSERT_TRUE(WaitFor([&] { return conn->is_closed(); }));
  EXPECT_EQ(conn->state(), ConnectionState::kClosed);
  EXPECT_EQ(ConnectionStateName(ConnectionState::kClosing), "closing");
  EXPECT_EQ(CloseReasonName(CloseReason::kInputOverflow), "input_overflow");
  EXPECT_EQ(conn->Send("late").code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace net_testing
}  // namespace mill
