#include "objectpool/object_pool.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "objectpool/internal/asymmetric_fence.h"
#include "objectpool/internal/thread_slot.h"

namespace mill {
namespace {

struct Counters {
  std::atomic<int> constructed{0};
  std::atomic<int> destroyed{0};
  std::atomic<int> resets{0};
};

struct Widget {
  Widget(Counters* c, int id) : counters(c), id(id) {}
  ~Widget() {
    EXPECT_FALSE(in_use.load()) << "destroyed while held";
    counters->destroyed.fetch_add(1);
  }
  Counters* counters;
  int id;
  int value = 0;
  std::atomic<bool> in_use{false};
};

using Pool = ObjectPool<Widget>;

Pool::Factory MakeFactory(Counters& c) {
  return
      [&c] { return std::make_unique<Widget>(&c, c.constructed.fetch_add(1)); };
}

Pool::ResetHook MakeReset(Counters& c) {
  return [&c](Widget& w) {
    w.value = 0;
    c.resets.fetch_add(1);
  };
}

ObjectPoolOptions MaxIdle(size_t n) {
  ObjectPoolOptions options;
  options.max_idle = n;
  return options;
}

static_assert(!std::is_copy_constructible<Pool::Handle>::value, "");
static_assert(!std::is_copy_assignable<Pool::Handle>::value, "");
static_assert(std::is_nothrow_move_constructible<Pool::Handle>::value, "");
static_assert(std::is_nothrow_move_assignable<Pool::Handle>::value, "");

TEST(ObjectPoolTest, CreatesOnMissAndRecyclesOnReturn) {
  Counters c;
  Pool pool(MakeFactory(c), MakeReset(c));
  Widget* first;
  {
    Pool::Handle h = pool.Acquire();
    ASSERT_TRUE(h);
    first = h.get();
    h->value = 7;
    EXPECT_EQ((*h).value, 7);
    EXPECT_EQ(c.resets.load(), 0);
  }
  EXPECT_EQ(c.resets.load(), 1);  // Reset runs on return.
  Pool::Handle again = pool.Acquire();
  EXPECT_EQ(again.get(), first);
  EXPECT_EQ(again->value, 0);  // The hook cleared it.
  EXPECT_EQ(c.constructed.load(), 1);
  EXPECT_EQ(c.destroyed.load(), 0);

  Pool::Stats s = pool.GetStats();
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.created, 1u);
  EXPECT_EQ(s.returned, 1u);
  EXPECT_EQ(s.dropped, 0u);
  EXPECT_EQ(s.released, 0u);
  EXPECT_EQ(s.idle, 0u);
}

TEST(ObjectPoolTest, WorksWithoutResetHook) {
  Counters c;
  Pool pool(MakeFactory(c));
  Widget* w;
  {
    Pool::Handle h = pool.Acquire();
    w = h.get();
    h->value = 5;
  }
  Pool::Handle h = pool.Acquire();
  EXPECT_EQ(h.get(), w);
  EXPECT_EQ(h->value, 5);  // Nothing reset it.
}

TEST(ObjectPoolTest, HandleMoveSemantics) {
  Counters c;
  Pool pool(MakeFactory(c), MakeReset(c));
  Pool::Handle a = pool.Acquire();
  Widget* wa = a.get();
  Pool::Handle b = std::move(a);
  EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(a.get(), nullptr);
  EXPECT_EQ(b.get(), wa);
  EXPECT_EQ(pool.GetStats().returned, 0u);

  // Assigning over a holding handle returns its object.
  Pool::Handle d = pool.Acquire();
  Widget* wd = d.get();
  EXPECT_NE(wd, wa);
  d = std::move(b);
  EXPECT_EQ(d.get(), wa);
  EXPECT_FALSE(b);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(pool.GetStats().returned, 1u);
  EXPECT_EQ(pool.GetStats().idle, 1u);
  EXPECT_EQ(c.resets.load(), 1);

  // Self-move keeps the object.
  Pool::Handle& alias = d;
  d = std::move(alias);
  EXPECT_EQ(d.get(), wa);

  // Empty handles: everything is a no-op.
  Pool::Handle empty;
  EXPECT_FALSE(empty);
  empty.Reset();
  EXPECT_EQ(empty.Release(), nullptr);
  empty = std::move(d);
  EXPECT_EQ(empty.get(), wa);
  empty.Reset();
  EXPECT_FALSE(empty);
  EXPECT_EQ(pool.GetStats().returned, 2u);
  EXPECT_EQ(pool.GetStats().idle, 2u);
  EXPECT_EQ(c.constructed.load(), 2);
  EXPECT_EQ(c.destroyed.load(), 0);
}

TEST(ObjectPoolTest, ReleaseDetachesObject) {
  Counters c;
  Pool pool(MakeFactory(c), MakeReset(c));
  Pool::Handle h = pool.Acquire();
  Widget* w = h.get();
  std::unique_ptr<Widget> owned = h.Release();
  EXPECT_FALSE(h);
  EXPECT_EQ(owned.get(), w);
  h.Reset();  // Nothing to return.

  Pool::Handle next = pool.Acquire();
  EXPECT_NE(next.get(), w);  // Not recycled.
  Pool::Stats s = pool.GetStats();
  EXPECT_EQ(s.released, 1u);
  EXPECT_EQ(s.returned, 0u);
  EXPECT_EQ(s.misses, 2u);
  EXPECT_EQ(c.resets.load(), 0);
  EXPECT_EQ(c.destroyed.load(), 0);
  owned.reset();
  EXPECT_EQ(c.destroyed.load(), 1);
}

TEST(ObjectPoolTest, IdleIsBoundedAndExcessIsDropped) {
  for (size_t max_idle : {size_t{4}, size_t{64}}) {
    SCOPED_TRACE(max_idle);
    Counters c;
    Pool pool(MakeFactory(c), MakeReset(c), MaxIdle(max_idle));
    EXPECT_EQ(pool.max_idle(), max_idle);
    const int n = static_cast<int>(max_idle) + 6;
    std::vector<Pool::Handle> held;
    for (int i = 0; i < n; ++i) held.push_back(pool.Acquire());
    held.clear();
    Pool::Stats s = pool.GetStats();
    EXPECT_EQ(s.misses, static_cast<uint64_t>(n));
    EXPECT_EQ(s.returned, max_idle);
    EXPECT_EQ(s.dropped, 6u);
    EXPECT_EQ(s.idle, max_idle);
    EXPECT_EQ(c.destroyed.load(), 6);
    EXPECT_EQ(c.resets.load(), static_cast<int>(max_idle));  // Not on drop.

    // All kept objects come back without the factory.
    for (size_t i = 0; i < max_idle; ++i) held.push_back(pool.Acquire());
    EXPECT_EQ(c.constructed.load(), n);
    s = pool.GetStats();
    EXPECT_EQ(s.hits, max_idle);
    EXPECT_EQ(s.idle, 0u);
  }
}

TEST(ObjectPoolTest, MaxIdleZeroKeepsNothing) {
  Counters c;
  Pool pool(MakeFactory(c), MakeReset(c), MaxIdle(0));
  for (int i = 0; i < 3; ++i) pool.Acquire();
  EXPECT_EQ(c.constructed.load(), 3);
  EXPECT_EQ(c.destroyed.load(), 3);
  EXPECT_EQ(c.resets.load(), 0);
  EXPECT_EQ(pool.Prefill(5), 0u);
  Pool::Stats s = pool.GetStats();
  EXPECT_EQ(s.dropped, 3u);
  EXPECT_EQ(s.idle, 0u);
}

TEST(ObjectPoolTest, PrefillIsBoundedByMaxIdle) {
  Counters c;
  Pool pool(MakeFactory(c), MakeReset(c), MaxIdle(8));
  EXPECT_EQ(pool.Prefill(3), 3u);
  EXPECT_EQ(c.constructed.load(), 3);
  Pool::Stats s = pool.GetStats();
  EXPECT_EQ(s.created, 3u);
  EXPECT_EQ(s.misses, 0u);
  EXPECT_EQ(s.idle, 3u);

  EXPECT_EQ(pool.Prefill(100), 5u);
  EXPECT_EQ(pool.Prefill(1), 0u);
  EXPECT_EQ(pool.GetStats().idle, 8u);

  std::vector<Pool::Handle> held;
  for (int i = 0; i < 8; ++i) held.push_back(pool.Acquire());
  s = pool.GetStats();
  EXPECT_EQ(s.hits, 8u);
  EXPECT_EQ(s.misses, 0u);
  EXPECT_EQ(s.idle, 0u);
  EXPECT_EQ(c.constructed.load(), 8);
  EXPECT_EQ(c.resets.load(), 0);  // Fresh objects are not reset.

  // Budget held by outstanding objects is free again for Prefill.
  EXPECT_EQ(pool.Prefill(2), 2u);
  held.clear();
  s = pool.GetStats();
  EXPECT_EQ(s.idle, 8u);
  EXPECT_EQ(s.returned + s.dropped, 8u);
  EXPECT_EQ(s.returned, 6u);
  EXPECT_EQ(c.destroyed.load(), 2);
}

TEST(ObjectPoolTest, FactoryReturningNullGivesEmptyHandle) {
  bool fail = true;
  int made = 0;
  ObjectPool<int> pool(
      [&]() -> std::unique_ptr<int> {
        if (fail) return nullptr;
        return std::make_unique<int>(made++);
      },
      MaxIdle(4));
  ObjectPool<int>::Handle h = pool.Acquire();
  EXPECT_FALSE(h);
  EXPECT_EQ(pool.Prefill(3), 0u);
  ObjectPool<int>::Stats s = pool.GetStats();
  EXPECT_EQ(s.misses, 0u);
  EXPECT_EQ(s.created, 0u);
  fail = false;
  // The failed Prefill gave its budget back.
  EXPECT_EQ(pool.Prefill(10), 4u);
  h = pool.Acquire();
  ASSERT_TRUE(h);
  EXPECT_EQ(pool.GetStats().hits, 1u);
}

TEST(ObjectPoolTest, StatsTrackASequence) {
  Counters c;
  Pool pool(MakeFactory(c), MakeReset(c), MaxIdle(2));
  EXPECT_EQ(pool.Prefill(1), 1u);
  Pool::Handle a = pool.Acquire();  // hit
  Pool::Handle b = pool.Acquire();  // miss
  Pool::Handle d = pool.Acquire();  // miss
  Pool::Handle e = pool.Acquire();  // miss
  std::unique_ptr<Widget> detached = e.Release();
  a.Reset();  // returned
  b.Reset();  // returned
  d.Reset();  // dropped: idle is full
  Pool::Stats s = pool.GetStats();
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 3u);
  EXPECT_EQ(s.created, 4u);
  EXPECT_EQ(s.returned, 2u);
  EXPECT_EQ(s.dropped, 1u);
  EXPECT_EQ(s.released, 1u);
  EXPECT_EQ(s.idle, 2u);
  EXPECT_EQ(s.created, s.idle + s.dropped + s.released);
}

TEST(ObjectPoolTest, PoolDestroyedWithOutstandingHandles) {
  Counters c;
  std::unique_ptr<Pool> pool;
  pool = std::make_unique<Pool>(MakeFactory(c), MakeReset(c), MaxIdle(8));
  Pool::Handle h1 = pool->Acquire();
  Pool::Handle h2 = pool->Acquire();
  Pool::Handle h3 = pool->Acquire();
  Pool::Handle h4 = pool->Acquire();
  pool->Acquire().Reset();  // One idle object.
  ASSERT_EQ(pool->GetStats().idle, 1u);
  ASSERT_EQ(c.resets.load(), 1);
  const int resets_before = c.resets.load();

  pool.reset();
  EXPECT_EQ(c.destroyed.load(), 1);  // Only the idle one.

  // Outstanding objects are intact and usable.
  h1->value = 42;
  EXPECT_EQ(h1->value, 42);
  Widget* w2 = h2.get();

  h1.Reset();  // Destroyed, not recycled, reset hook not run.
  EXPECT_EQ(c.destroyed.load(), 2);
  EXPECT_EQ(c.resets.load(), resets_before);

  std::unique_ptr<Widget> owned = h2.Release();
  EXPECT_EQ(owned.get(), w2);
  EXPECT_EQ(c.destroyed.load(), 2);
  owned->value = 3;
  owned.reset();
  EXPECT_EQ(c.destroyed.load(), 3);

  // Released on another thread, which has never used the pool.
  std::thread([h = std::move(h3)]() mutable { h.Reset(); }).join();
  EXPECT_EQ(c.destroyed.load(), 4);

  // Moving a handle of a dead pool is fine too.
  Pool::Handle moved = std::move(h4);
  moved = Pool::Handle();
  EXPECT_EQ(c.destroyed.load(), 5);
  EXPECT_EQ(c.constructed.load(), 5);
  EXPECT_EQ(c.resets.load(), resets_before);
}

TEST(ObjectPoolTest, DestroyingPoolDestroysObjectsCachedByOtherThreads) {
  Counters c;
  std::unique_ptr<Pool> pool;
  pool = std::make_unique<Pool>(MakeFactory(c), MakeReset(c), MaxIdle(64));
  std::thread([&] {
    std::vector<Pool::Handle> held;
    for (int i = 0; i < 5; ++i) held.push_back(pool->Acquire());
  }).join();
  // The thread exited; its cached objects are still idle in the pool.
  Pool::Stats s = pool->GetStats();
  EXPECT_EQ(s.idle, 5u);
  EXPECT_EQ(s.returned, 5u);
  EXPECT_EQ(c.destroyed.load(), 0);
  pool.reset();
  EXPECT_EQ(c.destroyed.load(), 5);
}

TEST(ObjectPoolTest, NewThreadTakesOverCacheOfExitedThread) {
  Counters c;
  Pool pool(MakeFactory(c), MakeReset(c), MaxIdle(64));
  auto churn = [&] {
    std::vector<Pool::Handle> held;
    for (int i = 0; i < 3; ++i) held.push_back(pool.Acquire());
  };
  std::thread(churn).join();
  std::thread(churn).join();  // Reuses the exited thread's slot.
  Pool::Stats s = pool.GetStats();
  EXPECT_EQ(s.misses, 3u);
  EXPECT_EQ(s.hits, 3u);
  EXPECT_EQ(s.idle, 3u);
}

TEST(ObjectPoolTest, ObjectsReturnedOnOneThreadReachAnother) {
  Counters c;
  Pool pool(MakeFactory(c), MakeReset(c), MaxIdle(64));
  std::vector<Pool::Handle> held;
  for (int i = 0; i < 100; ++i) held.push_back(pool.Acquire());
  // Another thread returns them: it keeps at most a magazine (16) for itself
  // and passes the rest on through the shared depot.
  std::thread([held = std::move(held)]() mutable { held.clear(); }).join();
  Pool::Stats s = pool.GetStats();
  EXPECT_EQ(s.returned, 64u);
  EXPECT_EQ(s.dropped, 36u);
  EXPECT_EQ(s.idle, 64u);

  for (int i = 0; i < 100; ++i) held.push_back(pool.Acquire());
  s = pool.GetStats();
  EXPECT_GE(s.hits, 64u - 16u);
  EXPECT_EQ(s.hits + s.misses, 200u);
  EXPECT_EQ(static_cast<uint64_t>(c.constructed.load()), s.created);
  held.clear();
  s = pool.GetStats();
  EXPECT_EQ(s.created, s.idle + s.dropped);
  EXPECT_LE(s.idle, 64u);
}

TEST(ObjectPoolTest, ThreadWithoutSlotUsesSharedDepot) {
  Counters c;
  std::unique_ptr<Pool> pool;
  pool = std::make_unique<Pool>(MakeFactory(c), MakeReset(c), MaxIdle(3));
  Pool::Handle survivor;
  std::thread([&] {
    objectpool_internal::DropThreadSlotForTesting();
    EXPECT_EQ(objectpool_internal::CurrentThreadSlot(), -1);
    std::vector<Pool::Handle> held;
    for (int i = 0; i < 5; ++i) held.push_back(pool->Acquire());
    held.clear();
    Pool::Stats s = pool->GetStats();
    EXPECT_EQ(s.returned, 3u);
    EXPECT_EQ(s.dropped, 2u);
    EXPECT_EQ(s.idle, 3u);
    for (int i = 0; i < 3; ++i) held.push_back(pool->Acquire());
    EXPECT_EQ(pool->GetStats().hits, 3u);
    EXPECT_EQ(c.constructed.load(), 5);
    survivor = std::move(held.back());
    held.clear();
    EXPECT_EQ(c.resets.load(), 5);
  }).join();
  std::thread([&] {
    objectpool_internal::DropThreadSlotForTesting();
    pool.reset();  // Drains the depot.
    EXPECT_EQ(c.destroyed.load(), 4);
    survivor.Reset();  // Slot-less return into a dead pool.
    EXPECT_EQ(c.destroyed.load(), 5);
  }).join();
}

// Several threads acquire, hand handles to each other, return, detach.
// Every object must have at most one holder at a time, and the books must
// balance at the end.
TEST(ObjectPoolTest, ConcurrentStressNeverSharesAnObject) {
  Counters c;
  std::atomic<int> double_handouts{0};
  std::atomic<int> corrupted{0};
  std::atomic<uint64_t> acquires{0};
  std::atomic<uint64_t> detached{0};
  std::unique_ptr<Pool> pool;
  pool = std::make_unique<Pool>(MakeFactory(c), MakeReset(c), MaxIdle(24));

  std::mutex mailbox_mu;
  std::vector<Pool::Handle> mailbox;

  constexpr int kThreads = 4;
  constexpr int kIterations = 60000;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(10);
  auto worker = [&](int tid) {
    std::mt19937 rng(tid * 7919 + 1);
    std::vector<Pool::Handle> held;
    auto take = [&](Pool::Handle h) {
      if (h->value != 0 && h->value != tid + 1 && h->value != -1) {
        corrupted.fetch_add(1);
      }
      h->value = tid + 1;
      held.push_back(std::move(h));
      if (rng() % 64 == 0) std::this_thread::yield();
    };
    auto give_back = [&](size_t i) {
      Pool::Handle h = std::move(held[i]);
      held.erase(held.begin() + static_cast<long>(i));
      if (h->value != tid + 1) corrupted.fetch_add(1);
      h->in_use.store(false);
      return h;
    };
    for (int it = 0; it < kIterations; ++it) {
      if ((it & 255) == 0 && std::chrono::steady_clock::now() > deadline) {
        break;
      }
      unsigned op = rng() % 8;
      if (op < 3 && held.size() < 4) {
        Pool::Handle h = pool->Acquire();
        acquires.fetch_add(1, std::memory_order_relaxed);
        if (h->in_use.exchange(true)) double_handouts.fetch_add(1);
        take(std::move(h));
      } else if (op < 5 && !held.empty()) {
        give_back(rng() % held.size()).Reset();
      } else if (op == 5 && !held.empty()) {
        // Hand to another thread: ownership moves with in_use still set.
        Pool::Handle h = std::move(held.back());
        held.pop_back();
        h->value = -1;
        std::lock_guard<std::mutex> lock(mailbox_mu);
        mailbox.push_back(std::move(h));
      } else if (op == 6 && held.size() < 4) {
        Pool::Handle h;
        {
          std::lock_guard<std::mutex> lock(mailbox_mu);
          if (!mailbox.empty()) {
            h = std::move(mailbox.back());
            mailbox.pop_back();
          }
        }
        if (h) take(std::move(h));
      } else if (op == 7 && !held.empty() && rng() % 16 == 0) {
        std::unique_ptr<Widget> w = give_back(0).Release();
        detached.fetch_add(1, std::memory_order_relaxed);
      }
    }
    while (!held.empty()) give_back(held.size() - 1).Reset();
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(worker, t);
  for (auto& t : threads) t.join();
  for (auto& h : mailbox) h->in_use.store(false);
  mailbox.clear();

  EXPECT_EQ(double_handouts.load(), 0);
  EXPECT_EQ(corrupted.load(), 0);
  Pool::Stats s = pool->GetStats();
  EXPECT_EQ(s.hits + s.misses, acquires.load());
  EXPECT_EQ(s.released, detached.load());
  EXPECT_EQ(s.returned + s.dropped + s.released, acquires.load());
  EXPECT_EQ(s.created, s.misses);
  EXPECT_EQ(s.created, s.idle + s.dropped + s.released);  // 0 outstanding.
  EXPECT_LE(s.idle, 24u);
  EXPECT_GT(s.hits, 0u);
  EXPECT_EQ(static_cast<uint64_t>(c.constructed.load()), s.created);
  EXPECT_EQ(static_cast<uint64_t>(c.destroyed.load()), s.dropped + s.released);
  pool.reset();
  EXPECT_EQ(c.destroyed.load(), c.constructed.load());
}

// The pool is destroyed while other threads are returning objects: each
// object is destroyed exactly once, either by the pool or by its returner.
void DestroyWhileOtherThreadsReturn() {
  constexpr int kRounds = 20;
  constexpr int kThreads = 3;
  constexpr int kPerThread = 40;
  for (int round = 0; round < kRounds; ++round) {
    Counters c;
    std::unique_ptr<Pool> pool;
    // A slow reset hook widens the window in which a return races with
    // the destructor.
    pool = std::make_unique<Pool>(
        MakeFactory(c),
        [&c](Widget& w) {
          for (int i = 0; i < 3; ++i) std::this_thread::yield();
          w.value = 0;
          c.resets.fetch_add(1);
        },
        MaxIdle(64));
    std::vector<std::vector<Pool::Handle>> held(kThreads);
    for (auto& v : held) {
      for (int i = 0; i < kPerThread; ++i) v.push_back(pool->Acquire());
    }
    std::atomic<int> returns{0};
    std::atomic<bool> closed{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          // The last few always go back after the pool is gone.
          if (i == kPerThread - 5) {
            while (!closed.load()) std::this_thread::yield();
          }
          held[t][i]->value = t;
          held[t][i].Reset();
          returns.fetch_add(1);
          std::this_thread::yield();
        }
      });
    }
    // Destroy the pool part-way through, so returns happen before, during
    // and after it.
    const int trigger = (round % 4 + 1) * kThreads * kPerThread / 6;
    while (returns.load() < trigger) std::this_thread::yield();
    pool.reset();
    const int returns_at_close = returns.load();
    closed.store(true);
    for (auto& t : threads) t.join();
    EXPECT_EQ(c.constructed.load(), kThreads * kPerThread);
    EXPECT_EQ(c.destroyed.load(), kThreads * kPerThread);
    // The hook never runs once the destructor has returned; at most one
    // return per thread was between its hook and its count.
    EXPECT_LE(c.resets.load(), returns_at_close + kThreads);
  }
}

TEST(ObjectPoolTest, DestroyWhileOtherThreadsReturn) {
  DestroyWhileOtherThreadsReturn();
}

// Same with the symmetric fences used where membarrier(2) is unavailable.
TEST(ObjectPoolTest, DestroyWhileOtherThreadsReturnWithoutMembarrier) {
  objectpool_internal::InitAsymmetricFence();
  const bool had_membarrier =
      objectpool_internal::g_membarrier_ready.exchange(false);
  DestroyWhileOtherThreadsReturn();
  objectpool_internal::g_membarrier_ready.store(had_membarrier);
}

// Each exiting thread gives its slot back before it is gone (on Windows
// through native storage: mingw-w64 frees thread_local storage before
// running thread_local destructors), so one thread after another always
// gets the same slot and none leaks.
TEST(ThreadSlotTest, ExitedThreadsSlotsAreReused) {
  std::set<int> seen;
  for (int i = 0; i < 2 * objectpool_internal::kMaxThreadSlots; ++i) {
    std::thread([&] {
      seen.insert(objectpool_internal::CurrentThreadSlot());
    }).join();
  }
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_GE(*seen.begin(), 0);
  EXPECT_LT(*seen.begin(), objectpool_internal::kMaxThreadSlots);
}

}  // namespace
}  // namespace mill
