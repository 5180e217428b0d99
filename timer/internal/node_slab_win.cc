#include <windows.h>

#include <cstddef>
#include <cstdint>
#include <new>

#include "timer/internal/node_slab.h"

// VirtualAlloc'd chunks: committed pages are zero-filled on first touch, so
// an untouched page costs commit charge but no memory. Large pages need the
// SeLockMemoryPrivilege and cannot be paged; `huge_pages` is ignored.

namespace mill {
namespace timer_internal {

void* MapChunk(size_t bytes, bool huge_pages) {
  (void)huge_pages;
  // VirtualAlloc aligns to 64 KiB only. Reserve one huge page more to find
  // an aligned address, release, and allocate exactly there; another thread
  // may take the range in between, so retry a few times.
  for (int attempt = 0; attempt < 16; ++attempt) {
    void* probe = VirtualAlloc(nullptr, bytes + kHugePageBytes, MEM_RESERVE,
                               PAGE_NOACCESS);
    if (probe == nullptr) throw std::bad_alloc();
    const uintptr_t start = reinterpret_cast<uintptr_t>(probe);
    const uintptr_t aligned =
        (start + kHugePageBytes - 1) & ~uintptr_t{kHugePageBytes - 1};
    VirtualFree(probe, 0, MEM_RELEASE);
    void* chunk = VirtualAlloc(reinterpret_cast<void*>(aligned), bytes,
                               MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
    if (chunk != nullptr) return chunk;
  }
  throw std::bad_alloc();
}

void UnmapChunk(void* chunk, size_t bytes) {
  (void)bytes;
  VirtualFree(chunk, 0, MEM_RELEASE);
}

}  // namespace timer_internal
}  // namespace mill
