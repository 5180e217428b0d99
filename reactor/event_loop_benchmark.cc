// Round trips through the EventLoop vs a bare epoll loop doing the same work.
//
// Each pair is a socketpair: the server end is served by the loop under test
// (read a message, write it back); the benchmark thread drives the client
// ends. "pairs" messages are in flight at once (1 = pure latency).
//
//   ./bazelw run --config=opt //reactor:event_loop_benchmark
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"
#include "reactor/event_loop.h"

namespace mill {
namespace {

constexpr size_t kMessage = 64;

struct Pairs {
  std::vector<int> server, client;
  explicit Pairs(int n) {
    for (int i = 0; i < n; ++i) {
      int fds[2];
      if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) abort();
      fcntl(fds[0], F_SETFL, O_NONBLOCK);
      server.push_back(fds[0]);
      client.push_back(fds[1]);
    }
  }
  ~Pairs() {
    for (int fd : server) close(fd);
    for (int fd : client) close(fd);
  }
};

// The server's work for one readiness event: echo what is there.
inline void Echo(int fd) {
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) return;
    ssize_t off = 0;
    while (off < n) {
      ssize_t w = write(fd, buf + off, n - off);
      if (w > 0) off += w;
    }
    if (static_cast<size_t>(n) < sizeof(buf)) return;  // drained
  }
}

// One round of the client: a message on every pair, then every reply.
inline void RoundTrip(const Pairs& pairs) {
  char msg[kMessage] = {1};
  for (int fd : pairs.client) {
    if (write(fd, msg, sizeof(msg)) != static_cast<ssize_t>(sizeof(msg))) {
      abort();
    }
  }
  for (int fd : pairs.client) {
    size_t got = 0;
    while (got < kMessage) {
      ssize_t n = read(fd, msg, sizeof(msg) - got);
      if (n <= 0) abort();
      got += n;
    }
  }
}

// Baseline: a bare level-triggered epoll loop on its own thread.
void BM_BareEpoll(benchmark::State& state) {
  Pairs pairs(state.range(0));
  int ep = epoll_create1(EPOLL_CLOEXEC);
  int stop_fd[2];
  if (pipe(stop_fd) != 0) abort();
  epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.fd = stop_fd[0];
  epoll_ctl(ep, EPOLL_CTL_ADD, stop_fd[0], &ev);
  for (int fd : pairs.server) {
    ev.data.fd = fd;
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
  std::thread loop([&] {
    epoll_event events[1024];
    for (;;) {
      int n = epoll_wait(ep, events, 1024, 100);
      for (int i = 0; i < n; ++i) {
        if (events[i].data.fd == stop_fd[0]) return;
        Echo(events[i].data.fd);
      }
    }
  });
  for (auto _ : state) RoundTrip(pairs);
  state.SetItemsProcessed(state.iterations() * pairs.client.size());
  (void)write(stop_fd[1], "x", 1);
  loop.join();
  close(stop_fd[0]);
  close(stop_fd[1]);
  close(ep);
}

void BM_EventLoop(benchmark::State& state, DispatchMode mode) {
  Pairs pairs(state.range(0));
  EventLoopOptions options;
  options.dispatch_mode = mode;
  options.workers = static_cast<int>(state.range(1));
  auto loop = EventLoop::Create(options);
  if (!loop.ok()) {
    state.SkipWithError(std::string(loop.status().message()).c_str());
    return;
  }
  for (size_t i = 0; i < pairs.server.size(); ++i) {
    int fd = pairs.server[i];
    if (!(*loop)
             ->Register(fd, Token(i), Interest::Readable(),
                        [fd](const Event&) { Echo(fd); })
             .ok()) {
      abort();
    }
  }
  std::thread runner([&] { (void)(*loop)->Run(); });
  for (auto _ : state) RoundTrip(pairs);
  state.SetItemsProcessed(state.iterations() * pairs.client.size());
  (*loop)->Stop();
  runner.join();
  // Pollers taken over from a handler that ran longer than takeover_delay.
  state.counters["takeovers"] = static_cast<double>((*loop)->stats().takeovers);
}

void BM_EventLoopDirect(benchmark::State& state) {
  BM_EventLoop(state, DispatchMode::kDirect);
}
void BM_EventLoopPool(benchmark::State& state) {
  BM_EventLoop(state, DispatchMode::kPool);
}

BENCHMARK(BM_BareEpoll)->ArgName("pairs")->Arg(1)->Arg(16)->UseRealTime();
BENCHMARK(BM_EventLoopDirect)
    ->ArgNames({"pairs", "workers"})
    ->Args({1, 1})
    ->Args({16, 1})
    ->UseRealTime();
BENCHMARK(BM_EventLoopPool)
    ->ArgNames({"pairs", "workers"})
    ->Args({1, 1})
    ->Args({16, 1})
    ->Args({16, 2})
    ->UseRealTime();

// The loop's own cost per event, without I/O in the handler: `sources`
// eventfds that are always readable (never read, so level-triggered polls
// report each of them every time) and a handler that only counts; the loop
// runs on this thread and the handler stops it after kEvents events. What is
// timed is Run(): polls plus dispatch (lookup, gate, handler call, release
// of the reference), per event.
void BM_DispatchAlwaysReady(benchmark::State& state, DispatchMode mode) {
  constexpr uint64_t kEvents = 200000;
  const int sources = static_cast<int>(state.range(0));
  std::vector<int> fds;
  for (int i = 0; i < sources; ++i) {
    const int fd = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) abort();
    fds.push_back(fd);
  }
  for (auto _ : state) {
    EventLoopOptions options;
    options.dispatch_mode = mode;
    options.workers = static_cast<int>(state.range(1));
    options.polling_threads = 1;
    auto loop = EventLoop::Create(options);
    if (!loop.ok()) abort();
    EventLoop* raw = loop->get();
    uint64_t count = 0;  // one polling thread: no race
    for (int i = 0; i < sources; ++i) {
      if (!raw->Register(fds[i], Token(i + 1), Interest::Readable(),
                         [&count, raw](const Event&) {
                           if (++count == kEvents) raw->Stop();
                         })
               .ok()) {
        abort();
      }
    }
    const auto start = std::chrono::steady_clock::now();
    (void)raw->Run();
    const std::chrono::duration<double> took =
        std::chrono::steady_clock::now() - start;
    state.SetIterationTime(took.count());
  }
  state.SetItemsProcessed(state.iterations() * kEvents);
  state.counters["ns_per_event"] = benchmark::Counter(
      static_cast<double>(state.iterations() * kEvents),
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  for (int fd : fds) close(fd);
}

void BM_DispatchDirect(benchmark::State& state) {
  BM_DispatchAlwaysReady(state, DispatchMode::kDirect);
}
void BM_DispatchPool(benchmark::State& state) {
  BM_DispatchAlwaysReady(state, DispatchMode::kPool);
}
BENCHMARK(BM_DispatchDirect)
    ->ArgNames({"sources", "workers"})
    ->Args({16, 1})
    ->Args({256, 1})
    ->UseManualTime();
// Two workers: one poller and a standby, so every handler is published to
// the standby (the activity counter) as in the default configuration.
BENCHMARK(BM_DispatchPool)
    ->ArgNames({"sources", "workers"})
    ->Args({16, 2})
    ->Args({256, 2})
    ->UseManualTime();

// Fairness: a firehose source (a writer thread fills it as fast as it can)
// next to a ping source. The handler of the firehose reads at most `budget`
// bytes per event (0 = until EAGAIN). Reported: ping round trips per second
// (the latency other sources see) and firehose bytes per second.
void BM_ReadBudgetFairness(benchmark::State& state) {
  const size_t budget = state.range(0);
  int firehose[2], ping[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, firehose) != 0) abort();
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, ping) != 0) abort();
  fcntl(firehose[0], F_SETFL, O_NONBLOCK);
  fcntl(ping[0], F_SETFL, O_NONBLOCK);
  int size = 1 << 20;
  setsockopt(firehose[0], SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
  setsockopt(firehose[1], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
  EventLoopOptions options;
  options.dispatch_mode = DispatchMode::kDirect;
  auto loop = EventLoop::Create(options);
  if (!loop.ok()) abort();
  std::atomic<uint64_t> firehose_bytes{0};
  (void)(*loop)->Register(
      firehose[0], Token(1), Interest::Readable(), [&](const Event&) {
        char buf[16384];
        size_t taken = 0;
        while (budget == 0 || taken < budget) {
          ssize_t n = read(firehose[0], buf, sizeof(buf));
          if (n <= 0) break;
          taken += n;
        }
        firehose_bytes.fetch_add(taken, std::memory_order_relaxed);
      });
  const int ping_fd = ping[0];
  (void)(*loop)->Register(ping_fd, Token(2), Interest::Readable(),
                          [ping_fd](const Event&) { Echo(ping_fd); });
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    std::string chunk(65536, 'f');
    while (!stop.load(std::memory_order_relaxed)) {
      // MSG_NOSIGNAL: the reader shuts down first at the end.
      (void)send(firehose[1], chunk.data(), chunk.size(), MSG_NOSIGNAL);
    }
  });
  std::thread runner([&] { (void)(*loop)->Run(); });
  const uint64_t start_bytes = firehose_bytes.load();
  for (auto _ : state) {
    char c = 'p';
    if (write(ping[1], &c, 1) != 1 || read(ping[1], &c, 1) != 1) abort();
  }
  state.counters["firehose_MBps"] = benchmark::Counter(
      (firehose_bytes.load() - start_bytes) / 1e6, benchmark::Counter::kIsRate);
  state.SetItemsProcessed(state.iterations());
  stop.store(true);
  shutdown(firehose[0], SHUT_RD);  // unblock the writer
  writer.join();
  (*loop)->Stop();
  runner.join();
  for (int fd : {firehose[0], firehose[1], ping[0], ping[1]}) close(fd);
}
BENCHMARK(BM_ReadBudgetFairness)
    ->ArgName("budget")
    ->Arg(0)
    ->Arg(4 << 10)
    ->Arg(64 << 10)
    ->Arg(1 << 20)
    ->UseRealTime();

}  // namespace
}  // namespace mill
