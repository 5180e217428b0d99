// SocketClient, the base of the tests' protocol clients, and
// RunConcurrentExchanges: many clients of a server driven from one thread
// with poll(2), each sending requests one after another and checking every
// reply, for the example servers' "many concurrent connections" tests.
// Test-only; a connection that cannot be opened is a gtest failure.
#ifndef MILL_IO_EXAMPLES_TESTING_CONCURRENT_CLIENTS_H_
#define MILL_IO_EXAMPLES_TESTING_CONCURRENT_CLIENTS_H_

#include <cstddef>
#include <functional>
#include <string>
#include <utility>

#include "absl/time/time.h"
#include "examples/testing/line_reader.h"
#include "net/testing/echo_clients.h"

namespace mill {
namespace testing {

// A client socket and what has been read from it: the base of the tests'
// protocol clients (HTTP, JSON-RPC lines).
class SocketClient {
 public:
  bool Send(const std::string& bytes) { return client_.SendAll(bytes).ok(); }
  int fd() const { return client_.fd(); }
  net_testing::TestClient& socket() { return client_; }

 protected:
  explicit SocketClient(net_testing::TestClient client)
      : client_(std::move(client)), reader_(client_.fd()) {}

  net_testing::TestClient client_;
  LineReader reader_;  // of client_'s socket
};

// What connection `conn` sends as its request number `k`, and how its reply
// is framed and judged.
struct Exchange {
  std::function<std::string(int conn, int k)> request;
  // Length of the complete reply at the front of `received`; 0 while it is
  // not complete.
  std::function<size_t(int conn, int k, const std::string& received)>
      reply_length;
  // Why `reply` is not the right reply to request `k` of `conn`; empty if
  // it is.
  std::function<std::string(int conn, int k, std::string reply)> check;
};

struct ExchangeResult {
  int finished = 0;    // connections that got all their replies right
  int mismatches = 0;  // connections that got a wrong reply
  int failures = 0;    // connections that failed (mismatches included)
  std::string first_error;
};

// Opens `connections` connections to 127.0.0.1:`port`; each sends request 0,
// and after each right reply the next, `requests` in all. A wrong reply, or
// bytes beyond the reply, is a mismatch; a closed connection a failure.
// Gives up after `timeout`.
ExchangeResult RunConcurrentExchanges(int port, int connections, int requests,
                                      const Exchange& exchange,
                                      absl::Duration timeout);

}  // namespace testing
}  // namespace mill

#endif  // MILL_IO_EXAMPLES_TESTING_CONCURRENT_CLIENTS_H_
