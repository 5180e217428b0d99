#include <windows.h>

#include "base/internal/futex.h"

// WaitOnAddress and WakeByAddressSingle (Windows 8+, synchronization.lib):
// the same compare-and-sleep contract as FUTEX_WAIT/FUTEX_WAKE, for threads
// of one process.

namespace mill {
namespace base_internal {

static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t),
              "WaitOnAddress compares the word's own bytes");

void FutexWait(std::atomic<uint32_t>* word, uint32_t expected) {
  WaitOnAddress(reinterpret_cast<volatile VOID*>(word), &expected,
                sizeof(expected), INFINITE);
}

void FutexWakeOne(std::atomic<uint32_t>* word) {
  WakeByAddressSingle(reinterpret_cast<PVOID>(word));
}

}  // namespace base_internal
}  // namespace mill
