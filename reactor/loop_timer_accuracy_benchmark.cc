// How punctually the EventLoop fires timers, against the naive baseline of
// one thread sleeping until each deadline in turn.
//
// Each iteration schedules kTimers one-shot timers with delays spread evenly
// over 1..50 ms (scheduled in shuffled order, from a thread other than the
// loop's) and records, for each one,
//   lateness = (time its callback started) - (time of the call + delay)
// on steady_clock. Counters, over all iterations:
//   median_us, p99_us, max_us   lateness in microseconds
//   early                       callbacks that started before their deadline
//                               (the loop promises 0; the run fails if not)
// Wall time per iteration (~50 ms, the longest delay) is not the point.
//
//   EventLoop/mode:0   DispatchMode::kDirect: callbacks on the loop thread
//   EventLoop/mode:1   DispatchMode::kPool: callbacks on a worker
//   SleepUntilThread   baseline: the deadlines, sorted, slept through one by
//                      one with std::this_thread::sleep_until
//
//   ./bazelw run --config=opt //reactor:loop_timer_accuracy_benchmark
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "reactor/event_loop.h"

namespace mill {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kTimers = 2000;
constexpr int kIterations = 10;
constexpr std::chrono::microseconds kMinDelay(1'000);
constexpr std::chrono::microseconds kMaxDelay(50'000);

// kTimers delays evenly spread over [kMinDelay, kMaxDelay], shuffled.
std::vector<Clock::duration> Delays() {
  std::vector<Clock::duration> delays;
  delays.reserve(kTimers);
  const Clock::duration span = kMaxDelay - kMinDelay;
  for (int i = 0; i < kTimers; ++i) {
    delays.push_back(kMinDelay + span * i / (kTimers - 1));
  }
  std::mt19937_64 rng(2024);
  std::shuffle(delays.begin(), delays.end(), rng);
  return delays;
}

// One iteration's timers. Callbacks write their own start time, then count
// down; the last one wakes the benchmark thread.
struct Batch {
  std::vector<Clock::time_point> deadlines =
      std::vector<Clock::time_point>(kTimers);
  std::vector<Clock::time_point> started =
      std::vector<Clock::time_point>(kTimers);
  std::atomic<int> left{kTimers};
  std::mutex mu;
  std::condition_variable done;

  void Fire(int i) {
    started[i] = Clock::now();
    if (left.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mu);
      done.notify_all();
    }
  }
  bool WaitAll(std::chrono::seconds timeout) {
    std::unique_lock<std::mutex> lock(mu);
    return done.wait_for(lock, timeout, [this] {
      return left.load(std::memory_order_acquire) == 0;
    });
  }
  void AppendLateness(std::vector<int64_t>& out) const {
    for (int i = 0; i < kTimers; ++i) {
      out.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(
                        started[i] - deadlines[i])
                        .count());
    }
  }
};

void Report(benchmark::State& state, std::vector<int64_t>& lateness_ns) {
  if (lateness_ns.empty()) return;
  std::sort(lateness_ns.begin(), lateness_ns.end());
  const size_t n = lateness_ns.size();
  auto us = [](int64_t ns) { return static_cast<double>(ns) / 1000.0; };
  const int64_t early = std::count_if(lateness_ns.begin(), lateness_ns.end(),
                                      [](int64_t ns) { return ns < 0; });
  state.counters["median_us"] = us(lateness_ns[n / 2]);
  state.counters["p99_us"] = us(lateness_ns[std::min(n - 1, n * 99 / 100)]);
  state.counters["max_us"] = us(lateness_ns.back());
  state.counters["early"] = static_cast<double>(early);
  state.counters["timers"] = static_cast<double>(n);
  if (early != 0) state.SkipWithError("a timer fired before its deadline");
}

void BM_EventLoop(benchmark::State& state) {
  EventLoopOptions options;
  options.dispatch_mode =
      state.range(0) == 0 ? DispatchMode::kDirect : DispatchMode::kPool;
  absl::StatusOr<std::unique_ptr<EventLoop>> created =
      EventLoop::Create(options);
  if (!created.ok()) {
    state.SkipWithError("EventLoop::Create failed");
    return;
  }
  EventLoop& loop = **created;
  std::thread runner([&loop] { (void)loop.Run(); });
  {
    // Let the loop thread (and workers) get going before measuring.
    Batch warm_up;
    warm_up.left.store(1);
    loop.RunAfter(absl::ZeroDuration(), [&warm_up] { warm_up.Fire(0); });
    warm_up.WaitAll(std::chrono::seconds(10));
  }
  const std::vector<Clock::duration> delays = Delays();
  std::vector<int64_t> lateness_ns;
  lateness_ns.reserve(static_cast<size_t>(kTimers) * kIterations);
  for (auto _ : state) {
    Batch batch;
    bool scheduled = true;
    for (int i = 0; i < kTimers && scheduled; ++i) {
      batch.deadlines[i] = Clock::now() + delays[i];
      scheduled = loop.RunAfter(absl::FromChrono(delays[i]),
                                [b = &batch, i] { b->Fire(i); })
                      .valid();
    }
    if (!scheduled) {
      state.SkipWithError("RunAfter failed");
      break;
    }
    if (!batch.WaitAll(std::chrono::seconds(30))) {
      state.SkipWithError("timers did not fire");
      break;
    }
    batch.AppendLateness(lateness_ns);
  }
  loop.Stop();
  runner.join();
  Report(state, lateness_ns);
}
BENCHMARK(BM_EventLoop)
    ->ArgName("mode")
    ->Arg(0)
    ->Arg(1)
    ->Iterations(kIterations)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Baseline: the same deadlines, taken the same way, served by one thread
// that sorts them and sleeps until each in turn.
void BM_SleepUntilThread(benchmark::State& state) {
  const std::vector<Clock::duration> delays = Delays();
  std::vector<int64_t> lateness_ns;
  lateness_ns.reserve(static_cast<size_t>(kTimers) * kIterations);
  for (auto _ : state) {
    Batch batch;
    std::vector<std::pair<Clock::time_point, int>> queue;
    queue.reserve(kTimers);
    for (int i = 0; i < kTimers; ++i) {
      batch.deadlines[i] = Clock::now() + delays[i];
      queue.emplace_back(batch.deadlines[i], i);
    }
    std::thread sleeper([&batch, &queue] {
      std::sort(queue.begin(), queue.end());
      for (const auto& [deadline, i] : queue) {
        std::this_thread::sleep_until(deadline);
        batch.Fire(i);
      }
    });
    sleeper.join();
    batch.AppendLateness(lateness_ns);
  }
  Report(state, lateness_ns);
}
BENCHMARK(BM_SleepUntilThread)
    ->Iterations(kIterations)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace mill
