// idle_clients: memory per idle outbound connection, for
// bench/idle_memory.py.
//
//   idle_clients --port=P --connections=N --kind=client
//
// Opens N connections with a TcpClient to 127.0.0.1:P (an echo server),
// sends one byte on each and waits for its echo, then leaves them idle and
// prints this process's RSS growth per connection as
// "bytes_per_connection=X" (RSS after minus RSS before, after a warm-up of
// a few hundred connections so pools and allocator arenas exist).
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "connpool/connection_pool.h"
#include "net/byte_buffer.h"
#include "net/connection.h"
#include "net/socket_address.h"
#include "net/tcp_client.h"
#include "reactor/event_loop.h"

ABSL_FLAG(int, port, 0, "echo server port on 127.0.0.1");
ABSL_FLAG(int, connections, 10000, "idle connections to hold");
ABSL_FLAG(std::string, kind, "client",
          "client: plain TcpClient connections; pool: connections idle in a "
          "ConnectionPool");

namespace {

long RssKib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// Opens `n` connections; each sends one byte and counts its echo.
std::vector<mill::ConnectionPtr> OpenEchoed(mill::TcpClient& client,
                                            uint16_t port, int n,
                                            std::atomic<int>* echoed) {
  std::vector<mill::ConnectionPtr> conns(n);
  std::atomic<int> connected{0}, failed{0};
  const int start = echoed->load();
  for (int i = 0; i < n; ++i) {
    client.Connect(mill::SocketAddress::LoopbackIPv4(port),
                   [&, i](absl::StatusOr<mill::ConnectionPtr> c) {
                     if (!c.ok()) {
                       ++failed;
                       return;
                     }
                     conns[i] = *c;
                     (void)(*c)->Send("x");
                     ++connected;
                   });
    // Keep the listen backlog from overflowing.
    while (i - connected.load() - failed.load() > 512) {
      absl::SleepFor(absl::Microseconds(100));
    }
  }
  while (echoed->load() - start + failed.load() < n) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  if (failed.load() > 0) {
    std::fprintf(stderr, "idle_clients: %d connects failed\n", failed.load());
  }
  return conns;
}

}  // namespace

// Acquires `n` pooled connections at once (each new), echoes one byte on
// each, and releases them all: they stay idle in the pool.
bool FillPool(mill::ConnectionPool& pool, uint16_t port, int n) {
  const std::string endpoint = absl::StrCat("127.0.0.1:", port);
  std::atomic<int> released{0}, failed{0};
  std::vector<mill::Lease> leases(n);
  std::atomic<int> acquired{0};
  // One set of lease callbacks for every request. (One per request, all
  // held until the release at the end, would leave n holes of their size
  // between the connections once released: RSS the allocator keeps, which
  // is the benchmark's memory, not the pool's.)
  auto callbacks = std::make_shared<mill::LeaseCallbacks>();
  callbacks->on_data = [&](const mill::ConnectionPtr&, mill::ByteBuffer& in) {
    in.Consume(in.size());
    ++released;
  };
  mill::AcquireOptions acquire;
  acquire.timeout = absl::Seconds(60);  // steady clock
  for (int i = 0; i < n; ++i) {
    pool.Acquire(
        endpoint, acquire,
        [&, i](absl::StatusOr<mill::Lease> lease) {
          if (!lease.ok()) {
            ++failed;
            return;
          }
          (void)lease->connection()->Send("x");
          leases[i] = *std::move(lease);
          ++acquired;
        },
        callbacks);
    while (i - acquired.load() - failed.load() > 512) {
      absl::SleepFor(absl::Microseconds(100));
    }
  }
  while (released.load() + failed.load() < n) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  for (mill::Lease& lease : leases) {
    if (lease) pool.Release(std::move(lease), /*reusable=*/true);
  }
  std::vector<mill::Lease>().swap(leases);  // ours, not the pool's memory
  return failed.load() == 0;
}

int RunPool(mill::EventLoop* loop, uint16_t port, int n) {
  mill::ConnectionPoolOptions options;
  options.max_connections_per_endpoint = static_cast<size_t>(n) + 1000;
  options.max_connections = static_cast<size_t>(n) + 1000;
  options.max_idle_per_endpoint = static_cast<size_t>(n) + 1000;
  options.max_pending = static_cast<size_t>(n) + 1000;
  options.idle_timeout = absl::Hours(1);
  auto pool = mill::ConnectionPool::Create(loop, options);
  if (!pool.ok()) return 1;
  // Warm up: pools, arenas; then close them (drop the leases' pool).
  {
    mill::ConnectionPoolOptions warm_options = options;
    auto warm = mill::ConnectionPool::Create(loop, warm_options);
    if (!warm.ok() || !FillPool(**warm, port, 300)) return 1;
  }
  absl::SleepFor(absl::Milliseconds(300));
  const long before = RssKib();
  if (!FillPool(**pool, port, n)) return 1;
  absl::SleepFor(absl::Milliseconds(500));
  const long after = RssKib();
  const mill::ConnectionPoolStats stats = (*pool)->stats();
  std::printf("connections=%d idle=%zu rss_before_kib=%ld rss_after_kib=%ld\n",
              n, stats.idle, before, after);
  std::printf("bytes_per_connection=%.1f\n",
              (after - before) * 1024.0 / static_cast<double>(n));
  std::fflush(stdout);
  return stats.idle == static_cast<size_t>(n) ? 0 : 1;
}

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const uint16_t port = static_cast<uint16_t>(absl::GetFlag(FLAGS_port));
  const int n = absl::GetFlag(FLAGS_connections);
  const std::string kind = absl::GetFlag(FLAGS_kind);
  if (kind != "client" && kind != "pool") {
    std::fprintf(stderr, "idle_clients: unknown --kind=%s\n", kind.c_str());
    return 2;
  }
  mill::EventLoopOptions loop_options;
  loop_options.dispatch_mode = mill::DispatchMode::kDirect;
  auto loop = mill::EventLoop::Create(loop_options);
  if (!loop.ok()) return 1;
  std::thread runner([&] { (void)(*loop)->Run(); });
  if (kind == "pool") {
    const int rc = RunPool(loop->get(), port, n);
    (*loop)->Stop();
    runner.join();
    return rc;
  }

  std::atomic<int> echoed{0};
  mill::ConnectionCallbacks callbacks;
  callbacks.on_data = [&](const mill::ConnectionPtr&, mill::ByteBuffer& in) {
    echoed += static_cast<int>(in.size());
    in.Consume(in.size());
  };
  auto client = mill::TcpClient::Create(loop->get(), callbacks);
  if (!client.ok()) return 1;

  {
    std::vector<mill::ConnectionPtr> warm =
        OpenEchoed(**client, port, 300, &echoed);
    for (auto& c : warm) {
      if (c) c->Abort();
    }
    while ((*client)->connection_count() > 0) {
      absl::SleepFor(absl::Milliseconds(1));
    }
  }
  absl::SleepFor(absl::Milliseconds(300));
  const long before = RssKib();
  std::vector<mill::ConnectionPtr> conns =
      OpenEchoed(**client, port, n, &echoed);
  // Our own references (and their array) go: the client keeps the
  // connections open.
  std::vector<mill::ConnectionPtr>().swap(conns);
  absl::SleepFor(absl::Milliseconds(500));
  const long after = RssKib();
  std::printf("connections=%d rss_before_kib=%ld rss_after_kib=%ld\n", n,
              before, after);
  std::printf("bytes_per_connection=%.1f\n",
              (after - before) * 1024.0 / static_cast<double>(n));
  std::fflush(stdout);
  client->reset();
  (*loop)->Stop();
  runner.join();
  return 0;
}
