// MpmcRing: a bounded multi-producer multi-consumer FIFO ring buffer.
//
// Dmitry Vyukov's bounded MPMC queue: every slot carries a sequence number
// that tells producers and consumers whose turn it is, so a push or a pop is
// one compare-and-swap on a position counter plus one release store, with no
// lock and no allocation. It is the hot queue of mill::ThreadPool (one ring
// per priority); anything that does not fit goes to a locked overflow there.
//
// Thread-safety: TryPush/TryPop/Close may be called from any number of threads
// at once. SizeApprox/pushed/popped are exact only when no push or pop runs
// concurrently. A push that has claimed a slot but not yet published it makes
// TryPop report "empty" for that slot until it is published (the ring is not
// strictly lock-free; pushes are a handful of instructions so this is brief).
//
// Ownership: the ring owns the elements it holds; the destructor destroys
// whatever is still queued. Not copyable or movable.
#ifndef MILL_IO_THREADPOOL_INTERNAL_MPMC_RING_H_
#define MILL_IO_THREADPOOL_INTERNAL_MPMC_RING_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace mill {
namespace threadpool_internal {

// Keeps hot atomics on separate cache lines to avoid false sharing.
inline constexpr size_t kCacheLineSize = 64;

// A T followed by a cache line of padding. Two consecutive members of this
// type never share a cache line, yet the type needs no over-alignment: an
// alignas(64) object may be misplaced by ASan's fake stack
// (detect_stack_use_after_return) and by pre-C++17 allocators.
template <typename T>
struct CacheLinePadded {
  T value{};
  char padding[kCacheLineSize];
};

// A fixed-capacity FIFO for move-constructible T. Usage:
//   MpmcRing<Task> ring(1024);
//   if (ring.TryPush(std::move(task)) != MpmcRing<Task>::PushResult::kOk) {
//     /* full or closed: task was not moved from */
//   }
//   Task out; if (ring.TryPop(out)) out();
template <typename T>
class MpmcRing {
 public:
  // `capacity` is rounded up to a power of two, at least 2.
  explicit MpmcRing(size_t capacity)
      : mask_(RoundUpPow2(capacity) - 1), slots_(new Slot[mask_ + 1]) {
    for (size_t i = 0; i <= mask_; ++i) {
      slots_[i].seq.store(i, std::memory_order_relaxed);
    }
  }

  MpmcRing(const MpmcRing&) = delete;
  MpmcRing& operator=(const MpmcRing&) = delete;

  ~MpmcRing() {
    T drop;
    while (TryPop(drop)) {
    }
  }

  size_t capacity() const { return mask_ + 1; }

  enum class PushResult { kOk, kFull, kClosed };

  // Appends `value` (kOk), or leaves `value` untouched and reports kFull or
  // kClosed. The position update is seq_cst so that a caller can pair it with
  // a seq_cst load of a "sleepers" flag (Dekker style) without a separate
  // fence; on x86 the CAS is a full barrier anyway.
  PushResult TryPush(T&& value) {
    Slot* slot;
    size_t pos = enqueue_.value.load(std::memory_order_acquire);
    for (;;) {
      if (pos & kClosedBit) return PushResult::kClosed;
      slot = &slots_[pos & mask_];
      const size_t seq = slot->seq.load(std::memory_order_acquire);
      const intptr_t diff =
          static_cast<intptr_t>(seq) - static_cast<intptr_t>(pos);
      if (diff == 0) {
        if (enqueue_.value.compare_exchange_weak(pos, pos + 1,
                                                 std::memory_order_seq_cst,
                                                 std::memory_order_acquire)) {
          break;
        }
      } else if (diff < 0) {
        return PushResult::kFull;  // The slot holds an element a lap behind.
      } else {
        pos = enqueue_.value.load(std::memory_order_acquire);
      }
    }
    ::new (static_cast<void*>(slot->storage)) T(std::move(value));
    slot->seq.store(pos + 1, std::memory_order_release);
    return PushResult::kOk;
  }

  // Makes every later TryPush return kClosed. Pushes that already claimed a
  // slot still complete (and count in SizeApprox until popped). Closing is
  // folded into the producer position so that pushing needs no extra atomic
  // operation to be ordered against it.
  void Close() {
    enqueue_.value.fetch_or(kClosedBit, std::memory_order_acq_rel);
  }
  // Undoes Close(). Positions continue where they were, so a thread that
  // still holds a stale view of the ring stays consistent.
  void Reopen() {
    enqueue_.value.fetch_and(~kClosedBit, std::memory_order_acq_rel);
  }
  bool closed() const {
    return (enqueue_.value.load(std::memory_order_acquire) & kClosedBit) != 0;
  }

  // Moves the oldest element into `out` and returns true, or returns false
  // when no published element is available.
  bool TryPop(T& out) {
    Slot* slot;
    size_t pos = dequeue_.value.load(std::memory_order_relaxed);
    for (;;) {
      slot = &slots_[pos & mask_];
      const size_t seq = slot->seq.load(std::memory_order_acquire);
      const intptr_t diff =
          static_cast<intptr_t>(seq) - static_cast<intptr_t>(pos + 1);
      if (diff == 0) {
        if (dequeue_.value.compare_exchange_weak(pos, pos + 1,
                                                 std::memory_order_relaxed,
                                                 std::memory_order_relaxed)) {
          break;
        }
      } else if (diff < 0) {
        return false;  // Empty (or the next slot is not yet published).
      } else {
        pos = dequeue_.value.load(std::memory_order_relaxed);
      }
    }
    T* elem = std::launder(reinterpret_cast<T*>(slot->storage));
    out = std::move(*elem);
    elem->~T();
    slot->seq.store(pos + mask_ + 1, std::memory_order_release);
    return true;
  }

  // Total pushes / pops so far (monotonic position counters).
  uint64_t pushed() const {
    return enqueue_.value.load(std::memory_order_seq_cst) & ~kClosedBit;
  }
  uint64_t popped() const {
    return dequeue_.value.load(std::memory_order_seq_cst);
  }

  // Number of claimed-but-not-yet-popped slots. Never underflows: reads the
  // consumer position first, and it never passes the producer position.
  size_t SizeApprox() const {
    const size_t deq = dequeue_.value.load(std::memory_order_seq_cst);
    const size_t enq =
        enqueue_.value.load(std::memory_order_seq_cst) & ~kClosedBit;
    return enq >= deq ? enq - deq : 0;
  }

 private:
  static_assert(sizeof(size_t) == 8, "positions need 64 bits");
  static constexpr size_t kClosedBit = size_t{1} << 63;

  struct Slot {
    std::atomic<size_t> seq;
    alignas(T) unsigned char storage[sizeof(T)];
  };

  static size_t RoundUpPow2(size_t n) {
    size_t p = 2;
    while (p < n) p <<= 1;
    return p;
  }

  // Producers touch enqueue_pos_, consumers dequeue_pos_; the read-only
  // fields come last so neither counter's writes evict them.
  CacheLinePadded<std::atomic<size_t>> enqueue_;
  CacheLinePadded<std::atomic<size_t>> dequeue_;
  const size_t mask_;
  const std::unique_ptr<Slot[]> slots_;
};

}  // namespace threadpool_internal
}  // namespace mill

#endif  // MILL_IO_THREADPOOL_INTERNAL_MPMC_RING_H_
