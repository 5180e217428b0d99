#include "examples/testing/concurrent_clients.h"

#include <chrono>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "examples/testing/line_reader.h"
#include "gtest/gtest.h"
#include "net/testing/echo_clients.h"

namespace mill {
namespace testing {

using net_testing::TestClient;

ExchangeResult RunConcurrentExchanges(int port, int connections, int requests,
                                      const Exchange& exchange,
                                      absl::Duration timeout) {
  struct Conn {
    std::optional<TestClient> socket;
    std::string buffer;
    int done = 0;  // right replies; the reply to request `done` is awaited
  };
  ExchangeResult result;
  std::vector<Conn> conns(connections);
  for (int i = 0; i < connections; ++i) {
    absl::StatusOr<TestClient> c = TestClient::Connect(port);
    if (!c.ok()) {
      ADD_FAILURE() << i << ": " << c.status();
      return result;
    }
    conns[i].socket.emplace(std::move(*c));
  }
  const auto fail = [&](int i, const std::string& why, bool mismatch) {
    if (result.first_error.empty()) {
      result.first_error = absl::StrCat("connection ", i, why);
    }
    if (mismatch) ++result.mismatches;
    ++result.failures;
    conns[i].socket.reset();
  };
  const auto send_next = [&](int i) {
    Conn& c = conns[i];
    EXPECT_TRUE(c.socket->SendAll(exchange.request(i, c.done)).ok()) << i;
  };
  for (int i = 0; i < connections; ++i) send_next(i);

  const absl::Time deadline = absl::Now() + timeout;
  std::vector<int> fds;
  std::vector<int> index;
  std::vector<bool> readable;
  while (result.finished + result.failures < connections &&
         absl::Now() < deadline) {
    fds.clear();
    index.clear();
    for (int i = 0; i < connections; ++i) {
      if (conns[i].done < requests && conns[i].socket) {
        fds.push_back(conns[i].socket->fd());
        index.push_back(i);
      }
    }
    if (WaitReadable(fds, std::chrono::milliseconds(100), &readable) <= 0) {
      continue;
    }
    for (size_t p = 0; p < fds.size(); ++p) {
      if (!readable[p]) continue;
      const int i = index[p];
      Conn& c = conns[i];
      char chunk[16384];
      const long n = ReceiveFromSocket(c.socket->fd(), chunk, sizeof(chunk));
      if (n <= 0) {
        fail(i, absl::StrCat(" closed after ", c.done, " replies"), false);
        continue;
      }
      c.buffer.append(chunk, static_cast<size_t>(n));
      const size_t length = exchange.reply_length(i, c.done, c.buffer);
      if (length == 0) continue;
      std::string reply = c.buffer.substr(0, length);
      c.buffer.erase(0, length);
      std::string why = exchange.check(i, c.done, std::move(reply));
      if (why.empty() && !c.buffer.empty()) why = "more than one reply";
      if (!why.empty()) {
        fail(i, absl::StrCat(" reply ", c.done, ": ", why), true);
        continue;
      }
      if (++c.done == requests) {
        ++result.finished;
      } else {
        send_next(i);
      }
    }
  }
  return result;
}

}  // namespace testing
}  // namespace mill
