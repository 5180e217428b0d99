// Step 4b: pool-held leases and endpoint sets. The pool keeps the lease and
// hands it to the lease's own handlers, so the handler that sees the end of
// the response releases it there; an EndpointSet spreads requests over
// several servers.
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "connpool/connection_pool.h"
#include "connpool/endpoint_set.h"
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

  // Two echo servers behind one name each.
  mill::TcpServerCallbacks echo;
  echo.on_data = [](const mill::ConnectionPtr& conn, mill::ByteBuffer& in) {
    (void)conn->Send(in.view());
    in.Consume(in.size());
  };
  auto a = mill::TcpServer::Create(loop->get(),
                                   mill::SocketAddress::LoopbackIPv4(0), echo);
  auto b = mill::TcpServer::Create(loop->get(),
                                   mill::SocketAddress::LoopbackIPv4(0), echo);
  if (!a.ok() || !b.ok()) return 1;
  auto set = mill::EndpointSet::Create(
      {absl::StrCat("localhost:", (*a)->local_address().port()),
       absl::StrCat("localhost:", (*b)->local_address().port())});
  if (!set.ok()) return 1;

  mill::ConnectionPoolOptions options;
  options.response_timeout = absl::Seconds(5);  // per request, after Send
  auto pool = mill::ConnectionPool::Create(loop->get(), options);
  if (!pool.ok()) return 1;

  // Four requests, round robin over the two servers. Each one's state
  // lives in its own handlers (move-only captures are fine).
  std::mutex mu;
  std::condition_variable cv;
  int answered = 0;
  for (int i = 0; i < 4; ++i) {
    const std::string request = absl::StrCat("request ", i);
    mill::LeaseHandlers handlers;
    handlers.on_data = [&, want = request.size(),
                        reply = std::make_unique<std::string>()](
                           mill::Lease& lease, mill::ByteBuffer& in) {
      reply->append(in.data(), in.size());
      in.Consume(in.size());
      if (reply->size() < want) return;
      lease.Release(/*reusable=*/true);  // the whole answer is in
      std::lock_guard<std::mutex> lock(mu);
      ++answered;
      cv.notify_all();
    };
    handlers.on_close = [&](mill::Lease&, mill::CloseReason,
                            const absl::Status& why) {
      std::fprintf(stderr, "closed: %s\n", why.ToString().c_str());
    };
    mill::AcquireOptions acquire;
    acquire.timeout = absl::Seconds(2);  // on the steady clock
    (*pool)->Acquire(
        *set, acquire,
        [request](absl::StatusOr<mill::Lease*> lease) {
          if (!lease.ok()) {
            std::fprintf(stderr, "%s\n", lease.status().ToString().c_str());
            return;
          }
          (void)(*lease)->Send(request);  // the pool keeps the lease
        },
        std::move(handlers));
  }
  bool ok;
  {
    std::unique_lock<std::mutex> lock(mu);
    ok = cv.wait_for(lock, std::chrono::seconds(10),
                     [&] { return answered == 4; });
  }
  const mill::ConnectionPoolStats stats = (*pool)->stats();
  std::printf("4 answers over %zu connections to %zu endpoints\n",
              static_cast<size_t>(stats.created),
              static_cast<size_t>(stats.endpoints));

  pool->reset();  // the pool, then the servers, then the loop
  a->reset();
  b->reset();
  (*loop)->Stop();
  runner.join();
  return ok && stats.endpoints == 2 ? 0 : 1;
}
