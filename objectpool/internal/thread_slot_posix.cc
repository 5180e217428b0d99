#include "objectpool/internal/thread_slot.h"

namespace mill {
namespace objectpool_internal {
namespace {

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
  const int slot = TakeFreeSlot();
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
