// TimingWheel: a hierarchical timing wheel (Varghese & Lauck) holding one-shot
// and repeating timers, with O(1) Schedule and Cancel.
//
// Time is std::chrono::steady_clock::time_point, the event loop's clock. The
// wheel never reads a clock itself: the owner passes the current time to
// Advance(), which makes it deterministic under test.
//
// Firing is exact: a timer fires in the first Advance(now) with
// now >= deadline, never earlier, not even by a nanosecond. The wheel works in
// 1 ms ticks for bookkeeping only; the exact deadline is stored per timer and
// compared on the tick that contains it (libuv rounds deadlines down to the
// millisecond and can fire early; this wheel does not). Six levels of 256
// slots cover every deadline steady_clock can represent, so there is no
// overflow list and no clamping.
//
// Order: within one Advance, due timers run in deadline order, and timers with
// equal deadlines run in the order they were scheduled (FIFO), also after they
// cascade down from higher levels. Re-arming (Reschedule, or the next period of
// a repeating timer) counts as scheduling at that moment.
//
// Thread-safety: thread-compatible, not thread-safe. One thread (the event
// loop's) owns the wheel and makes every call; other threads must post their
// requests to it.
//
// Ownership: the wheel owns each callback. A one-shot callback is destroyed
// right after it runs; a cancelled timer's callback is destroyed by Cancel();
// a repeating timer keeps its callback until cancelled; the rest are destroyed
// with the wheel. Callbacks may call Schedule, ScheduleRepeating, Cancel,
// Reschedule, NextDeadline and size() on the wheel that runs them (any timer,
// including themselves); they must not destroy the wheel. A callback's
// destructor must not call into the wheel.
#ifndef MILL_IO_TIMER_TIMING_WHEEL_H_
#define MILL_IO_TIMER_TIMING_WHEEL_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "timer/internal/node_slab.h"

namespace mill {

// TimerId: the handle of a scheduled timer, returned by TimingWheel::Schedule*
// and passed to Cancel/Reschedule. It names a slab index plus a generation,
// so an id whose timer already fired or was cancelled is recognised as stale
// even after its slot is reused. A default-constructed TimerId is invalid and
// never names a timer. Plain value type; thread-compatible.
class TimerId {
 public:
  constexpr TimerId() = default;

  constexpr bool valid() const { return value_ != 0; }
  constexpr uint64_t value() const { return value_; }

  friend constexpr bool operator==(TimerId a, TimerId b) {
    return a.value_ == b.value_;
  }
  friend constexpr bool operator!=(TimerId a, TimerId b) {
    return a.value_ != b.value_;
  }
  friend constexpr bool operator<(TimerId a, TimerId b) {
    return a.value_ < b.value_;
  }

  template <typename H>
  friend H AbslHashValue(H state, TimerId id) {
    return H::combine(std::move(state), id.value_);
  }

  friend std::ostream& operator<<(std::ostream& os, TimerId id) {
    return os << "TimerId(" << id.index() << "@" << id.generation() << ")";
  }

 private:
  friend class TimingWheel;

  // Generations start at 1, so a valid id is never 0.
  constexpr TimerId(uint32_t index, uint32_t generation)
      : value_((uint64_t{generation} << 32) | index) {}
  constexpr uint32_t index() const { return static_cast<uint32_t>(value_); }
  constexpr uint32_t generation() const {
    return static_cast<uint32_t>(value_ >> 32);
  }

  uint64_t value_ = 0;
};

// TimingWheel: the timer queue of an event loop.
//
//   TimingWheel::TimePoint now = TimingWheel::Clock::now();
//   TimingWheel wheel(now);
//   TimerId id = wheel.Schedule(now + 250ms, [] { ... });
//   wheel.ScheduleRepeating(now + 1s, 1s, [] { ... });  // every second
//   wheel.Cancel(id);
//   // Event loop iteration:
//   std::optional<TimePoint> next = wheel.NextDeadline();  // poll timeout
//   ... poll until *next at the latest ...
//   wheel.Advance(TimingWheel::Clock::now());  // runs due callbacks in order
//
// Cost: Schedule, Cancel and Reschedule are O(1); Advance is O(due timers +
// cascaded timers + occupied slots passed), independent of how much time
// passed; NextDeadline is O(1).
//
// Memory: each timer is one 64-byte, cache-line-aligned node (callback, list
// links, id and state), plus the callback's own heap storage if it does not
// fit AnyInvocable's 16-byte inline buffer; so any operation on a timer costs
// one cache miss. Nodes live in a slab of 2 MiB chunks of 32,768. Chunks after
// the first ask the kernel for transparent huge pages (Linux, best effort),
// which cuts page faults and TLB misses with many timers; a small wheel stays
// on normal pages. The slab never moves, so growing it causes no pause, and it
// never shrinks. Cancel destroys the callback at once but leaves the timer's
// node in its slot list, marked; the node is unlinked and reused when the wheel
// next walks that slot, or by a later Schedule, which reclaims a bounded
// batch of cancelled nodes before growing the slab. So the slab stays within
// about twice the peak number of pending timers.
class TimingWheel {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;
  using Duration = Clock::duration;
  using Callback = absl::AnyInvocable<void()>;

  // Bookkeeping granularity. Firing does not depend on it (see above).
  static constexpr std::chrono::milliseconds kTick{1};

  // `start` anchors the tick grid; pass the loop's current time. Deadlines
  // before `start` are legal (they are due at the first Advance).
  explicit TimingWheel(TimePoint start);
  ~TimingWheel();

  TimingWheel(const TimingWheel&) = delete;
  TimingWheel& operator=(const TimingWheel&) = delete;

  // Schedules `callback` to run once, in the first Advance(now) with
  // now >= deadline. A deadline that is already past runs at the next
  // Advance. Returns an invalid id (and schedules nothing) if `callback` is
  // empty.
  TimerId Schedule(TimePoint deadline, Callback callback);

  // Schedules `callback` at first_deadline, first_deadline + interval,
  // first_deadline + 2 * interval, ... on a fixed grid, so it does not drift.
  // If Advance is late by several periods, the callback runs once and the
  // missed periods are skipped: the next deadline is the first grid point
  // strictly after `now`. Returns an invalid id if `callback` is empty or
  // `interval` is not positive.
  TimerId ScheduleRepeating(TimePoint first_deadline, Duration interval,
                            Callback callback);

  // Cancels a pending timer and destroys its callback. Returns true if the
  // timer was pending (including a timer that is due in the Advance now
  // running but has not run yet, and a repeating timer whose callback is the
  // one now running); false for an invalid or stale id, or a one-shot timer
  // that already ran or is running.
  bool Cancel(TimerId id);

  // Moves a pending timer to a new deadline, keeping its id and callback; a
  // repeating timer continues its period from the new deadline. Returns false
  // (and does nothing) if `id` is not pending, as for Cancel.
  bool Reschedule(TimerId id, TimePoint deadline);

  // Runs the callbacks of all timers with deadline <= now, in (deadline,
  // schedule order) order, and returns how many ran. Timers scheduled by
  // those callbacks do not run in this call even if already due; they run at
  // the next Advance. A timer cancelled or rescheduled by an earlier callback
  // in the same call does not run. `now` should not go backwards; if it does,
  // timers due at that earlier `now` still run and nothing else does.
  // Calling Advance from inside a callback does nothing and returns 0. If a
  // callback throws, the exception propagates and the due timers that had not
  // run yet stay pending and run at the next Advance.
  size_t Advance(TimePoint now);

  // A time no later than the earliest pending deadline, or nullopt if no timer
  // is pending. It is exact unless the earliest timers were cancelled, and it
  // never stalls a loop: after Advance(*NextDeadline()), either a timer ran or
  // NextDeadline() moved later. Poll with a timeout rounded UP to the
  // poller's resolution (epoll: milliseconds) to avoid waking early.
  std::optional<TimePoint> NextDeadline() const;

  // Number of pending timers (scheduled, not yet fired or cancelled).
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  struct Link;
  struct Meta;
  struct Node;
  struct Slot;

  Node& node(uint32_t index) const;
  Link& link(uint32_t index) const;
  Meta& meta(uint32_t index) const;
  Callback& callback(uint32_t index) const;
  Meta* Lookup(TimerId id) const;
  uint32_t AllocateNode();
  void ReclaimSome();
  void Retire(uint32_t index);
  void Recycle(uint32_t index);
  void Free(uint32_t index);
  TimerId Commit(uint32_t index, TimePoint deadline, int64_t interval_ns,
                 Callback&& callback);
  uint64_t TickOf(int64_t deadline_ns) const;
  void Insert(uint32_t index);
  void Unlink(uint32_t index);
  void Collect(int64_t now_ns);
  void ExpireWholeSlot(Slot& slot);
  void ExpireDuePart(Slot& slot, int64_t now_ns);
  void SortCollectedFrom(size_t begin);
  void Cascade();
  bool Run(TimerId id, int64_t now_ns);
  void RequeueUnrun(size_t from);

  // 6 levels of 256 slots: 48 bits of 1 ms ticks, more than the 2^64 ns
  // range of the clock. 256 rather than 64 slots per level means one
  // cascade fewer for most timers (up to 65 s: one; up to 4.6 h: two).
  static constexpr int kLevelBits = 8;
  static constexpr int kSlotsPerLevel = 1 << kLevelBits;
  static constexpr int kLevels = (48 + kLevelBits - 1) / kLevelBits;
  static constexpr int kWordsPerLevel = kSlotsPerLevel / 64;

  void MarkOccupied(int level, uint64_t slot_index);
  void MarkEmpty(int level, uint64_t slot_index);
  bool IsOccupied(int level, uint64_t slot_index) const;
  int FirstOccupied(int level) const;  // -1 if the level is empty

  const int64_t origin_ns_;
  // Tick of the last Advance. Level 0 holds ticks in cur_tick_'s 256-tick
  // block; level k holds ticks whose highest 8-bit group differing from
  // cur_tick_ is group k. Slot cur_tick_ % 256 of level 0 also holds timers
  // scheduled in the past.
  uint64_t cur_tick_ = 0;
  std::unique_ptr<Slot[]> slots_;  // kLevels * kSlotsPerLevel
  // Bit s of level k set: slot s of level k holds a pending timer.
  uint64_t occupied_[kLevels][kWordsPerLevel] = {};
  // Every timer's node, by index (see timer/internal/node_slab.h). Freed
  // nodes are chained through Link::next. Cancelled nodes still linked in a
  // slot list number cancelled_; ReclaimSome() scans for them from
  // reclaim_cursor_.
  timer_internal::NodeSlab<Node> nodes_;
  uint32_t cancelled_ = 0;
  uint32_t reclaim_cursor_ = 0;
  size_t size_ = 0;

  // Due timers of the running Advance, in firing order; next_to_run_ indexes
  // the first one not yet run. running_ is the timer whose callback is
  // running (its storage must outlive a Cancel from inside it).
  std::vector<TimerId> collected_;
  size_t next_to_run_ = 0;
  uint32_t running_;
  bool advancing_ = false;
};

}  // namespace mill

template <>
struct std::hash<mill::TimerId> {
  size_t operator()(mill::TimerId id) const noexcept {
    return std::hash<uint64_t>()(id.value());
  }
};

#endif  // MILL_IO_TIMER_TIMING_WHEEL_H_
