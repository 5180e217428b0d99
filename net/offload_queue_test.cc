// Tests of OffloadQueue: blocking work on the compute pool, replies in
// request order in the connection's context, and a bound on outstanding
// jobs that pauses reading instead of queueing without limit. Both
// dispatch modes.
#include "net/offload_queue.h"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>

#include "absl/strings/str_cat.h"
#include "net/testing/connection_fixture.h"

namespace mill {
namespace net_testing {
namespace {

INSTANTIATE_TEST_SUITE_P(Modes, ConnectionTest, BothDispatchModes(),
                         DispatchModeName);

// Line protocol: each line is a job; `wait(line)` runs on the compute pool
// before the reply "done <line>\n".
TcpServerCallbacks LineOffloadServer(
    size_t max_in_flight, std::function<void(const std::string&)> wait) {
  TcpServerCallbacks cb;
  cb.on_connect = [max_in_flight](const ConnectionPtr& c) {
    c->SetContext(OffloadQueue::Create(c, max_in_flight));
  };
  cb.on_data = [wait](const ConnectionPtr& c, ByteBuffer& input) {
    auto jobs = c->GetContext<OffloadQueue>();
    size_t eol;
    while (jobs->has_room() && (eol = input.find('\n')) != ByteBuffer::npos) {
      std::string line = input.Take(eol + 1);
      line.pop_back();
      ASSERT_TRUE(jobs->Submit([wait, line]() -> OffloadQueue::Reply {
                        wait(line);
                        return [line](const ConnectionPtr& conn) {
                          (void)conn->Send(absl::StrCat("done ", line, "\n"));
                        };
                      })
                      .ok());
    }
  };
  return cb;
}

// The connection's queue, once on_connect made it.
std::shared_ptr<OffloadQueue> QueueOf(const ConnectionPtr& conn) {
  std::shared_ptr<OffloadQueue> queue;
  if (conn == nullptr) return queue;
  WaitFor([&] {
    queue = conn->GetContext<OffloadQueue>();
    return queue != nullptr;
  });
  return queue;
}

TEST_P(ConnectionTest, OffloadedRepliesComeInRequestOrder) {
  Gate first_may_finish;
  std::atomic<bool> second_finished{false};
  Start(LineOffloadServer(8, [&](const std::string& line) {
    if (line == "first") {
      ASSERT_TRUE(first_may_finish.Wait());
    } else {
      second_finished = true;
    }
  }));
  TestClient client = Connect();
  const std::shared_ptr<OffloadQueue> queue = QueueOf(ConnAt(0));
  ASSERT_NE(queue, nullptr);
  ASSERT_TRUE(client.SendAll("first\nsecond\n").ok());
  // The second job finishes first; its reply waits for the first's.
  ASSERT_TRUE(WaitFor([&] { return second_finished.load(); }));
  first_may_finish.Open();
  EXPECT_EQ(client.RecvExactly(23), "done first\ndone second\n");
  EXPECT_TRUE(WaitFor([&] { return queue->in_flight() == 0; }));
}

TEST_P(ConnectionTest, OffloadBoundPausesReadingUntilAReplyGoesOut) {
  Gate jobs_may_finish;
  Start(LineOffloadServer(
      2, [&](const std::string&) { ASSERT_TRUE(jobs_may_finish.Wait()); }));
  TestClient client = Connect();
  const std::shared_ptr<OffloadQueue> queue = QueueOf(ConnAt(0));
  ASSERT_NE(queue, nullptr);
  std::string requests;
  std::string want;
  for (int i = 0; i < 10; ++i) {
    requests += absl::StrCat(i, "\n");
    want += absl::StrCat("done ", i, "\n");
  }
  ASSERT_TRUE(client.SendAll(requests).ok());
  ConnectionPtr conn = ConnAt(0);
  ASSERT_NE(conn, nullptr);
  // Two jobs outstanding, the other eight requests wait unconsumed, and
  // the connection reads no more.
  ASSERT_TRUE(WaitFor([&] {
    return queue->in_flight() == 2 &&
           (conn->pause_reasons() & kPausedByUser) != 0;
  }));
  EXPECT_FALSE(queue->has_room());
  jobs_may_finish.Open();
  EXPECT_EQ(client.RecvExactly(want.size()), want);
  EXPECT_EQ(queue->peak_in_flight(), 2u);
  EXPECT_TRUE(WaitFor(
      [&] { return queue->in_flight() == 0 && !conn->reading_paused(); }));
}

TEST_P(ConnectionTest, OffloadSubmitBeyondTheBoundIsRefused) {
  Gate jobs_may_finish;
  Start(LineOffloadServer(
      1, [&](const std::string&) { ASSERT_TRUE(jobs_may_finish.Wait()); }));
  TestClient client = Connect();
  const std::shared_ptr<OffloadQueue> queue = QueueOf(ConnAt(0));
  ASSERT_NE(queue, nullptr);
  ASSERT_TRUE(client.SendAll("a\n").ok());
  ASSERT_TRUE(WaitFor([&] { return queue->in_flight() == 1; }));
  absl::Status refused = queue->Submit([] { return OffloadQueue::Reply(); });
  EXPECT_TRUE(absl::IsResourceExhausted(refused)) << refused;
  jobs_may_finish.Open();
  EXPECT_EQ(client.RecvExactly(7), "done a\n");
}

}  // namespace
}  // namespace net_testing
}  // namespace mill
