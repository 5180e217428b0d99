// BufferPool: recycled fixed-capacity byte buffers for I/O.
//
// For code that moves bytes in blocks of one size and would otherwise
// allocate and free a block per read: Acquire() a Buffer, read into its
// spare capacity, hand it on, and let the handle go back to the pool when
// done, so a steady stream of reads reuses a few warm blocks. Each EventLoop
// owns one (EventLoop::buffer_pool()) for the code running on it. Built on
// ObjectPool<Buffer>, so the same rules apply (see objectpool/object_pool.h):
//
// Thread-safety: BufferPool is thread-safe; acquiring and returning on the
// same thread takes no lock. A Buffer is a plain value-like object
// (thread-compatible): one holder at a time.
//
// Ownership: the pool owns idle buffers; a Handle owns its buffer until it is
// destroyed (back to the pool; it is handed out again emptied, size() == 0,
// contents unspecified) or Release()d (the caller owns it for good). Handles
// may outlive the pool; the buffer stays valid and is freed when the handle
// goes.
#ifndef MILL_IO_OBJECTPOOL_BUFFER_POOL_H_
#define MILL_IO_OBJECTPOOL_BUFFER_POOL_H_

#include <cstddef>
#include <memory>

#include "absl/base/optimization.h"
#include "absl/types/span.h"
#include "objectpool/object_pool.h"

namespace mill {

// A byte buffer with a capacity fixed at construction and a size in
// [0, capacity()]. Bytes [0, size()) are the contents; [size(), capacity())
// is spare room to fill (e.g. read(2) into spare(), then resize()).
// New storage is not zeroed.
//
//   ssize_t n = read(fd, buf->spare().data(), buf->spare().size());
//   if (n > 0) buf->resize(buf->size() + n);
class Buffer {
 public:
  explicit Buffer(size_t capacity);

  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  char* data() { return data_.get(); }
  const char* data() const { return data_.get(); }
  size_t capacity() const { return capacity_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // Sets the size. Requires n <= capacity() (checked; aborts otherwise).
  // Bytes newly inside [0, n) keep whatever they held.
  void resize(size_t n) {
    if (ABSL_PREDICT_FALSE(n > capacity_)) ResizeBeyondCapacity(n);
    size_ = n;
  }
  void clear() { size_ = 0; }

  // The contents, [0, size()).
  absl::Span<char> span() { return absl::Span<char>(data_.get(), size_); }
  absl::Span<const char> span() const {
    return absl::Span<const char>(data_.get(), size_);
  }
  // The spare room, [size(), capacity()).
  absl::Span<char> spare() {
    return absl::Span<char>(data_.get() + size_, capacity_ - size_);
  }

 private:
  [[noreturn]] void ResizeBeyondCapacity(size_t n) const;

  std::unique_ptr<char[]> data_;
  size_t capacity_;
  size_t size_ = 0;
};

struct BufferPoolOptions {
  size_t buffer_size = size_t{8} * 1024;  // capacity() of every buffer.
  size_t max_idle = 128;                  // As ObjectPoolOptions::max_idle.
};

// A pool of Buffers of one capacity. Acquire() returns an empty buffer
// (size() == 0, capacity() == buffer_size()).
//
//   BufferPool pool;  // 8 KiB buffers
//   BufferPool::Handle buf = pool.Acquire();
//   buf->resize(Fill(buf->spare()));
class BufferPool {
 public:
  using Handle = ObjectPool<Buffer>::Handle;
  using Options = BufferPoolOptions;
  using Stats = ObjectPoolStats;

  explicit BufferPool(Options options = Options());

  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // Never empty: allocation failure throws std::bad_alloc as `new` does.
  // Recycled buffers are emptied here rather than by a reset hook on return:
  // same result for the caller, without an indirect call per return.
  Handle Acquire() {
    Handle buffer = pool_.Acquire();
    buffer->clear();
    return buffer;
  }

  // Allocates up to `n` buffers up front (bounded by max_idle).
  size_t Prefill(size_t n) { return pool_.Prefill(n); }

  Stats GetStats() const { return pool_.GetStats(); }

  size_t buffer_size() const { return buffer_size_; }
  size_t max_idle() const { return pool_.max_idle(); }

 private:
  const size_t buffer_size_;
  ObjectPool<Buffer> pool_;
};

}  // namespace mill

#endif  // MILL_IO_OBJECTPOOL_BUFFER_POOL_H_
