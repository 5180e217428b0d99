// Tests of the EventLoop: timers, unnamed registrations, pausing with
// Interest::None, deregistration without waiting.
#include "reactor/testing/loop_fixture.h"

namespace mill {
namespace reactor_testing {
namespace {

// --- Timers ----------------------------------------------------------------

TEST_P(EventLoopTest, RunAfterNeverFiresEarlyAndFiresPromptly) {
  auto loop = MakeLoop();
  LoopRunner runner(loop.get());
  constexpr int kTimers = 20;
  std::vector<steady_clock::time_point> scheduled(kTimers), fired(kTimers);
  std::atomic<int> count{0};
  for (int i = 0; i < kTimers; ++i) {
    const auto delay = milliseconds(5 + 3 * i);
    scheduled[i] = steady_clock::now();
    EventLoop::TimerId id = loop->RunAfter(absl::FromChrono(delay), [&, i] {
      fired[i] = steady_clock::now();
      ++count;
    });
    ASSERT_TRUE(id.valid());
  }
  ASSERT_TRUE(WaitFor([&] { return count.load() == kTimers; }));
  for (int i = 0; i < kTimers; ++i) {
    const auto delay = milliseconds(5 + 3 * i);
    EXPECT_GE(fired[i] - scheduled[i], delay) << "timer " << i << " early";
    // Generous: a correctness bound for a loaded machine, not a benchmark.
    EXPECT_LT(fired[i] - scheduled[i], delay + milliseconds(2000));
  }
  EXPECT_EQ(loop->pending_timers(), 0u);
}

TEST_P(EventLoopTest, TimerFiresRegardlessOfLongPollTimeout) {
  EventLoopOptions options;
  auto loop = MakeLoop(options);
  // MakeLoop sets 50 ms; use a long heartbeat instead.
  Configure(options);
  options.poll_timeout = absl::Seconds(5);
  options.wake_on_poll_timeout = true;
  auto slow = EventLoop::Create(options);
  ASSERT_TRUE(slow.ok());
  LoopRunner runner(slow->get());
  std::atomic<bool> fired{false};
  const auto start = steady_clock::now();
  (*slow)->RunAfter(absl::Milliseconds(20), [&] { fired = true; });
  ASSERT_TRUE(WaitFor([&] { return fired.load(); }));
  EXPECT_LT(steady_clock::now() - start, milliseconds(2500));
}

TEST_P(EventLoopTest, IdleLoopDoesNotWakeUp) {
  auto loop = MakeLoop();
  LoopRunner runner(loop.get());
  // A timer far away bounds the sleep but must not cause wake-ups.
  EventLoop::TimerId far =
      loop->RunAfter(absl::Seconds(60), [] { FAIL() << "must not fire"; });
  std::this_thread::sleep_for(milliseconds(50));
  const uint64_t polls_before = loop->stats().polls;
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_LE(loop->stats().polls - polls_before, 1u);
  EXPECT_TRUE(loop->Cancel(far));
}

TEST_P(EventLoopTest, CancelInEveryPosition) {
  auto loop = MakeLoop();
  EventLoop* raw = loop.get();
  LoopRunner runner(raw);
  // Before it is due, from another thread.
  std::atomic<int> cancelled_ran{0};
  EventLoop::TimerId pending =
      raw->RunAfter(absl::Milliseconds(100), [&] { ++cancelled_ran; });
  EXPECT_TRUE(raw->Cancel(pending));
  EXPECT_FALSE(raw->Cancel(pending));  // already cancelled
  // After it fired.
  std::atomic<bool> done{false};
  EventLoop::TimerId quick =
      raw->RunAfter(absl::Milliseconds(1), [&] { done = true; });
  ASSERT_TRUE(WaitFor([&] { return done.load(); }));
  EXPECT_FALSE(raw->Cancel(quick));
  // A repeating timer cancelling itself from its callback.
  std::atomic<int> self_calls{0};
  auto self_id = std::make_shared<std::atomic<EventLoop::TimerId>>();
  EventLoop::TimerId self =
      raw->RunEvery(absl::Milliseconds(2), [&, raw, self_id] {
        if (++self_calls == 3) {
          EXPECT_TRUE(raw->Cancel(self_id->load()));
        }
      });
  self_id->store(self);
  // Two timers due in the same tick: the first cancels the second. Scheduled
  // from the loop thread so both deadlines are in one tick.
  std::atomic<int> first_calls{0}, second_calls{0};
  std::atomic<bool> first_cancel_result{false};
  std::atomic<bool> scheduled{false};
  ASSERT_TRUE(raw->RunInLoop([&, raw] {
                   auto second = std::make_shared<EventLoop::TimerId>();
                   raw->RunAfter(absl::Milliseconds(10), [&, raw, second] {
                     ++first_calls;
                     first_cancel_result = raw->Cancel(*second);
                   });
                   *second = raw->RunAfter(absl::Milliseconds(10),
                                           [&] { ++second_calls; });
                   scheduled = true;
                 })
                  .ok());
  ASSERT_TRUE(WaitFor([&] { return scheduled.load(); }));
  ASSERT_TRUE(WaitFor([&] { return first_calls.load() == 1; }));
  ASSERT_TRUE(WaitFor([&] { return self_calls.load() >= 3; }));
  std::this_thread::sleep_for(milliseconds(150));
  EXPECT_EQ(cancelled_ran.load(), 0);
  EXPECT_EQ(self_calls.load(), 3);
  // Cancel returned true exactly when the second callback never ran.
  EXPECT_EQ(second_calls.load(), first_cancel_result.load() ? 0 : 1);
  if (mode() == DispatchMode::kDirect) {
    // Inline dispatch: the second timer had certainly not started.
    EXPECT_TRUE(first_cancel_result.load());
  }
  EXPECT_EQ(raw->pending_timers(), 0u);
}

TEST_P(EventLoopTest, SameDeadlineTimersFireInScheduleOrder) {
  if (mode() == DispatchMode::kPool && GetParam().workers > 1) {
    GTEST_SKIP() << "a takeover may run callbacks in parallel; the wheel's "
                    "own test covers ordering";
  }
  auto loop = MakeLoop();
  EventLoop* raw = loop.get();
  LoopRunner runner(raw);
  std::vector<int> order;
  std::atomic<int> count{0};
  ASSERT_TRUE(raw->RunInLoop([&, raw] {
                   for (int i = 0; i < 10; ++i) {
                     raw->RunAfter(absl::Milliseconds(5), [&, i] {
                       order.push_back(i);
                       ++count;
                     });
                   }
                 })
                  .ok());
  ASSERT_TRUE(WaitFor([&] { return count.load() == 10; }));
  ASSERT_TRUE(runner.StopAndJoin().ok());
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
}

TEST_P(EventLoopTest, RepeatingTimerDoesNotDrift) {
  auto loop = MakeLoop();
  LoopRunner runner(loop.get());
  constexpr int kPeriods = 30;
  const auto interval = milliseconds(10);
  std::vector<steady_clock::time_point> calls;
  std::mutex calls_mu;
  const auto start = steady_clock::now();
  EventLoop::TimerId id = loop->RunEvery(absl::FromChrono(interval), [&] {
    std::lock_guard<std::mutex> lock(calls_mu);
    if (calls.size() < kPeriods) calls.push_back(steady_clock::now());
  });
  ASSERT_TRUE(WaitFor([&] {
    std::lock_guard<std::mutex> lock(calls_mu);
    return calls.size() == kPeriods;
  }));
  EXPECT_TRUE(loop->Cancel(id));
  std::lock_guard<std::mutex> lock(calls_mu);
  for (int k = 0; k < kPeriods; ++k) {
    // Call k is for deadline start + (k + 1) * interval or a later period
    // (missed periods are skipped, never bunched): never early.
    EXPECT_GE(calls[k] - start, (k + 1) * interval);
  }
  // Without drift every call sits just after a grid point start + n *
  // interval (plus scheduling lateness). With drift (next = fire time +
  // interval) lateness accumulates and the phase walks around the period,
  // so its median would be near interval / 2.
  std::vector<double> phase_ms;
  for (const auto& t : calls) {
    phase_ms.push_back(
        std::chrono::duration<double, std::milli>((t - start) % interval)
            .count());
  }
  std::nth_element(phase_ms.begin(), phase_ms.begin() + kPeriods / 2,
                   phase_ms.end());
  EXPECT_LT(phase_ms[kPeriods / 2], 0.4 * interval.count());
}

TEST_P(EventLoopTest, ThrowingTimerIsCountedAndRepeats) {
  auto loop = MakeLoop();
  LoopRunner runner(loop.get());
  std::atomic<int> calls{0};
  EventLoop::TimerId id = loop->RunEvery(absl::Milliseconds(2), [&] {
    ++calls;
    throw std::runtime_error("timer failure");
  });
  ASSERT_TRUE(WaitFor([&] { return calls.load() >= 3; }));
  EXPECT_TRUE(loop->Cancel(id));
  ASSERT_TRUE(runner.StopAndJoin().ok());
  EXPECT_EQ(loop->stats().handler_exceptions, static_cast<uint64_t>(calls));
}

TEST_P(EventLoopTest, TimersRejectedOnceStopped) {
  auto loop = MakeLoop();
  loop->Stop();
  EXPECT_FALSE(loop->RunAfter(absl::Milliseconds(1), [] {}).valid());
  EXPECT_FALSE(loop->RunEvery(absl::ZeroDuration(), [] {}).valid());
}

// --- Unnamed registrations, pausing, deregistration without waiting -------

TEST_P(HandlerTest, UnnamedRegistrationNeverCollidesWithUserTokens) {
  auto loop = MakeLoop();
  SocketPair unnamed_pair, named_pair;
  std::atomic<size_t> unnamed_bytes{0}, named_bytes{0};
  std::atomic<uint64_t> unnamed_token{0};
  absl::StatusOr<Registration> reg =
      Reg(loop.get(), unnamed_pair.loop_end, Interest::Readable(),
          Handler([&](const Event& e) {
            unnamed_token = e.token().value();
            unnamed_bytes += Drain(unnamed_pair.loop_end);
          }));
  ASSERT_TRUE(reg.ok()) << reg.status();
  ASSERT_TRUE(reg->valid());
  // The user may use any token, even the number the loop picked.
  ASSERT_TRUE(
      Reg(loop.get(), named_pair.loop_end, Token(reg->id()),
          Interest::Readable(),
          [&](const Event&) { named_bytes += Drain(named_pair.loop_end); })
          .ok());
  EXPECT_EQ(loop->stats().registered, 2u);
  LoopRunner runner(loop.get());
  WriteAll(unnamed_pair.peer, "abc", 3);
  WriteAll(named_pair.peer, "de", 2);
  EXPECT_TRUE(WaitFor(
      [&] { return unnamed_bytes.load() == 3 && named_bytes.load() == 2; }));
  EXPECT_EQ(unnamed_token.load(), reg->id());
  // Each is removed by its own handle; neither removes the other.
  EXPECT_EQ(loop->Reregister(Registration(), Interest::Writable()).code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(loop->Deregister(*reg).ok());
  EXPECT_EQ(loop->Deregister(*reg).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(loop->Reregister(*reg, Interest::Readable()).code(),
            absl::StatusCode::kNotFound);
  WriteAll(named_pair.peer, "f", 1);
  EXPECT_TRUE(WaitFor([&] { return named_bytes.load() == 3; }));
  ASSERT_TRUE(loop->Deregister(Token(reg->id())).ok());
  EXPECT_EQ(loop->stats().registered, 0u);
}

TEST_P(HandlerTest, InterestNonePausesWithoutLosingData) {
  auto loop = MakeLoop();
  SocketPair pair;
  std::atomic<int> calls{0};
  std::atomic<size_t> bytes{0};
  absl::StatusOr<Registration> reg = Reg(
      loop.get(), pair.loop_end, Interest::None(), Handler([&](const Event&) {
        ++calls;
        bytes += Drain(pair.loop_end);
      }));
  ASSERT_TRUE(reg.ok()) << reg.status();
  LoopRunner runner(loop.get());
  WriteAll(pair.peer, "12345", 5);
  // Urgent data must not wake a paused source either.
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_EQ(calls.load(), 0);
  ASSERT_TRUE(loop->Reregister(*reg, Interest::Readable()).ok());
  EXPECT_TRUE(WaitFor([&] { return bytes.load() == 5; }));
  ASSERT_TRUE(loop->Reregister(*reg, Interest::None()).ok());
  const int calls_when_paused = calls.load();
  WriteAll(pair.peer, "67", 2);
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_EQ(calls.load(), calls_when_paused);
  EXPECT_EQ(bytes.load(), 5u);
  ASSERT_TRUE(loop->Reregister(*reg, Interest::Readable()).ok());
  EXPECT_TRUE(WaitFor([&] { return bytes.load() == 7; }));
  ASSERT_TRUE(loop->Deregister(*reg).ok());
}

TEST_P(HandlerTest, DeregisterWithCallbackRunsInlineWhenIdle) {
  auto loop = MakeLoop();
  SocketPair pair;
  absl::StatusOr<Registration> reg =
      Reg(loop.get(), pair.loop_end, Interest::Readable(),
          Handler([](const Event&) {}));
  ASSERT_TRUE(reg.ok());
  bool released = false;
  ASSERT_TRUE(loop->Deregister(*reg, [&] { released = true; }).ok());
  EXPECT_TRUE(released);  // nothing in flight: before Deregister returned
  bool not_found_ran = false;
  EXPECT_EQ(loop->Deregister(*reg, [&] { not_found_ran = true; }).code(),
            absl::StatusCode::kNotFound);
  EXPECT_FALSE(not_found_ran);
}

// Deregister(…, on_released) from another thread while the handler runs:
// returns at once, and on_released runs after the handler, on its thread.
TEST_P(HandlerTest, DeregisterWithCallbackDoesNotWaitForRunningHandler) {
  auto loop = MakeLoop();
  SocketPair pair;
  std::atomic<bool> in_handler{false}, let_go{false}, handler_done{false};
  std::atomic<int> calls{0};
  std::thread::id handler_thread;
  absl::StatusOr<Registration> reg =
      Reg(loop.get(), pair.loop_end, Interest::Readable(),
          Handler([&](const Event&) {
            ++calls;
            handler_thread = std::this_thread::get_id();
            in_handler = true;
            while (!let_go.load()) std::this_thread::sleep_for(milliseconds(1));
            handler_done = true;
          }));
  ASSERT_TRUE(reg.ok());
  LoopRunner runner(loop.get());
  WriteAll(pair.peer, "x", 1);
  ASSERT_TRUE(WaitFor([&] { return in_handler.load(); }));
  std::atomic<bool> released{false};
  std::atomic<bool> released_after_handler{false};
  std::thread::id released_on;
  ASSERT_TRUE(loop->Deregister(*reg,
                               [&] {
                                 released_after_handler = handler_done.load();
                                 released_on = std::this_thread::get_id();
                                 released = true;
                               })
                  .ok());
  EXPECT_FALSE(released.load());  // the handler is still running
  let_go = true;
  ASSERT_TRUE(WaitFor([&] { return released.load(); }));
  EXPECT_TRUE(released_after_handler.load());
  EXPECT_EQ(released_on, handler_thread);
  WriteAll(pair.peer, "y", 1);
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_EQ(calls.load(), 1);
}

TEST_P(HandlerTest, DeregisterWithCallbackFromOwnHandlerReleasesAfterIt) {
  auto loop = MakeLoop();
  SocketPair pair;
  EventLoop* raw = loop.get();
  std::vector<std::string> order;  // touched by the handler's thread only
  std::atomic<bool> done{false};
  auto reg = std::make_shared<Registration>();
  absl::StatusOr<Registration> made =
      Reg(loop.get(), pair.loop_end, Interest::Readable(),
          Handler([&, raw, reg](const Event&) {
            order.push_back("handler");
            EXPECT_TRUE(raw->Deregister(*reg,
                                        [&] {
                                          order.push_back("released");
                                          done = true;
                                        })
                            .ok());
            order.push_back("handler returns");
          }));
  ASSERT_TRUE(made.ok());
  *reg = *made;
  LoopRunner runner(loop.get());
  WriteAll(pair.peer, "x", 1);
  ASSERT_TRUE(WaitFor([&] { return done.load(); }));
  ASSERT_TRUE(runner.StopAndJoin().ok());
  EXPECT_EQ(order, (std::vector<std::string>{"handler", "handler returns",
                                             "released"}));
}

// Two handlers that remove each other at the same moment: with waiting
// Deregister that deadlocks; with on_released it must not.
TEST_P(HandlerTest, HandlersDeregisteringEachOtherDoNotDeadlock) {
  auto loop = MakeLoop();
  EventLoop* raw = loop.get();
  SocketPair a, b;
  std::atomic<int> arrived{0};
  std::atomic<int> released{0};
  auto regs = std::make_shared<std::vector<Registration>>(2);
  auto make_handler = [&, raw, regs](int self) {
    return Handler([&, raw, regs, self](const Event&) {
      ++arrived;
      // Pool mode: wait until both handlers run at once.
      const auto deadline = steady_clock::now() + milliseconds(200);
      while (arrived.load() < 2 && steady_clock::now() < deadline) {
        std::this_thread::yield();
      }
      // Each removes the other, then itself; whichever comes second gets
      // NotFound. Every registration is released exactly once.
      (void)raw->Deregister((*regs)[1 - self], [&] { ++released; });
      (void)raw->Deregister((*regs)[self], [&] { ++released; });
    });
  };
  absl::StatusOr<Registration> ra =
      Reg(loop.get(), a.loop_end, Interest::Readable(), make_handler(0));
  absl::StatusOr<Registration> rb =
      Reg(loop.get(), b.loop_end, Interest::Readable(), make_handler(1));
  ASSERT_TRUE(ra.ok() && rb.ok());
  (*regs)[0] = *ra;
  (*regs)[1] = *rb;
  LoopRunner runner(loop.get());
  WriteAll(a.peer, "x", 1);
  WriteAll(b.peer, "y", 1);
  EXPECT_TRUE(WaitFor([&] { return released.load() == 2; }));
  EXPECT_TRUE(runner.StopAndJoin().ok());
  EXPECT_EQ(released.load(), 2);
  EXPECT_EQ(loop->stats().registered, 0u);
}

// Issue 11 §1.9: Deregister after the user already closed the fd must not
// remove a newer registration that reused the descriptor number.
TEST_P(HandlerTest, StaleDeregisterLeavesReusedDescriptorAlone) {
  auto loop = MakeLoop();
  auto first = std::make_unique<SocketPair>();
  const int fd = first->loop_end;
  ASSERT_TRUE(
      Reg(loop.get(), fd, Token(1), Interest::Readable(), [](const Event&) {
      }).ok());
  first.reset();  // closes fd before Deregister: the mistake under test
  // A new socket with the old number, as the kernel gives on reuse.
  std::unique_ptr<SocketPair> second_pair = SocketPairNumbered(fd);
  ASSERT_NE(second_pair, nullptr);
  SocketPair& second = *second_pair;
  std::atomic<size_t> bytes{0};
  auto register_second = [&] {
    return Reg(loop.get(), fd, Token(2), Interest::Readable(),
               [&](const Event&) { bytes += Drain(fd); });
  };
  absl::Status reg = register_second();
  const PollerBackend backend = loop->stats().backend;
  // IOCP and io_uring keep a socket closed while registered open until its
  // Deregister (poll/poller.h).
  const bool kept_until_deregister =
      backend == PollerBackend::kIocp || backend == PollerBackend::kIoUring;
  if (backend == PollerBackend::kPoll) {
    GTEST_SKIP() << "poll(2) refuses the newer registration instead";
  }
  if (kept_until_deregister) {
    // The new socket with the old number is refused, and the late
    // Deregister frees the number for it.
    EXPECT_EQ(reg.code(), absl::StatusCode::kAlreadyExists) << reg;
    EXPECT_TRUE(loop->Deregister(Token(1)).ok());
    reg = register_second();
  }
  ASSERT_TRUE(reg.ok()) << reg;
  absl::Status stale = loop->Deregister(Token(1));
  EXPECT_EQ(stale.code(), kept_until_deregister
                              ? absl::StatusCode::kNotFound
                              : absl::StatusCode::kFailedPrecondition)
      << stale;
  EXPECT_EQ(loop->Reregister(Token(1), Interest::Readable()).code(),
            absl::StatusCode::kNotFound);
  LoopRunner runner(loop.get());
  WriteAll(second.peer, "live", 4);
  EXPECT_TRUE(WaitFor([&] { return bytes.load() == 4; }));
  ASSERT_TRUE(runner.StopAndJoin().ok());
  EXPECT_TRUE(loop->Deregister(Token(2)).ok());
}

INSTANTIATE_TEST_SUITE_P(EveryMode, EventLoopTest, EveryLoopMode(),
                         LoopConfigName);
INSTANTIATE_TEST_SUITE_P(EveryModeAndKind, HandlerTest,
                         EveryLoopModeAndHandlerKind(), LoopConfigName);

}  // namespace
}  // namespace reactor_testing
}  // namespace mill
