// Cost of one Poll round trip with descriptors kept readable (kLevel), for
// each backend, next to a bare epoll_wait loop doing the same work in the
// same binary (the baseline; Linux only).
//
//   BM_BareEpollWait/fds:F/ready:R/timeout:T   epoll_wait(maxevents=64) only
//   BM_PollerPoll/backend:B/fds:F/ready:R/timeout:T
//       B: 0 = epoll, 1 = poll(2) (index into Poller::AvailableBackends())
//       T: 0 = zero timeout, 1 = block (nullopt / -1), 2 = 1 s timeout
//
// Run:
//   ./bazelw run --config=opt //poll:poll_benchmark -- --benchmark_min_time=0.2
#include <fcntl.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/epoll.h>
#endif

#include <array>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "poll/event.h"
#include "poll/interest.h"
#include "poll/poller.h"
#include "poll/token.h"

namespace mill {
namespace {

constexpr int kCapacity = 64;

// F pipes, the first R of them holding one unread byte (so readable forever).
class PipeSet {
 public:
  PipeSet(int fds, int ready) {
    for (int i = 0; i < fds; ++i) {
      int p[2];
      if (pipe(p) != 0) {
        std::perror("pipe");
        std::abort();
      }
      fcntl(p[0], F_SETFL, O_NONBLOCK);
      fcntl(p[1], F_SETFL, O_NONBLOCK);
      if (i < ready && write(p[1], "x", 1) != 1) std::abort();
      pipes_.push_back({p[0], p[1]});
    }
  }
  ~PipeSet() {
    for (const auto& p : pipes_) {
      close(p[0]);
      close(p[1]);
    }
  }
  int read_fd(int i) const { return pipes_[i][0]; }
  int size() const { return static_cast<int>(pipes_.size()); }

 private:
  std::vector<std::array<int, 2>> pipes_;
};

std::optional<absl::Duration> TimeoutArg(int64_t t) {
  switch (t) {
    case 0:
      return absl::ZeroDuration();
    case 1:
      return std::nullopt;
    default:
      return absl::Seconds(1);
  }
}

int TimeoutMillisArg(int64_t t) { return t == 0 ? 0 : t == 1 ? -1 : 1000; }

void Args(benchmark::internal::Benchmark* b, bool with_backend) {
  for (int backend = 0; backend < (with_backend ? 2 : 1); ++backend) {
    for (auto fr : {std::pair<int, int>{1, 1}, {1000, 10}}) {
      for (int t = 0; t < 3; ++t) {
        if (with_backend) {
          b->Args({backend, fr.first, fr.second, t});
        } else {
          b->Args({fr.first, fr.second, t});
        }
      }
    }
  }
}

#ifdef __linux__
void BM_BareEpollWait(benchmark::State& state) {
  const int fds = static_cast<int>(state.range(0));
  const int ready = static_cast<int>(state.range(1));
  const int timeout_ms = TimeoutMillisArg(state.range(2));
  PipeSet pipes(fds, ready);
  const int epfd = epoll_create1(EPOLL_CLOEXEC);
  for (int i = 0; i < fds; ++i) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = static_cast<uint64_t>(i);
    epoll_ctl(epfd, EPOLL_CTL_ADD, pipes.read_fd(i), &ev);
  }
  epoll_event events[kCapacity];
  for (auto _ : state) {
    const int n = epoll_wait(epfd, events, kCapacity, timeout_ms);
    if (n != ready) state.SkipWithError("unexpected event count");
    benchmark::DoNotOptimize(events);
  }
  close(epfd);
  state.SetLabel("bare epoll_wait");
}
BENCHMARK(BM_BareEpollWait)
    ->ArgNames({"fds", "ready", "timeout"})
    ->Apply([](benchmark::internal::Benchmark* b) { Args(b, false); });
#endif

void BM_PollerPoll(benchmark::State& state) {
  const std::vector<PollerBackend> backends = Poller::AvailableBackends();
  if (state.range(0) >= static_cast<int64_t>(backends.size())) {
    state.SkipWithError("backend not built here");
    for (auto _ : state) {
    }
    return;
  }
  const PollerBackend backend = backends[state.range(0)];
  const int fds = static_cast<int>(state.range(1));
  const int ready = static_cast<int>(state.range(2));
  const std::optional<absl::Duration> timeout = TimeoutArg(state.range(3));
  PipeSet pipes(fds, ready);
  std::unique_ptr<Poller> poller = *Poller::Create(backend);
  for (int i = 0; i < fds; ++i) {
    if (!poller->Register(pipes.read_fd(i), Token(i), Interest::Readable())
             .ok()) {
      std::abort();
    }
  }
  Events events(kCapacity);
  for (auto _ : state) {
    absl::StatusOr<size_t> n = poller->Poll(events, timeout);
    if (!n.ok() || *n != static_cast<size_t>(ready)) {
      state.SkipWithError("unexpected event count");
    }
    benchmark::DoNotOptimize(events);
  }
  state.SetLabel(std::string(PollerBackendName(backend)));
}
BENCHMARK(BM_PollerPoll)
    ->ArgNames({"backend", "fds", "ready", "timeout"})
    ->Apply([](benchmark::internal::Benchmark* b) { Args(b, true); });

}  // namespace
}  // namespace mill
