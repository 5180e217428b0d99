#include <pthread.h>

#include <cstdlib>

#include "base/thread_scratch.h"

namespace mill {
namespace base_internal {

ThreadExitSlot::ThreadExitSlot(void (*destroy)(void*)) {
  pthread_key_t key;
  // Out of keys (PTHREAD_KEYS_MAX, at least 128) is a build with far more
  // scratch types than Mill-IO has: nothing sensible to fall back to.
  if (pthread_key_create(&key, destroy) != 0) std::abort();
  key_ = static_cast<uintptr_t>(key);
}

void* ThreadExitSlot::Get() const {
  return pthread_getspecific(static_cast<pthread_key_t>(key_));
}

void ThreadExitSlot::Set(void* value) const {
  if (pthread_setspecific(static_cast<pthread_key_t>(key_), value) != 0) {
    std::abort();
  }
}

}  // namespace base_internal
}  // namespace mill
