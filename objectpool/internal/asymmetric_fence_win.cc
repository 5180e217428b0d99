#include <windows.h>

#include "objectpool/internal/asymmetric_fence.h"

namespace mill {
namespace objectpool_internal {

// FlushProcessWriteBuffers interrupts every processor running a thread of
// this process (an IPI), which executes a full barrier: the same guarantee
// as membarrier's, and what the .NET runtime's asymmetric barrier relies on.
//
// Wine implements it as a stub that does nothing (NtFlushProcessWriteBuffers
// in Wine 8.0 only prints "fixme: stub"), so under Wine the symmetric fences
// stay: correctness does not depend on which Wine runs us.
bool RegisterProcessBarrier() {
  HMODULE ntdll = GetModuleHandleA("ntdll.dll");
  const bool wine =
      ntdll != nullptr && GetProcAddress(ntdll, "wine_get_version") != nullptr;
  return !wine;
}

void ProcessBarrier() { FlushProcessWriteBuffers(); }

}  // namespace objectpool_internal
}  // namespace mill
