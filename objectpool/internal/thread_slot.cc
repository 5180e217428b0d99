#include "objectpool/internal/thread_slot.h"

#include <vector>

#include "absl/base/thread_annotations.h"
#include "base/mutex.h"

namespace mill {
namespace objectpool_internal {
namespace {

struct SlotRegistry {
  Mutex mu;
  // LIFO: reuse recently warmed caches first.
  std::vector<int> free_slots ABSL_GUARDED_BY(mu);
  int next ABSL_GUARDED_BY(mu) = 0;
};

// Never destroyed: threads may exit after static destructors have run.
SlotRegistry& Registry() {
  static SlotRegistry* registry = new SlotRegistry;
  return *registry;
}

}  // namespace

int TakeFreeSlot() {
  SlotRegistry& registry = Registry();
  MutexLock lock(&registry.mu);
  if (!registry.free_slots.empty()) {
    const int slot = registry.free_slots.back();
    registry.free_slots.pop_back();
    return slot;
  }
  if (registry.next < kMaxThreadSlots) return registry.next++;
  return -1;
}

void ReturnSlot(int slot) {
  SlotRegistry& registry = Registry();
  MutexLock lock(&registry.mu);
  registry.free_slots.push_back(slot);
}

}  // namespace objectpool_internal
}  // namespace mill
