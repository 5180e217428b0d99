#include "timer/internal/node_slab.h"

#include <cstddef>

#include "absl/base/config.h"

#ifdef ABSL_HAVE_ADDRESS_SANITIZER
#include <sanitizer/asan_interface.h>
#endif

namespace mill {
namespace timer_internal {

#ifdef ABSL_HAVE_ADDRESS_SANITIZER
void PoisonMemory(const void* address, size_t bytes) {
  ASAN_POISON_MEMORY_REGION(address, bytes);
}

void UnpoisonMemory(const void* address, size_t bytes) {
  ASAN_UNPOISON_MEMORY_REGION(address, bytes);
}
#endif

}  // namespace timer_internal
}  // namespace mill
