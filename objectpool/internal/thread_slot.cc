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

void ReturnSlot(int slot) {
  SlotRegistry& registry = Registry();
  MutexLock lock(&registry.mu);
  registry.free_slots.push_back(slot);
}

// Returns the thread's slot when the thread exits. Handles released by later
// thread_local destructors then see kNoSlot and use the shared path.
struct SlotReleaser {
  int slot = -1;
  ~SlotReleaser() {
    tls_thread_slot = kNoSlot;
    if (slot >= 0) ReturnSlot(slot);
  }
};

thread_local SlotReleaser tls_releaser;

}  // namespace

int AssignThreadSlot() {
  int slot = -1;
  {
    SlotRegistry& registry = Registry();
    MutexLock lock(&registry.mu);
    if (!registry.free_slots.empty()) {
      slot = registry.free_slots.back();
      registry.free_slots.pop_back();
    } else if (registry.next < kMaxThreadSlots) {
      slot = registry.next++;
    }
  }
  if (slot < 0) {
    tls_thread_slot = kNoSlot;
    return -1;
  }
  tls_releaser.slot = slot;  // First odr-use registers its destructor.
  tls_thread_slot = slot;
  return slot;
}

void DropThreadSlotForTesting() {
  int slot = tls_thread_slot;
  tls_thread_slot = kNoSlot;
  if (slot >= 0) {
    tls_releaser.slot = -1;
    ReturnSlot(slot);
  }
}

}  // namespace objectpool_internal
}  // namespace mill
