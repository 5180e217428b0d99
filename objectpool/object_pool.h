// ObjectPool<T>: recycles expensive-to-create objects between users.
//
// A pool is built from a factory that makes new objects and an optional reset
// hook that cleans an object when it comes back. Acquire() hands out an
// object inside a move-only RAII Handle; destroying the handle returns the
// object to the pool, where it waits (idle) for the next Acquire(). At most
// Options::max_idle objects are kept idle; objects returned beyond that are
// destroyed.
//
// Thread-safety: all member functions are thread-safe, and handles may be
// moved to and released on any thread. Each thread keeps a small cache of
// idle objects (up to 16) inside the pool, so acquiring and returning on the
// same thread take no lock and execute no atomic read-modify-write; a shared,
// mutex-protected depot balances objects between threads. A thread does not
// take objects from another thread's cache, so Acquire() can create a new
// object while other threads hold idle ones (bounded by max_idle).
//
// Ownership and lifetime:
//  - The pool owns idle objects; a Handle owns its object until it is
//    destroyed, Reset() or Release()d.
//  - Handles may outlive the pool. Destroying the pool destroys all idle
//    objects (on the destroying thread, including those cached by other
//    threads) but leaves outstanding objects alone: their handles stay valid,
//    and when such a handle is destroyed its object is destroyed instead of
//    recycled (the reset hook is not run). The pool's internals are freed by
//    whichever of the pool and its last outstanding object goes last.
//  - Destroying the pool concurrently with Acquire(), Prefill() or
//    GetStats() on it is a use-after-free, as for any object. Handles being
//    destroyed on other threads while the pool is destroyed is fine.
//  - Objects cached by a thread that exits stay idle (and counted in idle)
//    until a new thread takes over its cache slot or the pool is destroyed.
#ifndef MILL_IO_OBJECTPOOL_OBJECT_POOL_H_
#define MILL_IO_OBJECTPOOL_OBJECT_POOL_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>

#include "objectpool/internal/object_pool_core.h"

namespace mill {

struct ObjectPoolOptions {
  // Upper bound on idle objects, across the shared depot and all per-thread
  // caches. 0 keeps nothing (every returned object is destroyed). A thread's
  // cache may hold part of this budget unused, so objects can be dropped
  // slightly before idle reaches max_idle; idle never exceeds it.
  size_t max_idle = 128;
};

// A snapshot of a pool's counters. Counters are read one by one without
// stopping other threads, so a snapshot taken while others use the pool is
// not atomic across fields; once the pool is quiescent it is exact and
// created == idle + outstanding + dropped + released.
struct ObjectPoolStats {
  uint64_t hits = 0;      // Acquire() calls served with an idle object.
  uint64_t misses = 0;    // Acquire() calls that created an object.
  uint64_t created = 0;   // Objects made by the factory (misses + Prefill).
  uint64_t returned = 0;  // Handles whose object went back to idle.
  uint64_t dropped = 0;   // Returned objects destroyed: idle was full.
  uint64_t released = 0;  // Objects taken out with Handle::Release().
  size_t idle = 0;        // Objects idle right now.
};

// A thread-safe pool of T objects.
//
//   ObjectPool<Parser> pool([] { return std::make_unique<Parser>(); },
//                           [](Parser& p) { p.Clear(); });
//   {
//     ObjectPool<Parser>::Handle parser = pool.Acquire();
//     parser->Feed(data);
//   }  // parser->Clear() runs, then the Parser waits for the next Acquire().
//
// The reset hook runs when an object is returned (on the returning thread,
// before another thread can acquire it), and only if the pool keeps it: not
// for objects that are dropped, Release()d, or returned after the pool was
// destroyed. It never runs after the pool's destructor has returned. The
// factory and the reset hook must not call into the same pool, and the reset
// hook must not throw.
template <typename T>
class ObjectPool {
  using Core = objectpool_internal::ObjectPoolCore<T>;

 public:
  using Factory = std::function<std::unique_ptr<T>()>;
  using ResetHook = std::function<void(T&)>;
  using Options = ObjectPoolOptions;
  using Stats = ObjectPoolStats;

  // Move-only owner of one pooled object; returns it to the pool (or
  // destroys it, see above) when destroyed or Reset(). A default-constructed
  // or moved-from handle is empty.
  class Handle {
   public:
    Handle() noexcept = default;
    Handle(Handle&& other) noexcept
        : core_(std::exchange(other.core_, nullptr)),
          object_(std::exchange(other.object_, nullptr)) {}
    Handle& operator=(Handle&& other) noexcept {
      if (this != &other) {
        Reset();
        core_ = std::exchange(other.core_, nullptr);
        object_ = std::exchange(other.object_, nullptr);
      }
      return *this;
    }
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    ~Handle() { Reset(); }

    T* get() const noexcept { return object_; }
    T& operator*() const noexcept { return *object_; }
    T* operator->() const noexcept { return object_; }
    explicit operator bool() const noexcept { return object_ != nullptr; }

    // Returns the object to the pool now; the handle becomes empty.
    void Reset() noexcept {
      if (object_ != nullptr) {
        std::exchange(core_, nullptr)->Return(std::exchange(object_, nullptr));
      }
    }

    // Takes the object out of the pool for good: the caller owns it and it is
    // never recycled (counted in Stats::released). Empty handle -> nullptr.
    std::unique_ptr<T> Release() noexcept {
      if (object_ == nullptr) return nullptr;
      std::unique_ptr<T> object(std::exchange(object_, nullptr));
      std::exchange(core_, nullptr)->Detach();
      return object;
    }

   private:
    friend class ObjectPool;
    Handle(Core* core, T* object) noexcept : core_(core), object_(object) {}

    Core* core_ = nullptr;
    T* object_ = nullptr;
  };

  // `factory` must be non-null. If it returns nullptr, Acquire() returns an
  // empty handle and Prefill() stops.
  explicit ObjectPool(Factory factory, Options options = Options())
      : ObjectPool(std::move(factory), nullptr, options) {}
  ObjectPool(Factory factory, ResetHook reset, Options options = Options())
      : core_(
            new Core(std::move(factory), std::move(reset), options.max_idle)) {}

  ObjectPool(const ObjectPool&) = delete;
  ObjectPool& operator=(const ObjectPool&) = delete;

  // Destroys all idle objects; outstanding handles stay valid (see top).
  ~ObjectPool() { core_->Close(); }

  // An idle object if this thread's cache or the shared depot has one, else a
  // new one from the factory (empty handle if the factory returns nullptr).
  Handle Acquire() { return Handle(core_, core_->Acquire()); }

  // Creates up to `n` objects and makes them idle, never going past
  // max_idle. Returns how many were created.
  size_t Prefill(size_t n) { return core_->Prefill(n); }

  Stats GetStats() const { return core_->template GetStats<Stats>(); }

  size_t max_idle() const { return core_->max_idle(); }

 private:
  // Reference-counted: outstanding handles keep it alive after the pool.
  Core* const core_;
};

}  // namespace mill

#endif  // MILL_IO_OBJECTPOOL_OBJECT_POOL_H_
