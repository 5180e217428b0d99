#include "net/byte_buffer.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace mill {
namespace {
constexpr size_t kMinAllocation = 512;
}  // namespace

ByteBuffer::ByteBuffer(ByteBuffer&& other) noexcept
    : storage_(std::move(other.storage_)),
      capacity_(std::exchange(other.capacity_, 0)),
      begin_(std::exchange(other.begin_, 0)),
      end_(std::exchange(other.end_, 0)) {}

ByteBuffer& ByteBuffer::operator=(ByteBuffer&& other) noexcept {
  if (this != &other) {
    storage_ = std::move(other.storage_);
    capacity_ = std::exchange(other.capacity_, 0);
    begin_ = std::exchange(other.begin_, 0);
    end_ = std::exchange(other.end_, 0);
  }
  return *this;
}

void swap(ByteBuffer& a, ByteBuffer& b) noexcept {
  using std::swap;
  swap(a.storage_, b.storage_);
  swap(a.capacity_, b.capacity_);
  swap(a.begin_, b.begin_);
  swap(a.end_, b.end_);
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
  if (capacity_ - end_ < min_bytes || storage_ == nullptr) {
    Reserve(std::max<size_t>(min_bytes, 1));
  }
  return absl::Span<char>(storage_.get() + end_, capacity_ - end_);
}

void ByteBuffer::Commit(size_t n) { end_ = std::min(end_ + n, capacity_); }

void ByteBuffer::Reserve(size_t min_free) {
  const size_t used = size();
  if (storage_ != nullptr && capacity_ - used >= min_free &&
      used <= capacity_ / 2) {
    // Enough room once the consumed front is reclaimed, and moving at most
    // half the capacity keeps compaction amortized O(1) per byte.
    std::memmove(storage_.get(), data(), used);
    begin_ = 0;
    end_ = used;
    return;
  }
  const size_t wanted = used + min_free;
  size_t capacity = std::max(kMinAllocation, capacity_ * 2);
  while (capacity < wanted) capacity *= 2;
  std::unique_ptr<char[]> grown(new char[capacity]);
  if (used > 0) std::memcpy(grown.get(), data(), used);
  storage_ = std::move(grown);
  capacity_ = capacity;
  begin_ = 0;
  end_ = used;
}

void ByteBuffer::Shrink(size_t keep_bytes) {
  if (capacity_ <= keep_bytes) return;
  const size_t used = size();
  if (used == 0) {
    storage_.reset();
    capacity_ = begin_ = end_ = 0;
    return;
  }
  if (used > keep_bytes && used * 2 > capacity_) return;  // mostly full
  const size_t capacity = std::max(used, keep_bytes);
  std::unique_ptr<char[]> smaller(new char[capacity]);
  std::memcpy(smaller.get(), data(), used);
  storage_ = std::move(smaller);
  capacity_ = capacity;
  begin_ = 0;
  end_ = used;
}

}  // namespace mill
