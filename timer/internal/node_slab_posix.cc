#include <cstddef>
#include <cstdint>
#include <new>

#include "timer/internal/node_slab.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace mill {
namespace timer_internal {

void* MapChunk(size_t bytes, bool huge_pages) {
#if defined(__linux__)
  // Over-map by one huge page and trim both ends to the aligned range.
  const size_t span = bytes + kHugePageBytes;
  void* raw = mmap(nullptr, span, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned =
      (start + kHugePageBytes - 1) & ~uintptr_t{kHugePageBytes - 1};
  if (aligned != start) munmap(raw, aligned - start);
  const uintptr_t tail = aligned + bytes;
  if (tail != start + span) {
    munmap(reinterpret_cast<void*>(tail), start + span - tail);
  }
#if defined(MADV_HUGEPAGE)
  // Best effort: without it (THP disabled) the chunk uses normal pages.
  if (huge_pages) {
    (void)madvise(reinterpret_cast<void*>(aligned), bytes, MADV_HUGEPAGE);
  }
#endif
  return reinterpret_cast<void*>(aligned);
#else
  (void)huge_pages;
  return ::operator new(bytes, std::align_val_t(kHugePageBytes));
#endif
}

void UnmapChunk(void* chunk, size_t bytes) {
#if defined(__linux__)
  munmap(chunk, bytes);
#else
  ::operator delete(chunk, bytes, std::align_val_t(kHugePageBytes));
#endif
}

}  // namespace timer_internal
}  // namespace mill
