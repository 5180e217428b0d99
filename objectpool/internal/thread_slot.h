// Dense per-thread slot numbers for the object pool's per-thread caches.
//
// Each live thread that uses a pool gets a small integer in [0,
// kMaxThreadSlots) on first use; the number returns to a free list when the
// thread exits and is handed to the next new thread. At any moment a slot
// belongs to at most one live thread, and the registry's mutex orders the
// previous owner's last use before the next owner's first use, so per-slot
// state indexed by it can be touched by its owner without atomic
// read-modify-writes. Threads beyond kMaxThreadSlots (and threads in their
// thread-exit phase) get -1 and take the pool's shared, locked path.
//
// The registry is platform-neutral (thread_slot.cc); how a thread's slot goes
// back when it exits is not: a thread_local destructor on POSIX
// (thread_slot_posix.cc), a fiber-local storage callback on Windows
// (thread_slot_win.cc, which says why).
//
// Internal to //objectpool; not part of the public API.
#ifndef MILL_IO_OBJECTPOOL_INTERNAL_THREAD_SLOT_H_
#define MILL_IO_OBJECTPOOL_INTERNAL_THREAD_SLOT_H_

#include "absl/base/optimization.h"

namespace mill {
namespace objectpool_internal {

inline constexpr int kMaxThreadSlots = 256;

// Values of tls_thread_slot that are not slots.
inline constexpr int kSlotUnassigned = -1;  // Not asked for one yet.
inline constexpr int kNoSlot = -2;          // None left, or thread exiting.

// Constant-initialized so that reading it needs no TLS-init wrapper call.
inline thread_local int tls_thread_slot = kSlotUnassigned;

// Slow path of CurrentThreadSlot(): takes a slot from the registry and
// arranges for it to be returned at thread exit. Returns -1 if none is free.
int AssignThreadSlot();

// The calling thread's slot, or -1 if it has none.
inline int CurrentThreadSlot() {
  int slot = tls_thread_slot;
  if (ABSL_PREDICT_TRUE(slot >= 0)) return slot;
  if (slot == kSlotUnassigned) return AssignThreadSlot();
  return -1;
}

// The registry, for the per-platform files: a free slot (LIFO) or -1, and
// giving one back.
int TakeFreeSlot();
void ReturnSlot(int slot);

// Gives the calling thread's slot back (if any) and makes it slot-less for
// the rest of its life, as if all slots were taken. Lets tests exercise the
// shared path without starting kMaxThreadSlots threads.
void DropThreadSlotForTesting();

}  // namespace objectpool_internal
}  // namespace mill

#endif  // MILL_IO_OBJECTPOOL_INTERNAL_THREAD_SLOT_H_
