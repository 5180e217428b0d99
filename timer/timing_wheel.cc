#include "timer/timing_wheel.h"

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <new>

#include "absl/base/config.h"
#include "absl/base/optimization.h"
#include "absl/numeric/bits.h"
#include "timer/internal/node_slab.h"

#ifdef ABSL_HAVE_ADDRESS_SANITIZER
#include <sanitizer/asan_interface.h>
#endif

namespace mill {
namespace {

constexpr uint32_t kNil = timer_internal::kNoNode;
constexpr int64_t kNsPerTick = 1'000'000;
constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

// How many slab indices one ReclaimSome() call examines: bounds the work a
// Schedule can do on top of its own.
constexpr uint32_t kReclaimBatch = 64;

int64_t ToNs(TimingWheel::TimePoint t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             t.time_since_epoch())
      .count();
}

TimingWheel::TimePoint FromNs(int64_t ns) {
  return TimingWheel::TimePoint(
      std::chrono::duration_cast<TimingWheel::Duration>(
          std::chrono::nanoseconds(ns)));
}

// The first point of the grid deadline + k * interval (k >= 1) after now,
// saturated to kNever. Requires deadline <= now and interval > 0.
int64_t NextOnGrid(int64_t deadline, int64_t interval, int64_t now) {
  const unsigned __int128 missed =
      static_cast<uint64_t>(now) - static_cast<uint64_t>(deadline);
  const unsigned __int128 periods =
      missed / static_cast<uint64_t>(interval) + 1;
  const __int128 next =
      static_cast<__int128>(deadline) +
      static_cast<__int128>(periods * static_cast<uint64_t>(interval));
  return next >= kNever ? kNever : static_cast<int64_t>(next);
}

void Prefetch(const void* address) {
#if defined(__GNUC__)
  __builtin_prefetch(address);
#else
  (void)address;
#endif
}

// Under ASan a node's callback storage is poisoned while no callback lives
// there, so touching a destroyed callback is reported (ASan does not see
// inside the slab otherwise). No-ops in other builds.
void MarkCallbackDead(void* storage) {
#ifdef ABSL_HAVE_ADDRESS_SANITIZER
  ASAN_POISON_MEMORY_REGION(storage, sizeof(TimingWheel::Callback));
#else
  (void)storage;
#endif
}

void MarkCallbackLive(void* storage) {
#ifdef ABSL_HAVE_ADDRESS_SANITIZER
  ASAN_UNPOISON_MEMORY_REGION(storage, sizeof(TimingWheel::Callback));
#else
  (void)storage;
#endif
}

}  // namespace

enum class NodeState : uint8_t {
  kFree,       // on the free list, or retired while its callback runs
  kInWheel,    // pending, linked in a slot list
  kCollected,  // pending, due in the running Advance, not linked
  kCancelled,  // cancelled, still linked in a slot list, callback destroyed
};

// A node's place in its slot's list.
struct TimingWheel::Link {
  int64_t deadline_ns;
  uint32_t prev;
  uint32_t next;  // also the slab's free-list link
};

// What an id check reads.
struct TimingWheel::Meta {
  uint32_t generation;  // never 0, so valid ids are never 0
  uint16_t slot;        // level * kSlotsPerLevel + index, when linked
  NodeState state;
  bool repeating;
};

// One timer: everything any operation reads or writes about it in one
// 64-byte cache line, so Schedule, Cancel, a list walk or a firing costs one
// cache miss per timer. (Splitting the fields into arrays was measured to be
// slower: Cancel then misses twice, the id check and the callback.) Left
// uninitialised until handed out. The callback is constructed exactly while
// the node is kInWheel or kCollected, plus, for a timer whose callback runs,
// until it returns. 32,768 nodes fill one 2 MiB chunk of the slab.
struct alignas(64) TimingWheel::Node {
  alignas(Callback) unsigned char callback[sizeof(Callback)];
  Link link;
  Meta meta;
  int64_t interval_ns;  // repeating timers only

  uint32_t& free_next() { return link.next; }
};

// An intrusive FIFO list of timers, the number of pending ones among them
// (the rest were cancelled), and a lower bound of the pending deadlines (the
// minimum ever inserted since the slot last had no pending timer; Cancel
// leaves it conservative, a partial expiry makes it exact again).
struct TimingWheel::Slot {
  uint32_t head = kNil;
  uint32_t tail = kNil;
  uint32_t live = 0;
  int64_t min_deadline_ns = kNever;
};

TimingWheel::TimingWheel(TimePoint start)
    : origin_ns_(ToNs(start)),
      slots_(new Slot[size_t{kLevels} * kSlotsPerLevel]),
      running_(kNil) {
  // Every tick the clock can produce fits the levels, so nothing is clamped.
  static_assert(std::numeric_limits<uint64_t>::max() / kNsPerTick <
                    (uint64_t{1} << (kLevelBits * kLevels)),
                "the levels must cover every 1 ms tick");
  static_assert(kLevels * kSlotsPerLevel <= 65536, "Meta::slot is 16 bits");
  static_assert(sizeof(Link) == 16, "keep the list links small");
  static_assert(sizeof(Meta) == 8, "keep the id check small");
  static_assert(sizeof(Node) == 64, "one cache line per timer");
}

TimingWheel::~TimingWheel() {
  // Pending timers are the only ones with a callback left (the wheel is not
  // destroyed from a callback); stop looking once all are found.
  size_t left = size_;
  for (uint32_t i = 0; left != 0 && i < nodes_.size(); ++i) {
    const NodeState state = meta(i).state;
    if (state == NodeState::kInWheel || state == NodeState::kCollected) {
      callback(i).~Callback();
      --left;
    }
  }
}

TimingWheel::Node& TimingWheel::node(uint32_t index) const {
  return nodes_[index];
}

TimingWheel::Link& TimingWheel::link(uint32_t index) const {
  return node(index).link;
}

TimingWheel::Meta& TimingWheel::meta(uint32_t index) const {
  return node(index).meta;
}

TimingWheel::Callback& TimingWheel::callback(uint32_t index) const {
  return *std::launder(reinterpret_cast<Callback*>(node(index).callback));
}

TimingWheel::Meta* TimingWheel::Lookup(TimerId id) const {
  if (!id.valid() || id.index() >= nodes_.size()) return nullptr;
  Meta& m = meta(id.index());
  if (m.generation != id.generation() ||
      (m.state != NodeState::kInWheel && m.state != NodeState::kCollected)) {
    return nullptr;
  }
  return &m;
}

inline uint32_t TimingWheel::AllocateNode() {
  // Reuse the nodes of cancelled timers before growing, once they make up
  // half the slab: that keeps the slab within about twice the peak number of
  // pending timers, and each reclaimed node costs O(1) scanning.
  if (!nodes_.has_free() && cancelled_ != 0 &&
      uint64_t{cancelled_} * 2 >= nodes_.size()) {
    ReclaimSome();
  }
  uint32_t index;
  if (nodes_.has_free()) {
    index = nodes_.PopFree();
  } else {
    index = nodes_.AllocateNew();
    meta(index).generation = 1;
  }
  ++size_;
  return index;
}

// Frees the cancelled nodes among the next kReclaimBatch slab indices, going
// round the slab. Runs between walks (never inside Collect), so unlinking is
// safe; the node of a running callback keeps its storage until it returns.
void TimingWheel::ReclaimSome() {
  const uint32_t batch = std::min(kReclaimBatch, nodes_.size());
  for (uint32_t n = 0; n < batch; ++n) {
    if (reclaim_cursor_ >= nodes_.size()) reclaim_cursor_ = 0;
    const uint32_t index = reclaim_cursor_++;
    if (meta(index).state == NodeState::kCancelled && index != running_) {
      Unlink(index);
      Free(index);
    }
  }
}

// Makes `index` stop being a pending timer: its id goes stale. The callback
// stays constructed until Recycle.
void TimingWheel::Retire(uint32_t index) {
  Meta& m = meta(index);
  m.state = NodeState::kFree;
  if (++m.generation == 0) m.generation = 1;
  --size_;
}

// Destroys the callback of a retired timer and returns its storage. The node
// joins the free list only afterwards, so a callback destructor that
// schedules cannot be handed this node.
void TimingWheel::Recycle(uint32_t index) {
  callback(index).~Callback();
  MarkCallbackDead(node(index).callback);
  nodes_.PushFree(index);
}

// Returns the node of a cancelled timer (already unlinked, or in a list that
// is being dismantled) to the free list.
void TimingWheel::Free(uint32_t index) {
  assert(index != running_);
  meta(index).state = NodeState::kFree;
  nodes_.PushFree(index);
  --cancelled_;
}

void TimingWheel::MarkOccupied(int level, uint64_t slot_index) {
  occupied_[level][slot_index / 64] |= uint64_t{1} << (slot_index % 64);
}

void TimingWheel::MarkEmpty(int level, uint64_t slot_index) {
  occupied_[level][slot_index / 64] &= ~(uint64_t{1} << (slot_index % 64));
}

bool TimingWheel::IsOccupied(int level, uint64_t slot_index) const {
  return (occupied_[level][slot_index / 64] >> (slot_index % 64)) & 1;
}

int TimingWheel::FirstOccupied(int level) const {
  for (int word = 0; word < kWordsPerLevel; ++word) {
    if (occupied_[level][word] != 0) {
      return word * 64 + absl::countr_zero(occupied_[level][word]);
    }
  }
  return -1;
}

uint64_t TimingWheel::TickOf(int64_t deadline_ns) const {
  if (deadline_ns <= origin_ns_) return 0;
  // The difference of two int64 fits in uint64 when positive.
  return (static_cast<uint64_t>(deadline_ns) -
          static_cast<uint64_t>(origin_ns_)) /
         kNsPerTick;
}

inline void TimingWheel::Insert(uint32_t index) {
  Link& n = link(index);
  const uint64_t tick = TickOf(n.deadline_ns);
  int level = 0;
  uint64_t slot_index = cur_tick_ & (kSlotsPerLevel - 1);
  if (tick > cur_tick_) {
    // The highest 8-bit group where tick and cur_tick_ differ picks the
    // level; within it tick's group is larger, so the slot is ahead of
    // cur_tick_'s position on that level (never wrapped around).
    const int high_bit = 63 - absl::countl_zero(tick ^ cur_tick_);
    level = high_bit / kLevelBits;
    slot_index = (tick >> (level * kLevelBits)) & (kSlotsPerLevel - 1);
  }
  const int slot_number = level * kSlotsPerLevel + static_cast<int>(slot_index);
  Slot& slot = slots_[slot_number];
  Meta& m = meta(index);
  m.state = NodeState::kInWheel;
  m.slot = static_cast<uint16_t>(slot_number);
  n.next = kNil;
  n.prev = slot.tail;
  if (slot.tail == kNil) {
    slot.head = index;
  } else {
    link(slot.tail).next = index;
  }
  slot.tail = index;
  if (slot.live++ == 0) MarkOccupied(level, slot_index);
  slot.min_deadline_ns = std::min(slot.min_deadline_ns, n.deadline_ns);
}

// Removes a linked node (pending or cancelled) from its slot list.
void TimingWheel::Unlink(uint32_t index) {
  Link& n = link(index);
  const Meta& m = meta(index);
  Slot& slot = slots_[m.slot];
  if (n.prev == kNil) {
    slot.head = n.next;
  } else {
    link(n.prev).next = n.next;
  }
  if (n.next == kNil) {
    slot.tail = n.prev;
  } else {
    link(n.next).prev = n.prev;
  }
  if (m.state == NodeState::kInWheel && --slot.live == 0) {
    MarkEmpty(m.slot / kSlotsPerLevel, m.slot % kSlotsPerLevel);
    slot.min_deadline_ns = kNever;
  }
}

TimerId TimingWheel::Schedule(TimePoint deadline, Callback callback) {
  if (!callback) return TimerId();
  return Commit(AllocateNode(), deadline, 0, std::move(callback));
}

TimerId TimingWheel::ScheduleRepeating(TimePoint first_deadline,
                                       Duration interval, Callback callback) {
  const int64_t interval_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(interval).count();
  if (!callback || interval_ns <= 0) return TimerId();
  return Commit(AllocateNode(), first_deadline, interval_ns,
                std::move(callback));
}

inline TimerId TimingWheel::Commit(uint32_t index, TimePoint deadline,
                                   int64_t interval_ns, Callback&& callback) {
  Node& n = node(index);
  MarkCallbackLive(n.callback);
  new (n.callback) Callback(std::move(callback));
  if (interval_ns != 0) n.interval_ns = interval_ns;
  n.link.deadline_ns = ToNs(deadline);
  Meta& m = n.meta;
  m.repeating = interval_ns != 0;
  Insert(index);
  return TimerId(index, m.generation);
}

// Kept short: one node (one cache line) plus the slot's counter (in cache),
// and few instructions, so that the cache misses of consecutive cancels
// overlap.
bool TimingWheel::Cancel(TimerId id) {
  const uint32_t index = id.index();
  // An invalid id has generation 0, which no node has.
  if (index >= nodes_.size()) return false;
  Node& n = node(index);
  Meta& m = n.meta;
  if (m.generation != id.generation()) return false;
  if (ABSL_PREDICT_FALSE(m.state != NodeState::kInWheel)) {
    if (m.state != NodeState::kCollected) return false;
    // Due in the running Advance: Run() skips it once its generation changes.
    Retire(index);
    if (index != running_) Recycle(index);
    return true;
  }
  // Leave the node in its list (unlinking would touch both neighbours, two
  // more cache misses): whoever next walks the slot, or ReclaimSome, frees
  // it. The slot stops counting it at once, so a slot left with only
  // cancelled timers neither bounds NextDeadline nor stops Advance.
  Slot& slot = slots_[m.slot];
  if (--slot.live == 0) {
    MarkEmpty(m.slot / kSlotsPerLevel, m.slot % kSlotsPerLevel);
    slot.min_deadline_ns = kNever;
  }
  m.state = NodeState::kCancelled;
  m.generation = m.generation == kNil ? 1 : m.generation + 1;
  --size_;
  ++cancelled_;
  // A repeating timer cancelling itself: Run() destroys the callback when it
  // returns.
  if (ABSL_PREDICT_TRUE(index != running_)) {
    std::launder(reinterpret_cast<Callback*>(n.callback))->~Callback();
    MarkCallbackDead(n.callback);
  }
  return true;
}

bool TimingWheel::Reschedule(TimerId id, TimePoint deadline) {
  Meta* m = Lookup(id);
  if (m == nullptr) return false;
  if (m->state == NodeState::kInWheel) Unlink(id.index());
  // A kCollected timer becomes kInWheel again, so Run() skips it.
  link(id.index()).deadline_ns = ToNs(deadline);
  Insert(id.index());
  return true;
}

std::optional<TimingWheel::TimePoint> TimingWheel::NextDeadline() const {
  int64_t best = kNever;
  bool any = false;
  // Collected timers that have not run yet (only visible from callbacks): the
  // list is in deadline order, so the first still pending one bounds them.
  if (advancing_) {
    for (size_t i = next_to_run_; i < collected_.size(); ++i) {
      const Meta* m = Lookup(collected_[i]);
      if (m != nullptr && m->state == NodeState::kCollected) {
        best = link(collected_[i].index()).deadline_ns;
        any = true;
        break;
      }
    }
  }
  // Each level holds strictly later ticks than the levels below it, and
  // within a level slots ahead of the cursor are in tick order, so the first
  // occupied slot of the lowest occupied level bounds everything.
  for (int level = 0; level < kLevels; ++level) {
    const int slot_index = FirstOccupied(level);
    if (slot_index < 0) continue;
    best = std::min(
        best, slots_[level * kSlotsPerLevel + slot_index].min_deadline_ns);
    any = true;
    break;
  }
  if (!any) return std::nullopt;
  return FromNs(best);
}

size_t TimingWheel::Advance(TimePoint now) {
  if (advancing_) return 0;
  const int64_t now_ns = ToNs(now);
  advancing_ = true;
  collected_.clear();
  next_to_run_ = 0;
  // If a callback throws, put the timers that did not run back in the wheel
  // (they are due, so they run at the next Advance) and re-arm Advance.
  struct Guard {
    TimingWheel* wheel;
    ~Guard() {
      wheel->RequeueUnrun(wheel->next_to_run_);
      wheel->collected_.clear();
      wheel->next_to_run_ = 0;
      wheel->advancing_ = false;
    }
  } guard{this};
  Collect(now_ns);

  // Fetch the nodes of the next timers while one runs.
  constexpr size_t kAhead = 4;
  for (size_t i = 0; i < kAhead && i < collected_.size(); ++i) {
    Prefetch(&node(collected_[i].index()));
  }
  size_t ran = 0;
  while (next_to_run_ < collected_.size()) {
    if (next_to_run_ + kAhead < collected_.size()) {
      const uint32_t ahead = collected_[next_to_run_ + kAhead].index();
      Prefetch(&node(ahead));
    }
    const TimerId id = collected_[next_to_run_++];
    if (Run(id, now_ns)) ++ran;
  }
  return ran;
}

void TimingWheel::RequeueUnrun(size_t from) {
  for (size_t i = from; i < collected_.size(); ++i) {
    const Meta* m = Lookup(collected_[i]);
    if (m != nullptr && m->state == NodeState::kCollected) {
      Insert(collected_[i].index());
    }
  }
}

// Moves every timer with deadline <= now_ns into collected_, in firing order.
void TimingWheel::Collect(int64_t now_ns) {
  const uint64_t now_tick = TickOf(now_ns);
  while (cur_tick_ < now_tick) {
    // Everything in the current slot has a tick <= cur_tick_ < now_tick, so
    // its deadline is before now.
    ExpireWholeSlot(slots_[cur_tick_ & (kSlotsPerLevel - 1)]);
    // Jump to the next tick where something happens: the first occupied
    // level-0 slot, else the start of the first occupied slot of the lowest
    // occupied level (lower levels always hold earlier ticks).
    uint64_t next_tick = std::numeric_limits<uint64_t>::max();
    for (int level = 0; level < kLevels; ++level) {
      const int slot_index = FirstOccupied(level);
      if (slot_index < 0) continue;
      const int shift = level * kLevelBits;
      const uint64_t block_mask = (uint64_t{1} << (shift + kLevelBits)) - 1;
      next_tick = (cur_tick_ & ~block_mask) |
                  (static_cast<uint64_t>(slot_index) << shift);
      break;
    }
    if (next_tick > now_tick) {
      cur_tick_ = now_tick;
      break;
    }
    cur_tick_ = next_tick;
    Cascade();
  }
  // The tick containing now: only part of it may be due.
  Slot& slot = slots_[cur_tick_ & (kSlotsPerLevel - 1)];
  if (slot.live != 0 && slot.min_deadline_ns <= now_ns) {
    ExpireDuePart(slot, now_ns);
  }
}

// Redistributes the higher-level slots that start at cur_tick_. Insert puts
// each timer straight into its final level (it can fall several levels at
// once), so the order of the levels does not matter. Timers keep their list
// order, and no lower-level slot can already hold a timer of the same tick
// (it would have been scheduled later, when the tick was closer, yet a timer
// with that tick at a lower level implies the cursor already passed this
// slot's start), so FIFO order among equal deadlines survives. Cancelled
// timers met on the way are freed. A slot holding only cancelled timers is
// skipped; they are freed when the slot is next used, or by ReclaimSome.
void TimingWheel::Cascade() {
  for (int level = kLevels - 1; level >= 1; --level) {
    const int shift = level * kLevelBits;
    if ((cur_tick_ & ((uint64_t{1} << shift) - 1)) != 0) continue;
    const uint64_t slot_index = (cur_tick_ >> shift) & (kSlotsPerLevel - 1);
    if (!IsOccupied(level, slot_index)) continue;
    Slot& slot =
        slots_[static_cast<size_t>(level) * kSlotsPerLevel + slot_index];
    uint32_t index = slot.head;
    slot = Slot();
    MarkEmpty(level, slot_index);
    while (index != kNil) {
      const uint32_t next = link(index).next;
      if (meta(index).state == NodeState::kCancelled) {
        Free(index);
      } else {
        Insert(index);
      }
      index = next;
    }
  }
}

void TimingWheel::ExpireWholeSlot(Slot& slot) {
  if (slot.head == kNil) return;
  const size_t begin = collected_.size();
  uint32_t index = slot.head;
  slot = Slot();
  MarkEmpty(0, cur_tick_ & (kSlotsPerLevel - 1));
  while (index != kNil) {
    const uint32_t next = link(index).next;
    Meta& m = meta(index);
    if (m.state == NodeState::kCancelled) {
      Free(index);
    } else {
      m.state = NodeState::kCollected;
      collected_.push_back(TimerId(index, m.generation));
    }
    index = next;
  }
  SortCollectedFrom(begin);
}

void TimingWheel::ExpireDuePart(Slot& slot, int64_t now_ns) {
  const size_t begin = collected_.size();
  int64_t min_left = kNever;
  uint32_t index = slot.head;
  while (index != kNil) {
    const Link& n = link(index);
    const uint32_t next = n.next;
    Meta& m = meta(index);
    if (m.state == NodeState::kCancelled) {
      Unlink(index);
      Free(index);
    } else if (n.deadline_ns <= now_ns) {
      Unlink(index);
      m.state = NodeState::kCollected;
      collected_.push_back(TimerId(index, m.generation));
    } else {
      min_left = std::min(min_left, n.deadline_ns);
    }
    index = next;
  }
  // Exact again, so the next NextDeadline() is later than now_ns.
  slot.min_deadline_ns = min_left;
  SortCollectedFrom(begin);
}

// A slot holds one tick's timers in FIFO order; sub-tick deadlines may be out
// of order. A stable sort by deadline keeps FIFO among equal deadlines.
void TimingWheel::SortCollectedFrom(size_t begin) {
  auto first = collected_.begin() + static_cast<ptrdiff_t>(begin);
  auto by_deadline = [this](TimerId a, TimerId b) {
    return link(a.index()).deadline_ns < link(b.index()).deadline_ns;
  };
  if (!std::is_sorted(first, collected_.end(), by_deadline)) {
    std::stable_sort(first, collected_.end(), by_deadline);
  }
}

bool TimingWheel::Run(TimerId id, int64_t now_ns) {
  Meta* m = Lookup(id);
  // Cancelled (generation changed) or rescheduled (back in the wheel) by an
  // earlier callback.
  if (m == nullptr || m->state != NodeState::kCollected) return false;
  const uint32_t index = id.index();
  if (!m->repeating) {
    Retire(index);  // fired: Cancel() from now on returns false
  } else {
    // Re-arm before running, so the callback can cancel or reschedule itself.
    const int64_t interval_ns = node(index).interval_ns;
    Link& n = link(index);
    n.deadline_ns = NextOnGrid(n.deadline_ns, interval_ns, now_ns);
    Insert(index);
  }
  // The callback runs in place. Afterwards (even if it throws) destroy it if
  // the timer is no longer pending: a one-shot timer (whose node is then
  // recycled), or a repeating timer that cancelled itself (whose node stays
  // linked, cancelled, like any other).
  struct Finish {
    TimingWheel* wheel;
    uint32_t index;
    ~Finish() {
      wheel->running_ = kNil;
      const NodeState state = wheel->meta(index).state;
      if (state == NodeState::kFree) {
        wheel->Recycle(index);
      } else if (state == NodeState::kCancelled) {
        wheel->callback(index).~Callback();
        MarkCallbackDead(wheel->node(index).callback);
      }
    }
  } finish{this, index};
  running_ = index;
  callback(index)();
  return true;
}

}  // namespace mill
