// SmallQueue: a FIFO on a std::vector that holds no memory while empty.
// Internal: not part of the API.
//
// std::deque would do, but libstdc++'s allocates about 600 bytes as soon as
// it is constructed, and every connection has two queues that are empty
// nearly all the time. Pops advance a head index; the storage is released
// when the queue drains, so an empty queue is one null pointer.
//
// Thread-safety: thread-compatible.
#ifndef MILL_IO_NET_INTERNAL_SMALL_QUEUE_H_
#define MILL_IO_NET_INTERNAL_SMALL_QUEUE_H_

#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

namespace mill {
namespace net_internal {

template <typename T>
class SmallQueue {
 public:
  bool empty() const { return impl_ == nullptr; }
  size_t size() const {
    return impl_ == nullptr ? 0 : impl_->items.size() - impl_->head;
  }
  T& front() { return impl_->items[impl_->head]; }
  T& back() { return impl_->items.back(); }
  T* begin() {
    return impl_ == nullptr ? nullptr : impl_->items.data() + impl_->head;
  }
  T* end() {
    return impl_ == nullptr ? nullptr
                            : impl_->items.data() + impl_->items.size();
  }

  void push_back(T item) {
    if (impl_ == nullptr) impl_ = std::make_unique<Impl>();
    impl_->items.push_back(std::move(item));
  }
  void pop_front() {
    impl_->items[impl_->head] = T();  // release what the item holds now
    if (++impl_->head == impl_->items.size()) impl_.reset();
  }
  void clear() { impl_.reset(); }
  void swap(SmallQueue& other) { impl_.swap(other.impl_); }

 private:
  struct Impl {
    std::vector<T> items;
    size_t head = 0;  // first live item
  };
  // Null while empty: an idle queue is one pointer.
  std::unique_ptr<Impl> impl_;
};

}  // namespace net_internal
}  // namespace mill

#endif  // MILL_IO_NET_INTERNAL_SMALL_QUEUE_H_
