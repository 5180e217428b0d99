// Asymmetric memory fences: a near-free fence for a hot path and an expensive
// one for a rare path that together order a store before a later load, as a
// pair of seq_cst fences would.
//
// The object pool uses them so a thread can park an object in its own cache
// without a locked instruction while the pool's destructor, which runs once,
// still reliably sees every object being parked. LightFence() is a compiler
// barrier; HeavyFence() makes every running thread of the process execute a
// full memory barrier: membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) on Linux
// (asymmetric_fence_linux.cc), FlushProcessWriteBuffers on Windows
// (asymmetric_fence_win.cc). Where that is unavailable (old kernel, seccomp;
// Wine, whose FlushProcessWriteBuffers does nothing), both fall back to
// std::atomic_thread_fence(seq_cst) (SymmetricFence).
//
// Internal to //objectpool; not part of the public API. Thread-safe.
#ifndef MILL_IO_OBJECTPOOL_INTERNAL_ASYMMETRIC_FENCE_H_
#define MILL_IO_OBJECTPOOL_INTERNAL_ASYMMETRIC_FENCE_H_

#include <atomic>

#include "absl/base/config.h"
#include "absl/base/optimization.h"

namespace mill {
namespace objectpool_internal {

// True once the process-wide barrier is usable (membarrier registration
// succeeded, on Linux). Written before any pool that
// relies on it exists (see InitAsymmetricFence); read on every LightFence().
extern std::atomic<bool> g_membarrier_ready;

// Registers the process for expedited membarrier once. Idempotent and
// thread-safe; call before the first LightFence() that must pair with a
// HeavyFence() (the pool calls it in its constructor).
void InitAsymmetricFence();

#if defined(ABSL_HAVE_THREAD_SANITIZER)
// TSan does not model standalone fences. A seq_cst read-modify-write of one
// shared word orders the two sides just the same, and TSan understands it.
extern std::atomic<int> g_fence_word;
inline void SymmetricFence() {
  g_fence_word.fetch_add(0, std::memory_order_seq_cst);
}
#else
inline void SymmetricFence() {
  std::atomic_thread_fence(std::memory_order_seq_cst);
}
#endif

inline void LightFence() {
  if (ABSL_PREDICT_TRUE(g_membarrier_ready.load(std::memory_order_relaxed))) {
    std::atomic_signal_fence(std::memory_order_seq_cst);
  } else {
    SymmetricFence();
  }
}

void HeavyFence();

// Per platform: makes the process-wide barrier usable, false if it is not
// (called once), and the barrier itself: when it returns, every other
// running thread of the process has executed a full memory barrier.
bool RegisterProcessBarrier();
void ProcessBarrier();

}  // namespace objectpool_internal
}  // namespace mill

#endif  // MILL_IO_OBJECTPOOL_INTERNAL_ASYMMETRIC_FENCE_H_
