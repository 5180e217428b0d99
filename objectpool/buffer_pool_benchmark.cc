// Acquire+release of an 8 KiB buffer: BufferPool vs malloc/free vs
// new[]/delete[]. Each variant writes one byte and lets the pointer escape,
// so the allocation cannot be elided. The baselines are registered (and so
// run) first, on a fresh heap: glibc is fastest when the 8 KiB chunk merges
// straight back into the top chunk, which makes the comparison conservative.
#include <cstdlib>

#include "benchmark/benchmark.h"
#include "objectpool/buffer_pool.h"

namespace mill {
namespace {

constexpr size_t kSize = 8192;

void BM_Malloc(benchmark::State& state) {
  for (auto _ : state) {
    char* p = static_cast<char*>(std::malloc(kSize));
    benchmark::DoNotOptimize(p);
    p[0] = 1;
    benchmark::ClobberMemory();
    std::free(p);
  }
}
BENCHMARK(BM_Malloc)->Threads(1)->Threads(2);

void BM_NewArray(benchmark::State& state) {
  for (auto _ : state) {
    char* p = new char[kSize];
    benchmark::DoNotOptimize(p);
    p[0] = 1;
    benchmark::ClobberMemory();
    delete[] p;
  }
}
BENCHMARK(BM_NewArray)->Threads(1)->Threads(2);

BufferPool& SharedPool() {
  static BufferPool* pool = new BufferPool();
  return *pool;
}

void BM_BufferPool(benchmark::State& state) {
  BufferPool& pool = SharedPool();
  for (auto _ : state) {
    BufferPool::Handle buf = pool.Acquire();
    char* p = buf->data();
    benchmark::DoNotOptimize(p);
    p[0] = 1;
    benchmark::ClobberMemory();
  }
  if (state.thread_index() == 0) {
    ObjectPoolStats s = pool.GetStats();
    state.counters["misses"] = static_cast<double>(s.misses);
  }
}
BENCHMARK(BM_BufferPool)->Threads(1)->Threads(2);

}  // namespace
}  // namespace mill
