// ByteBuffer: a growable queue of bytes, appended at the back and consumed
// from the front. It is a Connection's input buffer: received bytes stay in
// it until the protocol code consumes them, so a parser looks at
// view(), finds a complete message, handles it, Consume()s exactly its
// bytes and leaves a partial message for the next call (muduo's Buffer).
//
//   void OnData(const mill::ConnectionPtr& conn, mill::ByteBuffer& input) {
//     size_t eol;
//     while ((eol = input.find('\n')) != mill::ByteBuffer::npos) {
//       Handle(input.view().substr(0, eol));
//       input.Consume(eol + 1);
//     }
//     // A partial line stays in `input` until more bytes arrive.
//   }
//
// Memory: an empty ByteBuffer may hold no storage at all; Shrink() gives
// memory back after a large message, so an idle connection costs nothing
// here. The storage may be a block lent by a BufferPool (AdoptBlock): a
// Connection's input buffer takes one from its loop's pool when a read
// starts on an empty buffer, reads straight into it, and gives it back once
// the buffer is empty again. Growth past the storage doubles the capacity
// (amortized O(1) per byte; a pooled block then goes back to its pool), and
// consumed space at the front is reused before growing.
//
// Thread-safety: thread-compatible (one user at a time; a Connection's input
// buffer belongs to its callbacks). Ownership: owns its storage; movable, not
// copyable.
#ifndef MILL_IO_NET_BYTE_BUFFER_H_
#define MILL_IO_NET_BYTE_BUFFER_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "objectpool/buffer_pool.h"

namespace mill {

class ByteBuffer {
 public:
  static constexpr size_t npos = absl::string_view::npos;

  ByteBuffer() = default;
  ByteBuffer(ByteBuffer&& other) noexcept;
  ByteBuffer& operator=(ByteBuffer&& other) noexcept;
  ByteBuffer(const ByteBuffer&) = delete;
  ByteBuffer& operator=(const ByteBuffer&) = delete;
  ~ByteBuffer() { ReleaseStorage(); }

  // --- Reading side -------------------------------------------------------

  // Unconsumed bytes.
  size_t size() const { return end_ - begin_; }
  bool empty() const { return end_ == begin_; }
  const char* data() const { return data_ + begin_; }
  // The unconsumed bytes; valid until the next non-const call.
  absl::string_view view() const { return absl::string_view(data(), size()); }

  // Position of `c` / `needle` in view() at or after `from`, or npos.
  size_t find(char c, size_t from = 0) const { return view().find(c, from); }
  size_t find(absl::string_view needle, size_t from = 0) const {
    return view().find(needle, from);
  }

  // Drops the first `n` bytes (all of them if n >= size()).
  void Consume(size_t n);
  // Copies out the first `n` bytes (at most size()) and consumes them.
  std::string Take(size_t n);
  // Drops every byte; keeps the storage (see Shrink).
  void Clear() { begin_ = end_ = 0; }

  // --- Writing side -------------------------------------------------------

  void Append(absl::string_view bytes);
  // Writable room at the back, at least `min_bytes` long (compacting or
  // growing as needed). Fill a prefix of it, then Commit() that many bytes.
  absl::Span<char> PrepareAppend(size_t min_bytes);
  // The room at the back as it is (possibly empty): no compaction, no
  // growth. Fill a prefix, then Commit().
  absl::Span<char> AppendSpace() {
    return absl::Span<char>(data_ + end_, capacity_ - end_);
  }
  // Makes `n` bytes of the span from PrepareAppend / AppendSpace part of
  // the contents.
  void Commit(size_t n);

  // --- Memory -------------------------------------------------------------

  size_t capacity() const { return capacity_; }
  // Uses `block` (from a BufferPool) as the storage: only while the buffer
  // holds none (capacity() == 0; otherwise the block goes straight back).
  // The block returns to its pool when the buffer releases its storage
  // (Shrink() while empty, growth past it, destruction).
  void AdoptBlock(BufferPool::Handle block);
  // The storage is a pooled block.
  bool has_pooled_block() const { return static_cast<bool>(block_); }
  // Releases storage not needed for the unconsumed bytes once the capacity
  // exceeds `keep_bytes`: an empty buffer frees everything, a non-empty one
  // moves its bytes into a right-sized allocation.
  void Shrink(size_t keep_bytes = 0);

  friend void swap(ByteBuffer& a, ByteBuffer& b) noexcept;

 private:
  void Reserve(size_t min_free);
  // Frees heap storage or returns the pooled block; leaves no storage.
  void ReleaseStorage();
  // Replaces the storage with `capacity` bytes of heap holding the contents.
  void MoveToHeap(size_t capacity);

  char* data_ = nullptr;  // heap-owned (new[]) unless block_ holds it
  size_t capacity_ = 0;
  size_t begin_ = 0;          // first unconsumed byte
  size_t end_ = 0;            // one past the last byte
  BufferPool::Handle block_;  // set when data_ is a pooled block
};

}  // namespace mill

#endif  // MILL_IO_NET_BYTE_BUFFER_H_
