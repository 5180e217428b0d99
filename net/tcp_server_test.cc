// Tests of TcpServer and its connections (data, half-close, resets,
// backpressure, stop), over both dispatch modes.
#include "base/testing/wine.h"
#include "net/testing/server_fixture.h"

namespace mill {
namespace net_testing {
namespace {

INSTANTIATE_TEST_SUITE_P(
    Modes, TcpServerTest,
    ::testing::Values(DispatchMode::kPool, DispatchMode::kDirect),
    [](const ::testing::TestParamInfo<DispatchMode>& info) {
      return info.param == DispatchMode::kPool ? "Pool" : "Direct";
    });

TEST_P(TcpServerTest, EchoRoundTripExactBytes) {
  Start();
  TestClient client = Connect();
  const std::string data = Pattern(1, 100000);
  ASSERT_TRUE(client.SendAll(data).ok());
  EXPECT_EQ(client.RecvExactly(data.size()), data);
  ConnectionPtr conn = ConnAt(0);
  ASSERT_NE(conn, nullptr);
  EXPECT_EQ(conn->id(), 1u);
  EXPECT_EQ(conn->peer_address().port(), [&] {
    sockaddr_in sin;
    socklen_t len = sizeof(sin);
    getsockname(client.fd(), reinterpret_cast<sockaddr*>(&sin), &len);
    return ntohs(sin.sin_port);
  }());
  EXPECT_EQ(conn->bytes_received(), data.size());
  // Counted right after the write, which may be after the client read it.
  EXPECT_TRUE(WaitFor([&] { return conn->bytes_sent() == data.size(); }));
  client.Close();
  ASSERT_TRUE(closes_.WaitForCount(1));
  EXPECT_EQ(closes_.Count(CloseReason::kPeerClosed), 1u);
  EXPECT_TRUE(conn->is_closed());
  EXPECT_TRUE(absl::IsFailedPrecondition(conn->Send("late")));
  const TcpServerStats stats = server_->stats();
  EXPECT_EQ(stats.accepted, 1u);
  EXPECT_EQ(stats.active, 0u);
  EXPECT_EQ(stats.bytes_read, data.size());
  EXPECT_EQ(stats.bytes_written, data.size());
  EXPECT_EQ(stats.closed(CloseReason::kPeerClosed), 1u);
}

TEST_P(TcpServerTest, CallbackOrderAndContext) {
  struct Ctx {
    std::string seen;
  };
  std::mutex mu;
  std::vector<std::string> events;
  TcpServerCallbacks cb;
  cb.on_connect = [&](const ConnectionPtr& c) {
    c->SetContext(std::make_shared<Ctx>());
    std::lock_guard<std::mutex> lock(mu);
    events.push_back("connect");
  };
  cb.on_data = ConsumeAll([&](const ConnectionPtr& c, absl::string_view d) {
    c->GetContext<Ctx>()->seen.append(d.data(), d.size());
    std::lock_guard<std::mutex> lock(mu);
    if (events.back() != "data") events.push_back("data");
  });
  cb.on_close = [&](const ConnectionPtr& c, CloseReason r,
                    const absl::Status& s) {
    std::lock_guard<std::mutex> lock(mu);
    events.push_back(absl::StrCat("close:", CloseReasonName(r), ":",
                                  c->GetContext<Ctx>()->seen, ":", s.ok()));
    closes_.Add(c->id(), r);
  };
  Start(cb);
  TestClient client = Connect();
  ASSERT_TRUE(client.SendAll("abc").ok());
  client.ShutdownWrite();
  EXPECT_EQ(client.RecvUntilEof(), "");  // no echo configured
  ASSERT_TRUE(closes_.WaitForCount(1));
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(events, (std::vector<std::string>{"connect", "data",
                                              "close:peer_closed:abc:1"}));
}

TEST_P(TcpServerTest, ManyConcurrentClientsEveryByteChecked) {
  Start();
  constexpr size_t kClients = 200;
  constexpr size_t kBytes = 64 * 1024;
  net_testing::EchoSwarmResult r =
      RunEchoSwarm(port_, kClients, kBytes, absl::Seconds(50));
  EXPECT_EQ(r.completed, kClients) << r.first_error;
  EXPECT_EQ(r.mismatches, 0u) << r.first_error;
  EXPECT_EQ(r.failed, 0u) << r.first_error;
  EXPECT_FALSE(r.timed_out);
  ASSERT_TRUE(closes_.WaitForCount(kClients));
  const TcpServerStats stats = server_->stats();
  EXPECT_EQ(stats.accepted, kClients);
  EXPECT_EQ(stats.bytes_read, kClients * kBytes);
  EXPECT_EQ(stats.bytes_written, kClients * kBytes);
  EXPECT_EQ(stats.active, 0u);
}

TEST_P(TcpServerTest,
       BackpressureHighWaterAndWritableInterestOnlyWhilePending) {
  std::atomic<int> high{0}, low{0};
  std::atomic<size_t> high_pending{0};
  TcpServerCallbacks cb;
  cb.on_high_water = [&](const ConnectionPtr&, size_t pending) {
    high_pending = pending;
    ++high;
  };
  cb.on_low_water = [&](const ConnectionPtr&) { ++low; };
  TcpServerOptions options;
  options.connection.high_water_mark = 512 * 1024;
  options.connection.low_water_mark = 64 * 1024;
  Start(cb, options);
  TestClient client = Connect(/*rcvbuf=*/16 * 1024);
  ConnectionPtr conn = ConnAt(0);
  ASSERT_NE(conn, nullptr);
  ASSERT_TRUE(WaitFor([&] {
    return net_internal::ConnectionAccess::WantedInterest(*conn) ==
           Interest::Readable();
  }));
  EXPECT_EQ(conn->pending_output_bytes(), 0u);

  // The client does not read: sends from this (non-loop) thread pile up.
  constexpr size_t kChunk = 64 * 1024;
  constexpr size_t kTotal = 8 * 1024 * 1024;
  for (size_t off = 0; off < kTotal; off += kChunk) {
    ASSERT_TRUE(conn->Send(Pattern(7, kChunk, off)).ok());
  }
  EXPECT_GE(conn->pending_output_bytes(), options.connection.high_water_mark);
  EXPECT_TRUE(
      net_internal::ConnectionAccess::WantedInterest(*conn).is_writable());
  EXPECT_FALSE(net_internal::ConnectionAccess::WantedInterest(*conn)
                   .is_readable());  // paused above high water
  EXPECT_TRUE(conn->reading_paused());
  EXPECT_EQ(high.load(), 1);
  EXPECT_GE(high_pending.load(), options.connection.high_water_mark);
  EXPECT_EQ(server_->stats().high_water_events, 1u);

  // Now read everything: all bytes arrive, in order.
  const std::string got = client.RecvExactly(kTotal);
  ASSERT_EQ(got.size(), kTotal);
  EXPECT_TRUE(got == Pattern(7, kTotal)) << "byte order or content differs";
  ASSERT_TRUE(WaitFor([&] { return conn->pending_output_bytes() == 0; }));
  ASSERT_TRUE(WaitFor([&] {
    return net_internal::ConnectionAccess::WantedInterest(*conn) ==
           Interest::Readable();
  })) << net_internal::ConnectionAccess::WantedInterest(*conn);
  EXPECT_EQ(low.load(), 1);
  EXPECT_FALSE(conn->reading_paused());
  // Reading resumed: the connection still echoes.
  ASSERT_TRUE(client.SendAll("ping").ok());
  EXPECT_EQ(client.RecvExactly(4), "ping");
}

TEST_P(TcpServerTest, SendFromManyThreadsKeepsEachSendWhole) {
  Start();
  TestClient client = Connect();
  ConnectionPtr conn = ConnAt(0);
  ASSERT_NE(conn, nullptr);
  constexpr int kThreads = 4, kPerThread = 200, kLen = 1000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string msg(kLen, static_cast<char>('a' + t));
      for (int i = 0; i < kPerThread; ++i) ASSERT_TRUE(conn->Send(msg).ok());
    });
  }
  const std::string got = client.RecvExactly(kThreads * kPerThread * kLen);
  for (auto& t : threads) t.join();
  ASSERT_EQ(got.size(), static_cast<size_t>(kThreads * kPerThread * kLen));
  int counts[kThreads] = {};
  for (size_t i = 0; i < got.size(); i += kLen) {
    const char c = got[i];
    ASSERT_GE(c, 'a');
    ASSERT_LT(c, 'a' + kThreads);
    ASSERT_EQ(got.substr(i, kLen), std::string(kLen, c))
        << "interleaved at " << i;
    ++counts[c - 'a'];
  }
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(counts[t], kPerThread);
}

TEST_P(TcpServerTest, CloseAfterFlushDeliversAllQueuedBytes) {
  TcpServerCallbacks cb;
  cb.on_connect = [](const ConnectionPtr& c) {
    for (size_t off = 0; off < (4u << 20); off += 64 * 1024) {
      (void)c->Send(Pattern(3, 64 * 1024, off));
    }
    c->Close();
    // After Close nothing more may be queued.
    EXPECT_TRUE(absl::IsFailedPrecondition(c->Send("x")));
  };
  Start(cb);
  TestClient client = Connect(/*rcvbuf=*/32 * 1024);
  const std::string got = client.RecvUntilEof();
  ASSERT_EQ(got.size(), 4u << 20);
  EXPECT_TRUE(got == Pattern(3, 4u << 20));
  ASSERT_TRUE(closes_.WaitForCount(1));
  EXPECT_EQ(closes_.Count(CloseReason::kClosedLocally), 1u);
}

TEST_P(TcpServerTest, HalfCloseStillGetsTheRemainingResponse) {
  Start();
  TestClient client = Connect(/*rcvbuf=*/16 * 1024);
  const std::string data = Pattern(5, 2 << 20);
  // Send everything, then half-close, then read: the server has to buffer
  // output, see EOF, flush, and only then close.
  std::thread writer([&] {
    ASSERT_TRUE(client.SendAll(data).ok());
    client.ShutdownWrite();
  });
  const std::string got = client.RecvUntilEof();
  writer.join();
  ASSERT_EQ(got.size(), data.size());
  EXPECT_TRUE(got == data);
  ASSERT_TRUE(closes_.WaitForCount(1));
  EXPECT_EQ(closes_.Count(CloseReason::kPeerClosed), 1u);
}

TEST_P(TcpServerTest, PeerShutdownCallbackKeepsConnectionOpenForReply) {
  TcpServerCallbacks cb;
  cb.on_data = ConsumeAll([](const ConnectionPtr&, absl::string_view) {});
  cb.on_peer_shutdown = [](const ConnectionPtr& c) {
    // Reply later, from another thread, then close.
    std::thread([c] {
      absl::SleepFor(absl::Milliseconds(20));
      (void)c->Send("bye");
      c->Close();
    }).detach();
  };
  Start(cb);
  TestClient client = Connect();
  ASSERT_TRUE(client.SendAll("request").ok());
  client.ShutdownWrite();
  EXPECT_EQ(client.RecvUntilEof(), "bye");
  ASSERT_TRUE(closes_.WaitForCount(1));
  EXPECT_EQ(closes_.Count(CloseReason::kClosedLocally), 1u);
}

TEST_P(TcpServerTest, ServerShutdownHalfClosesThenPeerCloses) {
  TcpServerCallbacks cb;
  cb.on_connect = [this](const ConnectionPtr& c) {
    {
      std::lock_guard<std::mutex> lock(conns_mu_);
      conns_.push_back(c);
    }
    (void)c->Send("hello");
    c->Shutdown();
  };
  Start(cb);
  TestClient client = Connect();
  EXPECT_EQ(client.RecvUntilEof(), "hello");  // our write side is shut
  ConnectionPtr conn = ConnAt(0);
  ASSERT_NE(conn, nullptr);
  EXPECT_FALSE(conn->is_closed());  // still reading
  EXPECT_FALSE(conn->can_send());
  client.Close();
  ASSERT_TRUE(closes_.WaitForCount(1));
  EXPECT_EQ(closes_.Count(CloseReason::kPeerClosed), 1u);
}

TEST_P(TcpServerTest, ResetByPeerClosesWithReasonReset) {
  if (mill::testing::RunningUnderWine()) {
    GTEST_SKIP() << "Wine: closesocket after SO_LINGER {1, 0} reaches the "
                    "peer as an orderly end of stream (recv 0), not a reset "
                    "(WSAECONNRESET)";
  }
  std::atomic<int> status_errors{0};
  TcpServerCallbacks cb;
  cb.on_close = [&](const ConnectionPtr& c, CloseReason r,
                    const absl::Status& s) {
    if (!s.ok()) ++status_errors;
    closes_.Add(c->id(), r);
  };
  Start(cb);
  TestClient client = Connect();
  ASSERT_TRUE(client.SendAll(Pattern(9, 1000)).ok());
  ASSERT_EQ(client.RecvExactly(1000), Pattern(9, 1000));
  TestClient other = Connect();
  client.Reset();  // SO_LINGER 0: RST
  ASSERT_TRUE(closes_.WaitForCount(1));
  EXPECT_EQ(closes_.Count(CloseReason::kReset), 1u);
  EXPECT_EQ(status_errors.load(), 1);
  // Others unaffected.
  ASSERT_TRUE(other.SendAll("still here").ok());
  EXPECT_EQ(other.RecvExactly(10), "still here");
}

TEST_P(TcpServerTest, ResetWhileServerIsWritingIsHandled) {
  TcpServerCallbacks cb;
  cb.on_connect = [](const ConnectionPtr& c) {
    for (int i = 0; i < 64; ++i) (void)c->Send(std::string(64 * 1024, 'z'));
  };
  Start(cb);
  TestClient client = Connect(/*rcvbuf=*/8 * 1024);
  ASSERT_FALSE(client.RecvExactly(1000).empty());
  client.Reset();
  ASSERT_TRUE(closes_.WaitForCount(1));
  EXPECT_EQ(closes_.Count(CloseReason::kReset), 1u);
  EXPECT_EQ(server_->stats().active, 0u);
}

TEST_P(TcpServerTest, BroadcastReachesEveryConnection) {
  Start();
  std::vector<TestClient> clients;
  for (int i = 0; i < 5; ++i) clients.push_back(Connect());
  ASSERT_TRUE(WaitFor([&] { return server_->connection_count() == 5; }));
  EXPECT_EQ(server_->Broadcast("news"), 5u);
  for (TestClient& c : clients) EXPECT_EQ(c.RecvExactly(4), "news");
  EXPECT_EQ(server_->Connections().size(), 5u);
}

TEST_P(TcpServerTest, StopClosesEveryConnectionAndTheListener) {
  Start();
  std::vector<TestClient> clients;
  for (int i = 0; i < 10; ++i) clients.push_back(Connect());
  ASSERT_TRUE(WaitFor([&] { return server_->connection_count() == 10; }));
  std::vector<ConnectionPtr> conns = server_->Connections();
  server_->Stop();
  EXPECT_EQ(closes_.size(), 10u);  // synchronous outside callbacks
  EXPECT_EQ(closes_.Count(CloseReason::kStopped), 10u);
  EXPECT_EQ(server_->connection_count(), 0u);
  for (TestClient& c : clients) EXPECT_TRUE(c.WaitClosed(absl::Seconds(5)));
  for (const ConnectionPtr& c : conns) {
    EXPECT_TRUE(c->is_closed());
    EXPECT_TRUE(absl::IsFailedPrecondition(c->Send("x")));
  }
  // The listener is gone: new connections are refused by the kernel.
  EXPECT_FALSE(TestClient::Connect(port_).ok());
  server_->Stop();  // idempotent
}

TEST_P(TcpServerTest, CloseFromAnotherConnectionsCallback) {
  // Client 2's data closes connection 1; both handlers may run at once.
  TcpServerCallbacks cb;
  cb.on_data = ConsumeAll([this](const ConnectionPtr& c, absl::string_view d) {
    if (d == "kill") {
      for (const ConnectionPtr& other : server_->Connections()) {
        if (other != c) other->Close();
      }
      (void)c->Send("done");
    } else {
      (void)c->Send(d);
    }
  });
  Start(cb);
  TestClient victim = Connect();
  ASSERT_TRUE(WaitFor([&] { return server_->connection_count() == 1; }));
  TestClient killer = Connect();
  ASSERT_TRUE(WaitFor([&] { return server_->connection_count() == 2; }));
  ASSERT_TRUE(killer.SendAll("kill").ok());
  EXPECT_EQ(killer.RecvExactly(4), "done");
  EXPECT_TRUE(victim.WaitClosed(absl::Seconds(5)));
  ASSERT_TRUE(closes_.WaitForCount(1));
  EXPECT_EQ(closes_.Count(CloseReason::kClosedLocally), 1u);
}

TEST_P(TcpServerTest, StopFromInsideACallback) {
  TcpServerCallbacks cb;
  cb.on_data = ConsumeAll(
      [this](const ConnectionPtr&, absl::string_view) { server_->Stop(); });
  Start(cb);
  TestClient a = Connect();
  TestClient b = Connect();
  ASSERT_TRUE(WaitFor([&] { return server_->connection_count() == 2; }));
  ASSERT_TRUE(a.SendAll("stop").ok());
  EXPECT_TRUE(a.WaitClosed(absl::Seconds(5)));
  EXPECT_TRUE(b.WaitClosed(absl::Seconds(5)));
  ASSERT_TRUE(closes_.WaitForCount(2));
  EXPECT_EQ(closes_.Count(CloseReason::kStopped), 2u);
}

TEST_P(TcpServerTest, ThrowingOnConnectClosesTheConnection) {
  TcpServerCallbacks cb;
  cb.on_connect = [](const ConnectionPtr&) {
    throw std::runtime_error("boom");
  };
  Start(cb);
  TestClient client = Connect();
  EXPECT_TRUE(client.WaitClosed(absl::Seconds(5)));
  ASSERT_TRUE(closes_.WaitForCount(1));
  EXPECT_EQ(closes_.Count(CloseReason::kError), 1u);
  EXPECT_EQ(server_->connection_count(), 0u);
  // Counted by the loop after the handler unwinds.
  EXPECT_TRUE(WaitFor([&] { return loop_->stats().handler_exceptions >= 1; }));
}

}  // namespace
}  // namespace net_testing
}  // namespace mill
