// Acquire + Release of an idle connection, steady state, no I/O: the
// ConnectionPool (with and without its liveness probe, a recv(MSG_PEEK)
// system call per hand-out) against a baseline pool that is a mutex and a
// deque of the same ConnectionPtrs, 1 and 2 threads; and the pool-held form
// (LeaseHandlers, by endpoint and on an EndpointSet).
//
//   ./bazelw run --config=opt //connpool:connection_pool_benchmark
//
// What the pool does beyond the baseline on this path: the endpoint lookup,
// expiry checks, the hand-over excluded from the connection's callbacks
// (Connection::Dispatch), installing and clearing the holder's callbacks,
// the checks before reuse and at release, the wait-time metrics.
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "connpool/connection_pool.h"
#include "connpool/endpoint_set.h"
#include "net/byte_buffer.h"
#include "net/connection.h"
#include "net/socket_address.h"
#include "net/tcp_client.h"
#include "net/tcp_server.h"
#include "reactor/event_loop.h"

namespace mill {
namespace {

constexpr int kIdle = 4;  // more than the most threads

// A loop with an echo server, and what the benchmarks share.
struct Environment {
  Environment() {
    loop = *EventLoop::Create();
    runner = std::thread([this] { (void)loop->Run(); });
    TcpServerCallbacks echo;
    echo.on_data = [](const ConnectionPtr& c, ByteBuffer& in) {
      (void)c->Send(in.view());
      in.Consume(in.size());
    };
    server = *TcpServer::Create(loop.get(), SocketAddress::LoopbackIPv4(0),
                                std::move(echo));
    endpoint = absl::StrCat("127.0.0.1:", server->local_address().port());
    client = *TcpClient::Create(loop.get(), {});
  }

  // A pool holding kIdle idle connections.
  std::unique_ptr<ConnectionPool> MakePool(bool check_liveness) {
    ConnectionPoolOptions options;
    options.check_liveness = check_liveness;
    options.max_idle_per_endpoint = kIdle;
    std::unique_ptr<ConnectionPool> pool =
        *ConnectionPool::Create(loop.get(), options);
    std::vector<Lease> leases;
    for (int i = 0; i < kIdle; ++i) {
      std::mutex mu;
      std::condition_variable cv;
      std::optional<Lease> got;
      pool->Acquire(endpoint, absl::Now() + absl::Seconds(10),
                    [&](absl::StatusOr<Lease> lease) {
                      std::lock_guard<std::mutex> lock(mu);
                      got.emplace(*std::move(lease));
                      cv.notify_all();
                    });
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return got.has_value(); });
      leases.push_back(*std::move(got));
    }
    for (Lease& lease : leases) pool->Release(std::move(lease), true);
    while (pool->stats().idle < static_cast<size_t>(kIdle)) {
      std::this_thread::yield();
    }
    return pool;
  }

  // kIdle plain connections for the baseline.
  std::vector<ConnectionPtr> MakeConnections() {
    std::vector<ConnectionPtr> conns;
    for (int i = 0; i < kIdle; ++i) {
      std::mutex mu;
      std::condition_variable cv;
      ConnectionPtr got;
      client->Connect(server->local_address(),
                      [&](absl::StatusOr<ConnectionPtr> c) {
                        std::lock_guard<std::mutex> lock(mu);
                        got = *c;
                        cv.notify_all();
                      });
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return got != nullptr; });
      conns.push_back(got);
    }
    return conns;
  }

  std::unique_ptr<EventLoop> loop;
  std::thread runner;
  std::unique_ptr<TcpServer> server;
  std::unique_ptr<TcpClient> client;
  std::string endpoint;
};

Environment& Env() {
  static Environment* env = new Environment();  // lives until exit
  return *env;
}

// The baseline: a mutex and a deque, LIFO.
class MutexDequePool {
 public:
  explicit MutexDequePool(std::vector<ConnectionPtr> conns) {
    for (ConnectionPtr& c : conns) idle_.push_back(std::move(c));
  }
  ConnectionPtr Acquire() {
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.empty()) return nullptr;
    ConnectionPtr c = std::move(idle_.back());
    idle_.pop_back();
    return c;
  }
  void Release(ConnectionPtr c) {
    std::lock_guard<std::mutex> lock(mu_);
    idle_.push_back(std::move(c));
  }

 private:
  std::mutex mu_;
  std::deque<ConnectionPtr> idle_;
};

MutexDequePool& Baseline() {
  static MutexDequePool* pool = new MutexDequePool(Env().MakeConnections());
  return *pool;
}

ConnectionPool& PoolWithProbe() {
  static ConnectionPool* pool = Env().MakePool(true).release();
  return *pool;
}

ConnectionPool& PoolWithoutProbe() {
  static ConnectionPool* pool = Env().MakePool(false).release();
  return *pool;
}

void BM_MutexDequeBaseline(benchmark::State& state) {
  MutexDequePool& pool = Baseline();
  for (auto _ : state) {
    ConnectionPtr c = pool.Acquire();
    if (c == nullptr) {
      state.SkipWithError("baseline pool empty");
      break;
    }
    benchmark::DoNotOptimize(c.get());
    pool.Release(std::move(c));
  }
  state.SetItemsProcessed(state.iterations());
}

void RunPool(benchmark::State& state, ConnectionPool& pool) {
  const std::string& endpoint = Env().endpoint;
  for (auto _ : state) {
    Lease lease;
    pool.Acquire(endpoint, absl::InfiniteFuture(),
                 [&lease](absl::StatusOr<Lease> got) {
                   if (got.ok()) lease = *std::move(got);
                 });
    if (!lease) {
      state.SkipWithError("no idle connection handed out at once");
      break;
    }
    benchmark::DoNotOptimize(lease.connection().get());
    pool.Release(std::move(lease), /*reusable=*/true);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_ConnectionPool(benchmark::State& state) {
  RunPool(state, PoolWithProbe());
}

void BM_ConnectionPoolNoProbe(benchmark::State& state) {
  RunPool(state, PoolWithoutProbe());
}

// The pool-held form (LeaseHandlers): `ready` gets the lease and releases
// it. Beyond BM_ConnectionPool: the LeaseSlot and its LeaseCallbacks
// wrapper, allocated per Acquire. With `set`, the endpoint is picked by an
// EndpointSet (round robin over one endpoint: the picker's cost).
void RunHeld(benchmark::State& state, ConnectionPool& pool,
             const std::shared_ptr<EndpointSet>& set) {
  const std::string& endpoint = Env().endpoint;
  const AcquireOptions options;
  for (auto _ : state) {
    bool released = false;
    auto ready = [&released](absl::StatusOr<Lease*> lease) {
      if (!lease.ok()) return;
      benchmark::DoNotOptimize((*lease)->connection().get());
      (*lease)->Release(/*reusable=*/true);
      released = true;
    };
    if (set != nullptr) {
      pool.Acquire(set, options, ready, LeaseHandlers());
    } else {
      pool.Acquire(endpoint, options, ready, LeaseHandlers());
    }
    if (!released) {
      state.SkipWithError("no idle connection handed out at once");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_ConnectionPoolHeld(benchmark::State& state) {
  RunHeld(state, PoolWithProbe(), nullptr);
}

void BM_ConnectionPoolHeldOnSet(benchmark::State& state) {
  static const std::shared_ptr<EndpointSet>* set =
      new std::shared_ptr<EndpointSet>(
          *EndpointSet::Create({Env().endpoint}));  // lives until exit
  RunHeld(state, PoolWithProbe(), *set);
}

BENCHMARK(BM_MutexDequeBaseline)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_ConnectionPool)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_ConnectionPoolNoProbe)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_ConnectionPoolHeld)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_ConnectionPoolHeldOnSet)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace
}  // namespace mill
