#include <windows.h>

#include <cstdint>

#include "objectpool/internal/thread_slot.h"

// The thread's slot is owned through native Windows storage, not through a
// thread_local object: mingw-w64 (GCC 12, emulated TLS on winpthreads) frees
// a thread's thread_local storage before it runs their destructors, so a
// SlotReleaser as on POSIX would read freed memory at thread exit and return
// a garbage slot number.
//
// A fiber-local storage index with a callback returns the slot at thread
// exit (FLS callbacks run on the exiting thread, with the stored value). A
// thread-local storage index (TlsAlloc, never freed) records what the thread
// holds: 0 nothing yet, slot + 1, or kExited once the slot went back. The
// emulated tls_thread_slot is only the fast path's cache of it: at thread
// exit it may already be gone (reading it then yields a fresh
// kSlotUnassigned), so AssignThreadSlot() consults the native record before
// taking a new slot.

namespace mill {
namespace objectpool_internal {
namespace {

constexpr uintptr_t kExited = ~uintptr_t{0};

void NTAPI ReturnSlotAtThreadExit(void* value);

struct NativeIndices {
  DWORD fls = FlsAlloc(&ReturnSlotAtThreadExit);
  DWORD tls = TlsAlloc();
};

// Never freed: threads may exit after static destructors have run.
const NativeIndices& Indices() {
  static const NativeIndices* indices = new NativeIndices;
  return *indices;
}

void NTAPI ReturnSlotAtThreadExit(void* value) {
  TlsSetValue(Indices().tls, reinterpret_cast<void*>(kExited));
  const uintptr_t held = reinterpret_cast<uintptr_t>(value);
  if (held == 0 || held == kExited) return;
  ReturnSlot(static_cast<int>(held - 1));
}

uintptr_t Held(const NativeIndices& indices) {
  return reinterpret_cast<uintptr_t>(TlsGetValue(indices.tls));
}

}  // namespace

int AssignThreadSlot() {
  const NativeIndices& indices = Indices();
  if (indices.fls == FLS_OUT_OF_INDEXES || indices.tls == TLS_OUT_OF_INDEXES) {
    tls_thread_slot = kNoSlot;
    return -1;
  }
  const uintptr_t held = Held(indices);
  if (held == kExited) {  // Thread exit: the slot went back already.
    tls_thread_slot = kNoSlot;
    return -1;
  }
  if (held != 0) {  // Still ours; only the emulated cache was lost.
    tls_thread_slot = static_cast<int>(held - 1);
    return tls_thread_slot;
  }
  const int slot = TakeFreeSlot();
  if (slot < 0) {
    tls_thread_slot = kNoSlot;
    return -1;
  }
  void* value = reinterpret_cast<void*>(static_cast<uintptr_t>(slot) + 1);
  TlsSetValue(indices.tls, value);
  if (!FlsSetValue(indices.fls, value)) {
    // No exit callback (the thread is already past FLS cleanup): give the
    // slot back now rather than leak it.
    TlsSetValue(indices.tls, reinterpret_cast<void*>(kExited));
    ReturnSlot(slot);
    tls_thread_slot = kNoSlot;
    return -1;
  }
  tls_thread_slot = slot;
  return slot;
}

void DropThreadSlotForTesting() {
  const NativeIndices& indices = Indices();
  tls_thread_slot = kNoSlot;
  const uintptr_t held = Held(indices);
  TlsSetValue(indices.tls, reinterpret_cast<void*>(kExited));
  if (held != 0 && held != kExited) {
    FlsSetValue(indices.fls, nullptr);
    ReturnSlot(static_cast<int>(held - 1));
  }
}

}  // namespace objectpool_internal
}  // namespace mill
