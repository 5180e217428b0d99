#include "timer/timing_wheel.h"

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <limits>
#include <new>
#include <stdexcept>

#include "absl/numeric/bits.h"

namespace mill {
namespace {

constexpr uint32_t kNil = std::numeric_limits<uint32_t>::max();
constexpr int64_t kNsPerTick = 1'000'000;
constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

// Nodes are allocated in chunks so growth never moves live nodes (no pause to
// copy a million timers when the slab doubles).
constexpr uint32_t kChunkBits = 12;
constexpr uint32_t kChunkSize = uint32_t{1} << kChunkBits;

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

}  // namespace

enum class NodeState : uint8_t { kFree, kInWheel, kCollected };

// The hot part of a timer, 24 bytes: what Insert, Cancel and cascading touch.
// Left uninitialised until handed out.
struct TimingWheel::Entry {
  int64_t deadline_ns;
  uint32_t prev;
  uint32_t next;        // also the free-list link
  uint32_t generation;  // never 0, so valid ids are never 0
  uint16_t slot;        // level * kSlotsPerLevel + index, when kInWheel
  NodeState state;
  bool repeating;  // spares firing a one-shot timer a look at intervals_ns
};

// Structure of arrays, so the linked-list walks stay in the small entries.
// A callback is constructed exactly while its entry is not kFree (plus, for
// a one-shot timer, while its callback runs).
struct TimingWheel::Chunk {
  Entry entries[kChunkSize];
  int64_t intervals_ns[kChunkSize];  // repeating timers only
  alignas(Callback) unsigned char callbacks[kChunkSize][sizeof(Callback)];
};

// An intrusive FIFO list of timers plus a lower bound of their deadlines (the
// minimum ever inserted since the slot was last empty; Cancel leaves it
// conservative, a partial expiry makes it exact again).
struct TimingWheel::Slot {
  uint32_t head = kNil;
  uint32_t tail = kNil;
  int64_t min_deadline_ns = kNever;
};

TimingWheel::TimingWheel(TimePoint start)
    : origin_ns_(ToNs(start)),
      slots_(new Slot[kLevels * kSlotsPerLevel]),
      free_head_(kNil),
      running_(kNil) {
  // Every tick the clock can produce fits the levels, so nothing is clamped.
  static_assert(std::numeric_limits<uint64_t>::max() / kNsPerTick <
                    (uint64_t{1} << (kLevelBits * kLevels)),
                "the levels must cover every 1 ms tick");
  static_assert(kLevels * kSlotsPerLevel <= 65536, "Entry::slot is 16 bits");
  static_assert(sizeof(Entry) == 24, "keep the hot entry small");
}

TimingWheel::~TimingWheel() {
  for (uint32_t i = 0; i < high_water_; ++i) {
    if (entry(i).state != NodeState::kFree) callback(i).~Callback();
  }
}

TimingWheel::Entry& TimingWheel::entry(uint32_t index) const {
  return chunks_[index >> kChunkBits]->entries[index & (kChunkSize - 1)];
}

TimingWheel::Callback& TimingWheel::callback(uint32_t index) const {
  return *std::launder(reinterpret_cast<Callback*>(
      chunks_[index >> kChunkBits]->callbacks[index & (kChunkSize - 1)]));
}

TimingWheel::Entry* TimingWheel::Lookup(TimerId id) const {
  if (!id.valid() || id.index() >= high_water_) return nullptr;
  Entry& e = entry(id.index());
  if (e.generation != id.generation() || e.state == NodeState::kFree) {
    return nullptr;
  }
  return &e;
}

uint32_t TimingWheel::AllocateNode() {
  uint32_t index;
  if (free_head_ != kNil) {
    index = free_head_;
    free_head_ = entry(index).next;
  } else {
    if (high_water_ == chunks_.size() * kChunkSize) {
      // Indices must stay below kNil.
      if (high_water_ > kNil - kChunkSize) throw std::length_error("timers");
      chunks_.emplace_back(new Chunk);  // default-init: nothing is written
    }
    index = high_water_++;
    entry(index).generation = 1;
  }
  ++size_;
  return index;
}

// Makes `index` stop being a pending timer: its id goes stale. The callback
// stays constructed until Recycle.
void TimingWheel::Retire(uint32_t index) {
  Entry& e = entry(index);
  e.state = NodeState::kFree;
  if (++e.generation == 0) e.generation = 1;
  --size_;
}

// Destroys the callback of a retired timer and returns its storage. The node
// joins the free list only afterwards, so a callback destructor that
// schedules cannot be handed this node.
void TimingWheel::Recycle(uint32_t index) {
  callback(index).~Callback();
  entry(index).next = free_head_;
  free_head_ = index;
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

void TimingWheel::Insert(uint32_t index) {
  Entry& n = entry(index);
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
  n.state = NodeState::kInWheel;
  n.slot = static_cast<uint16_t>(slot_number);
  n.next = kNil;
  n.prev = slot.tail;
  if (slot.tail == kNil) {
    slot.head = index;
    MarkOccupied(level, slot_index);
  } else {
    entry(slot.tail).next = index;
  }
  slot.tail = index;
  slot.min_deadline_ns = std::min(slot.min_deadline_ns, n.deadline_ns);
}

void TimingWheel::Unlink(uint32_t index) {
  Entry& n = entry(index);
  Slot& slot = slots_[n.slot];
  if (n.prev == kNil) {
    slot.head = n.next;
  } else {
    entry(n.prev).next = n.next;
  }
  if (n.next == kNil) {
    slot.tail = n.prev;
  } else {
    entry(n.next).prev = n.prev;
  }
  if (slot.head == kNil) {
    MarkEmpty(n.slot / kSlotsPerLevel, n.slot % kSlotsPerLevel);
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

TimerId TimingWheel::Commit(uint32_t index, TimePoint deadline,
                            int64_t interval_ns, Callback&& callback) {
  Chunk& chunk = *chunks_[index >> kChunkBits];
  const uint32_t offset = index & (kChunkSize - 1);
  new (chunk.callbacks[offset]) Callback(std::move(callback));
  if (interval_ns != 0) chunk.intervals_ns[offset] = interval_ns;
  Entry& e = chunk.entries[offset];
  e.deadline_ns = ToNs(deadline);
  e.repeating = interval_ns != 0;
  Insert(index);
  return TimerId(index, e.generation);
}

bool TimingWheel::Cancel(TimerId id) {
  Entry* e = Lookup(id);
  if (e == nullptr) return false;
  // A kCollected timer is skipped by Run() once its generation changes.
  if (e->state == NodeState::kInWheel) Unlink(id.index());
  Retire(id.index());
  // A repeating timer cancelling itself: Run() recycles it when it returns.
  if (id.index() != running_) Recycle(id.index());
  return true;
}

bool TimingWheel::Reschedule(TimerId id, TimePoint deadline) {
  Entry* e = Lookup(id);
  if (e == nullptr) return false;
  if (e->state == NodeState::kInWheel) Unlink(id.index());
  // A kCollected timer becomes kInWheel again, so Run() skips it.
  e->deadline_ns = ToNs(deadline);
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
      const Entry* n = Lookup(collected_[i]);
      if (n != nullptr && n->state == NodeState::kCollected) {
        best = n->deadline_ns;
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

  size_t ran = 0;
  while (next_to_run_ < collected_.size()) {
    const TimerId id = collected_[next_to_run_++];
    if (Run(id, now_ns)) ++ran;
  }
  return ran;
}

void TimingWheel::RequeueUnrun(size_t from) {
  for (size_t i = from; i < collected_.size(); ++i) {
    Entry* n = Lookup(collected_[i]);
    if (n != nullptr && n->state == NodeState::kCollected) {
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
  if (slot.head != kNil && slot.min_deadline_ns <= now_ns) {
    ExpireDuePart(slot, now_ns);
  }
}

// Redistributes the higher-level slots that start at cur_tick_. Insert puts
// each timer straight into its final level (it can fall several levels at
// once), so the order of the levels does not matter. Timers keep their list
// order,
// and no lower-level slot can already hold a timer of the same tick (it would
// have been scheduled later, when the tick was closer, yet a timer with that
// tick at a lower level implies the cursor already passed this slot's start),
// so FIFO order among equal deadlines survives.
void TimingWheel::Cascade() {
  for (int level = kLevels - 1; level >= 1; --level) {
    const int shift = level * kLevelBits;
    if ((cur_tick_ & ((uint64_t{1} << shift) - 1)) != 0) continue;
    const uint64_t slot_index = (cur_tick_ >> shift) & (kSlotsPerLevel - 1);
    if (!IsOccupied(level, slot_index)) continue;
    Slot& slot = slots_[level * kSlotsPerLevel + slot_index];
    uint32_t index = slot.head;
    slot = Slot();
    MarkEmpty(level, slot_index);
    while (index != kNil) {
      const uint32_t next = entry(index).next;
      Insert(index);
      index = next;
    }
  }
}

void TimingWheel::ExpireWholeSlot(Slot& slot) {
  if (slot.head == kNil) return;
  const size_t begin = collected_.size();
  uint32_t index = slot.head;
  while (index != kNil) {
    Entry& n = entry(index);
    n.state = NodeState::kCollected;
    collected_.push_back(TimerId(index, n.generation));
    index = n.next;
  }
  MarkEmpty(0, cur_tick_ & (kSlotsPerLevel - 1));
  slot = Slot();
  SortCollectedFrom(begin);
}

void TimingWheel::ExpireDuePart(Slot& slot, int64_t now_ns) {
  const size_t begin = collected_.size();
  int64_t min_left = kNever;
  uint32_t index = slot.head;
  while (index != kNil) {
    Entry& n = entry(index);
    const uint32_t next = n.next;
    if (n.deadline_ns <= now_ns) {
      Unlink(index);
      n.state = NodeState::kCollected;
      collected_.push_back(TimerId(index, n.generation));
    } else {
      min_left = std::min(min_left, n.deadline_ns);
    }
    index = next;
  }
  // Exact again, so the next NextDeadline() is later than now_ns.
  if (slot.head != kNil) slot.min_deadline_ns = min_left;
  SortCollectedFrom(begin);
}

// A slot holds one tick's timers in FIFO order; sub-tick deadlines may be out
// of order. A stable sort by deadline keeps FIFO among equal deadlines.
void TimingWheel::SortCollectedFrom(size_t begin) {
  auto first = collected_.begin() + static_cast<ptrdiff_t>(begin);
  auto by_deadline = [this](TimerId a, TimerId b) {
    return entry(a.index()).deadline_ns < entry(b.index()).deadline_ns;
  };
  if (!std::is_sorted(first, collected_.end(), by_deadline)) {
    std::stable_sort(first, collected_.end(), by_deadline);
  }
}

bool TimingWheel::Run(TimerId id, int64_t now_ns) {
  Entry* e = Lookup(id);
  // Cancelled (generation changed) or rescheduled (back in the wheel) by an
  // earlier callback.
  if (e == nullptr || e->state != NodeState::kCollected) return false;
  const uint32_t index = id.index();
  if (!e->repeating) {
    Retire(index);  // fired: Cancel() from now on returns false
  } else {
    // Re-arm before running, so the callback can cancel or reschedule itself.
    const int64_t interval_ns =
        chunks_[index >> kChunkBits]->intervals_ns[index & (kChunkSize - 1)];
    e->deadline_ns = NextOnGrid(e->deadline_ns, interval_ns, now_ns);
    Insert(index);
  }
  // The callback runs in place. Afterwards (even if it throws) recycle the
  // node if it is no longer pending: a one-shot timer, or a repeating timer
  // that cancelled itself.
  struct Finish {
    TimingWheel* wheel;
    uint32_t index;
    ~Finish() {
      wheel->running_ = kNil;
      if (wheel->entry(index).state == NodeState::kFree) wheel->Recycle(index);
    }
  } finish{this, index};
  running_ = index;
  callback(index)();
  return true;
}

}  // namespace mill
