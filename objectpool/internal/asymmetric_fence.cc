#include "objectpool/internal/asymmetric_fence.h"

#include <mutex>

namespace mill {
namespace objectpool_internal {

std::atomic<bool> g_membarrier_ready{false};
#if defined(ABSL_HAVE_THREAD_SANITIZER)
std::atomic<int> g_fence_word{0};
#endif

void InitAsymmetricFence() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (!RegisterProcessBarrier()) return;  // Keep the symmetric fallback.
    g_membarrier_ready.store(true, std::memory_order_relaxed);
  });
}

void HeavyFence() {
  // Orders this thread's own accesses (and stops the compiler moving them).
  SymmetricFence();
  if (g_membarrier_ready.load(std::memory_order_relaxed)) {
    // Cannot fail once registered; every other running thread has executed
    // a full barrier when it returns.
    ProcessBarrier();
    SymmetricFence();
  }
}

}  // namespace objectpool_internal
}  // namespace mill
