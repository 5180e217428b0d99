// CompactMutex: a 4-byte exclusive lock for objects there are very many of
// (one per connection), where std::mutex's 40 bytes would be a tenth of an
// idle connection's memory. Same thread-safety annotations as mill::Mutex.
//
// On Linux and Windows it is the classic three-state futex lock (0 free, 1
// locked, 2 locked with waiters; Drepper, "Futexes Are Tricky"): an
// uncontended Lock/Unlock is one atomic each, a contended Lock spins briefly
// and then sleeps in the kernel (futex(2) on Linux, WaitOnAddress on
// Windows: base/internal/futex.h). Under ThreadSanitizer its acquire/release
// atomics give TSan the happens-before edges, and the __tsan_mutex_*
// annotations make TSan treat it as a mutex (lock-order checks, readable
// reports). Elsewhere it is a std::mutex.
//
// Not recursive. No condition variable: use mill::Mutex where one waits.
//
// Thread-safety: it is the synchronisation. Ownership: none.
#ifndef MILL_IO_BASE_COMPACT_MUTEX_H_
#define MILL_IO_BASE_COMPACT_MUTEX_H_

#include <atomic>
#include <cstdint>
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "base/scoped_lock.h"

#if defined(__SANITIZE_THREAD__)
#define MILL_IO_TSAN_MUTEX 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MILL_IO_TSAN_MUTEX 1
#endif
#endif
#ifdef MILL_IO_TSAN_MUTEX
#include <sanitizer/tsan_interface.h>
#endif

#if defined(__linux__) || defined(_WIN32)
#define MILL_IO_COMPACT_MUTEX_FUTEX 1
#endif

namespace mill {

class ABSL_LOCKABLE CompactMutex {
 public:
  CompactMutex() = default;
  CompactMutex(const CompactMutex&) = delete;
  CompactMutex& operator=(const CompactMutex&) = delete;

#ifdef MILL_IO_COMPACT_MUTEX_FUTEX
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() {
#ifdef MILL_IO_TSAN_MUTEX
    __tsan_mutex_pre_lock(this, __tsan_mutex_not_static);
#endif
    uint32_t expected = 0;
    if (!state_.compare_exchange_strong(expected, 1, std::memory_order_acquire,
                                        std::memory_order_relaxed)) {
      LockSlow(expected);
    }
#ifdef MILL_IO_TSAN_MUTEX
    __tsan_mutex_post_lock(this, __tsan_mutex_not_static, 0);
#endif
  }
  void Unlock() ABSL_UNLOCK_FUNCTION() {
#ifdef MILL_IO_TSAN_MUTEX
    __tsan_mutex_pre_unlock(this, __tsan_mutex_not_static);
#endif
    if (state_.exchange(0, std::memory_order_release) == 2) Wake();
#ifdef MILL_IO_TSAN_MUTEX
    __tsan_mutex_post_unlock(this, __tsan_mutex_not_static);
#endif
  }

 private:
  void LockSlow(uint32_t seen);
  void Wake();

  std::atomic<uint32_t> state_{0};
#else
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }

 private:
  std::mutex mu_;
#endif
};

// Holds a CompactMutex for its scope (see base/scoped_lock.h).
using CompactMutexLock = ScopedLock<CompactMutex>;

}  // namespace mill

#endif  // MILL_IO_BASE_COMPACT_MUTEX_H_
