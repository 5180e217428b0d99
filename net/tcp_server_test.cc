// Tests of TcpServer and Connection, over both dispatch modes.
#include "net/tcp_server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "net/connection.h"
#include "net/internal/connection_config.h"
#include "net/socket_address.h"
#include "net/testing/echo_clients.h"
#include "ratelimit/token_bucket.h"
#include "reactor/event_loop.h"

namespace mill {
namespace {

using net_testing::Pattern;
using net_testing::RunEchoSwarm;
using net_testing::TestClient;

// Polls `pred` every millisecond for up to `timeout`.
bool WaitFor(const std::function<bool()>& pred,
             absl::Duration timeout = absl::Seconds(10)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (pred()) return true;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return pred();
}

int CountOpenFds() {
  int n = 0;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(dir);
  return n - 1;  // the directory's own descriptor
}

int HighestOpenFd() {
  int highest = -1;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') highest = std::max(highest, atoi(e->d_name));
  }
  closedir(dir);
  return highest;
}

// Adapts a byte-view callback to on_data: every received byte is handed over
// once and consumed (the behaviour the tests below were written against).
std::function<void(const ConnectionPtr&, ByteBuffer&)> ConsumeAll(
    std::function<void(const ConnectionPtr&, absl::string_view)> fn) {
  return [fn = std::move(fn)](const ConnectionPtr& c, ByteBuffer& input) {
    const std::string bytes(input.view());
    input.Consume(bytes.size());
    fn(c, bytes);
  };
}

// Records close callbacks.
struct CloseLog {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::pair<uint64_t, CloseReason>> closes;

  void Add(uint64_t id, CloseReason reason) {
    std::lock_guard<std::mutex> lock(mu);
    closes.emplace_back(id, reason);
    cv.notify_all();
  }
  size_t size() {
    std::lock_guard<std::mutex> lock(mu);
    return closes.size();
  }
  size_t Count(CloseReason reason) {
    std::lock_guard<std::mutex> lock(mu);
    size_t n = 0;
    for (const auto& c : closes) n += c.second == reason;
    return n;
  }
  bool WaitForCount(size_t n, absl::Duration timeout = absl::Seconds(10)) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                       [&] { return closes.size() >= n; });
  }
};

class TcpServerTest : public ::testing::TestWithParam<DispatchMode> {
 protected:
  void SetUp() override {
    EventLoopOptions options;
    options.workers = 2;
    options.dispatch_mode = GetParam();
    absl::StatusOr<std::unique_ptr<EventLoop>> loop =
        EventLoop::Create(options);
    ASSERT_TRUE(loop.ok()) << loop.status();
    loop_ = std::move(*loop);
    runner_ = std::thread([this] { (void)loop_->Run(); });
  }

  void TearDown() override {
    server_.reset();
    if (loop_ != nullptr) loop_->Stop();
    if (runner_.joinable()) runner_.join();
  }

  // Starts a server; callbacks default to echo and the close log.
  void Start(TcpServerCallbacks callbacks = {}, TcpServerOptions options = {}) {
    if (!callbacks.on_data) {
      callbacks.on_data =
          ConsumeAll([](const ConnectionPtr& c, absl::string_view d) {
            (void)c->Send(d);
          });
    }
    if (!callbacks.on_close) {
      callbacks.on_close = [this](const ConnectionPtr& c, CloseReason r,
                                  const absl::Status&) {
        closes_.Add(c->id(), r);
      };
    }
    if (!callbacks.on_connect) {
      callbacks.on_connect = [this](const ConnectionPtr& c) {
        std::lock_guard<std::mutex> lock(conns_mu_);
        conns_.push_back(c);
      };
    }
    absl::StatusOr<std::unique_ptr<TcpServer>> server =
        TcpServer::Create(loop_.get(), SocketAddress::LoopbackIPv4(0),
                          std::move(callbacks), std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    port_ = server_->local_address().port();
    ASSERT_NE(port_, 0);
  }

  TestClient Connect(int rcvbuf = 0) {
    absl::StatusOr<TestClient> c = TestClient::Connect(port_, rcvbuf);
    EXPECT_TRUE(c.ok()) << c.status();
    return std::move(*c);
  }

  // The n-th connection seen by on_connect (waits for it).
  ConnectionPtr ConnAt(size_t n) {
    ConnectionPtr result;
    WaitFor([&] {
      std::lock_guard<std::mutex> lock(conns_mu_);
      if (conns_.size() <= n) return false;
      result = conns_[n];
      return true;
    });
    return result;
  }

  std::unique_ptr<EventLoop> loop_;
  std::thread runner_;
  std::unique_ptr<TcpServer> server_;
  uint16_t port_ = 0;
  CloseLog closes_;
  std::mutex conns_mu_;
  std::vector<ConnectionPtr> conns_;
};

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

TEST_P(TcpServerTest, MaxConnectionsRefusesTheExtraOnePromptly) {
  TcpServerOptions options;
  options.max_connections = 2;
  Start({}, options);
  TestClient a = Connect();
  TestClient b = Connect();
  ASSERT_TRUE(WaitFor([&] { return server_->connection_count() == 2; }));
  TestClient c = Connect();  // the kernel completes the handshake...
  EXPECT_TRUE(c.WaitClosed(absl::Seconds(5)));  // ...and we close it at once
  const TcpServerStats stats = server_->stats();
  EXPECT_EQ(stats.refused, 1u);
  EXPECT_EQ(stats.closed(CloseReason::kRefused), 1u);
  EXPECT_EQ(stats.accepted, 2u);
  EXPECT_EQ(closes_.size(), 0u);  // refusals never reach callbacks
  for (TestClient* t : {&a, &b}) {
    ASSERT_TRUE(t->SendAll("ok").ok());
    EXPECT_EQ(t->RecvExactly(2), "ok");
  }
  // A slot frees up: the next client is served.
  a.Close();
  ASSERT_TRUE(closes_.WaitForCount(1));
  TestClient d = Connect();
  ASSERT_TRUE(d.SendAll("new").ok());
  EXPECT_EQ(d.RecvExactly(3), "new");
}

TEST_P(TcpServerTest, IdleTimeoutClosesIdleButNotActiveConnections) {
  TcpServerOptions options;
  options.connection.idle_timeout = absl::Milliseconds(500);
  Start({}, options);
  const absl::Time start = absl::Now();
  TestClient idle = Connect();
  TestClient active = Connect();
  ASSERT_TRUE(WaitFor([&] { return server_->connection_count() == 2; }));
  // Keep `active` busy (a round trip every ~30 ms, far below the timeout)
  // until `idle` has been closed, and right after that check `active` still
  // works: no wait between the last activity and the check, so a loaded
  // machine cannot turn the check into an idle period of its own.
  bool idle_closed = false;
  while (!idle_closed && absl::Now() - start < absl::Seconds(20)) {
    ASSERT_TRUE(active.SendAll("k").ok());
    ASSERT_EQ(active.RecvExactly(1), "k");
    idle_closed = idle.WaitClosed(absl::Milliseconds(30));
  }
  ASSERT_TRUE(active.SendAll("still").ok());
  EXPECT_EQ(active.RecvExactly(5), "still");
  EXPECT_TRUE(idle_closed);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(500));
  ASSERT_TRUE(closes_.WaitForCount(1));
  EXPECT_EQ(closes_.Count(CloseReason::kIdleTimeout), 1u);
  // Then it idles out too.
  EXPECT_TRUE(active.WaitClosed(absl::Seconds(5)));
  ASSERT_TRUE(closes_.WaitForCount(2));
  EXPECT_EQ(closes_.Count(CloseReason::kIdleTimeout), 2u);
}

TEST_P(TcpServerTest, PerConnectionReadRateLimitCapsThroughput) {
  std::atomic<size_t> received{0};
  TcpServerCallbacks cb;
  cb.on_data = ConsumeAll(
      [&](const ConnectionPtr&, absl::string_view d) { received += d.size(); });
  TcpServerOptions options;
  options.connection.read_rate = 1 << 20;  // 1 MiB/s
  options.connection.read_burst = 32 << 10;
  Start(cb, options);
  TestClient client = Connect();
  constexpr size_t kTotal = 512 << 10;
  const absl::Time start = absl::Now();
  std::thread writer(
      [&] { ASSERT_TRUE(client.SendAll(Pattern(2, kTotal)).ok()); });
  ASSERT_TRUE(
      WaitFor([&] { return received.load() == kTotal; }, absl::Seconds(30)));
  const absl::Duration elapsed = absl::Now() - start;
  writer.join();
  // The bucket cannot grant more than burst + rate * t, so reading kTotal
  // takes at least (kTotal - burst) / rate = 0.47 s. (No upper bound beyond
  // the generous wait above: the machine may be slow.)
  EXPECT_GE(elapsed, absl::Seconds(static_cast<double>(kTotal - (32 << 10)) /
                                   (1 << 20)) -
                         absl::Milliseconds(5));
  EXPECT_GT(server_->stats().rate_limit_pauses, 0u);
}

TEST_P(TcpServerTest, GlobalReadLimitIsSharedByConnections) {
  std::atomic<size_t> received{0};
  TcpServerCallbacks cb;
  cb.on_data = ConsumeAll(
      [&](const ConnectionPtr&, absl::string_view d) { received += d.size(); });
  TcpServerOptions options;
  options.connection.shared_read_limit =
      std::make_shared<TokenBucket>(/*rate_per_second=*/1 << 20,
                                    /*burst=*/32 << 10);
  Start(cb, options);
  TestClient a = Connect();
  TestClient b = Connect();
  constexpr size_t kEach = 256 << 10;
  const absl::Time start = absl::Now();
  std::thread wa([&] { ASSERT_TRUE(a.SendAll(Pattern(1, kEach)).ok()); });
  std::thread wb([&] { ASSERT_TRUE(b.SendAll(Pattern(2, kEach)).ok()); });
  ASSERT_TRUE(
      WaitFor([&] { return received.load() == 2 * kEach; }, absl::Seconds(30)));
  const absl::Duration elapsed = absl::Now() - start;
  wa.join();
  wb.join();
  EXPECT_GT(server_->stats().rate_limit_pauses, 0u);
  EXPECT_GE(elapsed, absl::Seconds(static_cast<double>(2 * kEach - (32 << 10)) /
                                   (1 << 20)) -
                         absl::Milliseconds(5));
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

TEST_P(TcpServerTest, NoDescriptorLeaks) {
  const int before = CountOpenFds();
  ASSERT_GT(before, 0);
  Start();
  {
    std::vector<TestClient> clients;
    for (int i = 0; i < 50; ++i) clients.push_back(Connect());
    for (int i = 0; i < 50; ++i) {
      ASSERT_TRUE(clients[i].SendAll("x").ok());
      ASSERT_EQ(clients[i].RecvExactly(1), "x");
    }
    // Half of them close themselves (some with a reset), the rest are
    // closed by the server's destruction.
    for (int i = 0; i < 25; ++i) {
      if (i % 2) {
        clients[i].Reset();
      } else {
        clients[i].Close();
      }
    }
    ASSERT_TRUE(closes_.WaitForCount(25));
    server_.reset();
  }
  {
    std::lock_guard<std::mutex> lock(conns_mu_);
    conns_.clear();
  }
  EXPECT_EQ(closes_.size(), 50u);
  EXPECT_EQ(CountOpenFds(), before);
}

TEST_P(TcpServerTest, DescriptorExhaustionDoesNotSpinAndRecovers) {
  Start();
  rlimit saved;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  // Restores the limit even when an assertion returns early.
  struct RestoreLimit {
    rlimit limit;
    ~RestoreLimit() { setrlimit(RLIMIT_NOFILE, &limit); }
  } restore{saved};
  // Leave a few free descriptor numbers above the highest in use.
  rlimit low = saved;
  low.rlim_cur = HighestOpenFd() + 1 + 9;
  // Spare descriptors to hand back one at a time once we are out.
  std::vector<int> spares;
  for (int i = 0; i < 3; ++i) {
    spares.push_back(open("/dev/null", O_RDONLY | O_CLOEXEC));
    ASSERT_GE(spares.back(), 0);
  }
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);

  std::vector<int> fds;
  auto open_client = [&]() -> int {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    sockaddr_in sin = {};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port_);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) != 0) {
      close(fd);
      return -1000;
    }
    fds.push_back(fd);
    return fd;
  };
  bool exhausted = false;
  for (int i = 0; i < 100; ++i) {
    const TcpServerStats before = server_->stats();
    const int fd = open_client();
    if (fd == -EMFILE) {
      exhausted = true;
      break;
    }
    ASSERT_GE(fd, 0);
    // Let the server take it (accept or shed) before the next one.
    WaitFor(
        [&] {
          const TcpServerStats s = server_->stats();
          return s.accepted + s.refused_no_descriptor >
                 before.accepted + before.refused_no_descriptor;
        },
        absl::Seconds(2));
  }
  ASSERT_TRUE(exhausted);
  // Each freed descriptor lets a client connect while the server has none
  // left to accept with. (The server may win a freed descriptor back for
  // its spare; then the next one serves.)
  for (int spare : spares) {
    close(spare);
    if (server_->stats().refused_no_descriptor >= 1) continue;
    (void)open_client();
    WaitFor([&] { return server_->stats().refused_no_descriptor >= 1; },
            absl::Seconds(1));
  }
  const uint64_t shed = server_->stats().refused_no_descriptor;
  EXPECT_GE(shed, 1u);
  EXPECT_EQ(server_->stats().accept_errors, 0u);
  // Every shed connection was closed promptly (EOF for its client); the
  // accepted ones stay open and silent.
  auto closed_clients = [&] {
    uint64_t n = 0;
    for (int fd : fds) {
      pollfd pfd = {fd, POLLIN, 0};
      if (poll(&pfd, 1, 0) == 1) {
        char c;
        n += recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK) <= 0;
      }
    }
    return n;
  };
  EXPECT_TRUE(
      WaitFor([&] { return closed_clients() == shed; }, absl::Seconds(2)))
      << closed_clients() << " vs " << shed;

  // No busy loop while out of descriptors.
  rusage r0, r1;
  getrusage(RUSAGE_SELF, &r0);
  absl::SleepFor(absl::Milliseconds(300));
  getrusage(RUSAGE_SELF, &r1);
  const absl::Duration cpu = absl::DurationFromTimeval(r1.ru_utime) -
                             absl::DurationFromTimeval(r0.ru_utime) +
                             absl::DurationFromTimeval(r1.ru_stime) -
                             absl::DurationFromTimeval(r0.ru_stime);
  EXPECT_LT(cpu, absl::Milliseconds(100)) << "server spins without fds";

  // Free the descriptors: accepting works again.
  for (int fd : fds) close(fd);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  ASSERT_TRUE(WaitFor([&] { return server_->connection_count() == 0; }));
  TestClient client = Connect();
  ASSERT_TRUE(client.SendAll("back").ok());
  EXPECT_EQ(client.RecvExactly(4), "back");
}

}  // namespace
}  // namespace mill
