// ObjectPoolCore<T>: the state and algorithms behind ObjectPool<T>
// (objectpool/object_pool.h), which is a thin owner of one of these.
//
// Layout: per-thread caches ("magazines", one per thread slot, see
// thread_slot.h) in front of a mutex-protected shared depot. Only a slot's
// owner thread writes its magazine, so Acquire() and Return() on the fast
// path are plain loads and stores; the atomics exist so that GetStats() and
// Close() can read magazines from other threads. Acquire() and Return() are
// defined in the class so that they inline into ObjectPool::Acquire() and
// Handle::Reset(); everything else is kept out of line (ABSL_ATTRIBUTE_NOINLINE
// on the slow paths) so the fast paths stay small.
//
// Thread-safety and ownership are ObjectPool's (see object_pool.h). The core
// is reference-counted and deletes itself: one reference for the pool, one per
// live object it created.
//
// Internal to //objectpool; not part of the public API.
#ifndef MILL_IO_OBJECTPOOL_INTERNAL_OBJECT_POOL_CORE_H_
#define MILL_IO_OBJECTPOOL_INTERNAL_OBJECT_POOL_CORE_H_

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "absl/base/thread_annotations.h"
#include "base/mutex.h"
#include "objectpool/internal/asymmetric_fence.h"
#include "objectpool/internal/thread_slot.h"

namespace mill {
namespace objectpool_internal {

// The pool's state. Reference-counted: one reference for the pool and one
// per live object it created (idle or outstanding), so it lives as long as
// any handle without touching a counter on the acquire/return fast path.
//
// The idle budget: `budget_` units are free, each depot object holds one,
// and each magazine holds `reserved` (>= its count). Their sum is
// max_idle, so idle objects never exceed it.
template <typename T>
class ObjectPoolCore {
 public:
  using Factory = std::function<std::unique_ptr<T>()>;
  using ResetHook = std::function<void(T&)>;

  ObjectPoolCore(Factory factory, ResetHook reset, size_t max_idle)
      : factory_(std::move(factory)),
        reset_(std::move(reset)),
        max_idle_(max_idle),
        mag_cap_(static_cast<uint32_t>(
            std::clamp<size_t>(max_idle / 4, 1, kMaxMagazine))),
        batch_(std::max<uint32_t>(1, mag_cap_ / 2)),
        budget_(max_idle) {
    InitAsymmetricFence();
    for (auto& mag : mags_) mag.store(nullptr, std::memory_order_relaxed);
    // The depot never holds more than max_idle objects; reserving spares
    // Return() (noexcept) an allocation in the common case.
    depot_.reserve(std::min<size_t>(max_idle, 4096));
  }

  ObjectPoolCore(const ObjectPoolCore&) = delete;
  ObjectPoolCore& operator=(const ObjectPoolCore&) = delete;

  // Hot path of ObjectPool::Acquire(): pops this thread's magazine. Returns
  // nullptr only if the factory did.
  T* Acquire() {
    int slot = CurrentThreadSlot();
    if (ABSL_PREDICT_TRUE(slot >= 0)) {
      Magazine* mag = mags_[slot].load(std::memory_order_relaxed);
      if (ABSL_PREDICT_TRUE(mag != nullptr)) {
        uint32_t count = mag->count.load(std::memory_order_relaxed);
        if (ABSL_PREDICT_TRUE(count > 0)) {
          T* object = mag->items[count - 1];
          mag->count.store(count - 1, std::memory_order_relaxed);
          Bump(mag->hits);
          return object;
        }
      }
    }
    return AcquireSlow(slot);
  }

  // Hot path of Handle::Reset().
  void Return(T* object) noexcept {
    int slot = CurrentThreadSlot();
    Magazine* mag =
        slot >= 0 ? mags_[slot].load(std::memory_order_relaxed) : nullptr;
    if (ABSL_PREDICT_FALSE(mag == nullptr)) {
      ReturnWithoutMagazine(slot, object);
      return;
    }
    // Dekker handshake with Close(): either Close() sees in_update set and
    // waits for us, or we see closed_. LightFence pairs with HeavyFence.
    mag->in_update.store(true, std::memory_order_relaxed);
    LightFence();
    if (ABSL_PREDICT_FALSE(closed_.load(std::memory_order_relaxed))) {
      mag->in_update.store(false, std::memory_order_release);
      DestroyOrphan(object);
      return;
    }
    uint32_t count = mag->count.load(std::memory_order_relaxed);
    if (ABSL_PREDICT_TRUE(count < mag->reserved)) {
      Push(mag, count, object);
      mag->in_update.store(false, std::memory_order_release);
      return;
    }
    bool kept = ReturnSlow(mag, object);
    mag->in_update.store(false, std::memory_order_release);
    if (!kept) Drop(object);
  }

  // Handle::Release(): the object leaves the pool.
  void Detach() noexcept {
    released_.fetch_add(1, std::memory_order_relaxed);
    Unref(1);
  }

  size_t Prefill(size_t n) {
    size_t units = TakeBudget(n);
    size_t made = 0;
    while (made < units) {
      T* object = Create();
      if (object == nullptr) break;
      MutexLock lock(&depot_mu_);
      depot_.push_back(object);
      depot_size_.store(depot_.size(), std::memory_order_relaxed);
      ++made;
    }
    if (made < units) {
      budget_.fetch_add(units - made, std::memory_order_relaxed);
    }
    return made;
  }

  // Stats is ObjectPoolStats; a template parameter so that this header does
  // not depend on the public one.
  template <typename Stats>
  Stats GetStats() const {
    Stats stats;
    stats.hits = hits_.load(std::memory_order_relaxed);
    stats.misses = misses_.load(std::memory_order_relaxed);
    stats.created = created_.load(std::memory_order_relaxed);
    stats.returned = returned_.load(std::memory_order_relaxed);
    stats.dropped = dropped_.load(std::memory_order_relaxed);
    stats.released = released_.load(std::memory_order_relaxed);
    stats.idle = depot_size_.load(std::memory_order_relaxed);
    for (const auto& slot : mags_) {
      const Magazine* mag = slot.load(std::memory_order_acquire);
      if (mag == nullptr) continue;
      stats.hits += mag->hits.load(std::memory_order_relaxed);
      stats.returned += mag->returned.load(std::memory_order_relaxed);
      stats.idle += mag->count.load(std::memory_order_relaxed);
    }
    return stats;
  }

  size_t max_idle() const { return max_idle_; }

  // The pool's destructor: destroy every idle object, then drop the pool's
  // reference. Outstanding objects keep the core alive.
  void Close() {
    closed_.store(true, std::memory_order_seq_cst);
    HeavyFence();
    // Every Return() that missed closed_ has in_update visible now.
    std::vector<T*> idle;
    for (auto& slot : mags_) {
      Magazine* mag = slot.load(std::memory_order_acquire);
      if (mag == nullptr) continue;
      while (mag->in_update.load(std::memory_order_acquire)) {
        std::this_thread::yield();
      }
      uint32_t count = mag->count.load(std::memory_order_relaxed);
      idle.insert(idle.end(), mag->items, mag->items + count);
      mag->count.store(0, std::memory_order_relaxed);
    }
    {
      // Slot-less returners check closed_ under this mutex.
      MutexLock lock(&depot_mu_);
      idle.insert(idle.end(), depot_.begin(), depot_.end());
      depot_.clear();
      depot_size_.store(0, std::memory_order_relaxed);
    }
    dropped_.fetch_add(idle.size(), std::memory_order_relaxed);
    // Outside the lock: a destructor may release handles of this pool.
    for (T* object : idle) delete object;
    Unref(idle.size() + 1);
  }

 private:
  static constexpr uint32_t kMaxMagazine = 16;

  // One thread slot's cache. Only the thread owning the slot writes it, so
  // plain loads and stores suffice; the atomics let GetStats() and Close()
  // read it from other threads.
  struct alignas(64) Magazine {
    // Set while the owner is putting an object in (see Return), so Close()
    // can wait for it.
    std::atomic<bool> in_update{false};
    std::atomic<uint32_t> count{0};  // Idle objects in items[0, count).
    uint32_t reserved = 0;           // Units of the idle budget held, >= count.
    std::atomic<uint64_t> hits{0};
    std::atomic<uint64_t> returned{0};
    T* items[kMaxMagazine] = {};
  };

  // Deleted only through Unref().
  ~ObjectPoolCore() {
    for (auto& mag : mags_) delete mag.load(std::memory_order_relaxed);
  }

  // Single-writer increment: a load and a store, no locked instruction.
  static void Bump(std::atomic<uint64_t>& counter) {
    counter.store(counter.load(std::memory_order_relaxed) + 1,
                  std::memory_order_relaxed);
  }

  ABSL_ATTRIBUTE_NOINLINE T* AcquireSlow(int slot) {
    Magazine* mag = slot >= 0 ? GetOrCreateMagazine(slot) : nullptr;
    T* object = nullptr;
    {
      MutexLock lock(&depot_mu_);
      size_t freed = 0;
      if (mag != nullptr) {
        // The magazine is empty; give back the budget it holds so other
        // threads can keep what they return.
        freed = mag->reserved - mag->count.load(std::memory_order_relaxed);
        mag->reserved -= static_cast<uint32_t>(freed);
      }
      if (!depot_.empty()) {
        object = depot_.back();
        depot_.pop_back();
        ++freed;  // Its unit: a handed-out object holds none.
        if (mag != nullptr) {
          // Refill so the next acquires on this thread are fast; the
          // moved objects keep their units.
          uint32_t n = static_cast<uint32_t>(
              std::min<size_t>(depot_.size(), batch_ - 1));
          uint32_t count = mag->count.load(std::memory_order_relaxed);
          for (uint32_t i = 0; i < n; ++i) {
            mag->items[count + i] = depot_[depot_.size() - n + i];
          }
          depot_.resize(depot_.size() - n);
          mag->reserved += n;
          mag->count.store(count + n, std::memory_order_relaxed);
        }
        depot_size_.store(depot_.size(), std::memory_order_relaxed);
      }
      if (freed > 0) budget_.fetch_add(freed, std::memory_order_relaxed);
    }
    if (object != nullptr) {
      hits_.fetch_add(1, std::memory_order_relaxed);
      return object;
    }
    object = Create();
    if (object != nullptr) misses_.fetch_add(1, std::memory_order_relaxed);
    return object;
  }

  void Push(Magazine* mag, uint32_t count, T* object) {
    if (reset_) reset_(*object);
    mag->items[count] = object;
    mag->count.store(count + 1, std::memory_order_relaxed);
    Bump(mag->returned);
  }

  // Return() when the magazine has no free unit. Returns false if the
  // object must be dropped. Runs inside the in_update window.
  ABSL_ATTRIBUTE_NOINLINE bool ReturnSlow(Magazine* mag, T* object) {
    uint32_t count = mag->count.load(std::memory_order_relaxed);
    if (count == mag_cap_) {
      // Full: move half to the depot (with their units) for other threads.
      uint32_t n = batch_;
      MutexLock lock(&depot_mu_);
      depot_.insert(depot_.end(), mag->items + count - n, mag->items + count);
      depot_size_.store(depot_.size(), std::memory_order_relaxed);
      count -= n;
      mag->reserved -= n;
      mag->count.store(count, std::memory_order_relaxed);
    }
    size_t units = TakeBudget(std::min(batch_, mag_cap_ - mag->reserved));
    if (units == 0) return false;
    mag->reserved += static_cast<uint32_t>(units);
    Push(mag, count, object);
    return true;
  }

  // Return() from a thread without a magazine.
  ABSL_ATTRIBUTE_NOINLINE void ReturnWithoutMagazine(int slot, T* object) {
    if (slot >= 0) {
      GetOrCreateMagazine(slot);
      Return(object);
      return;
    }
    // No slot: go through the depot. Close() drains the depot under the
    // same mutex after setting closed_, so we either see closed_ or our
    // object is drained.
    {
      MutexLock lock(&depot_mu_);
      if (!closed_.load(std::memory_order_relaxed) && TakeBudget(1) == 1) {
        if (reset_) reset_(*object);
        depot_.push_back(object);
        depot_size_.store(depot_.size(), std::memory_order_relaxed);
        returned_.fetch_add(1, std::memory_order_relaxed);
        return;
      }
    }
    if (closed_.load(std::memory_order_relaxed)) {
      DestroyOrphan(object);
    } else {
      Drop(object);
    }
  }

  Magazine* GetOrCreateMagazine(int slot) {
    Magazine* mag = mags_[slot].load(std::memory_order_relaxed);
    if (mag == nullptr) {
      mag = new Magazine;
      // Release: GetStats() and Close() read it from other threads.
      mags_[slot].store(mag, std::memory_order_release);
    }
    return mag;
  }

  // Takes up to `want` free units of the idle budget; returns how many.
  size_t TakeBudget(size_t want) {
    size_t free = budget_.load(std::memory_order_relaxed);
    while (free > 0 && want > 0) {
      size_t take = std::min(free, want);
      if (budget_.compare_exchange_weak(free, free - take,
                                        std::memory_order_relaxed)) {
        return take;
      }
    }
    return 0;
  }

  T* Create() {
    std::unique_ptr<T> object = factory_();
    if (object == nullptr) return nullptr;
    refs_.fetch_add(1, std::memory_order_relaxed);
    created_.fetch_add(1, std::memory_order_relaxed);
    return object.release();
  }

  // Idle was full: destroy a returned object while the pool is alive.
  ABSL_ATTRIBUTE_NOINLINE void Drop(T* object) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    delete object;
    Unref(1);
  }

  // Returned after the pool was destroyed. Nobody reads the stats now.
  ABSL_ATTRIBUTE_NOINLINE void DestroyOrphan(T* object) {
    delete object;
    Unref(1);
  }

  void Unref(size_t n) {
    if (refs_.fetch_sub(n, std::memory_order_acq_rel) == n) delete this;
  }

  // Read-mostly fields first, apart from the counters written by slow paths.
  const Factory factory_;
  const ResetHook reset_;
  const size_t max_idle_;
  const uint32_t mag_cap_;  // Magazine capacity, <= kMaxMagazine.
  const uint32_t batch_;    // Objects moved per depot transfer.
  std::atomic<bool> closed_{false};
  std::atomic<Magazine*> mags_[kMaxThreadSlots];

  alignas(64) std::atomic<size_t> refs_{1};
  std::atomic<size_t> budget_;
  std::atomic<uint64_t> hits_{0};  // Served from the depot.
  std::atomic<uint64_t> misses_{0};
  std::atomic<uint64_t> created_{0};
  std::atomic<uint64_t> returned_{0};  // Into the depot by slot-less threads.
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> released_{0};

  Mutex depot_mu_;
  std::vector<T*> depot_ ABSL_GUARDED_BY(depot_mu_);
  std::atomic<size_t> depot_size_{0};
};

}  // namespace objectpool_internal
}  // namespace mill

#endif  // MILL_IO_OBJECTPOOL_INTERNAL_OBJECT_POOL_CORE_H_
