#include "base/compact_mutex.h"

#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

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
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&state_), FUTEX_WAIT_PRIVATE,
            2, nullptr, nullptr, 0);
    seen = state_.exchange(2, std::memory_order_acquire);
  }
}

void CompactMutex::Wake() {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&state_), FUTEX_WAKE_PRIVATE,
          1, nullptr, nullptr, 0);
}

}  // namespace mill
#endif  // __linux__
