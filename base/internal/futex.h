// Wait on and wake one 32-bit word, the primitive under CompactMutex:
// futex(2) on Linux (futex_linux.cc), WaitOnAddress/WakeByAddressSingle on
// Windows (futex_win.cc). Internal to //base.
//
// FutexWait returns when *word may no longer hold `expected` (it may also
// return spuriously); FutexWakeOne wakes at most one waiter on `word`.
// Both are for threads of this process only.
#ifndef MILL_IO_BASE_INTERNAL_FUTEX_H_
#define MILL_IO_BASE_INTERNAL_FUTEX_H_

#include <atomic>
#include <cstdint>

namespace mill {
namespace base_internal {

void FutexWait(std::atomic<uint32_t>* word, uint32_t expected);
void FutexWakeOne(std::atomic<uint32_t>* word);

}  // namespace base_internal
}  // namespace mill

#endif  // MILL_IO_BASE_INTERNAL_FUTEX_H_
