// A consumer of the installed package that uses the thread pool alone: it
// must compile and link with MillIO::threadpool (or mill-io-threadpool.pc)
// and nothing of the event loop.
#include <atomic>
#include <cstdio>
#include <future>
#include <vector>

#include "absl/status/statusor.h"
#include "threadpool/thread_pool.h"

int main() {
  mill::ThreadPoolOptions options;
  options.workers = 2;
  mill::ThreadPool pool(options);
  std::atomic<long> sum{0};
  for (int i = 1; i <= 1000; ++i) {
    if (!pool.Submit([&sum, i] { sum += i; }).ok()) return 1;
  }
  absl::StatusOr<std::future<int>> answer =
      pool.SubmitWithFuture([] { return 42; });
  if (!answer.ok() || answer->get() != 42) return 1;
  pool.Shutdown();  // runs what is queued, then joins
  std::printf("threadpool: sum %ld\n", sum.load());
  return sum.load() == 500500 ? 0 : 1;
}
