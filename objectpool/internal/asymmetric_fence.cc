#include "objectpool/internal/asymmetric_fence.h"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <mutex>

namespace mill {
namespace objectpool_internal {

std::atomic<bool> g_membarrier_ready{false};
#if defined(ABSL_HAVE_THREAD_SANITIZER)
std::atomic<int> g_fence_word{0};
#endif

namespace {

long Membarrier(int cmd) { return syscall(__NR_membarrier, cmd, 0, 0); }

}  // namespace

void InitAsymmetricFence() {
  static std::once_flag once;
  std::call_once(once, [] {
    long supported = Membarrier(MEMBARRIER_CMD_QUERY);
    if (supported < 0 || (supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0 ||
        Membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) != 0) {
      return;  // Keep the symmetric fallback.
    }
    g_membarrier_ready.store(true, std::memory_order_relaxed);
  });
}

void HeavyFence() {
  // Orders this thread's own accesses (and stops the compiler moving them).
  SymmetricFence();
  if (g_membarrier_ready.load(std::memory_order_relaxed)) {
    // Cannot fail once registered; every other running thread has executed
    // a full barrier when it returns.
    Membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
    SymmetricFence();
  }
}

}  // namespace objectpool_internal
}  // namespace mill
