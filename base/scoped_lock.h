// ScopedLock<M>: holds an exclusive lock of type M (anything with Lock() and
// Unlock() carrying thread-safety attributes: mill::Mutex,
// mill::CompactMutex) for its scope, visible to Clang's analysis.
// Unlock() / Lock() release and retake it within the scope; the destructor
// unlocks only if held. Use the names MutexLock and CompactMutexLock.
//
// Thread-safety: a lock object belongs to one thread. Ownership: borrows
// the mutex, which must outlive it.
#ifndef MILL_IO_BASE_SCOPED_LOCK_H_
#define MILL_IO_BASE_SCOPED_LOCK_H_

#include "absl/base/thread_annotations.h"

namespace mill {

template <typename M>
class ABSL_SCOPED_LOCKABLE ScopedLock {
 public:
  explicit ScopedLock(M* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->Lock();
  }
  ScopedLock(const ScopedLock&) = delete;
  ScopedLock& operator=(const ScopedLock&) = delete;
  ~ScopedLock() ABSL_UNLOCK_FUNCTION() {
    if (held_) mu_->Unlock();
  }

  void Unlock() ABSL_UNLOCK_FUNCTION() {
    held_ = false;
    mu_->Unlock();
  }
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() {
    mu_->Lock();
    held_ = true;
  }

 private:
  M* const mu_;
  bool held_ = true;
};

}  // namespace mill

#endif  // MILL_IO_BASE_SCOPED_LOCK_H_
