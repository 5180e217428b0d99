// Step 4: the connection pool. Acquire a connection to an endpoint, use it,
// release it; the next Acquire reuses it (checked for liveness first).
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "connpool/connection_pool.h"
#include "net/byte_buffer.h"
#include "net/connection.h"
#include "net/socket_address.h"
#include "net/tcp_server.h"
#include "reactor/event_loop.h"

int main() {
  absl::StatusOr<std::unique_ptr<mill::EventLoop>> loop =
      mill::EventLoop::Create();
  if (!loop.ok()) return 1;
  std::thread runner([&] { (void)(*loop)->Run(); });

  // An echo server to talk to.
  mill::TcpServerCallbacks echo;
  echo.on_data = [](const mill::ConnectionPtr& conn, mill::ByteBuffer& in) {
    (void)conn->Send(in.view());
    in.Consume(in.size());
  };
  auto server = mill::TcpServer::Create(
      loop->get(), mill::SocketAddress::LoopbackIPv4(0), echo);
  if (!server.ok()) return 1;
  const std::string endpoint =
      absl::StrCat("127.0.0.1:", (*server)->local_address().port());

  mill::ConnectionPoolOptions options;
  options.max_connections_per_endpoint = 4;
  options.idle_timeout = absl::Seconds(30);
  auto pool = mill::ConnectionPool::Create(loop->get(), options);
  if (!pool.ok()) return 1;

  // One request/response exchange on a pooled connection. The lease's
  // callbacks get the connection's events while it is leased.
  std::mutex mu;
  std::condition_variable cv;
  auto exchange = [&](const std::string& request, bool* reused) {
    std::string reply;
    bool done = false;
    auto callbacks = std::make_shared<mill::LeaseCallbacks>();
    std::shared_ptr<mill::Lease> held = std::make_shared<mill::Lease>();
    callbacks->on_data = [&, held](const mill::ConnectionPtr&,
                                   mill::ByteBuffer& in) {
      reply.append(in.data(), in.size());  // only this connection's callbacks
      in.Consume(in.size());
      if (reply.size() < request.size()) return;
      // The whole answer is in: hand the connection back for reuse (not
      // under our lock: Release may hand it to another request at once).
      (*pool)->Release(std::move(*held), /*reusable=*/true);
      std::lock_guard<std::mutex> lock(mu);
      done = true;
      cv.notify_all();
    };
    (*pool)->Acquire(
        endpoint, absl::Now() + absl::Seconds(5),
        [&, held](absl::StatusOr<mill::Lease> lease) {
          std::lock_guard<std::mutex> lock(mu);
          if (!lease.ok()) {  // ResourceExhausted, DeadlineExceeded, ...
            std::fprintf(stderr, "%s\n", lease.status().ToString().c_str());
            done = true;
            cv.notify_all();
            return;
          }
          *reused = lease->reused();
          *held = *std::move(lease);
          (void)(*held)->Send(request);
        },
        callbacks);
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, std::chrono::seconds(10), [&] { return done; });
    return reply;  // complete: the callbacks are done with it
  };

  bool first_reused = true, second_reused = false;
  const std::string a = exchange("first", &first_reused);
  const std::string b = exchange("second", &second_reused);
  std::printf("'%s' on a new connection, '%s' on a reused one\n", a.c_str(),
              b.c_str());
  const mill::ConnectionPoolStats stats = (*pool)->stats();

  pool->reset();  // the pool, then the server, then the loop
  server->reset();
  (*loop)->Stop();
  runner.join();
  return a == "first" && b == "second" && !first_reused && second_reused &&
                 stats.created == 1 && stats.reused == 1
             ? 0
             : 1;
}
