#include "registry/registry.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "poll/token.h"

namespace mill {
namespace {

// Entry that records its token and reports its own destruction.
struct TestEntry {
  explicit TestEntry(uint64_t token, std::atomic<int>* destroyed = nullptr)
      : token(token), destroyed(destroyed) {}
  ~TestEntry() {
    if (destroyed != nullptr) destroyed->fetch_add(1);
  }
  uint64_t token;
  std::atomic<int>* destroyed;
  std::atomic<int> calls{0};
};

using TestRegistry = Registry<TestEntry>;

// Every behavioural test runs against one shard and several shards.
class RegistryTest : public ::testing::TestWithParam<size_t> {
 protected:
  TestRegistry registry_{GetParam()};
};

INSTANTIATE_TEST_SUITE_P(Shards, RegistryTest, ::testing::Values(1, 16),
                         [](const auto& info) {
                           return "Shards" + std::to_string(info.param);
                         });

TEST(RegistryShardsTest, ShardCountIsRoundedToPowerOfTwo) {
  EXPECT_EQ(TestRegistry(0).shard_count(), 1u);
  EXPECT_EQ(TestRegistry(1).shard_count(), 1u);
  EXPECT_EQ(TestRegistry(3).shard_count(), 4u);
  EXPECT_EQ(TestRegistry(16).shard_count(), 16u);
  EXPECT_EQ(TestRegistry(17).shard_count(), 32u);
  EXPECT_EQ(TestRegistry(1 << 20).shard_count(), TestRegistry::kMaxShardCount);
  EXPECT_EQ(TestRegistry().shard_count(), TestRegistry::kDefaultShardCount);
}

TEST_P(RegistryTest, StartsEmpty) {
  EXPECT_EQ(registry_.size(), 0u);
  EXPECT_TRUE(registry_.empty());
  EXPECT_EQ(registry_.Find(Token(1)), nullptr);
  EXPECT_FALSE(registry_.Contains(Token(1)));
}

TEST_P(RegistryTest, InsertThenFindReturnsSameEntry) {
  auto entry = std::make_shared<TestEntry>(7);
  ASSERT_TRUE(registry_.Insert(Token(7), entry).ok());
  EXPECT_EQ(registry_.Find(Token(7)), entry);
  EXPECT_TRUE(registry_.Contains(Token(7)));
  EXPECT_EQ(registry_.Find(Token(8)), nullptr);
  EXPECT_EQ(registry_.size(), 1u);
  EXPECT_FALSE(registry_.empty());
  // The registry holds one reference, the test the other.
  EXPECT_EQ(entry.use_count(), 2);
}

TEST_P(RegistryTest, TokenZeroAndMaxAreOrdinaryKeys) {
  ASSERT_TRUE(registry_.Insert(Token(0), std::make_shared<TestEntry>(0)).ok());
  ASSERT_TRUE(
      registry_.Insert(Token(UINT64_MAX), std::make_shared<TestEntry>(1)).ok());
  EXPECT_EQ(registry_.Find(Token(0))->token, 0u);
  EXPECT_EQ(registry_.Find(Token(UINT64_MAX))->token, 1u);
  EXPECT_EQ(registry_.size(), 2u);
}

TEST_P(RegistryTest, DuplicateInsertIsRejectedAndKeepsOriginal) {
  std::atomic<int> destroyed{0};
  auto first = std::make_shared<TestEntry>(1);
  ASSERT_TRUE(registry_.Insert(Token(5), first).ok());
  absl::Status status =
      registry_.Insert(Token(5), std::make_shared<TestEntry>(2, &destroyed));
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_NE(status.message().find("5"), absl::string_view::npos);
  // The rejected entry was released, the original is still registered.
  EXPECT_EQ(destroyed.load(), 1);
  EXPECT_EQ(registry_.Find(Token(5)), first);
  EXPECT_EQ(registry_.size(), 1u);
}

TEST_P(RegistryTest, NullEntryIsRejected) {
  absl::Status status = registry_.Insert(Token(3), nullptr);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(registry_.Contains(Token(3)));
  EXPECT_EQ(registry_.size(), 0u);
}

TEST_P(RegistryTest, RemoveReturnsEntryAndForgetsToken) {
  auto entry = std::make_shared<TestEntry>(9);
  ASSERT_TRUE(registry_.Insert(Token(9), entry).ok());
  EXPECT_EQ(registry_.Remove(Token(9)), entry);
  EXPECT_EQ(registry_.Find(Token(9)), nullptr);
  EXPECT_EQ(registry_.size(), 0u);
  EXPECT_EQ(entry.use_count(), 1);
  // Removing again, or removing an unknown token, returns nullptr.
  EXPECT_EQ(registry_.Remove(Token(9)), nullptr);
  EXPECT_EQ(registry_.Remove(Token(10)), nullptr);
  // The token can be registered again afterwards.
  EXPECT_TRUE(registry_.Insert(Token(9), std::make_shared<TestEntry>(9)).ok());
  EXPECT_EQ(registry_.size(), 1u);
}

TEST_P(RegistryTest, SizeTracksManyInsertsAndRemoves) {
  constexpr uint64_t kCount = 1000;
  for (uint64_t i = 0; i < kCount; ++i) {
    ASSERT_TRUE(
        registry_.Insert(Token(i), std::make_shared<TestEntry>(i)).ok());
  }
  EXPECT_EQ(registry_.size(), kCount);
  for (uint64_t i = 0; i < kCount; i += 2) {
    ASSERT_NE(registry_.Remove(Token(i)), nullptr);
  }
  EXPECT_EQ(registry_.size(), kCount / 2);
  for (uint64_t i = 0; i < kCount; ++i) {
    auto found = registry_.Find(Token(i));
    if (i % 2 == 0) {
      EXPECT_EQ(found, nullptr) << i;
    } else {
      ASSERT_NE(found, nullptr) << i;
      EXPECT_EQ(found->token, i);
    }
  }
}

TEST_P(RegistryTest, ClearReturnsAllEntriesAndEmpties) {
  std::atomic<int> destroyed{0};
  for (uint64_t i = 1; i <= 100; ++i) {
    ASSERT_TRUE(
        registry_.Insert(Token(i), std::make_shared<TestEntry>(i, &destroyed))
            .ok());
  }
  {
    auto removed = registry_.Clear();
    EXPECT_EQ(registry_.size(), 0u);
    EXPECT_EQ(registry_.Find(Token(1)), nullptr);
    ASSERT_EQ(removed.size(), 100u);
    // Entries are still alive while the returned vector holds them.
    EXPECT_EQ(destroyed.load(), 0);
    std::vector<uint64_t> tokens;
    for (const auto& kv : removed) {
      EXPECT_EQ(kv.first.value(), kv.second->token);
      tokens.push_back(kv.first.value());
    }
    std::sort(tokens.begin(), tokens.end());
    for (uint64_t i = 0; i < 100; ++i) EXPECT_EQ(tokens[i], i + 1);
  }
  EXPECT_EQ(destroyed.load(), 100);
  // Clearing an empty registry returns nothing; the registry is reusable.
  EXPECT_TRUE(registry_.Clear().empty());
  EXPECT_TRUE(registry_.Insert(Token(1), std::make_shared<TestEntry>(1)).ok());
  EXPECT_EQ(registry_.size(), 1u);
}

TEST_P(RegistryTest, ForEachVisitsEveryEntryOnce) {
  for (uint64_t i = 0; i < 50; ++i) {
    ASSERT_TRUE(
        registry_.Insert(Token(i * 3), std::make_shared<TestEntry>(i * 3))
            .ok());
  }
  std::vector<uint64_t> seen;
  registry_.ForEach([&](Token token, const std::shared_ptr<TestEntry>& e) {
    EXPECT_EQ(token.value(), e->token);
    seen.push_back(token.value());
  });
  std::sort(seen.begin(), seen.end());
  ASSERT_EQ(seen.size(), 50u);
  for (uint64_t i = 0; i < 50; ++i) EXPECT_EQ(seen[i], i * 3);
}

TEST_P(RegistryTest, ForEachCallbackMayMutateRegistry) {
  std::atomic<int> destroyed{0};
  for (uint64_t i = 0; i < 20; ++i) {
    ASSERT_TRUE(
        registry_.Insert(Token(i), std::make_shared<TestEntry>(i, &destroyed))
            .ok());
  }
  int visited = 0;
  // Removing every entry (and inserting new ones) from inside the callback
  // must neither deadlock nor cut the snapshot short.
  registry_.ForEach([&](Token token, const std::shared_ptr<TestEntry>& e) {
    ++visited;
    EXPECT_NE(registry_.Remove(token), nullptr);
    // Kept alive by the snapshot although it is no longer registered.
    EXPECT_EQ(e->token, token.value());
    EXPECT_TRUE(registry_
                    .Insert(Token(token.value() + 1000),
                            std::make_shared<TestEntry>(token.value() + 1000))
                    .ok());
  });
  EXPECT_EQ(visited, 20);
  EXPECT_EQ(destroyed.load(), 20);
  EXPECT_EQ(registry_.size(), 20u);
  EXPECT_TRUE(registry_.Contains(Token(1000)));
  EXPECT_FALSE(registry_.Contains(Token(0)));
}

// An entry whose destructor calls back into the registry: the registry must
// not destroy entries while holding a shard lock.
struct ReentrantEntry {
  ReentrantEntry(Registry<ReentrantEntry>* registry, Token also_remove)
      : registry(registry), also_remove(also_remove) {}
  ~ReentrantEntry() {
    if (registry != nullptr) {
      registry->Remove(also_remove);
      registry->Find(also_remove);
    }
  }
  Registry<ReentrantEntry>* registry;
  Token also_remove;
};

TEST_P(RegistryTest, EntryDestructorMayReenterRegistry) {
  Registry<ReentrantEntry> registry(GetParam());
  // Same token for both, so they certainly share a shard.
  ASSERT_TRUE(registry
                  .Insert(Token(1),
                          std::make_shared<ReentrantEntry>(&registry, Token(2)))
                  .ok());
  ASSERT_TRUE(
      registry
          .Insert(Token(2), std::make_shared<ReentrantEntry>(nullptr, Token()))
          .ok());
  registry.Remove(Token(1));  // Destroyed here: removes Token(2) too.
  EXPECT_EQ(registry.size(), 0u);

  ASSERT_TRUE(registry
                  .Insert(Token(3),
                          std::make_shared<ReentrantEntry>(&registry, Token(3)))
                  .ok());
  // Rejected duplicate is destroyed after the lock is released.
  EXPECT_EQ(registry
                .Insert(Token(3),
                        std::make_shared<ReentrantEntry>(&registry, Token(4)))
                .code(),
            absl::StatusCode::kAlreadyExists);
  registry.Clear();  // Entry 3 is destroyed after Clear released its locks.
  EXPECT_EQ(registry.size(), 0u);
}

// A handler invocation that found its entry keeps it alive while another
// thread removes it; the entry dies only when the invocation lets go.
TEST_P(RegistryTest, EntryOutlivesRemoveWhileInvocationInFlight) {
  std::atomic<int> destroyed{0};
  ASSERT_TRUE(
      registry_.Insert(Token(42), std::make_shared<TestEntry>(42, &destroyed))
          .ok());

  std::mutex mu;
  std::condition_variable cv;
  bool found = false;
  bool removed = false;
  int destroyed_seen_by_invocation = -1;

  std::thread invocation([&] {
    std::shared_ptr<TestEntry> entry = registry_.Find(Token(42));
    ASSERT_NE(entry, nullptr);
    {
      std::unique_lock<std::mutex> lock(mu);
      found = true;
      cv.notify_all();
      cv.wait(lock, [&] { return removed; });
    }
    // The entry is no longer registered but is still usable.
    destroyed_seen_by_invocation = destroyed.load();
    entry->calls.fetch_add(1);
    EXPECT_EQ(entry->token, 42u);
  });

  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return found; });
  }
  std::shared_ptr<TestEntry> taken = registry_.Remove(Token(42));
  ASSERT_NE(taken, nullptr);
  EXPECT_EQ(registry_.Find(Token(42)), nullptr);
  taken.reset();  // Drop the registry's reference while the call runs.
  EXPECT_EQ(destroyed.load(), 0);
  {
    std::lock_guard<std::mutex> lock(mu);
    removed = true;
  }
  cv.notify_all();
  invocation.join();
  EXPECT_EQ(destroyed_seen_by_invocation, 0);
  EXPECT_EQ(destroyed.load(), 1);
}

// Writers insert and remove disjoint token ranges while readers look up
// tokens from every range. Every entry found must carry its own token, and
// the final contents must be exactly what the writers left.
TEST_P(RegistryTest, ConcurrentInsertRemoveFindStress) {
  constexpr int kWriters = 3;
  constexpr int kReaders = 3;
  constexpr uint64_t kRange = 512;  // tokens per writer
  constexpr int kRounds = 20;       // insert-all / remove-half rounds
  // Tokens of writer w are w * kRange + [0, kRange), shifted to make them
  // sparse (a real registry sees pointer-like or sequence-like tokens).
  auto token_of = [](int w, uint64_t i) {
    return Token(((static_cast<uint64_t>(w) * kRange + i) << 4) | 1);
  };

  std::atomic<int> destroyed{0};
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> hits{0};
  std::atomic<uint64_t> wrong{0};
  std::atomic<int> readers_started{0};

  std::vector<std::thread> readers;
  for (int r = 0; r < kReaders; ++r) {
    readers.emplace_back([&, r] {
      uint64_t local_hits = 0;
      uint64_t x = 0x9E3779B97F4A7C15ULL * (r + 1);
      readers_started.fetch_add(1);
      // One last round after `stop`, on the final contents.
      bool last = false;
      while (!last) {
        last = stop.load();
        for (int k = 0; k < 64; ++k) {
          x ^= x << 13;
          x ^= x >> 7;
          x ^= x << 17;
          const int w = static_cast<int>(x % kWriters);
          const uint64_t i = (x >> 8) % kRange;
          const Token token = token_of(w, i);
          if (auto e = registry_.Find(token)) {
            ++local_hits;
            if (e->token != token.value()) wrong.fetch_add(1);
            e->calls.fetch_add(1, std::memory_order_relaxed);
          }
        }
        // glibc's rwlock prefers readers: without a pause, readers that
        // always overlap could hold off the writers for a long time on the
        // single-shard registry.
        std::this_thread::yield();
      }
      hits.fetch_add(local_hits);
    });
  }

  std::vector<std::thread> writers;
  std::atomic<int> insert_failures{0};
  std::atomic<int> remove_failures{0};
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      while (readers_started.load() < kReaders) std::this_thread::yield();
      for (int round = 0; round < kRounds; ++round) {
        for (uint64_t i = 0; i < kRange; ++i) {
          const Token token = token_of(w, i);
          // Odd tokens survive the previous round; re-inserting them must
          // fail with AlreadyExists.
          absl::Status s = registry_.Insert(
              token, std::make_shared<TestEntry>(token.value(), &destroyed));
          const bool should_insert = round == 0 || i % 2 == 0;
          if (s.ok() != should_insert) insert_failures.fetch_add(1);
        }
        for (uint64_t i = 0; i < kRange; i += 2) {
          auto e = registry_.Remove(token_of(w, i));
          if (e == nullptr || e->token != token_of(w, i).value()) {
            remove_failures.fetch_add(1);
          }
        }
      }
    });
  }
  for (auto& t : writers) t.join();
  stop.store(true);
  for (auto& t : readers) t.join();

  EXPECT_EQ(insert_failures.load(), 0);
  EXPECT_EQ(remove_failures.load(), 0);
  EXPECT_EQ(wrong.load(), 0u);
  EXPECT_GT(hits.load(), 0u);
  // Each writer leaves its odd tokens.
  EXPECT_EQ(registry_.size(), kWriters * kRange / 2);
  for (int w = 0; w < kWriters; ++w) {
    for (uint64_t i = 0; i < kRange; ++i) {
      EXPECT_EQ(registry_.Contains(token_of(w, i)), i % 2 == 1);
    }
  }
  // Created: kRange per writer in round 0, kRange / 2 per later round plus
  // the same number of rejected duplicates; all but the survivors are gone.
  const int created = kWriters * (kRange + (kRounds - 1) * kRange);
  EXPECT_EQ(destroyed.load(),
            created - static_cast<int>(kWriters * kRange / 2));
  registry_.Clear();
  EXPECT_EQ(destroyed.load(), created);
}

// ForEach and Clear racing with inserts: every inserted entry is handed back
// by exactly one Clear, and ForEach only ever sees consistent entries.
TEST_P(RegistryTest, ConcurrentForEachAndClear) {
  constexpr uint64_t kInserts = 20000;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> inserted{0};
  std::atomic<uint64_t> wrong{0};
  std::atomic<uint64_t> walks{0};
  std::thread inserter([&] {
    for (uint64_t next = 1; next <= kInserts; ++next) {
      if (!registry_.Insert(Token(next), std::make_shared<TestEntry>(next))
               .ok()) {
        wrong.fetch_add(1);  // Tokens are never reused.
      }
      inserted.fetch_add(1);
    }
  });
  std::thread walker([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      registry_.ForEach([&](Token t, const std::shared_ptr<TestEntry>& e) {
        if (e == nullptr || e->token != t.value()) wrong.fetch_add(1);
      });
      walks.fetch_add(1);
    }
  });
  std::vector<bool> seen(kInserts + 1, false);
  uint64_t cleared = 0;
  int clears_during_inserts = 0;
  auto clear_and_check = [&] {
    for (const auto& kv : registry_.Clear()) {
      const uint64_t t = kv.first.value();
      if (t == 0 || t > kInserts || seen[t] || kv.second->token != t) {
        wrong.fetch_add(1);
        continue;
      }
      seen[t] = true;
      ++cleared;
    }
  };
  while (inserted.load() < kInserts) {
    clear_and_check();
    ++clears_during_inserts;
    std::this_thread::yield();
  }
  inserter.join();
  while (walks.load() < 3) std::this_thread::yield();
  stop.store(true);
  walker.join();
  clear_and_check();
  EXPECT_EQ(wrong.load(), 0u);
  EXPECT_EQ(cleared, kInserts);
  EXPECT_GT(clears_during_inserts, 0);
  EXPECT_EQ(registry_.size(), 0u);
}

}  // namespace
}  // namespace mill
