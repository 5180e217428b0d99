// SegmentedQueue: an unbounded multi-producer multi-consumer FIFO made of a
// chain of bounded MpmcRing segments.
//
// Pushes and pops are lock-free ring operations on the tail and head
// segments. Only structural changes take the queue's mutex, and they are
// rare: sealing a full tail segment and linking a new one (Grow), moving the
// head past a drained segment (AdvanceHead), and Close(). Drained segments
// are kept and recycled as new tails, so memory stays bounded by the largest
// backlog seen (about twice it at worst) and no segment is ever freed while
// another thread might still be reading it; all are freed by the destructor.
//
// Ordering: pushes by one thread are popped in the order they were made
// (FIFO per producer, and FIFO overall for a single consumer). With several
// consumers, a consumer that was preempted across a segment change may pop
// from a newer segment while older items remain; concurrent pops are not
// ordered relative to each other anyway.
//
// Thread-safety: all methods may be called from any thread concurrently.
// MaybeNonEmpty() is a lock-free hint; NonEmpty(), Size() and pushed() take
// the mutex and are exact with respect to completed operations (a claimed but
// not yet published push counts as present).
//
// Ownership: owns queued elements; the destructor destroys what is left.
#ifndef MILL_IO_THREADPOOL_INTERNAL_SEGMENTED_QUEUE_H_
#define MILL_IO_THREADPOOL_INTERNAL_SEGMENTED_QUEUE_H_

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "base/mutex.h"
#include "threadpool/internal/mpmc_ring.h"

namespace mill {
namespace threadpool_internal {

// Unbounded FIFO of move-constructible T. Usage:
//   SegmentedQueue<Task> queue(/*initial_capacity=*/1024);
//   if (!queue.TryPush(std::move(task))) { /* closed; task not moved from */ }
//   Task out; if (queue.TryPop(out)) out();
template <typename T>
class SegmentedQueue {
 public:
  // The first segment has `initial_capacity` slots (power of two); each new
  // one doubles, up to `max_segment_capacity`.
  explicit SegmentedQueue(size_t initial_capacity,
                          size_t max_segment_capacity = size_t{1} << 16)
      : max_segment_capacity_(
            std::max(initial_capacity, max_segment_capacity)) {
    segments_.push_back(std::make_unique<Segment>(initial_capacity));
    head_.value.store(segments_.back().get(), std::memory_order_relaxed);
    tail_.value.store(segments_.back().get(), std::memory_order_relaxed);
  }

  SegmentedQueue(const SegmentedQueue&) = delete;
  SegmentedQueue& operator=(const SegmentedQueue&) = delete;

  // Appends `value` and returns true; returns false, leaving `value`
  // untouched, once Close() has been called. The successful push's ring
  // position update is seq_cst (see MpmcRing::TryPush).
  bool TryPush(T&& value) {
    for (;;) {
      Segment* tail = tail_.value.load(std::memory_order_acquire);
      // A refused push leaves `value` untouched (MpmcRing::TryPush), so it
      // is still there for the next segment.
      if (tail->ring.TryPush(
              std::move(value)) ==  // NOLINT(bugprone-use-after-move)
          PushResult::kOk) {
        return true;
      }
      // Full, or sealed by a concurrent Grow, or closed.
      if (!Grow(tail)) return false;
    }
  }

  // Moves the oldest available element into `out` and returns true, or
  // returns false if none is available right now.
  bool TryPop(T& out) {
    for (;;) {
      Segment* head = head_.value.load(std::memory_order_acquire);
      if (head->ring.TryPop(out)) return true;
      if (head->next.load(std::memory_order_acquire) == nullptr) return false;
      if (!AdvanceHead(head)) return false;
    }
  }

  // Makes every later TryPush fail. Queued elements stay poppable.
  void Close() ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    closed_ = true;
    tail_.value.load(std::memory_order_relaxed)->ring.Close();
  }

  // Lock-free hint: true if the queue may hold elements. A false answer can
  // be wrong only while the head segment is being recycled concurrently, so
  // callers that must not miss work (before parking, before exiting) use
  // NonEmpty().
  bool MaybeNonEmpty() const {
    const Segment* head = head_.value.load(std::memory_order_acquire);
    return head->ring.SizeApprox() != 0 ||
           head->next.load(std::memory_order_acquire) != nullptr;
  }

  bool NonEmpty() const ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    for (const Segment* s = head_.value.load(std::memory_order_relaxed);
         s != nullptr; s = s->next.load(std::memory_order_relaxed)) {
      if (s->ring.SizeApprox() != 0) return true;
    }
    return false;
  }

  // Elements queued (including pushes that claimed a slot but have not
  // published it yet).
  size_t Size() const ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    size_t size = 0;
    for (const Segment* s = head_.value.load(std::memory_order_relaxed);
         s != nullptr; s = s->next.load(std::memory_order_relaxed)) {
      size += s->ring.SizeApprox();
    }
    return size;
  }

  // Total successful pushes so far (ring positions never rewind, including
  // across recycling, so summing every segment's count is exact).
  uint64_t pushed() const ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    uint64_t total = 0;
    for (const auto& s : segments_) total += s->ring.pushed();
    return total;
  }

  size_t segment_count() const ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return segments_.size();
  }

 private:
  using Ring = MpmcRing<T>;
  using PushResult = typename Ring::PushResult;

  struct Segment {
    explicit Segment(size_t capacity) : ring(capacity) {}
    Ring ring;
    // The segment after this one; set (under mu_) only after this one has
    // been sealed, and reset when the segment is recycled.
    std::atomic<Segment*> next{nullptr};
  };

  // Called after a failed push on `tail`. Returns false if the queue is
  // closed; otherwise makes sure the tail has moved on or has room, so the
  // caller retries.
  bool Grow(Segment* tail) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    if (closed_) return false;
    if (tail_.value.load(std::memory_order_relaxed) != tail) return true;
    // Consumers may have made room since the push failed.
    if (tail->ring.SizeApprox() < tail->ring.capacity()) return true;

    Segment* next = TakeDeadSegmentLocked(tail->ring.capacity());
    if (next == nullptr) {
      segments_.push_back(std::make_unique<Segment>(
          std::min(tail->ring.capacity() * 2, max_segment_capacity_)));
      next = segments_.back().get();
    } else {
      next->next.store(nullptr, std::memory_order_relaxed);
    }
    // Seal first: after this no push lands in `tail`, which is what lets
    // AdvanceHead leave it once it is empty. Reopen `next` only once it is
    // linked and published as the tail, so a producer holding a stale
    // pointer to it cannot push into it before older items are reachable.
    tail->ring.Close();
    tail->next.store(next, std::memory_order_release);
    tail_.value.store(next, std::memory_order_release);
    next->ring.Reopen();
    return true;
  }

  // A segment not on the head..tail chain with at least `min_capacity`
  // slots (the largest such), or nullptr. Segments off the
  // chain are sealed and empty, and stay so until recycled here.
  // Segments the head has left (AdvanceHead records them) are reusable.
  // Kept as a list so that taking one is linear in the dead segments, not
  // quadratic in all of them: a consumer that falls behind can leave
  // thousands of small segments chained, and Grow runs under mu_.
  Segment* TakeDeadSegmentLocked(size_t min_capacity)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    size_t best = dead_.size();
    for (size_t i = 0; i < dead_.size(); ++i) {
      if (dead_[i]->ring.capacity() < min_capacity) continue;
      if (best == dead_.size() ||
          dead_[i]->ring.capacity() > dead_[best]->ring.capacity()) {
        best = i;
      }
    }
    if (best == dead_.size()) return nullptr;
    Segment* taken = dead_[best];
    dead_[best] = dead_.back();
    dead_.pop_back();
    return taken;
  }

  // Moves the head past `head` if it is sealed and drained. Returns true if
  // the caller should retry its pop (the head moved), false if `head` still
  // has a claimed-but-unpublished element.
  bool AdvanceHead(Segment* head) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    if (head_.value.load(std::memory_order_relaxed) != head) return true;
    Segment* next = head->next.load(std::memory_order_relaxed);
    if (next == nullptr || head->ring.SizeApprox() != 0) return false;
    head_.value.store(next, std::memory_order_release);
    dead_.push_back(head);
    return true;
  }

  const size_t max_segment_capacity_;
  CacheLinePadded<std::atomic<Segment*>> head_;  // Read by consumers.
  CacheLinePadded<std::atomic<Segment*>> tail_;  // Read by producers.
  // Taken only for structural changes and exact reads (see the top).
  mutable Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::unique_ptr<Segment>> segments_ ABSL_GUARDED_BY(mu_);
  std::vector<Segment*> dead_ ABSL_GUARDED_BY(mu_);  // Behind the head.
};

}  // namespace threadpool_internal
}  // namespace mill

#endif  // MILL_IO_THREADPOOL_INTERNAL_SEGMENTED_QUEUE_H_
