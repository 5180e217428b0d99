// Lookup throughput of Registry (16 shards and 1 shard) against the obvious
// baseline, std::unordered_map<uint64_t, std::shared_ptr<X>> under a
// std::mutex. Every lookup copies the shared_ptr out, as the event loop does.
//
//   ./bazelw run --config=opt //registry:registry_benchmark --
//       --benchmark_min_time=0.2   (on one line)
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <unordered_map>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "benchmark/benchmark.h"
#include "poll/token.h"
#include "registry/registry.h"

namespace mill {
namespace {

constexpr size_t kEntries = 10000;
constexpr size_t kProbes = 1 << 16;  // power of two, see the index mask

struct Handler {
  explicit Handler(uint64_t token) : token(token) {}
  uint64_t token;
};

// Random 64-bit tokens, and a random sequence of existing ones to look up.
struct Workload {
  Workload() {
    std::mt19937_64 rng(12345);
    tokens.reserve(kEntries);
    for (size_t i = 0; i < kEntries; ++i) tokens.push_back(rng());
    probes.reserve(kProbes);
    for (size_t i = 0; i < kProbes; ++i) {
      probes.push_back(tokens[rng() % kEntries]);
    }
  }
  std::vector<uint64_t> tokens;
  std::vector<uint64_t> probes;
};

const Workload& GetWorkload() {
  static const Workload* workload = new Workload();
  return *workload;
}

template <size_t kShards>
Registry<Handler>& GetRegistry() {
  static Registry<Handler>* registry = [] {
    auto* r = new Registry<Handler>(kShards);
    for (uint64_t t : GetWorkload().tokens) {
      (void)r->Insert(Token(t), std::make_shared<Handler>(t));
    }
    return r;
  }();
  return *registry;
}

struct MutexMap {
  std::mutex mu;
  std::unordered_map<uint64_t, std::shared_ptr<Handler>> map;

  std::shared_ptr<Handler> Find(uint64_t token) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = map.find(token);
    return it == map.end() ? nullptr : it->second;
  }
};

MutexMap& GetMutexMap() {
  static MutexMap* m = [] {
    auto* m = new MutexMap();
    m->map.reserve(kEntries);
    for (uint64_t t : GetWorkload().tokens) {
      m->map.emplace(t, std::make_shared<Handler>(t));
    }
    return m;
  }();
  return *m;
}

// Not the baseline: a data point for the choice of shard lock. The same
// 16-way sharding with absl::flat_hash_map, but std::mutex instead of
// std::shared_mutex (glibc's rwlock read lock+unlock costs several times a
// mutex lock+unlock when uncontended).
struct ShardedMutexMap {
  static constexpr size_t kShards = 16;
  struct alignas(64) Shard {
    std::mutex mu;
    absl::flat_hash_map<Token, std::shared_ptr<Handler>> map;
  };
  Shard shards[kShards];

  static uint64_t Mix(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
  }
  Shard& ShardFor(Token t) { return shards[Mix(t.value()) & (kShards - 1)]; }

  std::shared_ptr<Handler> Find(Token token) {
    Shard& s = ShardFor(token);
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.map.find(token);
    return it == s.map.end() ? nullptr : it->second;
  }
};

ShardedMutexMap& GetShardedMutexMap() {
  static ShardedMutexMap* m = [] {
    auto* m = new ShardedMutexMap();
    for (uint64_t t : GetWorkload().tokens) {
      m->ShardFor(Token(t)).map.emplace(Token(t), std::make_shared<Handler>(t));
    }
    return m;
  }();
  return *m;
}

void BM_ShardedStdMutexFind(benchmark::State& state) {
  ShardedMutexMap& m = GetShardedMutexMap();
  const std::vector<uint64_t>& probes = GetWorkload().probes;
  size_t i = static_cast<size_t>(state.thread_index()) * 7919;
  for (auto _ : state) {
    std::shared_ptr<Handler> h = m.Find(Token(probes[i & (kProbes - 1)]));
    benchmark::DoNotOptimize(h->token);
    ++i;
  }
  state.SetItemsProcessed(state.iterations());
}

template <size_t kShards>
void BM_RegistryFind(benchmark::State& state) {
  Registry<Handler>& registry = GetRegistry<kShards>();
  const std::vector<uint64_t>& probes = GetWorkload().probes;
  // Threads start at different points of the probe sequence.
  size_t i = static_cast<size_t>(state.thread_index()) * 7919;
  for (auto _ : state) {
    std::shared_ptr<Handler> h =
        registry.Find(Token(probes[i & (kProbes - 1)]));
    benchmark::DoNotOptimize(h->token);
    ++i;
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_MutexUnorderedMapFind(benchmark::State& state) {
  MutexMap& m = GetMutexMap();
  const std::vector<uint64_t>& probes = GetWorkload().probes;
  size_t i = static_cast<size_t>(state.thread_index()) * 7919;
  for (auto _ : state) {
    std::shared_ptr<Handler> h = m.Find(probes[i & (kProbes - 1)]);
    benchmark::DoNotOptimize(h->token);
    ++i;
  }
  state.SetItemsProcessed(state.iterations());
}

// Build the tables before any timed threads start.
const bool kWarm = [] {
  GetRegistry<16>();
  GetRegistry<1>();
  GetMutexMap();
  GetShardedMutexMap();
  return true;
}();

BENCHMARK(BM_MutexUnorderedMapFind)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK_TEMPLATE(BM_RegistryFind, 1)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK_TEMPLATE(BM_RegistryFind, 16)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_ShardedStdMutexFind)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace
}  // namespace mill
