#include <windows.h>

#include <cstdlib>

#include "base/thread_scratch.h"

// Fiber-local storage: its callback runs on the exiting thread with the
// stored value, before the C runtime and emulated TLS are torn down.
// Mill-IO never converts threads to fibers, so "fiber" here is the thread.

namespace mill {
namespace base_internal {

ThreadExitSlot::ThreadExitSlot(void (*destroy)(void*)) {
  const DWORD index = FlsAlloc(reinterpret_cast<PFLS_CALLBACK_FUNCTION>(
      reinterpret_cast<void*>(destroy)));
  if (index == FLS_OUT_OF_INDEXES) std::abort();
  key_ = index;
}

void* ThreadExitSlot::Get() const {
  return FlsGetValue(static_cast<DWORD>(key_));
}

void ThreadExitSlot::Set(void* value) const {
  if (!FlsSetValue(static_cast<DWORD>(key_), value)) std::abort();
}

}  // namespace base_internal
}  // namespace mill
