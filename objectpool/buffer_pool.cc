#include "objectpool/buffer_pool.h"

#include <cstdio>
#include <cstdlib>

namespace mill {

Buffer::Buffer(size_t capacity)
    : data_(new char[capacity]), capacity_(capacity) {}

void Buffer::ResizeBeyondCapacity(size_t n) const {
  std::fprintf(stderr, "mill::Buffer::resize(%zu) beyond capacity %zu\n", n,
               capacity_);
  std::abort();
}

BufferPool::BufferPool(Options options)
    : buffer_size_(options.buffer_size),
      pool_(
          [size = options.buffer_size] {
            return std::make_unique<Buffer>(size);
          },
          ObjectPoolOptions{options.max_idle}) {}

}  // namespace mill
