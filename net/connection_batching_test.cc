// Tests of how a Connection's writes batch themselves (issue 18 §1): Sends
// inside the connection's own callbacks gather into one write when the
// callback returns (or at the bound), Sends from elsewhere go out at once,
// the hand-over forms (std::string&&, ByteBuffer&&, SendPieces), Post, and
// where on_high_water / on_write_complete run. Both dispatch modes.
#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "net/tcp_client.h"
#include "net/testing/connection_fixture.h"
#include "net/testing/socket_checks.h"

namespace mill {
namespace net_testing {
namespace {

INSTANTIATE_TEST_SUITE_P(Modes, ConnectionTest, BothDispatchModes(),
                         DispatchModeName);

std::string Reply(int i) { return absl::StrCat("reply ", 1000 + i, "\n"); }

// The obvious code: one Send per reply. 100 of them go out in one write.
TEST_P(ConnectionTest, SendsInsideOnDataGoOutInOneWrite) {
  TcpServerCallbacks cb;
  cb.on_data = [](const ConnectionPtr& c, ByteBuffer& in) {
    in.Consume(in.size());
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(c->Send(Reply(i)).ok());
    // Nothing was written yet: the callback has not returned.
    EXPECT_EQ(c->bytes_sent(), 0u);
    EXPECT_EQ(c->pending_output_bytes(), 100 * Reply(0).size());
  };
  Start(cb);
  TestClient client = Connect();
  ASSERT_TRUE(client.SendAll("x").ok());
  std::string want;
  for (int i = 0; i < 100; ++i) want += Reply(i);
  EXPECT_EQ(client.RecvExactly(want.size()), want);
  // (The counter follows the write that the client already saw.)
  ASSERT_TRUE(WaitFor([&] { return server_->stats().write_calls >= 1; }));
  EXPECT_EQ(server_->stats().write_calls, 1u);
}

// Sends inside a Dispatch task gather likewise.
TEST_P(ConnectionTest, SendsInsideADispatchTaskGoOutInOneWrite) {
  Start(TcpServerCallbacks{});
  TestClient client = Connect();
  ConnectionPtr conn = ConnAt(0);
  ASSERT_NE(conn, nullptr);
  conn->Dispatch([](const ConnectionPtr& c) {
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(c->Send(Reply(i)).ok());
  });
  std::string want;
  for (int i = 0; i < 50; ++i) want += Reply(i);
  EXPECT_EQ(client.RecvExactly(want.size()), want);
  ASSERT_TRUE(WaitFor([&] { return server_->stats().write_calls >= 1; }));
  EXPECT_EQ(server_->stats().write_calls, 1u);
}

// Gathered bytes go out once they reach the bound, before the callback
// returns, and in order with what follows.
TEST_P(ConnectionTest, GatheredBytesGoOutAtTheBound) {
  // Three bounds' worth and a tail that waits for the callback's end.
  const std::string payload = Pattern(7, 3 * Connection::kSendBatchBytes + 512);
  std::atomic<bool> written_early{false};
  std::atomic<bool> returned{false};
  TcpServerCallbacks cb;
  cb.on_data = [&](const ConnectionPtr& c, ByteBuffer& in) {
    in.Consume(in.size());
    for (size_t at = 0; at < payload.size(); at += 1024) {
      ASSERT_TRUE(c->Send(absl::string_view(payload).substr(at, 1024)).ok());
    }
    written_early = c->bytes_sent() > 0;
    returned = true;
  };
  Start(cb);
  TestClient client = Connect();
  ASSERT_TRUE(client.SendAll("x").ok());
  EXPECT_TRUE(client.RecvExactly(payload.size()) == payload);
  ASSERT_TRUE(WaitFor([&] { return returned.load(); }));
  EXPECT_TRUE(written_early.load());
  // 192 Sends; a few writes (bounded gathers, plus what the socket
  // refused then), never one per Send.
  EXPECT_LT(server_->stats().write_calls, 20u);
}

// While a callback holds gathered bytes, a Send from another thread writes
// at once, the gathered bytes first.
TEST_P(ConnectionTest, ASendFromAnotherThreadGoesOutPromptly) {
  Gate sent_gathered;
  Gate finish;
  TcpServerCallbacks cb;
  cb.on_data = [&](const ConnectionPtr& c, ByteBuffer& in) {
    in.Consume(in.size());
    ASSERT_TRUE(c->Send("A").ok());
    sent_gathered.Open();
    ASSERT_TRUE(finish.Wait());
    ASSERT_TRUE(c->Send("C").ok());
  };
  Start(cb);
  TestClient client = Connect();
  ASSERT_TRUE(client.SendAll("x").ok());
  ASSERT_TRUE(sent_gathered.Wait());
  ConnectionPtr conn = ConnAt(0);
  ASSERT_TRUE(conn->Send("B").ok());
  EXPECT_EQ(client.RecvExactly(2), "AB");  // the callback still waits
  finish.Open();
  EXPECT_EQ(client.RecvExactly(1), "C");
}

// A Send to another connection from a callback is written at once: a
// callback may send elsewhere and wait for the answer.
TEST_P(ConnectionTest, ASendToAnotherConnectionIsNotDeferred) {
  Gate relayed;
  TcpServerCallbacks cb;
  std::atomic<bool> waited{false};
  cb.on_data = [&](const ConnectionPtr& c, ByteBuffer& in) {
    const std::string got = in.Take(in.size());
    if (got != "relay") return;
    ConnectionPtr other = ConnAt(1);
    ASSERT_NE(other, nullptr);
    ASSERT_NE(other, c);
    ASSERT_TRUE(other->Send("relayed").ok());
    waited = relayed.Wait();  // the test reads it on the other client
  };
  Start(cb);
  TestClient first = Connect();
  ASSERT_NE(ConnAt(0), nullptr);
  TestClient second = Connect();
  ASSERT_NE(ConnAt(1), nullptr);
  ASSERT_TRUE(first.SendAll("relay").ok());
  EXPECT_EQ(second.RecvExactly(7), "relayed");
  relayed.Open();
  EXPECT_TRUE(WaitFor([&] { return waited.load(); }));
}

TEST_P(ConnectionTest, HandedOverStringsBuffersAndPiecesArriveInOrder) {
  const std::string big = Pattern(1, 3 << 20);
  const std::string also_big = Pattern(2, 1 << 20);
  TcpServerCallbacks cb;
  cb.on_data = [&](const ConnectionPtr& c, ByteBuffer& in) {
    in.Consume(in.size());
    std::string owned = big;
    ASSERT_TRUE(c->Send(std::move(owned)).ok());
    ByteBuffer buffer;
    buffer.Append(also_big);
    ASSERT_TRUE(c->Send(std::move(buffer)).ok());
    const absl::string_view pieces[] = {"head", "", "-", "tail"};
    ASSERT_TRUE(c->SendPieces(pieces).ok());
    ASSERT_TRUE(c->Send(std::string("small")).ok());
    c->Close();
  };
  TcpServerOptions options;
  options.connection.high_water_mark = 0;  // all of it queues
  Start(cb, options);
  TestClient client = Connect();
  ASSERT_TRUE(client.SendAll("x").ok());
  const std::string got = client.RecvUntilEof();
  EXPECT_TRUE(got == big + also_big + "head-tail" + "small")
      << "got " << got.size() << " bytes";
}

// Sends from outside the callbacks (a direct write each) of the hand-over
// forms: what the socket refuses is kept, the rest of a string included.
TEST_P(ConnectionTest, HandedOverSendsFromOutsideKeepWhatTheSocketRefuses) {
  Start(TcpServerCallbacks{});
  TestClient client = Connect();
  ConnectionPtr conn = ConnAt(0);
  ASSERT_NE(conn, nullptr);
  const std::string big = Pattern(3, 4 << 20);
  std::string owned = big;
  ASSERT_TRUE(conn->Send(std::move(owned)).ok());
  const absl::string_view pieces[] = {big, "|", big};
  ASSERT_TRUE(conn->SendPieces(pieces).ok());
  const std::string want = big + big + "|" + big;
  EXPECT_TRUE(client.RecvExactly(want.size()) == want);
}

// on_high_water runs after the Send that crossed the mark returned, where
// callbacks run: inside a callback, after it; outside, on the loop, never on
// the sender's thread inside its Send.
TEST_P(ConnectionTest, OnHighWaterNeverRunsInsideTheCallersSend) {
  std::atomic<bool> in_on_data{false};
  std::atomic<int> high_water{0};
  std::atomic<bool> overlapped{false};
  std::atomic<bool> nested_in_send{false};
  thread_local bool sending = false;
  TcpServerCallbacks cb;
  cb.on_data = [&](const ConnectionPtr& c, ByteBuffer& in) {
    in_on_data = true;
    in.Consume(in.size());
    sending = true;
    ASSERT_TRUE(c->Send(Pattern(4, 8 << 20)).ok());
    sending = false;
    in_on_data = false;
  };
  cb.on_high_water = [&](const ConnectionPtr&, size_t pending) {
    if (in_on_data.load()) overlapped = true;
    if (sending) nested_in_send = true;
    EXPECT_GE(pending, size_t{64} << 10);
    ++high_water;
  };
  TcpServerOptions options;
  options.connection.high_water_mark = 64 << 10;
  options.connection.low_water_mark = 16 << 10;
  Start(cb, options);
  // A client with a tiny receive buffer that does not read: the output
  // stays queued above the mark.
  absl::StatusOr<TestClient> client = TestClient::Connect(port_, 4096);
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(client->SendAll("x").ok());
  ASSERT_TRUE(WaitFor([&] { return high_water.load() == 1; }));
  EXPECT_FALSE(overlapped.load());
  EXPECT_FALSE(nested_in_send.load());

  // From outside: the test thread's Send crosses the mark again once the
  // queue drained below low water.
  ConnectionPtr conn = ConnAt(0);
  EXPECT_EQ(client->RecvExactly(8 << 20).size(), size_t{8} << 20);
  ASSERT_TRUE(WaitFor([&] { return conn->pending_output_bytes() == 0; }));
  sending = true;
  ASSERT_TRUE(conn->Send(Pattern(5, 8 << 20)).ok());
  sending = false;
  ASSERT_TRUE(WaitFor([&] { return high_water.load() == 2; }));
  EXPECT_FALSE(nested_in_send.load());
}

// on_write_complete: once queued output has all been written; one call may
// cover several writes; never while output is pending.
TEST_P(ConnectionTest, OnWriteCompleteRunsWhenTheQueueEmpties) {
  std::atomic<int> completes{0};
  std::atomic<bool> pending_at_complete{false};
  TcpServerCallbacks cb;
  cb.on_data = [&](const ConnectionPtr& c, ByteBuffer& in) {
    in.Consume(in.size());
    ASSERT_TRUE(c->Send(Pattern(6, 4 << 20)).ok());
  };
  cb.on_write_complete = [&](const ConnectionPtr& c) {
    if (c->pending_output_bytes() != 0) pending_at_complete = true;
    ++completes;
  };
  TcpServerOptions options;
  options.connection.high_water_mark = 0;
  Start(cb, options);
  absl::StatusOr<TestClient> client = TestClient::Connect(port_, 4096);
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(client->SendAll("x").ok());
  ConnectionPtr conn = ConnAt(0);
  ASSERT_TRUE(WaitFor([&] { return conn->pending_output_bytes() > 0; }));
  EXPECT_EQ(completes.load(), 0);  // the client has not read it
  EXPECT_TRUE(client->RecvExactly(4 << 20) == Pattern(6, 4 << 20));
  ASSERT_TRUE(WaitFor([&] { return completes.load() >= 1; }));
  EXPECT_FALSE(pending_at_complete.load());

  // A small reply written whole at the callback's end: one more call.
  const int before = completes.load();
  ASSERT_TRUE(client->SendAll("y").ok());
  EXPECT_EQ(client->RecvExactly(4 << 20).size(), size_t{4} << 20);
  ASSERT_TRUE(WaitFor([&] { return completes.load() > before; }));
}

// Post: never inline; after the running callback; in order; excluded from
// the callbacks; from any thread.
TEST_P(ConnectionTest, PostRunsAfterTheRunningCallbackInOrder) {
  std::mutex mu;
  std::vector<std::string> order;
  auto note = [&](std::string what) {
    std::lock_guard<std::mutex> lock(mu);
    order.push_back(std::move(what));
  };
  TcpServerCallbacks cb;
  cb.on_data = [&](const ConnectionPtr& c, ByteBuffer& in) {
    in.Consume(in.size());
    note("on_data");
    ASSERT_TRUE(c->Post([&](const ConnectionPtr&) { note("post 1"); }).ok());
    ASSERT_TRUE(c->Post([&](const ConnectionPtr& conn) {
                   note("post 2");
                   ASSERT_TRUE(conn->Send("posted").ok());
                 }).ok());
    note("on_data returns");
  };
  Start(cb);
  TestClient client = Connect();
  ASSERT_TRUE(client.SendAll("x").ok());
  EXPECT_EQ(client.RecvExactly(6), "posted");
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(order, (std::vector<std::string>{"on_data", "on_data returns",
                                             "post 1", "post 2"}));
}

TEST_P(ConnectionTest, PostFromAnotherThreadRunsOnTheLoopNotInline) {
  Start(TcpServerCallbacks{});
  TestClient client = Connect();
  ConnectionPtr conn = ConnAt(0);
  ASSERT_NE(conn, nullptr);
  const std::thread::id caller = std::this_thread::get_id();
  std::atomic<bool> ran{false};
  std::atomic<bool> ran_inline{false};
  ASSERT_TRUE(conn->Post([&](const ConnectionPtr& c) {
                    ran_inline = std::this_thread::get_id() == caller;
                    ASSERT_TRUE(c->Send("p").ok());
                    ran = true;
                  })
                  .ok());
  EXPECT_EQ(client.RecvExactly(1), "p");
  EXPECT_TRUE(WaitFor([&] { return ran.load(); }));
  EXPECT_FALSE(ran_inline.load());
}

// The descriptor of this process whose socket has these two ends, or -1.
int FindSocket(const SocketAddress& local, const SocketAddress& peer) {
  for (int fd = 0; fd < 4096; ++fd) {
    sockaddr_storage a{};
    socklen_t len = sizeof(a);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) continue;
    absl::StatusOr<SocketAddress> mine =
        SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&a), len);
    len = sizeof(a);
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) continue;
    absl::StatusOr<SocketAddress> theirs =
        SocketAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&a), len);
    if (mine.ok() && theirs.ok() && *mine == local && *theirs == peer) {
      return fd;
    }
  }
  return -1;
}

bool NoDelayOn(int fd) {
  return GetSocketOptionInt(fd, IPPROTO_TCP, TCP_NODELAY) > 0;
}

// Outbound connections have TCP_NODELAY on unless turned off.
TEST_P(ConnectionTest, OutboundConnectionsHaveNoDelayByDefault) {
  Start(TcpServerCallbacks{});
  for (const bool no_delay : {true, false}) {
    TcpClientOptions options;
    EXPECT_TRUE(options.connection.socket.no_delay);  // the default
    options.connection.socket.no_delay = no_delay;
    absl::StatusOr<std::unique_ptr<TcpClient>> client =
        TcpClient::Create(loop_.get(), {}, options);
    ASSERT_TRUE(client.ok()) << client.status();
    std::promise<absl::StatusOr<ConnectionPtr>> connected;
    (*client)->Connect(SocketAddress::LoopbackIPv4(port_),
                       [&](absl::StatusOr<ConnectionPtr> result) {
                         connected.set_value(std::move(result));
                       });
    absl::StatusOr<ConnectionPtr> conn = connected.get_future().get();
    ASSERT_TRUE(conn.ok()) << conn.status();
    const int fd =
        FindSocket((*conn)->local_address(), (*conn)->peer_address());
    ASSERT_GE(fd, 0);
    EXPECT_EQ(NoDelayOn(fd), no_delay);
    (*client)->Stop();
  }
}

}  // namespace
}  // namespace net_testing
}  // namespace mill
