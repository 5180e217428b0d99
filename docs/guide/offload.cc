// Step 6: blocking work off the loop. Each request line needs a slow
// computation; it runs on the loop's compute pool through an OffloadQueue,
// whose replies come back in the connection's own context, in request
// order, with at most 4 requests outstanding per connection (beyond that the
// connection stops reading: backpressure, not a growing queue).
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "net/byte_buffer.h"
#include "net/connection.h"
#include "net/offload_queue.h"
#include "net/socket_address.h"
#include "net/tcp_server.h"
#include "net/tcp_stream.h"
#include "reactor/event_loop.h"

// The slow part: the number of primes below n (never on a loop thread).
uint64_t CountPrimesBelow(uint64_t n) {
  uint64_t count = 0;
  for (uint64_t i = 2; i < n; ++i) {
    bool prime = true;
    for (uint64_t d = 2; d * d <= i && prime; ++d) prime = i % d != 0;
    count += prime;
  }
  return count;
}

int main() {
  absl::StatusOr<std::unique_ptr<mill::EventLoop>> loop =
      mill::EventLoop::Create();
  if (!loop.ok()) return 1;

  mill::TcpServerCallbacks callbacks;
  callbacks.on_connect = [](const mill::ConnectionPtr& conn) {
    conn->SetContext(mill::OffloadQueue::Create(conn, /*max_in_flight=*/4));
  };
  callbacks.on_data = [](const mill::ConnectionPtr& conn,
                         mill::ByteBuffer& input) {
    auto jobs = conn->GetContext<mill::OffloadQueue>();
    size_t eol;
    while (jobs->has_room() &&
           (eol = input.find('\n')) != mill::ByteBuffer::npos) {
      std::string line = input.Take(eol + 1);
      (void)jobs->Submit([line]() -> mill::OffloadQueue::Reply {
        uint64_t n = 0;  // on the compute pool
        std::string answer = "error: not a number\n";
        if (absl::SimpleAtoi(line, &n) && n <= 200000) {
          answer = absl::StrCat(CountPrimesBelow(n), "\n");
        }
        return [answer](const mill::ConnectionPtr& c) {
          (void)c->Send(answer);  // in order, back in the connection
        };
      });
    }
    // Lines left in `input` come back in on_data once a reply went out.
  };
  absl::StatusOr<std::unique_ptr<mill::TcpServer>> server =
      mill::TcpServer::Create(loop->get(), mill::SocketAddress::LoopbackIPv4(0),
                              callbacks);
  if (!server.ok()) return 1;
  const uint16_t port = (*server)->local_address().port();
  std::thread runner([&] { (void)(*loop)->Run(); });

  // A blocking client pipelines ten requests, the big ones first.
  absl::StatusOr<mill::TcpStream> client = mill::TcpStream::ConnectAndWait(
      mill::SocketAddress::LoopbackIPv4(port), absl::Seconds(5));
  if (!client.ok()) return 1;
  std::string requests, expected;
  for (uint64_t n : {100000, 90000, 10, 20, 30, 40, 50, 60, 70, 80}) {
    requests += absl::StrCat(n, "\n");
    expected += absl::StrCat(CountPrimesBelow(n), "\n");
  }
  (void)client->Write(requests.data(), requests.size());
  std::string replies;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (replies.size() < expected.size() && absl::Now() < deadline) {
    char buf[256];
    const ssize_t n = client->Read(buf, sizeof(buf));
    if (n > 0) replies.append(buf, static_cast<size_t>(n));
  }
  std::printf("replies, in request order:\n%s", replies.c_str());

  (*server)->Stop();
  (*loop)->Stop();
  runner.join();
  return replies == expected ? 0 : 1;
}
