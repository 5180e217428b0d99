#include "timer/timing_wheel.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace mill {
namespace {

using std::chrono::hours;
using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::nanoseconds;
using std::chrono::seconds;
using TimePoint = TimingWheel::TimePoint;

// An arbitrary, non-zero origin so nothing relies on the epoch.
const TimePoint kStart = TimePoint(hours(1234) + nanoseconds(567));

TimePoint At(nanoseconds offset) { return kStart + offset; }
TimePoint AtNs(int64_t offset_ns) { return kStart + nanoseconds(offset_ns); }
int64_t NsOf(TimePoint t) {
  return std::chrono::duration_cast<nanoseconds>(t - kStart).count();
}

// Records which timer ran at which Advance time, and checks "never early".
struct Log {
  struct Entry {
    int name;
    int64_t deadline_ns;
    int64_t now_ns;
  };
  std::vector<Entry> entries;
  int64_t now_ns = 0;

  TimingWheel::Callback Record(int name, int64_t deadline_ns) {
    return [this, name, deadline_ns] {
      EXPECT_LE(deadline_ns, now_ns) << "timer " << name << " fired early";
      entries.push_back({name, deadline_ns, now_ns});
    };
  }
  std::vector<int> Names() const {
    std::vector<int> names;
    for (const Entry& e : entries) names.push_back(e.name);
    return names;
  }
};

// Advances the wheel and the log's notion of now together.
size_t AdvanceTo(TimingWheel& wheel, Log& log, int64_t now_ns) {
  log.now_ns = now_ns;
  return wheel.Advance(AtNs(now_ns));
}

TEST(TimerIdTest, DefaultIsInvalid) {
  TimerId id;
  EXPECT_FALSE(id.valid());
  EXPECT_EQ(id.value(), 0u);
  EXPECT_EQ(id, TimerId());
}

TEST(TimingWheelTest, EmptyWheel) {
  TimingWheel wheel(kStart);
  EXPECT_EQ(wheel.size(), 0u);
  EXPECT_TRUE(wheel.empty());
  EXPECT_EQ(wheel.NextDeadline(), std::nullopt);
  EXPECT_EQ(wheel.Advance(At(hours(5))), 0u);
  EXPECT_FALSE(wheel.Cancel(TimerId()));
  EXPECT_FALSE(wheel.Reschedule(TimerId(), At(seconds(1))));
}

TEST(TimingWheelTest, InvalidArgumentsScheduleNothing) {
  TimingWheel wheel(kStart);
  EXPECT_FALSE(wheel.Schedule(At(milliseconds(1)), nullptr).valid());
  EXPECT_FALSE(
      wheel.ScheduleRepeating(At(milliseconds(1)), milliseconds(0), [] {})
          .valid());
  EXPECT_FALSE(
      wheel.ScheduleRepeating(At(milliseconds(1)), nanoseconds(-5), [] {})
          .valid());
  EXPECT_FALSE(wheel.ScheduleRepeating(At(milliseconds(1)), seconds(1), nullptr)
                   .valid());
  EXPECT_EQ(wheel.size(), 0u);
  EXPECT_EQ(wheel.NextDeadline(), std::nullopt);
}

TEST(TimingWheelTest, FiresInDeadlineOrderAtFirstCoveringAdvance) {
  TimingWheel wheel(kStart);
  Log log;
  std::mt19937_64 rng(42);
  std::vector<int64_t> deadlines(500);
  for (int i = 0; i < 500; ++i) {
    deadlines[i] = static_cast<int64_t>(rng() % 2'000'000'000);  // 0..2 s
    wheel.Schedule(AtNs(deadlines[i]), log.Record(i, deadlines[i]));
  }
  EXPECT_EQ(wheel.size(), 500u);
  int64_t prev_now = 0;
  for (int64_t now = 0; now <= 2'100'000'000; now += 7'300'123) {
    AdvanceTo(wheel, log, now);
    for (const Log::Entry& e : log.entries) {
      if (e.now_ns == now) {
        EXPECT_GT(e.deadline_ns, prev_now) << "should have fired earlier";
      }
    }
    prev_now = now;
  }
  ASSERT_EQ(log.entries.size(), 500u);
  std::vector<int> expected(500);
  for (int i = 0; i < 500; ++i) expected[i] = i;
  std::stable_sort(expected.begin(), expected.end(),
                   [&](int a, int b) { return deadlines[a] < deadlines[b]; });
  EXPECT_EQ(log.Names(), expected);
  EXPECT_TRUE(wheel.empty());
}

TEST(TimingWheelTest, NeverFiresEarlyWithinATick) {
  TimingWheel wheel(kStart);
  Log log;
  const int64_t deadline = 1'500'000;  // +1.5 ms
  wheel.Schedule(AtNs(deadline), log.Record(1, deadline));
  EXPECT_EQ(AdvanceTo(wheel, log, 1'000'000), 0u);     // +1 ms
  EXPECT_EQ(AdvanceTo(wheel, log, deadline - 1), 0u);  // 1 ns early
  EXPECT_EQ(AdvanceTo(wheel, log, 2'000'000), 1u);     // +2 ms
  EXPECT_EQ(log.Names(), std::vector<int>{1});
}

TEST(TimingWheelTest, FiresExactlyAtDeadline) {
  TimingWheel wheel(kStart);
  Log log;
  for (int64_t deadline : {1'500'000, 1'000'000, 999'999, 1, 0}) {
    wheel.Schedule(AtNs(deadline),
                   log.Record(static_cast<int>(deadline), deadline));
  }
  EXPECT_EQ(AdvanceTo(wheel, log, 0), 1u);
  EXPECT_EQ(AdvanceTo(wheel, log, 999'999), 2u);
  EXPECT_EQ(AdvanceTo(wheel, log, 1'000'000), 1u);
  EXPECT_EQ(AdvanceTo(wheel, log, 1'499'999), 0u);
  EXPECT_EQ(AdvanceTo(wheel, log, 1'500'000), 1u);
  EXPECT_EQ(log.Names(),
            (std::vector<int>{0, 1, 999'999, 1'000'000, 1'500'000}));
}

TEST(TimingWheelTest, SameDeadlineIsFifo) {
  TimingWheel wheel(kStart);
  Log log;
  // Interleave two deadlines in the same tick and one in another.
  for (int i = 0; i < 300; ++i) {
    const int64_t deadline = i % 3 == 0   ? 5'250'000
                             : i % 3 == 1 ? 5'100'000
                                          : 9'000'000;
    wheel.Schedule(AtNs(deadline), log.Record(i, deadline));
  }
  AdvanceTo(wheel, log, 10'000'000);
  std::vector<int> expected;
  for (int r : {1, 0, 2}) {
    for (int i = 0; i < 300; ++i) {
      if (i % 3 == r) expected.push_back(i);
    }
  }
  EXPECT_EQ(log.Names(), expected);
}

// Timers with one deadline, scheduled while it is days, hours, minutes,
// seconds, milliseconds and microseconds away, so they enter the wheel at
// every level and cascade down at different times: they still run FIFO.
TEST(TimingWheelTest, SameDeadlineIsFifoAcrossCascading) {
  TimingWheel wheel(kStart);
  Log log;
  auto ns = [](auto d) {
    return std::chrono::duration_cast<nanoseconds>(d).count();
  };
  const int64_t d = ns(hours(24 * 100) + milliseconds(3) + microseconds(250));
  const int64_t lead_times[] = {
      d,  // scheduled at the start: level 4
      ns(hours(24 * 30)),
      ns(hours(30)),
      ns(hours(2)),
      ns(minutes(5)),
      ns(seconds(30)),
      ns(seconds(3)),
      ns(milliseconds(50)),
      ns(microseconds(100)),
      3,  // within the same tick, just before the deadline
  };
  constexpr size_t kRounds = sizeof(lead_times) / sizeof(lead_times[0]);
  int name = 0;
  std::vector<int> expected_early;  // deadline d - 2, FIFO
  std::vector<int> expected;        // deadline d, FIFO
  for (int64_t lead : lead_times) {
    EXPECT_EQ(AdvanceTo(wheel, log, d - lead), 0u);
    // Three with deadline d, plus neighbours just before and after.
    for (int k = 0; k < 3; ++k) {
      expected.push_back(name);
      wheel.Schedule(AtNs(d), log.Record(name++, d));
    }
    expected_early.push_back(1000 + name);
    wheel.Schedule(AtNs(d - 2), log.Record(1000 + name, d - 2));
    wheel.Schedule(AtNs(d + 1), log.Record(2000 + name, d + 1));
  }
  EXPECT_EQ(AdvanceTo(wheel, log, d), kRounds * 4);
  expected_early.insert(expected_early.end(), expected.begin(), expected.end());
  EXPECT_EQ(log.Names(), expected_early);
  EXPECT_EQ(AdvanceTo(wheel, log, d + 1), kRounds);
  EXPECT_TRUE(wheel.empty());
}

TEST(TimingWheelTest, CancelBeforeDue) {
  TimingWheel wheel(kStart);
  Log log;
  TimerId a = wheel.Schedule(At(milliseconds(10)), log.Record(1, 10'000'000));
  TimerId b = wheel.Schedule(At(hours(10)), log.Record(2, 0));
  wheel.Schedule(At(milliseconds(10)), log.Record(3, 10'000'000));
  EXPECT_EQ(wheel.size(), 3u);
  EXPECT_TRUE(wheel.Cancel(a));
  EXPECT_FALSE(wheel.Cancel(a));
  EXPECT_TRUE(wheel.Cancel(b));
  EXPECT_EQ(wheel.size(), 1u);
  AdvanceTo(wheel, log,
            std::chrono::duration_cast<nanoseconds>(hours(20)).count());
  EXPECT_EQ(log.Names(), std::vector<int>{3});
  EXPECT_TRUE(wheel.empty());
}

TEST(TimingWheelTest, CancelAfterFiredReturnsFalse) {
  TimingWheel wheel(kStart);
  Log log;
  TimerId a = wheel.Schedule(At(milliseconds(1)), log.Record(1, 1'000'000));
  AdvanceTo(wheel, log, 1'000'000);
  EXPECT_EQ(log.entries.size(), 1u);
  EXPECT_FALSE(wheel.Cancel(a));
  EXPECT_FALSE(wheel.Reschedule(a, At(seconds(1))));
}

TEST(TimingWheelTest, StaleIdDoesNotTouchTheTimerReusingItsNode) {
  TimingWheel wheel(kStart);
  Log log;
  TimerId a = wheel.Schedule(At(milliseconds(5)), log.Record(1, 5'000'000));
  EXPECT_TRUE(wheel.Cancel(a));
  // The free list hands the same node out again.
  TimerId b = wheel.Schedule(At(milliseconds(6)), log.Record(2, 6'000'000));
  EXPECT_NE(a, b);
  EXPECT_FALSE(wheel.Cancel(a));
  EXPECT_FALSE(wheel.Reschedule(a, At(milliseconds(1))));
  EXPECT_EQ(wheel.size(), 1u);
  AdvanceTo(wheel, log, 6'000'000);
  EXPECT_EQ(log.Names(), std::vector<int>{2});
  EXPECT_FALSE(wheel.Cancel(b));
}

TEST(TimingWheelTest, CancelAnotherTimerDueInTheSameAdvance) {
  TimingWheel wheel(kStart);
  Log log;
  TimerId victim;
  bool cancelled = false;
  wheel.Schedule(At(microseconds(1200)), [&] {
    log.entries.push_back({1, 0, log.now_ns});
    cancelled = wheel.Cancel(victim);
  });
  victim = wheel.Schedule(At(microseconds(1300)), log.Record(2, 1'300'000));
  wheel.Schedule(At(microseconds(1400)), log.Record(3, 1'400'000));
  EXPECT_EQ(AdvanceTo(wheel, log, 1'500'000), 2u);
  EXPECT_TRUE(cancelled);
  EXPECT_EQ(log.Names(), (std::vector<int>{1, 3}));
  EXPECT_TRUE(wheel.empty());
}

TEST(TimingWheelTest, CancelAnotherTimerDueInALaterTickOfTheSameAdvance) {
  TimingWheel wheel(kStart);
  Log log;
  TimerId victim;
  bool cancelled = false;
  wheel.Schedule(At(milliseconds(1)),
                 [&] { cancelled = wheel.Cancel(victim); });
  victim = wheel.Schedule(At(seconds(90)), log.Record(2, 0));
  wheel.Schedule(At(seconds(91)), log.Record(3, 91'000'000'000));
  AdvanceTo(wheel, log, 100'000'000'000);
  EXPECT_TRUE(cancelled);
  EXPECT_EQ(log.Names(), std::vector<int>{3});
}

TEST(TimingWheelTest, OneShotCancellingItselfInItsCallbackGetsFalse) {
  TimingWheel wheel(kStart);
  TimerId self;
  std::optional<bool> result;
  self =
      wheel.Schedule(At(milliseconds(3)), [&] { result = wheel.Cancel(self); });
  EXPECT_EQ(wheel.Advance(At(milliseconds(3))), 1u);
  ASSERT_TRUE(result.has_value());
  EXPECT_FALSE(*result);  // it already fired
  EXPECT_TRUE(wheel.empty());
}

TEST(TimingWheelTest, RepeatingTimerCancellingItselfStops) {
  TimingWheel wheel(kStart);
  TimerId self;
  int runs = 0;
  std::optional<bool> result;
  self = wheel.ScheduleRepeating(At(milliseconds(2)), milliseconds(2), [&] {
    if (++runs == 3) result = wheel.Cancel(self);
  });
  for (int ms = 1; ms <= 20; ++ms) wheel.Advance(At(milliseconds(ms)));
  EXPECT_EQ(runs, 3);
  ASSERT_TRUE(result.has_value());
  EXPECT_TRUE(*result);
  EXPECT_TRUE(wheel.empty());
  EXPECT_EQ(wheel.NextDeadline(), std::nullopt);
}

TEST(TimingWheelTest, CallbackMayScheduleWithoutRunningInTheSameAdvance) {
  TimingWheel wheel(kStart);
  Log log;
  wheel.Schedule(At(milliseconds(1)), [&] {
    log.entries.push_back({1, 0, log.now_ns});
    // Already due, and exactly due: both wait for the next Advance.
    wheel.Schedule(At(microseconds(500)), log.Record(2, 500'000));
    wheel.Schedule(At(milliseconds(1)), log.Record(3, 1'000'000));
    wheel.Schedule(At(milliseconds(4)), log.Record(4, 4'000'000));
  });
  EXPECT_EQ(AdvanceTo(wheel, log, 1'000'000), 1u);
  EXPECT_EQ(wheel.size(), 3u);
  EXPECT_EQ(wheel.NextDeadline(), At(microseconds(500)));
  EXPECT_EQ(AdvanceTo(wheel, log, 1'000'000), 2u);
  EXPECT_EQ(AdvanceTo(wheel, log, 3'999'999), 0u);
  EXPECT_EQ(AdvanceTo(wheel, log, 4'000'000), 1u);
  EXPECT_EQ(log.Names(), (std::vector<int>{1, 2, 3, 4}));
}

TEST(TimingWheelTest, CallbackMayScheduleManyTimersGrowingTheSlab) {
  TimingWheel wheel(kStart);
  int later_runs = 0;
  bool first_ran = false;
  std::unique_ptr<int> payload = std::make_unique<int>(7);
  int seen = 0;
  wheel.Schedule(At(milliseconds(1)), [&, p = std::move(payload)] {
    for (int i = 0; i < 20'000; ++i) {  // several slab chunks
      wheel.Schedule(At(milliseconds(2 + i % 50)), [&] { ++later_runs; });
    }
    seen = *p;  // the running callback survived the growth
    first_ran = true;
  });
  wheel.Advance(At(milliseconds(1)));
  EXPECT_TRUE(first_ran);
  EXPECT_EQ(seen, 7);
  EXPECT_EQ(wheel.size(), 20'000u);
  EXPECT_EQ(wheel.Advance(At(seconds(1))), 20'000u);
  EXPECT_EQ(later_runs, 20'000);
}

TEST(TimingWheelTest, RescheduleMovesTheTimer) {
  TimingWheel wheel(kStart);
  Log log;
  TimerId a = wheel.Schedule(At(milliseconds(10)), log.Record(1, 0));
  wheel.Schedule(At(milliseconds(20)), log.Record(2, 20'000'000));
  EXPECT_TRUE(wheel.Reschedule(a, At(minutes(10))));
  EXPECT_EQ(wheel.size(), 2u);
  EXPECT_EQ(AdvanceTo(wheel, log, 20'000'000), 1u);
  EXPECT_EQ(log.Names(), std::vector<int>{2});
  // Earlier again, and into the past: runs at the next Advance.
  EXPECT_TRUE(wheel.Reschedule(a, At(milliseconds(15))));
  EXPECT_EQ(wheel.NextDeadline(), At(milliseconds(15)));
  EXPECT_EQ(AdvanceTo(wheel, log, 20'000'000), 1u);
  EXPECT_EQ(log.Names(), (std::vector<int>{2, 1}));
  EXPECT_FALSE(wheel.Reschedule(a, At(hours(1))));
}

TEST(TimingWheelTest, RescheduleADueTimerFromACallbackPostponesIt) {
  TimingWheel wheel(kStart);
  Log log;
  TimerId b;
  wheel.Schedule(At(milliseconds(1)), [&] {
    EXPECT_TRUE(wheel.Reschedule(b, At(milliseconds(8))));
  });
  b = wheel.Schedule(At(milliseconds(1)), log.Record(2, 8'000'000));
  EXPECT_EQ(AdvanceTo(wheel, log, 5'000'000), 1u);
  EXPECT_TRUE(log.entries.empty());
  EXPECT_EQ(AdvanceTo(wheel, log, 8'000'000), 1u);
  EXPECT_EQ(log.Names(), std::vector<int>{2});
}

// Each period is observed late by a varying amount (as a loop would), yet
// the deadlines stay exactly k * interval.
TEST(TimingWheelTest, RepeatingDoesNotDriftOverTenThousandPeriods) {
  TimingWheel wheel(kStart);
  const int64_t interval = 1'300'000;  // 1.3 ms: not a whole tick
  std::vector<int64_t> fired_at;
  int64_t now = 0;
  wheel.ScheduleRepeating(AtNs(interval), nanoseconds(interval),
                          [&] { fired_at.push_back(now); });
  std::mt19937_64 rng(5);
  for (int64_t k = 1; k <= 10'000; ++k) {
    now = k * interval - 1;
    ASSERT_EQ(wheel.Advance(AtNs(now)), 0u) << "early at period " << k;
    now = k * interval + static_cast<int64_t>(rng() % (interval / 2));
    ASSERT_EQ(wheel.Advance(AtNs(now)), 1u) << "late at period " << k;
    ASSERT_EQ(wheel.NextDeadline(), AtNs((k + 1) * interval)) << k;
  }
  ASSERT_EQ(fired_at.size(), 10'000u);
  for (int64_t k = 1; k <= 10'000; ++k) {
    ASSERT_GE(fired_at[k - 1], k * interval);
    ASSERT_LT(fired_at[k - 1], k * interval + interval / 2);
  }
  EXPECT_EQ(wheel.size(), 1u);
}

TEST(TimingWheelTest, RepeatingWithLongIntervalCascadesWithoutDrift) {
  TimingWheel wheel(kStart);
  const int64_t interval =
      std::chrono::duration_cast<nanoseconds>(hours(5) + nanoseconds(7))
          .count();
  int runs = 0;
  wheel.ScheduleRepeating(AtNs(interval), nanoseconds(interval),
                          [&] { ++runs; });
  for (int k = 1; k <= 200; ++k) {
    EXPECT_EQ(wheel.Advance(AtNs(k * interval - 1)), 0u);
    EXPECT_EQ(wheel.Advance(AtNs(k * interval)), 1u);
  }
  EXPECT_EQ(runs, 200);
}

TEST(TimingWheelTest, RepeatingFiresOnceAndSkipsMissedPeriods) {
  TimingWheel wheel(kStart);
  int runs = 0;
  wheel.ScheduleRepeating(At(milliseconds(10)), milliseconds(10),
                          [&] { ++runs; });
  EXPECT_EQ(wheel.Advance(At(milliseconds(55))), 1u);  // 10..50 missed
  EXPECT_EQ(runs, 1);
  // Next is on the original grid, strictly after now: 60 ms, not 65 ms.
  EXPECT_EQ(wheel.NextDeadline(), At(milliseconds(60)));
  EXPECT_EQ(wheel.Advance(At(milliseconds(60) - nanoseconds(1))), 0u);
  EXPECT_EQ(wheel.Advance(At(milliseconds(60))), 1u);
  // Landing exactly on a grid point: that point counts as run, next is +1.
  EXPECT_EQ(wheel.Advance(At(milliseconds(100))), 1u);
  EXPECT_EQ(wheel.NextDeadline(), At(milliseconds(110)));
  EXPECT_EQ(runs, 3);
}

// Timers at every level fire at their exact Advance and not one nanosecond
// before, whether the wheel gets there in one jump or through the earlier
// ones.
TEST(TimingWheelTest, CascadesAcrossLevels) {
  const std::vector<nanoseconds> offsets = {
      milliseconds(1),
      milliseconds(70),
      seconds(5),
      minutes(10),
      hours(72),
      hours(24 * 400) + microseconds(1500),
      hours(24 * 365 * 30) + nanoseconds(3),
  };
  // All in one wheel, visited in order.
  {
    TimingWheel wheel(kStart);
    Log log;
    for (size_t i = 0; i < offsets.size(); ++i) {
      wheel.Schedule(At(offsets[i]),
                     log.Record(static_cast<int>(i), offsets[i].count()));
    }
    for (size_t i = 0; i < offsets.size(); ++i) {
      ASSERT_EQ(AdvanceTo(wheel, log, offsets[i].count() - 1), 0u) << i;
      ASSERT_EQ(wheel.NextDeadline(), At(offsets[i])) << i;
      ASSERT_EQ(AdvanceTo(wheel, log, offsets[i].count()), 1u) << i;
      ASSERT_EQ(log.entries.back().name, static_cast<int>(i));
    }
    EXPECT_TRUE(wheel.empty());
  }
  // Each alone, reached in one jump.
  for (size_t i = 0; i < offsets.size(); ++i) {
    TimingWheel wheel(kStart);
    Log log;
    wheel.Schedule(At(offsets[i]), log.Record(1, offsets[i].count()));
    EXPECT_EQ(AdvanceTo(wheel, log, offsets[i].count() - 1), 0u) << i;
    EXPECT_EQ(AdvanceTo(wheel, log, offsets[i].count()), 1u) << i;
  }
}

TEST(TimingWheelTest, ExtremeDeadlines) {
  TimingWheel wheel(kStart);
  int far = 0;
  int past = 0;
  wheel.Schedule(TimePoint::max(), [&] { ++far; });
  wheel.Schedule(TimePoint::min(), [&] { ++past; });
  EXPECT_EQ(wheel.NextDeadline(), TimePoint::min());
  EXPECT_EQ(wheel.Advance(kStart), 1u);
  EXPECT_EQ(past, 1);
  EXPECT_EQ(wheel.NextDeadline(), TimePoint::max());
  EXPECT_EQ(wheel.Advance(At(hours(24 * 365 * 200))), 0u);
  EXPECT_EQ(wheel.Advance(TimePoint::max() - nanoseconds(1)), 0u);
  EXPECT_EQ(wheel.NextDeadline(), TimePoint::max());
  EXPECT_EQ(wheel.Advance(TimePoint::max()), 1u);
  EXPECT_EQ(far, 1);
}

TEST(TimingWheelTest, PastDeadlinesRunAtTheNextAdvanceInDeadlineOrder) {
  TimingWheel wheel(kStart);
  Log log;
  AdvanceTo(wheel, log, 50'000'000);
  wheel.Schedule(At(milliseconds(30)), log.Record(1, 30'000'000));
  wheel.Schedule(At(milliseconds(-5)), log.Record(2, -5'000'000));
  wheel.Schedule(At(milliseconds(50)), log.Record(3, 50'000'000));
  wheel.Schedule(At(nanoseconds(50'000'400)), log.Record(4, 50'000'400));
  EXPECT_EQ(wheel.NextDeadline(), At(milliseconds(-5)));
  // Time going backwards still runs what is due at that time.
  EXPECT_EQ(AdvanceTo(wheel, log, 40'000'000), 2u);
  EXPECT_EQ(AdvanceTo(wheel, log, 50'000'000), 1u);
  EXPECT_EQ(AdvanceTo(wheel, log, 50'000'400), 1u);
  EXPECT_EQ(log.Names(), (std::vector<int>{2, 1, 3, 4}));
}

TEST(TimingWheelTest, NextDeadlineIsExactWithoutCancellations) {
  TimingWheel wheel(kStart);
  EXPECT_EQ(wheel.NextDeadline(), std::nullopt);
  wheel.Schedule(At(hours(80)), [] {});
  EXPECT_EQ(wheel.NextDeadline(), At(hours(80)));
  wheel.Schedule(At(seconds(7) + nanoseconds(3)), [] {});
  EXPECT_EQ(wheel.NextDeadline(), At(seconds(7) + nanoseconds(3)));
  wheel.Schedule(At(microseconds(1700)), [] {});
  wheel.Schedule(At(microseconds(1600)), [] {});
  EXPECT_EQ(wheel.NextDeadline(), At(microseconds(1600)));
  wheel.Advance(At(microseconds(1650)));
  EXPECT_EQ(wheel.NextDeadline(), At(microseconds(1700)));
  wheel.Advance(At(seconds(1)));
  EXPECT_EQ(wheel.NextDeadline(), At(seconds(7) + nanoseconds(3)));
  wheel.Advance(At(hours(1)));
  EXPECT_EQ(wheel.NextDeadline(), At(hours(80)));
  wheel.Advance(At(hours(80)));
  EXPECT_EQ(wheel.NextDeadline(), std::nullopt);
}

// Drives the wheel the way a loop does, sleeping exactly until
// NextDeadline(): every timer runs at its deadline, and cancellations (which
// leave the bound conservative) never make the loop spin.
TEST(TimingWheelTest, NextDeadlineDrivenLoopMakesProgress) {
  TimingWheel wheel(kStart);
  Log log;
  std::mt19937_64 rng(7);
  std::vector<TimerId> ids;
  std::vector<int64_t> deadlines;
  for (int i = 0; i < 2000; ++i) {
    // Mostly sub-tick spreads within a few ticks, some far.
    const int64_t d = i % 10 == 0
                          ? static_cast<int64_t>(rng() % 10'000'000'000'000)
                          : static_cast<int64_t>(rng() % 5'000'000);
    deadlines.push_back(d);
    ids.push_back(wheel.Schedule(AtNs(d), log.Record(i, d)));
  }
  // Cancel the earliest half: their slots' bounds become conservative.
  std::vector<int> order(2000);
  for (int i = 0; i < 2000; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return deadlines[a] < deadlines[b]; });
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(wheel.Cancel(ids[order[i]]));
  int iterations = 0;
  while (std::optional<TimePoint> next = wheel.NextDeadline()) {
    ASSERT_LE(NsOf(*next), deadlines[order[log.entries.size() + 1000]]);
    AdvanceTo(wheel, log, NsOf(*next));
    ASSERT_LT(++iterations, 4000);
  }
  ASSERT_EQ(log.entries.size(), 1000u);
  for (size_t i = 0; i < 1000; ++i) {
    EXPECT_EQ(log.entries[i].name, order[1000 + i]);
    EXPECT_EQ(log.entries[i].now_ns, log.entries[i].deadline_ns);
  }
}

TEST(TimingWheelTest, NextDeadlineFromACallbackSeesDueTimersNotYetRun) {
  TimingWheel wheel(kStart);
  std::optional<TimePoint> seen;
  wheel.Schedule(At(microseconds(1100)), [&] { seen = wheel.NextDeadline(); });
  wheel.Schedule(At(microseconds(1200)), [] {});
  wheel.Schedule(At(hours(1)), [] {});
  wheel.Advance(At(milliseconds(2)));
  EXPECT_EQ(seen, At(microseconds(1200)));
  EXPECT_EQ(wheel.NextDeadline(), At(hours(1)));
}

TEST(TimingWheelTest, LongJumpFiresEverythingInDeadlineOrder) {
  TimingWheel wheel(kStart);
  Log log;
  std::mt19937_64 rng(99);
  const int64_t span =
      std::chrono::duration_cast<nanoseconds>(hours(6)).count();
  std::vector<int64_t> deadlines;
  for (int i = 0; i < 20'000; ++i) {
    // Every fourth reuses an earlier deadline, to check ties too.
    const int64_t d = i % 4 == 3 ? deadlines[rng() % deadlines.size()]
                                 : static_cast<int64_t>(rng() % span);
    deadlines.push_back(d);
    wheel.Schedule(AtNs(d), log.Record(i, d));
  }
  const size_t before_jump = AdvanceTo(wheel, log, span / 3);
  EXPECT_EQ(before_jump, log.entries.size());
  EXPECT_GT(before_jump, 0u);
  EXPECT_EQ(AdvanceTo(wheel, log, span * 2), 20'000u - before_jump);
  std::vector<int> expected(20'000);
  for (int i = 0; i < 20'000; ++i) expected[i] = i;
  std::stable_sort(expected.begin(), expected.end(),
                   [&](int a, int b) { return deadlines[a] < deadlines[b]; });
  EXPECT_EQ(log.Names(), expected);
}

TEST(TimingWheelTest, MillionTimersHalfCancelledRestFireExactlyOnce) {
  constexpr int kCount = 1'000'000;
  // Callbacks capture a pointer and an index, so they fit AnyInvocable's
  // inline storage: no heap allocation per timer.
  struct State {
    std::vector<int64_t> deadlines = std::vector<int64_t>(kCount);
    std::vector<bool> fired = std::vector<bool>(kCount, false);
    int duplicates = 0;
    int out_of_window = 0;
    int out_of_order = 0;
    int64_t prev_now = 0;
    int64_t now = 0;
    int64_t last_deadline = -1;

    void Fire(int i) {
      if (fired[i]) ++duplicates;
      fired[i] = true;
      // Ran at the first Advance that reached its deadline, in order.
      if (deadlines[i] > now || deadlines[i] <= prev_now) ++out_of_window;
      if (deadlines[i] < last_deadline) ++out_of_order;
      last_deadline = deadlines[i];
    }
  } state;
  TimingWheel wheel(kStart);
  std::mt19937_64 rng(2024);
  const int64_t hour =
      std::chrono::duration_cast<nanoseconds>(hours(1)).count();
  std::vector<TimerId> ids(kCount);
  for (int i = 0; i < kCount; ++i) {
    state.deadlines[i] = 1'000'000 + static_cast<int64_t>(rng() % hour);
    ids[i] = wheel.Schedule(AtNs(state.deadlines[i]),
                            [s = &state, i] { s->Fire(i); });
  }
  EXPECT_EQ(wheel.size(), static_cast<size_t>(kCount));
  for (int i = 1; i < kCount; i += 2) ASSERT_TRUE(wheel.Cancel(ids[i]));
  EXPECT_EQ(wheel.size(), static_cast<size_t>(kCount / 2));
  size_t ran = 0;
  for (int step = 1; step <= 100; ++step) {
    state.prev_now = state.now;
    state.now = step * (hour / 90);  // overshoots the hour
    ran += wheel.Advance(AtNs(state.now));
  }
  EXPECT_EQ(ran, static_cast<size_t>(kCount / 2));
  EXPECT_EQ(state.duplicates, 0);
  EXPECT_EQ(state.out_of_window, 0);
  EXPECT_EQ(state.out_of_order, 0);
  int wrong = 0;
  for (int i = 0; i < kCount; ++i) {
    if (state.fired[i] != (i % 2 == 0)) ++wrong;
  }
  EXPECT_EQ(wrong, 0);
  EXPECT_TRUE(wheel.empty());
  EXPECT_EQ(wheel.NextDeadline(), std::nullopt);
  // Fired and cancelled ids stay rejected.
  EXPECT_FALSE(wheel.Cancel(ids[0]));
  EXPECT_FALSE(wheel.Cancel(ids[1]));
}

TEST(TimingWheelTest, NestedAdvanceFromACallbackDoesNothing) {
  TimingWheel wheel(kStart);
  size_t nested = 99;
  int second = 0;
  wheel.Schedule(At(milliseconds(1)),
                 [&] { nested = wheel.Advance(At(hours(1))); });
  wheel.Schedule(At(milliseconds(10)), [&] { ++second; });
  EXPECT_EQ(wheel.Advance(At(milliseconds(1))), 1u);
  EXPECT_EQ(nested, 0u);
  EXPECT_EQ(second, 0);
  EXPECT_EQ(wheel.Advance(At(milliseconds(10))), 1u);
  EXPECT_EQ(second, 1);
}

TEST(TimingWheelTest, CallbacksAreReleasedWhenDoneCancelledOrDestroyed) {
  auto token = std::make_shared<int>(0);
  {
    TimingWheel wheel(kStart);
    TimerId once = wheel.Schedule(At(milliseconds(1)), [t = token] {});
    TimerId cancelled = wheel.Schedule(At(milliseconds(2)), [t = token] {});
    TimerId repeating = wheel.ScheduleRepeating(
        At(milliseconds(1)), milliseconds(1), [t = token] {});
    wheel.Schedule(At(hours(1)), [t = token] {});
    EXPECT_EQ(token.use_count(), 5);
    EXPECT_TRUE(wheel.Cancel(cancelled));
    EXPECT_EQ(token.use_count(), 4);
    wheel.Advance(At(milliseconds(1)));
    EXPECT_EQ(token.use_count(), 3);  // the one-shot is gone
    EXPECT_FALSE(wheel.Cancel(once));
    wheel.Advance(At(milliseconds(5)));
    EXPECT_EQ(token.use_count(), 3);  // the repeating one keeps its callback
    EXPECT_TRUE(wheel.Cancel(repeating));
    EXPECT_EQ(token.use_count(), 2);
  }
  EXPECT_EQ(token.use_count(), 1);
}

// Cancel leaves a node in its slot list (lazy unlinking); these tests cover
// what that must not change.

// White-box: the low 32 bits of TimerId::value() are the node's slab index.
uint32_t NodeIndex(TimerId id) { return static_cast<uint32_t>(id.value()); }

TEST(TimingWheelTest, CancelledTimersNoLongerBoundNextDeadline) {
  TimingWheel wheel(kStart);
  int ran = 0;
  TimerId a = wheel.Schedule(At(milliseconds(10)), [&] { ++ran; });  // level 0
  TimerId b = wheel.Schedule(At(seconds(30)), [&] { ++ran; });       // level 1
  TimerId c = wheel.Schedule(At(minutes(30)), [&] { ++ran; });       // level 2
  wheel.Schedule(At(hours(5)), [&] { ++ran; });
  EXPECT_EQ(wheel.NextDeadline(), At(milliseconds(10)));
  ASSERT_TRUE(wheel.Cancel(a));
  EXPECT_EQ(wheel.NextDeadline(), At(seconds(30)));
  ASSERT_TRUE(wheel.Cancel(b));
  EXPECT_EQ(wheel.NextDeadline(), At(minutes(30)));
  ASSERT_TRUE(wheel.Cancel(c));
  EXPECT_EQ(wheel.NextDeadline(), At(hours(5)));
  EXPECT_EQ(wheel.size(), 1u);
  // A loop sleeping until NextDeadline wakes once, and runs the one left.
  EXPECT_EQ(wheel.Advance(*wheel.NextDeadline()), 1u);
  EXPECT_EQ(ran, 1);
  EXPECT_EQ(wheel.NextDeadline(), std::nullopt);
  // The slots that held only cancelled timers are reused correctly.
  wheel.Schedule(At(hours(5) + milliseconds(10)), [&] { ++ran; });
  wheel.Schedule(At(hours(5) + seconds(30)), [&] { ++ran; });
  EXPECT_EQ(wheel.Advance(At(hours(6))), 2u);
  EXPECT_EQ(ran, 3);
}

// A server's request timeouts: a fixed number pending, each replaced by a new
// one long before it is due, so no slot is ever walked. Cancelled nodes are
// reclaimed by Schedule, keeping the slab near twice the pending count.
TEST(TimingWheelTest, ChurnReusesCancelledNodesWithoutWalkingSlots) {
  TimingWheel wheel(kStart);
  Log log;
  constexpr int kLive = 1000;
  std::mt19937_64 rng(11);
  const int64_t hour =
      std::chrono::duration_cast<nanoseconds>(hours(1)).count();
  std::vector<TimerId> ids(kLive);
  std::vector<int64_t> deadlines(kLive);
  std::vector<int> names(kLive);
  int name = 0;
  auto arm = [&](int k) {
    deadlines[k] = hour + static_cast<int64_t>(rng() % hour);
    names[k] = name++;
    ids[k] = wheel.Schedule(AtNs(deadlines[k]), log.Record(names[k], 0));
  };
  for (int k = 0; k < kLive; ++k) arm(k);
  uint32_t max_index = 0;
  for (int op = 0; op < 200'000; ++op) {
    const int k = static_cast<int>(rng() % kLive);
    ASSERT_TRUE(wheel.Cancel(ids[k]));
    ASSERT_FALSE(wheel.Cancel(ids[k]));
    arm(k);
    max_index = std::max(max_index, NodeIndex(ids[k]));
  }
  EXPECT_EQ(wheel.size(), static_cast<size_t>(kLive));
  EXPECT_LT(max_index, 2 * kLive + 200) << "cancelled nodes are not reused";
  // Exactly the last kLive run, in deadline order.
  EXPECT_EQ(AdvanceTo(wheel, log, 3 * hour), static_cast<size_t>(kLive));
  std::vector<int> order(kLive);
  for (int k = 0; k < kLive; ++k) order[k] = k;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return deadlines[a] != deadlines[b] ? deadlines[a] < deadlines[b]
                                        : names[a] < names[b];
  });
  std::vector<int> expected;
  for (int k : order) expected.push_back(names[k]);
  EXPECT_EQ(log.Names(), expected);
  EXPECT_TRUE(wheel.empty());
}

// A repeating timer that cancels itself keeps its (running) callback while
// the same callback churns enough timers to make Schedule reclaim cancelled
// nodes and grow the slab; the reclaim must not hand out its node.
TEST(TimingWheelTest, SelfCancelledRunningCallbackSurvivesReclaim) {
  TimingWheel wheel(kStart);
  TimerId self;
  int runs = 0;
  int seen = 0;
  std::vector<TimerId> churned;
  auto payload = std::make_unique<int>(42);
  self = wheel.ScheduleRepeating(
      At(milliseconds(1)), milliseconds(1), [&, p = std::move(payload)] {
        ++runs;
        EXPECT_TRUE(wheel.Cancel(self));
        for (int i = 0; i < 50'000; ++i) {
          const TimerId t = wheel.Schedule(At(hours(2)), [] {});
          EXPECT_NE(NodeIndex(t), NodeIndex(self));
          if (i % 3 != 0) {
            EXPECT_TRUE(wheel.Cancel(t));
          } else {
            churned.push_back(t);
          }
        }
        seen = *p;  // the callback's storage is intact
      });
  EXPECT_EQ(wheel.Advance(At(milliseconds(1))), 1u);
  EXPECT_EQ(seen, 42);
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(wheel.size(), churned.size());
  EXPECT_EQ(wheel.Advance(At(milliseconds(10))), 0u);
  EXPECT_FALSE(wheel.Cancel(self));
  for (TimerId t : churned) ASSERT_TRUE(wheel.Cancel(t));
  EXPECT_TRUE(wheel.empty());
  EXPECT_EQ(wheel.NextDeadline(), std::nullopt);
}

// The destructor releases exactly the pending callbacks, whatever mix of
// pending, cancelled (still linked) and fired nodes the slab holds.
TEST(TimingWheelTest, DestructorReleasesPendingCallbacksAmongCancelledOnes) {
  auto token = std::make_shared<int>(0);
  {
    TimingWheel wheel(kStart);
    std::vector<TimerId> ids;
    for (int i = 0; i < 3000; ++i) {
      ids.push_back(wheel.Schedule(At(milliseconds(1 + i % 7) + hours(i % 3)),
                                   [t = token] {}));
    }
    for (int i = 0; i < 3000; i += 2) ASSERT_TRUE(wheel.Cancel(ids[i]));
    EXPECT_EQ(token.use_count(), 1 + 1500);
    wheel.Advance(At(milliseconds(3)));  // fires some pending ones
    EXPECT_EQ(token.use_count(), 1 + static_cast<long>(wheel.size()));
    EXPECT_GT(wheel.size(), 0u);
  }
  EXPECT_EQ(token.use_count(), 1);
}

TEST(TimingWheelTest, ThrowingCallbackLeavesTheRestPending) {
  TimingWheel wheel(kStart);
  std::vector<int> ran;
  bool throw_once = true;
  wheel.Schedule(At(milliseconds(1)), [&] { ran.push_back(1); });
  wheel.ScheduleRepeating(At(milliseconds(2)), milliseconds(10), [&] {
    ran.push_back(2);
    if (throw_once) {
      throw_once = false;
      throw std::runtime_error("boom");
    }
  });
  wheel.Schedule(At(milliseconds(3)), [&] { ran.push_back(3); });
  EXPECT_THROW(wheel.Advance(At(milliseconds(5))), std::runtime_error);
  EXPECT_EQ(ran, (std::vector<int>{1, 2}));
  EXPECT_EQ(wheel.size(), 2u);  // the repeating timer and timer 3
  EXPECT_EQ(wheel.Advance(At(milliseconds(5))), 1u);
  EXPECT_EQ(wheel.Advance(At(milliseconds(12))), 1u);  // still repeating
  EXPECT_EQ(ran, (std::vector<int>{1, 2, 3, 2}));
}

// ---------------------------------------------------------------------------
// Randomised comparison against a straightforward reference model: same
// operations (also from inside callbacks), same firing sequence, same return
// values, with sub-tick deadlines, ties, past deadlines, long jumps and
// repeating timers.

class Ops {
 public:
  virtual ~Ops() = default;
  virtual int Schedule(int64_t deadline, int64_t interval) = 0;
  virtual bool Cancel(int name) = 0;
  virtual bool Reschedule(int name, int64_t deadline) = 0;
};

uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// What a timer does when it runs, decided by its name and the run count, the
// same for the wheel and the model. Returns a record of return values.
std::string Act(Ops& ops, int name, int64_t now, int run) {
  const uint64_t h = Mix(static_cast<uint64_t>(name) * 1000 + run);
  switch (h % 12) {
    case 0:
      return "c" + std::to_string(ops.Cancel(name + 1));
    case 1:
      return "s" + std::to_string(ops.Cancel(name));
    case 2:
      return "n" +
             std::to_string(ops.Schedule(
                 now + static_cast<int64_t>((h >> 8) % 3'000'000) - 500'000,
                 0));
    case 3:
      return "r" +
             std::to_string(ops.Reschedule(
                 name - 1, now + static_cast<int64_t>((h >> 8) % 100'000'000)));
    case 4:
      return "e" + std::to_string(ops.Schedule(now, 0));
    default:
      return "";
  }
}

class WheelOps : public Ops {
 public:
  explicit WheelOps(std::vector<std::string>* log) : log_(log) {}
  int Schedule(int64_t deadline, int64_t interval) override {
    const int name = next_name_++;
    auto callback = [this, name] {
      const int run = runs_[name]++;
      log_->push_back(std::to_string(name) + "@" + std::to_string(now_) +
                      Act(*this, name, now_, run));
    };
    TimerId id = interval == 0
                     ? wheel_.Schedule(AtNs(deadline), callback)
                     : wheel_.ScheduleRepeating(
                           AtNs(deadline), nanoseconds(interval), callback);
    ids_.push_back(id);
    return name;
  }
  bool Cancel(int name) override {
    return name >= 0 && name < static_cast<int>(ids_.size()) &&
           wheel_.Cancel(ids_[name]);
  }
  bool Reschedule(int name, int64_t deadline) override {
    return name >= 0 && name < static_cast<int>(ids_.size()) &&
           wheel_.Reschedule(ids_[name], AtNs(deadline));
  }
  size_t Advance(int64_t now) {
    now_ = now;
    return wheel_.Advance(AtNs(now));
  }
  TimingWheel& wheel() { return wheel_; }

 private:
  TimingWheel wheel_{kStart};
  std::vector<std::string>* log_;
  std::vector<TimerId> ids_;
  std::map<int, int> runs_;
  int next_name_ = 0;
  int64_t now_ = 0;
};

class ModelOps : public Ops {
 public:
  explicit ModelOps(std::vector<std::string>* log) : log_(log) {}
  int Schedule(int64_t deadline, int64_t interval) override {
    const int name = next_name_++;
    live_[name] = {deadline, interval, seq_++, false};
    return name;
  }
  bool Cancel(int name) override { return live_.erase(name) > 0; }
  bool Reschedule(int name, int64_t deadline) override {
    auto it = live_.find(name);
    if (it == live_.end()) return false;
    it->second.deadline = deadline;
    it->second.seq = seq_++;
    it->second.collected = false;
    return true;
  }
  size_t Advance(int64_t now) {
    std::vector<std::pair<std::pair<int64_t, uint64_t>, int>> due;
    for (auto& [name, t] : live_) {
      if (t.deadline <= now) {
        t.collected = true;
        due.push_back({{t.deadline, t.seq}, name});
      }
    }
    std::sort(due.begin(), due.end());
    size_t ran = 0;
    for (const auto& entry : due) {
      const int name = entry.second;
      auto it = live_.find(name);
      if (it == live_.end() || !it->second.collected) continue;
      ++ran;
      Timer& t = it->second;
      if (t.interval == 0) {
        live_.erase(it);
      } else {
        const int64_t periods = (now - t.deadline) / t.interval + 1;
        t.deadline += periods * t.interval;
        t.seq = seq_++;
        t.collected = false;
      }
      const int run = runs_[name]++;
      log_->push_back(std::to_string(name) + "@" + std::to_string(now) +
                      Act(*this, name, now, run));
    }
    return ran;
  }
  size_t size() const { return live_.size(); }
  std::optional<int64_t> Earliest() const {
    std::optional<int64_t> best;
    for (const auto& [name, t] : live_) {
      if (!best || t.deadline < *best) best = t.deadline;
    }
    return best;
  }

 private:
  struct Timer {
    int64_t deadline;
    int64_t interval;
    uint64_t seq;
    bool collected;
  };
  std::map<int, Timer> live_;
  std::vector<std::string>* log_;
  std::map<int, int> runs_;
  uint64_t seq_ = 0;
  int next_name_ = 0;
};

int64_t RandomDelta(std::mt19937_64& rng, const std::vector<int64_t>& pool,
                    int64_t now) {
  const uint64_t kind = rng() % 100;
  if (kind < 25) return static_cast<int64_t>(rng() % 2'000'000);
  if (kind < 55) return static_cast<int64_t>(rng() % 200'000'000);
  if (kind < 75) return static_cast<int64_t>(rng() % 60'000'000'000);
  if (kind < 83) return static_cast<int64_t>(rng() % 259'200'000'000'000);
  if (kind < 85) return static_cast<int64_t>(rng() % 86'400'000'000'000'000);
  if (kind < 90) return -static_cast<int64_t>(rng() % 5'000'000);
  if (!pool.empty()) return pool[rng() % pool.size()] - now;  // a tie
  return 0;
}

// Percentages of the operations, cumulative: schedule one-shot, schedule
// repeating, cancel, reschedule; the rest advance the clock.
struct OpMix {
  int one_shot = 40;
  int repeating = 45;
  int cancel = 60;
  int reschedule = 70;
};

void RunModelComparison(uint64_t seed, int operations, OpMix mix = OpMix()) {
  std::vector<std::string> wheel_log;
  std::vector<std::string> model_log;
  WheelOps wheel(&wheel_log);
  ModelOps model(&model_log);
  std::mt19937_64 rng(seed);
  std::vector<int64_t> deadline_pool;
  int64_t now = 0;
  int names = 0;
  size_t checked = 0;
  const int64_t intervals[] = {300'000, 1'000'000, 7'500'000, 1'000'000'000,
                               3'600'000'000'000};
  for (int op = 0; op < operations; ++op) {
    const uint64_t kind = rng() % 100;
    if (kind < static_cast<uint64_t>(mix.one_shot)) {
      const int64_t d = now + RandomDelta(rng, deadline_pool, now);
      deadline_pool.push_back(d);
      ASSERT_EQ(wheel.Schedule(d, 0), model.Schedule(d, 0));
      ++names;
    } else if (kind < static_cast<uint64_t>(mix.repeating)) {
      const int64_t d = now + RandomDelta(rng, deadline_pool, now);
      const int64_t interval = intervals[rng() % 5];
      ASSERT_EQ(wheel.Schedule(d, interval), model.Schedule(d, interval));
      ++names;
    } else if (kind < static_cast<uint64_t>(mix.cancel)) {
      const int name = names == 0 ? 0 : static_cast<int>(rng() % names);
      ASSERT_EQ(wheel.Cancel(name), model.Cancel(name)) << "op " << op;
    } else if (kind < static_cast<uint64_t>(mix.reschedule)) {
      const int name = names == 0 ? 0 : static_cast<int>(rng() % names);
      const int64_t d = now + RandomDelta(rng, deadline_pool, now);
      ASSERT_EQ(wheel.Reschedule(name, d), model.Reschedule(name, d))
          << "op " << op;
    } else {
      const uint64_t step = rng() % 100;
      if (step < 40) {
        now += static_cast<int64_t>(rng() % 1'000'000);
      } else if (step < 70) {
        now += static_cast<int64_t>(rng() % 50'000'000);
      } else if (step < 85) {
        now += static_cast<int64_t>(rng() % 10'000'000'000);
      } else if (step < 95) {
        if (auto next = wheel.wheel().NextDeadline()) {
          now = std::max(now, NsOf(*next));
        }
      } else {
        now += static_cast<int64_t>(rng() % 432'000'000'000'000);
      }
      ASSERT_EQ(wheel.Advance(now), model.Advance(now)) << "op " << op;
    }
    ASSERT_EQ(wheel_log.size(), model_log.size()) << "op " << op;
    for (; checked < wheel_log.size(); ++checked) {
      ASSERT_EQ(wheel_log[checked], model_log[checked]) << "op " << op;
    }
    ASSERT_EQ(wheel.wheel().size(), model.size()) << "op " << op;
    const std::optional<TimePoint> next = wheel.wheel().NextDeadline();
    const std::optional<int64_t> earliest = model.Earliest();
    ASSERT_EQ(next.has_value(), earliest.has_value()) << "op " << op;
    if (next) {
      ASSERT_LE(NsOf(*next), *earliest) << "op " << op;
    }
  }
  // Drain through NextDeadline, as a loop would.
  for (int i = 0; i < 2000; ++i) {
    const std::optional<TimePoint> next = wheel.wheel().NextDeadline();
    if (!next || model.size() == 0) break;
    now = std::max(now, NsOf(*next));
    ASSERT_EQ(wheel.Advance(now), model.Advance(now));
    ASSERT_EQ(wheel_log.size(), model_log.size());
    for (; checked < wheel_log.size(); ++checked) {
      ASSERT_EQ(wheel_log[checked], model_log[checked]);
    }
  }
  EXPECT_GT(wheel_log.size(), static_cast<size_t>(operations / 10));
}

TEST(TimingWheelModelTest, MatchesReferenceModelSeed1) {
  RunModelComparison(1, 20000);
}
TEST(TimingWheelModelTest, MatchesReferenceModelSeed2) {
  RunModelComparison(2, 20000);
}
TEST(TimingWheelModelTest, MatchesReferenceModelSeed3) {
  RunModelComparison(3, 20000);
}

// Cancel-heavy with rare clock steps: many cancelled nodes stay linked, and
// Schedule (also from callbacks) has to reclaim them.
TEST(TimingWheelModelTest, MatchesReferenceModelUnderCancelChurn) {
  for (uint64_t seed : {4, 5}) {
    RunModelComparison(seed, 20000, OpMix{38, 40, 80, 88});
  }
}

}  // namespace
}  // namespace mill
