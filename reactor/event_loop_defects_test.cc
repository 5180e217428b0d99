// Tests of the EventLoop: the defects of issues 11 and 16 (section 1), and
// RegisteredHandler's one registration at a time.
#include "reactor/testing/loop_fixture.h"

namespace mill {
namespace reactor_testing {
namespace {

// --- Defects of issue 11 section 1 ---------------------------------------

// §1.1: Init() failing (kqueue does not exist on Linux) is an error, not a
// crash in the half-built loop's destructor.
TEST_P(EventLoopTest, CreateReportsInitFailure) {
  EventLoopOptions options;
  Configure(options);
  std::vector<PollerBackend> available = Poller::AvailableBackends();
  for (PollerBackend backend :
       {PollerBackend::kEpoll, PollerBackend::kKqueue, PollerBackend::kPoll}) {
    if (std::find(available.begin(), available.end(), backend) !=
        available.end()) {
      continue;
    }
    options.backend = backend;
    absl::StatusOr<std::unique_ptr<EventLoop>> loop =
        EventLoop::Create(options);
    EXPECT_EQ(loop.status().code(), absl::StatusCode::kUnimplemented)
        << loop.status();
  }
}

// §1.5: a task queued before Stop() never runs; Run() returns at once and
// destroys it.
TEST_P(EventLoopTest, StopBeforeRunDropsQueuedTasks) {
  auto loop = MakeLoop();
  std::atomic<bool> ran{false};
  auto witness = std::make_shared<int>(0);
  ASSERT_TRUE(loop->RunInLoop([&ran, witness] { ran = true; }).ok());
  std::weak_ptr<int> weak = witness;
  witness.reset();
  EXPECT_FALSE(weak.expired());  // queued
  loop->Stop();
  EXPECT_TRUE(loop->Run().ok());
  EXPECT_FALSE(ran.load());
  EXPECT_TRUE(weak.expired());  // destroyed without running
}

// §1.3: once Cancel() returns true, a repeating timer's callback neither
// runs nor starts again, even when Cancel comes from another thread while
// an invocation runs.
TEST_P(EventLoopTest, CancelWaitsForRunningRepeatingTimer) {
  auto loop = MakeLoop();
  LoopRunner runner(loop.get());
  std::atomic<bool> running{false};
  std::atomic<int> calls{0};
  EventLoop::TimerId id = loop->RunEvery(absl::Milliseconds(1), [&] {
    running = true;
    ++calls;
    std::this_thread::sleep_for(milliseconds(50));
    running = false;
  });
  ASSERT_TRUE(WaitFor([&] { return running.load(); }));
  EXPECT_TRUE(loop->Cancel(id));
  // The caller may now free what the callback uses.
  EXPECT_FALSE(running.load());
  const int calls_at_cancel = calls.load();
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_EQ(calls.load(), calls_at_cancel);
  EXPECT_FALSE(loop->Cancel(id));
}

TEST_P(EventLoopTest, NoTimerStartsAfterCancelReturnedTrue) {
  auto loop = MakeLoop();
  LoopRunner runner(loop.get());
  const int kRounds = 200 / kScale;
  std::atomic<int> late_starts{0};
  for (int round = 0; round < kRounds; ++round) {
    auto cancelled = std::make_shared<std::atomic<bool>>(false);
    auto started = std::make_shared<std::atomic<int>>(0);
    EventLoop::TimerId id = loop->RunEvery(absl::Microseconds(200),
                                           [cancelled, started, &late_starts] {
                                             if (cancelled->load())
                                               ++late_starts;
                                             ++*started;
                                           });
    ASSERT_TRUE(id.valid());
    // Cancel at varying phases of the period.
    SleepAtLeast(std::chrono::microseconds(round % 7 * 150));
    if (loop->Cancel(id)) cancelled->store(true);
  }
  std::this_thread::sleep_for(milliseconds(20));
  EXPECT_EQ(late_starts.load(), 0);
  EXPECT_EQ(loop->pending_timers(), 0u);
}

// §1.8: destructors of what the user gave the loop run after the loop's
// locks are released, so they may call back into the loop (each of these
// self-deadlocked if run under the lock it re-takes).
TEST_P(HandlerTest, DestructorsMayCallBackIntoTheLoop) {
  auto loop = MakeLoop();
  EventLoop* raw = loop.get();
  // Calls into the loop from its destructor.
  struct CallsBack {
    EventLoop* loop;
    std::atomic<int>* destroyed;
    explicit CallsBack(EventLoop* l, std::atomic<int>* d)
        : loop(l), destroyed(d) {}
    CallsBack(CallsBack&& other) noexcept
        : loop(std::exchange(other.loop, nullptr)),
          destroyed(other.destroyed) {}
    ~CallsBack() {
      if (loop == nullptr) return;
      (void)loop->pending_timers();
      (void)loop->stats();
      EventLoop::TimerId id = loop->RunAfter(absl::Hours(1), [] {});
      (void)loop->Cancel(id);
      ++*destroyed;
    }
  };
  std::atomic<int> destroyed{0};
  LoopRunner runner(raw);
  // A cancelled timer's callback.
  EventLoop::TimerId pending = raw->RunAfter(
      absl::Hours(1), [probe = CallsBack(raw, &destroyed)] { (void)probe; });
  EXPECT_TRUE(raw->Cancel(pending));
  EXPECT_TRUE(WaitFor([&] { return destroyed.load() == 1; }));
  // A one-shot timer's callback, destroyed after it ran.
  raw->RunAfter(absl::Milliseconds(1),
                [probe = CallsBack(raw, &destroyed)] { (void)probe; });
  EXPECT_TRUE(WaitFor([&] { return destroyed.load() == 2; }));
  // A cancelled repeating timer's callback.
  EventLoop::TimerId every =
      raw->RunEvery(absl::Milliseconds(1),
                    [probe = CallsBack(raw, &destroyed)] { (void)probe; });
  std::this_thread::sleep_for(milliseconds(5));
  EXPECT_TRUE(raw->Cancel(every));
  EXPECT_TRUE(WaitFor([&] { return destroyed.load() == 3; }));
  // A handler dropped by a failed Register, and one dropped by Deregister.
  struct CallingHandler : RegisteredHandler {
    CallsBack probe;
    explicit CallingHandler(CallsBack p) : probe(std::move(p)) {}
    void HandleEvent(const Event&) override {}
  };
  EXPECT_FALSE(Reg(raw, -1, Token(9), Interest::Readable(),
                   std::make_shared<CallingHandler>(CallsBack(raw, &destroyed)))
                   .ok());
  EXPECT_EQ(destroyed.load(), 4);
  SocketPair pair;
  ASSERT_TRUE(Reg(raw, pair.loop_end, Token(10), Interest::Readable(),
                  std::make_shared<CallingHandler>(CallsBack(raw, &destroyed)))
                  .ok());
  ASSERT_TRUE(raw->Deregister(Token(10)).ok());
  EXPECT_TRUE(WaitFor([&] { return destroyed.load() == 5; }));
  // A task rejected by a stopped loop, and one dropped when it stopped.
  ASSERT_TRUE(runner.StopAndJoin().ok());
  EXPECT_FALSE(
      raw->RunInLoop([probe = CallsBack(raw, &destroyed)] { (void)probe; })
          .ok());
  EXPECT_EQ(destroyed.load(), 6);
}

// --- RegisteredHandler: one registration at a time, released for reuse ---

// A RegisteredHandler that counts its calls and remembers the token it saw.
class CountingHandler final : public RegisteredHandler {
 public:
  explicit CountingHandler(int fd) : fd_(fd) {}
  void HandleEvent(const Event& event) override {
    if (running_.exchange(true)) overlaps_.fetch_add(1);
    last_token_.store(event.token().value());
    Drain(fd_.load());
    calls_.fetch_add(1);
    running_.store(false);
  }
  std::atomic<int> fd_;  // what it drains
  std::atomic<bool> running_{false};
  std::atomic<int> overlaps_{0};
  std::atomic<int> calls_{0};
  std::atomic<uint64_t> last_token_{0};
};

TEST_P(EventLoopTest, RegisteredHandlerIsRegisteredOnceAtATime) {
  auto loop = MakeLoop();
  auto other_loop = MakeLoop();
  SocketPair a, b;
  auto handler = std::make_shared<CountingHandler>(a.loop_end);
  ASSERT_TRUE(
      loop->Register(a.loop_end, Token(1), Interest::Readable(), handler).ok());
  // Not again while registered: under another token, unnamed, or with
  // another loop.
  EXPECT_EQ(loop->Register(b.loop_end, Token(2), Interest::Readable(), handler)
                .code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(
      loop->Register(b.loop_end, Interest::Readable(), handler).status().code(),
      absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(
      other_loop->Register(b.loop_end, Token(1), Interest::Readable(), handler)
          .code(),
      absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(loop->stats().registered, 1u);
  // The same object as a plain EventHandler is a separate registration (the
  // loop allocates its state), as for any handler.
  ASSERT_TRUE(loop->Register(b.loop_end, Token(3), Interest::Readable(),
                             std::shared_ptr<EventHandler>(handler))
                  .ok());
  ASSERT_TRUE(loop->Deregister(Token(3)).ok());
  LoopRunner runner(loop.get());
  WriteAll(a.peer, "x", 1);
  ASSERT_TRUE(WaitFor([&] { return handler->calls_.load() == 1; }));
  EXPECT_EQ(handler->last_token_.load(), 1u);
  // Released once Deregister returned: it may be registered again, here
  // unnamed on another descriptor, and gets that registration's events.
  ASSERT_TRUE(loop->Deregister(Token(1)).ok());
  handler->fd_ = b.loop_end;
  absl::StatusOr<Registration> again =
      loop->Register(b.loop_end, Interest::Readable(), handler);
  ASSERT_TRUE(again.ok()) << again.status();
  WriteAll(a.peer, "y", 1);  // no longer registered: no call
  WriteAll(b.peer, "z", 1);
  ASSERT_TRUE(WaitFor([&] { return handler->calls_.load() == 2; }));
  EXPECT_EQ(handler->last_token_.load(), again->id());
  // Handles of the earlier registration name nothing any more.
  EXPECT_EQ(loop->Reregister(Token(1), Interest::Writable()).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(loop->Deregister(Token(1)).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(loop->Deregister(*again).ok());
  handler->fd_ = a.loop_end;
  absl::StatusOr<Registration> third =
      loop->Register(a.loop_end, Interest::Readable(), handler);
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(loop->Reregister(*again, Interest::Writable()).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(loop->Deregister(*again).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(WaitFor([&] { return handler->calls_.load() == 3; }));  // "y"
  EXPECT_EQ(handler->last_token_.load(), third->id());
  ASSERT_TRUE(loop->Deregister(*third).ok());
  ASSERT_TRUE(runner.StopAndJoin().ok());
  EXPECT_EQ(handler->calls_.load(), 3);
  EXPECT_EQ(handler->overlaps_.load(), 0);
  // The loops dropped their references: only ours is left.
  EXPECT_EQ(handler.use_count(), 1);
}

// Deregister with on_released while the handler runs: the registration is
// released when the invocation returns, right before on_released, which may
// register the handler again at once. A handler that deregistered itself is
// released when it returns, not before.
TEST_P(EventLoopTest, RegisteredHandlerIsReleasedWhenItsInvocationEnds) {
  auto loop = MakeLoop();
  EventLoop* raw = loop.get();
  SocketPair pair;
  enum Mode { kBlock, kDeregisterSelf };
  std::atomic<int> mode{kBlock};
  std::atomic<bool> in_handler{false}, let_go{false}, self_done{false};
  std::atomic<int> calls{0};
  std::atomic<Registration> current{Registration()};
  absl::Status self_deregister, again_inside;  // written by the handler
  class Handler final : public RegisteredHandler {
   public:
    explicit Handler(std::function<void()> body) : body_(std::move(body)) {}
    void HandleEvent(const Event&) override { body_(); }

   private:
    std::function<void()> body_;
  };
  std::shared_ptr<Handler> handler;
  handler = std::make_shared<Handler>([&, raw] {
    ++calls;
    Drain(pair.loop_end);
    if (mode.load() == kBlock) {
      in_handler = true;
      while (!let_go.load()) std::this_thread::sleep_for(milliseconds(1));
      in_handler = false;
      return;
    }
    self_deregister = raw->Deregister(current.load());
    // Still inside the invocation: not released yet.
    again_inside =
        raw->Register(pair.loop_end, Interest::Readable(), handler).status();
    self_done = true;
  });
  absl::StatusOr<Registration> reg =
      raw->Register(pair.loop_end, Interest::Readable(), handler);
  ASSERT_TRUE(reg.ok()) << reg.status();
  LoopRunner runner(raw);
  WriteAll(pair.peer, "x", 1);
  ASSERT_TRUE(WaitFor([&] { return in_handler.load(); }));
  std::atomic<bool> released{false};
  std::atomic<bool> again_in_release{false};
  ASSERT_TRUE(
      raw->Deregister(*reg,
                      [&, raw] {
                        absl::StatusOr<Registration> again = raw->Register(
                            pair.loop_end, Interest::Readable(), handler);
                        if (again.ok()) {
                          current = *again;
                          again_in_release = true;
                        }
                        released = true;
                      })
          .ok());
  // Still running: not released yet.
  EXPECT_EQ(raw->Register(pair.loop_end, Interest::Readable(), handler)
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
  let_go = true;
  ASSERT_TRUE(WaitFor([&] { return released.load(); }));
  ASSERT_TRUE(again_in_release.load());
  EXPECT_EQ(raw->stats().registered, 1u);

  mode = kDeregisterSelf;
  WriteAll(pair.peer, "y", 1);
  ASSERT_TRUE(WaitFor([&] { return self_done.load(); }));
  // Released once that invocation returned.
  absl::StatusOr<Registration> last;
  EXPECT_TRUE(WaitFor([&] {
    last = raw->Register(pair.loop_end, Interest::None(), handler);
    return last.ok();
  }));
  ASSERT_TRUE(runner.StopAndJoin().ok());
  EXPECT_TRUE(self_deregister.ok()) << self_deregister;
  EXPECT_EQ(again_inside.code(), absl::StatusCode::kFailedPrecondition)
      << again_inside;
  EXPECT_EQ(calls.load(), 2);
  ASSERT_TRUE(raw->Deregister(*last).ok());
  EXPECT_EQ(raw->stats().registered, 0u);
}

// Guarantees 1, 3 and 6 for one RegisteredHandler registered again and again
// (under a new token each time), alternately on a descriptor that is always
// ready and on one that never is: a call never overlaps another, never comes
// after the Deregister that ended its registration returned, always carries
// the token of the registration it belongs to, and never comes while it is
// registered on the silent descriptor. (A dispatcher that looked the handler
// up just before a Deregister must not run it for the next registration: the
// gate carries the generation.)
TEST_P(EventLoopTest, RegisteredHandlerReusedWhileReadyGetsNoStaleEvents) {
  auto loop = MakeLoop();
  SocketPair ready, silent;
  const int kRounds = 600 / kScale;
  std::atomic<uint64_t> live_token{0};  // 0: not registered
  std::atomic<bool> on_silent{false};
  std::atomic<int> stale_calls{0}, calls{0}, overlaps{0};
  std::atomic<bool> running{false};
  std::atomic<uint64_t> last_called{0};
  auto handler = std::make_shared<FnHandler>([&](const Event& event) {
    if (running.exchange(true)) ++overlaps;
    if (event.token().value() != live_token.load() || on_silent.load()) {
      ++stale_calls;
    }
    ++calls;
    last_called = event.token().value();
    // Data stays unread: the source stays ready, so every poll reports it.
    std::this_thread::yield();
    running.store(false);
  });
  WriteAll(ready.peer, "ready", 5);
  LoopRunner runner(loop.get());
  for (int round = 1; round <= kRounds; ++round) {
    const bool silent_round = round % 2 == 0;
    on_silent = silent_round;
    live_token = round;
    ASSERT_TRUE(loop->Register(silent_round ? silent.loop_end : ready.loop_end,
                               Token(round), Interest::Readable(), handler)
                    .ok());
    if (!silent_round) {
      SleepAtLeast(std::chrono::microseconds(round % 5 * 50));
      // Some rounds wait for their call, so that calls happen however slow
      // the platform's delivery is (the others race the Deregister).
      if (round % 10 == 1) {
        EXPECT_TRUE(WaitFor([&] { return last_called.load() == round; }));
      }
    }
    ASSERT_TRUE(loop->Deregister(Token(round)).ok());
    live_token = 0;
  }
  ASSERT_TRUE(runner.StopAndJoin().ok());
  EXPECT_GT(calls.load(), 0);
  EXPECT_EQ(stale_calls.load(), 0);
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_EQ(loop->stats().registered, 0u);
  EXPECT_EQ(handler.use_count(), 1);
}

// --- Defects of issue 16 section 1 ---------------------------------------

// Defect 6: a RunInLoop task blocks and the first poller is taken over from
// it. Tasks queued meanwhile cannot run until it returns (tasks never
// overlap), so the new owner must sleep in its poll rather than poll without
// a timeout for as long as the task blocks; once it returns, the tasks
// queued behind it (in its batch, and posted since) run, in order.
TEST_P(EventLoopTest, NewOwnerSleepsWhileTakenOverTaskBlocks) {
  if (!tolerates_blocking()) GTEST_SKIP() << "one thread: no takeover";
  auto loop = MakeLoop();
  EventLoop* raw = loop.get();
  std::atomic<bool> release{false}, in_task{false};
  std::mutex order_mu;
  std::vector<int> order;
  auto record = [&](int i) {
    std::lock_guard<std::mutex> lock(order_mu);
    order.push_back(i);
  };
  // Queued before Run(): one batch, so task 2 waits in the blocked runner's
  // batch and task 3 (below) in the queue.
  ASSERT_TRUE(raw->RunInLoop([&] {
                   record(1);
                   in_task = true;
                   while (!release.load()) {
                     std::this_thread::sleep_for(milliseconds(1));
                   }
                 })
                  .ok());
  ASSERT_TRUE(raw->RunInLoop([&] { record(2); }).ok());
  LoopRunner runner(raw);
  ASSERT_TRUE(WaitFor([&] { return in_task.load(); }));
  ASSERT_TRUE(WaitFor([&] { return raw->stats().takeovers >= 1; }));
  ASSERT_TRUE(raw->RunInLoop([&] { record(3); }).ok());
  // Nothing to act on until the task returns: no I/O, no timer. The window
  // bounds how long we look, not what we expect: a spinning owner polls
  // thousands of times in it even on a loaded machine, a sleeping one at
  // most a few times (for the wake-up of the RunInLoop above).
  const uint64_t polls_before = raw->stats().polls;
  std::this_thread::sleep_for(milliseconds(200));
  const uint64_t polls_while_blocked = raw->stats().polls - polls_before;
  EXPECT_LE(polls_while_blocked, 3u);
  {
    std::lock_guard<std::mutex> lock(order_mu);
    EXPECT_EQ(order, (std::vector<int>{1}));  // nothing overtook the task
  }
  release = true;
  ASSERT_TRUE(WaitFor([&] {
    std::lock_guard<std::mutex> lock(order_mu);
    return order.size() == 3;
  }));
  std::lock_guard<std::mutex> lock(order_mu);
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

INSTANTIATE_TEST_SUITE_P(EveryMode, EventLoopTest, EveryLoopMode(),
                         LoopConfigName);
INSTANTIATE_TEST_SUITE_P(EveryModeAndKind, HandlerTest,
                         EveryLoopModeAndHandlerKind(), LoopConfigName);

}  // namespace
}  // namespace reactor_testing
}  // namespace mill
