// NodeSlab<Node>: the timing wheel's node allocator. Nodes are addressed by a
// 32-bit index and live in chunks that never move, so growing the slab causes
// no pause to copy live nodes (a million timers stay where they are when the
// slab grows) and an index is all a timer id or a list link needs to store.
// Each chunk is one mapping of whole 2 MiB huge pages (mmap on POSIX,
// node_slab_posix.cc; VirtualAlloc on Windows, node_slab_win.cc, which never
// asks for large pages); every chunk after the first asks the kernel for
// transparent huge pages (Linux, best effort), which cuts page faults and TLB
// misses with many timers while a small wheel stays on normal pages. Untouched
// pages cost no memory. The slab never shrinks.
//
// Freed nodes are kept on an intrusive free list threaded through the nodes
// themselves (Node::free_next()), so the allocator needs no memory of its own
// beyond the chunk table.
//
// Under AddressSanitizer, nodes never handed out are poisoned, so touching
// one is reported.
//
// Thread-safety: thread-compatible (the wheel's owner thread uses it).
// Ownership: the slab owns its chunks; Node must be trivially constructible
// and destructible (the slab neither constructs nor destroys nodes: their
// owner manages whatever lives inside them).
//
// Internal to //timer; not part of the public API.
#ifndef MILL_IO_TIMER_INTERNAL_NODE_SLAB_H_
#define MILL_IO_TIMER_INTERNAL_NODE_SLAB_H_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <new>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/base/config.h"
#include "absl/base/optimization.h"

namespace mill {
namespace timer_internal {

// No node; also the end of the free list.
inline constexpr uint32_t kNoNode = std::numeric_limits<uint32_t>::max();

inline constexpr size_t kHugePageBytes = size_t{2} << 20;

// `bytes` (a multiple of kHugePageBytes) of zero-cost-until-touched memory
// aligned to a huge page, with MADV_HUGEPAGE if `huge_pages` (Linux). Throws
// std::bad_alloc on failure.
void* MapChunk(size_t bytes, bool huge_pages);
void UnmapChunk(void* chunk, size_t bytes);

#ifdef ABSL_HAVE_ADDRESS_SANITIZER
void PoisonMemory(const void* address, size_t bytes);
void UnpoisonMemory(const void* address, size_t bytes);
#endif

// Chunked, index-addressed storage of `Node`s, 2^kChunkBits per chunk. Node
// must provide `uint32_t& free_next()`: storage the slab may use as the free
// list link while the node is free.
//
//   NodeSlab<Node> slab;
//   uint32_t i = slab.has_free() ? slab.PopFree() : slab.AllocateNew();
//   slab[i].payload = ...;
//   slab.PushFree(i);
template <typename Node, uint32_t kChunkBits = 15>
class NodeSlab {
 public:
  static constexpr uint32_t kChunkSize = uint32_t{1} << kChunkBits;

  NodeSlab() = default;
  NodeSlab(const NodeSlab&) = delete;
  NodeSlab& operator=(const NodeSlab&) = delete;

  ~NodeSlab() {
    static_assert(std::is_trivially_destructible<Node>::value,
                  "the slab does not run node destructors");
    for (Chunk* chunk : chunks_) DestroyChunk(chunk);
  }

  // Requires index < size().
  Node& operator[](uint32_t index) const {
    return chunks_[index >> kChunkBits]->nodes[index & (kChunkSize - 1)];
  }

  // Nodes [0, size()) have been handed out by AllocateNew(); each is now in
  // use or on the free list.
  uint32_t size() const { return size_; }

  bool has_free() const { return free_head_ != kNoNode; }

  // The most recently freed node. Requires has_free().
  uint32_t PopFree() {
    const uint32_t index = free_head_;
    free_head_ = (*this)[index].free_next();
    return index;
  }

  // Puts a node the caller no longer uses on the free list.
  void PushFree(uint32_t index) {
    (*this)[index].free_next() = free_head_;
    free_head_ = index;
  }

  // A node never handed out before (index size()), uninitialised; grows the
  // slab by one chunk when it is full. Throws std::length_error once indices
  // would reach kNoNode, std::bad_alloc if the kernel refuses memory.
  uint32_t AllocateNew() {
    if (ABSL_PREDICT_FALSE(size_ == chunks_.size() * kChunkSize)) AddChunk();
#ifdef ABSL_HAVE_ADDRESS_SANITIZER
    UnpoisonMemory(&(*this)[size_], sizeof(Node));
#endif
    return size_++;
  }

 private:
  struct Chunk {
    Node nodes[kChunkSize];
  };

  // The mapping holding a chunk: whole huge pages.
  static constexpr size_t ChunkBytes() {
    return (sizeof(Chunk) + kHugePageBytes - 1) / kHugePageBytes *
           kHugePageBytes;
  }

  ABSL_ATTRIBUTE_NOINLINE void AddChunk() {
    static_assert(std::is_trivially_default_constructible<Node>::value,
                  "a new chunk must not be written to");
    // Indices must stay below kNoNode.
    if (size_ > kNoNode - kChunkSize) throw std::length_error("timers");
    // A small slab keeps to normal pages; a big one asks for huge pages.
    Chunk* chunk =
        new (MapChunk(ChunkBytes(), /*huge_pages=*/!chunks_.empty())) Chunk;
#ifdef ABSL_HAVE_ADDRESS_SANITIZER
    PoisonMemory(chunk, ChunkBytes());
#endif
    try {
      chunks_.push_back(chunk);
    } catch (...) {
      DestroyChunk(chunk);
      throw;
    }
  }

  static void DestroyChunk(Chunk* chunk) {
#ifdef ABSL_HAVE_ADDRESS_SANITIZER
    // The kernel may hand the range out again: leave no poison behind.
    UnpoisonMemory(chunk, ChunkBytes());
#endif
    chunk->~Chunk();
    UnmapChunk(chunk, ChunkBytes());
  }

  std::vector<Chunk*> chunks_;
  uint32_t size_ = 0;
  uint32_t free_head_ = kNoNode;
};

}  // namespace timer_internal
}  // namespace mill

#endif  // MILL_IO_TIMER_INTERNAL_NODE_SLAB_H_
