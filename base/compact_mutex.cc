#include "base/compact_mutex.h"

#ifdef MILL_IO_COMPACT_MUTEX_FUTEX
#include "base/internal/futex.h"

namespace mill {
namespace {

// A short spin first: the lock is usually held for a few instructions (a
// queue update), so sleeping at once would cost two system calls.
constexpr int kSpins = 64;

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace

void CompactMutex::LockSlow(uint32_t seen) {
  for (int i = 0; i < kSpins && seen == 1; ++i) {
    CpuRelax();
    seen = state_.load(std::memory_order_relaxed);
    if (seen == 0 &&
        state_.compare_exchange_weak(seen, 1, std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
      return;
    }
  }
  // Announce a waiter (2), then sleep while it stays locked. Taking it with
  // 2 may cause one needless wake-up later; it never loses one.
  if (seen != 2) seen = state_.exchange(2, std::memory_order_acquire);
  while (seen != 0) {
    base_internal::FutexWait(&state_, 2);
    seen = state_.exchange(2, std::memory_order_acquire);
  }
}

void CompactMutex::Wake() { base_internal::FutexWakeOne(&state_); }

}  // namespace mill
#endif  // MILL_IO_COMPACT_MUTEX_FUTEX
