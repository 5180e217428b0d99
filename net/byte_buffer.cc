#include "net/byte_buffer.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace mill {
namespace {
constexpr size_t kMinAllocation = 512;
}  // namespace

ByteBuffer::ByteBuffer(ByteBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      capacity_(std::exchange(other.capacity_, 0)),
      begin_(std::exchange(other.begin_, 0)),
      end_(std::exchange(other.end_, 0)),
      block_(std::move(other.block_)) {}

ByteBuffer& ByteBuffer::operator=(ByteBuffer&& other) noexcept {
  if (this != &other) {
    ReleaseStorage();
    data_ = std::exchange(other.data_, nullptr);
    capacity_ = std::exchange(other.capacity_, 0);
    begin_ = std::exchange(other.begin_, 0);
    end_ = std::exchange(other.end_, 0);
    block_ = std::move(other.block_);
  }
  return *this;
}

void swap(ByteBuffer& a, ByteBuffer& b) noexcept {
  using std::swap;
  swap(a.data_, b.data_);
  swap(a.capacity_, b.capacity_);
  swap(a.begin_, b.begin_);
  swap(a.end_, b.end_);
  swap(a.block_, b.block_);
}

void ByteBuffer::Consume(size_t n) {
  if (n >= size()) {
    begin_ = end_ = 0;  // empty: the next append starts at the front
    return;
  }
  begin_ += n;
}

std::string ByteBuffer::Take(size_t n) {
  n = std::min(n, size());
  std::string out(data(), n);
  Consume(n);
  return out;
}

void ByteBuffer::Append(absl::string_view bytes) {
  if (bytes.empty()) return;
  absl::Span<char> room = PrepareAppend(bytes.size());
  std::memcpy(room.data(), bytes.data(), bytes.size());
  Commit(bytes.size());
}

absl::Span<char> ByteBuffer::PrepareAppend(size_t min_bytes) {
  if (capacity_ - end_ < min_bytes || data_ == nullptr) {
    Reserve(std::max<size_t>(min_bytes, 1));
  }
  return AppendSpace();
}

void ByteBuffer::Commit(size_t n) { end_ = std::min(end_ + n, capacity_); }

void ByteBuffer::AdoptBlock(BufferPool::Handle block) {
  if (data_ != nullptr || !block || block->capacity() == 0) return;
  data_ = block->data();
  capacity_ = block->capacity();
  begin_ = end_ = 0;
  block_ = std::move(block);
}

void ByteBuffer::Reserve(size_t min_free) {
  const size_t used = size();
  if (data_ != nullptr && capacity_ - used >= min_free &&
      used <= capacity_ / 2) {
    // Enough room once the consumed front is reclaimed, and moving at most
    // half the capacity keeps compaction amortized O(1) per byte.
    std::memmove(data_, data(), used);
    begin_ = 0;
    end_ = used;
    return;
  }
  const size_t wanted = used + min_free;
  size_t capacity = std::max(kMinAllocation, capacity_ * 2);
  while (capacity < wanted) capacity *= 2;
  MoveToHeap(capacity);
}

void ByteBuffer::MoveToHeap(size_t capacity) {
  const size_t used = size();
  char* grown = new char[capacity];
  if (used > 0) std::memcpy(grown, data(), used);
  ReleaseStorage();
  data_ = grown;
  capacity_ = capacity;
  begin_ = 0;
  end_ = used;
}

void ByteBuffer::ReleaseStorage() {
  if (block_) {
    block_.Reset();  // back to its pool
  } else {
    delete[] data_;
  }
  data_ = nullptr;
  capacity_ = begin_ = end_ = 0;
}

void ByteBuffer::Shrink(size_t keep_bytes) {
  if (capacity_ <= keep_bytes) return;
  const size_t used = size();
  if (used == 0) {
    ReleaseStorage();
    return;
  }
  if (used > keep_bytes && used * 2 > capacity_) return;  // mostly full
  MoveToHeap(std::max(used, keep_bytes));
}

}  // namespace mill
