// ThreadScratch<T, Tag>(): a per-thread T, created on first use and
// destroyed when the thread exits — what `thread_local T` is for, but safe on
// every platform Mill-IO builds for.
//
// Why not thread_local: mingw-w64 (GCC 12, emulated TLS over winpthreads)
// frees a thread's thread_local storage BEFORE it runs the destructors of the
// objects in it, so the destructor of a thread_local std::vector or
// std::string reads freed memory and frees whatever it finds there
// (base/thread_scratch_test.cc shows it). Here the object lives on the heap
// and the platform's own thread-exit hook deletes it: a pthread key
// destructor on POSIX, a fiber-local storage callback on Windows.
//
// Tag tells apart two scratch objects of the same type (a local struct works:
// `struct OutTag; auto& out = ThreadScratch<std::string, OutTag>();`).
//
// Thread-safety: each thread sees only its own object. Ownership: the thread
// owns it; a reference must not outlive the thread or be handed to another.
// Cost: one out-of-line call (pthread_getspecific / FlsGetValue) per use.
#ifndef MILL_IO_BASE_THREAD_SCRATCH_H_
#define MILL_IO_BASE_THREAD_SCRATCH_H_

#include <cstdint>

namespace mill {
namespace base_internal {

// A native per-thread pointer whose `destroy` runs at thread exit with the
// thread's non-null value. Never freed (threads may exit after static
// destructors ran). Defined in thread_scratch_posix.cc / _win.cc.
class ThreadExitSlot {
 public:
  explicit ThreadExitSlot(void (*destroy)(void*));
  void* Get() const;
  void Set(void* value) const;

 private:
  uintptr_t key_;
};

}  // namespace base_internal

template <typename T, typename Tag = void>
T& ThreadScratch() {
  static const base_internal::ThreadExitSlot* const slot =
      new base_internal::ThreadExitSlot(
          [](void* object) { delete static_cast<T*>(object); });
  void* object = slot->Get();
  if (object == nullptr) {
    object = new T();
    slot->Set(object);
  }
  return *static_cast<T*>(object);
}

}  // namespace mill

#endif  // MILL_IO_BASE_THREAD_SCRATCH_H_
