// Registry: a thread-safe map from Token to a shared handler entry.
//
// The event loop keeps one entry per registered I/O source (the user's handler
// plus per-source dispatch state) and looks it up by the Token the poller
// reports with every event. Lookups therefore sit on the hot path of every
// event and run concurrently on the loop's threads (one per poller), while
// registrations and removals (from any thread) are comparatively rare.
//
// Thread-safety: every member function may be called concurrently from any
// thread. The table is split into a power-of-two number of shards, each an
// absl::flat_hash_map guarded by its own reader-writer lock (mill::SharedMutex,
// a std::shared_mutex the thread-safety analysis checks); lookups take a
// shared lock on one shard only, so readers never serialize on a single lock
// and writers only contend with operations on the same shard. Insert, Find and
// Remove are O(1) on average. (glibc's std::shared_mutex prefers readers, so
// a shard under uninterrupted read load delays its writers; sharding keeps
// each shard's read load a fraction of the total.)
//
// Ownership: entries are held by std::shared_ptr. Find returns a new reference,
// so an entry (and the handler inside it) stays alive for as long as the caller
// holds it, even if another thread removes it from the registry meanwhile; the
// entry is destroyed when the last reference goes. Remove and Clear hand the
// removed references back, and the registry never destroys an entry while it
// holds one of its locks, so an entry's destructor may call back into the
// registry.
#ifndef MILL_IO_REGISTRY_REGISTRY_H_
#define MILL_IO_REGISTRY_REGISTRY_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/mutex.h"
#include "poll/token.h"

namespace mill {

// Registry<Entry> maps each live Token to a std::shared_ptr<Entry>.
//
//   struct Source { Handler handler; std::atomic<int> pending{0}; };
//   Registry<Source> sources;                       // 16 shards
//   absl::Status s = sources.Insert(token, std::make_shared<Source>(...));
//   ...
//   // On every event, from any thread:
//   if (std::shared_ptr<Source> src = sources.Find(event.token)) {
//     src->handler(event);  // safe even if Remove(token) runs concurrently
//   }
//   ...
//   std::shared_ptr<Source> gone = sources.Remove(token);
//
// A null entry cannot be stored (Find uses nullptr to mean "absent"). The
// shard count is fixed at construction; 1 gives a single locked table.
template <typename Entry>
class Registry {
 public:
  using EntryPtr = std::shared_ptr<Entry>;

  static constexpr size_t kDefaultShardCount = 16;
  static constexpr size_t kMaxShardCount = 1024;

  // `shard_count` is rounded up to a power of two and clamped to
  // [1, kMaxShardCount].
  explicit Registry(size_t shard_count = kDefaultShardCount)
      : shard_count_(RoundUpShardCount(shard_count)),
        shards_(new Shard[shard_count_]) {}

  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Adds `entry` under `token`. Returns AlreadyExists if `token` is already
  // registered (the registry is left unchanged and `entry` is dropped), and
  // InvalidArgument if `entry` is null.
  absl::Status Insert(Token token, EntryPtr entry) {
    if (entry == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Registry::Insert: null entry for token ", token.value()));
    }
    Shard& shard = ShardFor(token);
    bool inserted;
    {
      WriterMutexLock lock(&shard.mu);
      // try_emplace leaves `entry` untouched when the key exists, so a
      // rejected entry is released after the lock, at function exit.
      inserted = shard.map.try_emplace(token, std::move(entry)).second;
    }
    if (!inserted) {
      return absl::AlreadyExistsError(absl::StrCat(
          "Registry::Insert: token ", token.value(), " is already registered"));
    }
    return absl::OkStatus();
  }

  // Returns a reference to the entry for `token`, or nullptr if none.
  EntryPtr Find(Token token) const {
    const Shard& shard = ShardFor(token);
    ReaderMutexLock lock(&shard.mu);
    auto it = shard.map.find(token);
    return it == shard.map.end() ? nullptr : it->second;
  }

  bool Contains(Token token) const {
    const Shard& shard = ShardFor(token);
    ReaderMutexLock lock(&shard.mu);
    return shard.map.contains(token);
  }

  // Removes `token` and returns its entry, or nullptr if it was not present.
  // The entry is destroyed when the returned pointer and every reference
  // obtained from Find are gone.
  EntryPtr Remove(Token token) {
    Shard& shard = ShardFor(token);
    EntryPtr removed;
    {
      WriterMutexLock lock(&shard.mu);
      auto it = shard.map.find(token);
      if (it == shard.map.end()) return nullptr;
      removed = std::move(it->second);
      shard.map.erase(it);
    }
    return removed;
  }

  // Number of entries. O(shard count). Exact when no insert or remove runs
  // concurrently; otherwise a value the registry held at some point per shard.
  size_t size() const {
    size_t total = 0;
    for (size_t i = 0; i < shard_count_; ++i) {
      ReaderMutexLock lock(&shards_[i].mu);
      total += shards_[i].map.size();
    }
    return total;
  }

  bool empty() const { return size() == 0; }

  // Removes every entry and returns them (in no particular order); drop the
  // result to release them. Shards are emptied one after the other, so an
  // Insert running concurrently with Clear may survive it.
  std::vector<std::pair<Token, EntryPtr>> Clear() {
    std::vector<std::pair<Token, EntryPtr>> removed;
    for (size_t i = 0; i < shard_count_; ++i) {
      Map taken;
      {
        WriterMutexLock lock(&shards_[i].mu);
        taken.swap(shards_[i].map);
      }
      removed.reserve(removed.size() + taken.size());
      for (auto& kv : taken)
        removed.emplace_back(kv.first, std::move(kv.second));
    }
    return removed;
  }

  // Calls `fn(Token, const std::shared_ptr<Entry>&)` for each entry of a
  // snapshot. The snapshot is taken shard by shard under shared locks, then
  // `fn` runs with no lock held, so it may call any member of this registry;
  // entries removed meanwhile are still visited (and kept alive) once.
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    std::vector<std::pair<Token, EntryPtr>> snapshot;
    for (size_t i = 0; i < shard_count_; ++i) {
      ReaderMutexLock lock(&shards_[i].mu);
      snapshot.reserve(snapshot.size() + shards_[i].map.size());
      for (const auto& kv : shards_[i].map) snapshot.emplace_back(kv);
    }
    for (const auto& kv : snapshot) fn(kv.first, kv.second);
  }

  size_t shard_count() const { return shard_count_; }

 private:
  using Map = absl::flat_hash_map<Token, EntryPtr>;

  // One cache line (at least) per shard, so that readers of different shards
  // do not bounce each other's lock word.
  struct alignas(64) Shard {
    mutable SharedMutex mu;
    Map map ABSL_GUARDED_BY(mu);
  };

  static size_t RoundUpShardCount(size_t n) {
    size_t count = 1;
    while (count < n && count < kMaxShardCount) count <<= 1;
    return count;
  }

  // splitmix64's finalizer: tokens are often small sequential integers or
  // pointers (low bits zero), so mix every bit into the shard index. It is a
  // different function from absl::Hash, so the shard choice does not correlate
  // with the slot choice inside each shard's table.
  static uint64_t Mix(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
  }

  Shard& ShardFor(Token token) const {
    return shards_[Mix(token.value()) & (shard_count_ - 1)];
  }

  const size_t shard_count_;
  const std::unique_ptr<Shard[]> shards_;
};

}  // namespace mill

#endif  // MILL_IO_REGISTRY_REGISTRY_H_
