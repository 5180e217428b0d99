// Tests of the EventLoop: options, and the guarantees of reactor/event_loop.h
// that concern handlers (ordering, no lost readiness, safe deregistration,
// generations, exceptions, stop under load), in every loop configuration
// and with each kind of handler.
#include <cstdlib>
#include <string>

#include "base/os_thread.h"
#include "reactor/testing/loop_fixture.h"

namespace mill {
namespace reactor_testing {
namespace {

TEST_P(EventLoopTest, RejectsBadOptions) {
  EventLoopOptions options;
  options.workers = -1;
  EXPECT_EQ(EventLoop::Create(options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.workers = 1;
  options.polling_threads = -1;
  EXPECT_EQ(EventLoop::Create(options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.polling_threads = 0;
  options.takeover_delay = absl::ZeroDuration();
  EXPECT_EQ(EventLoop::Create(options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.takeover_delay = absl::Milliseconds(1);
  options.events_capacity = 0;
  EXPECT_EQ(EventLoop::Create(options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// The *_uring variant of this test runs with MILL_IO=uring
// (bazel/io_engines.bzl): its loops must really poll with io_uring.
TEST_P(EventLoopTest, PollsWithTheEngineTheEnvironmentNames) {
  const char* env = std::getenv("MILL_IO");
  auto loop = MakeLoop();
  EXPECT_FALSE(loop->stats().io_uring_fallback);
  if (env != nullptr && std::string(env) == "uring") {
    EXPECT_EQ(loop->stats().backend, PollerBackend::kIoUring);
  } else if (env == nullptr) {
    EXPECT_EQ(loop->stats().backend, Poller::AvailableBackends().front());
  }
}

TEST_P(EventLoopTest, DefaultConfiguration) {
  EventLoopOptions defaults;
  EXPECT_EQ(defaults.workers, 0);          // polling threads + 1
  EXPECT_EQ(defaults.polling_threads, 0);  // one per CPU we may run on
  EXPECT_EQ(defaults.events_capacity, 1024u);
  EXPECT_EQ(defaults.poll_timeout, absl::Milliseconds(100));
  EXPECT_EQ(defaults.dispatch_mode, DispatchMode::kPool);
  const int available = AvailableCpus();
  absl::StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create();
  ASSERT_TRUE(loop.ok()) << loop.status();
  EXPECT_EQ((*loop)->polling_threads(), available);
  EXPECT_EQ((*loop)->workers(), available + 1);
  // The resolved configuration of this test's parameters.
  auto configured = MakeLoop();
  if (mode() == DispatchMode::kDirect) {
    EXPECT_EQ(configured->workers(), 1);
    EXPECT_EQ(configured->polling_threads(), 1);
  } else {
    EXPECT_EQ(configured->workers(), GetParam().workers);
    EXPECT_EQ(configured->polling_threads(), GetParam().polling_threads);
  }
}

TEST_P(HandlerTest, RegistrationErrors) {
  auto loop = MakeLoop();
  SocketPair a;
  auto noop = [](const Event&) {};
  ASSERT_TRUE(
      Reg(loop.get(), a.loop_end, Token(1), Interest::Readable(), noop).ok());
  SocketPair b;
  EXPECT_EQ(
      Reg(loop.get(), b.loop_end, Token(1), Interest::Readable(), noop).code(),
      absl::StatusCode::kAlreadyExists);
  // A bad fd fails cleanly and leaves the token free.
  absl::Status bad = Reg(loop.get(), -1, Token(2), Interest::Readable(), noop);
  EXPECT_FALSE(bad.ok());
  EXPECT_TRUE(
      Reg(loop.get(), b.loop_end, Token(2), Interest::Readable(), noop).ok());
  EXPECT_EQ(loop->Deregister(Token(99)).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(loop->Reregister(Token(99), Interest::Writable()).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(loop->Register(b.loop_end, Token(3), Interest::Readable(),
                           std::shared_ptr<EventHandler>())
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(loop->Register(b.loop_end, Token(3), Interest::Readable(),
                           std::shared_ptr<RegisteredHandler>())
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(loop->Register(b.loop_end, Interest::Readable(),
                           std::shared_ptr<RegisteredHandler>())
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(loop->stats().registered, 2u);
  EXPECT_TRUE(loop->Deregister(Token(1)).ok());
  EXPECT_EQ(loop->Deregister(Token(1)).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(loop->stats().registered, 1u);
}

TEST_P(HandlerTest, DeliversReadableAndData) {
  auto loop = MakeLoop();
  SocketPair pair;
  std::atomic<size_t> received{0};
  std::atomic<uint64_t> token_seen{0};
  ASSERT_TRUE(Reg(loop.get(), pair.loop_end, Token(7), Interest::Readable(),
                  [&](const Event& e) {
                    token_seen = e.token().value();
                    if (e.is_readable()) received += Drain(pair.loop_end);
                  })
                  .ok());
  LoopRunner runner(loop.get());
  const std::string message(10000, 'x');
  WriteAll(pair.peer, message.data(), message.size());
  EXPECT_TRUE(WaitFor([&] { return received.load() == message.size(); }));
  // The handler sees the user's token, not the internal generation tag.
  EXPECT_EQ(token_seen.load(), 7u);
  EXPECT_TRUE(runner.StopAndJoin().ok());
}

TEST_P(HandlerTest, ReregisterChangesInterest) {
  auto loop = MakeLoop();
  SocketPair pair;
  std::atomic<int> readable{0}, writable{0};
  ASSERT_TRUE(Reg(loop.get(), pair.loop_end, Token(1), Interest::Readable(),
                  [&](const Event& e) {
                    if (e.is_readable()) ++readable;
                    if (e.is_writable()) ++writable;
                  })
                  .ok());
  LoopRunner runner(loop.get());
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_EQ(readable.load() + writable.load(), 0);  // nothing to read
  ASSERT_TRUE(loop->Reregister(Token(1), Interest::Writable()).ok());
  EXPECT_TRUE(WaitFor([&] { return writable.load() > 0; }));
  EXPECT_EQ(readable.load(), 0);
}

// Guarantees 1 and 2: per-source ordering, no overlap, no lost readiness.
TEST_P(HandlerTest, OrderedNonOverlappingNoLostReadinessUnderLoad) {
  auto loop = MakeLoop();
  constexpr int kSources = 16;
  constexpr int kWriters = 4;
  const uint64_t kRecords = 4000 / kScale;
  struct PerSource {
    SocketPair pair;
    std::string residual;
    uint64_t expected = 0;  // next sequence number
    std::atomic<bool> in_handler{false};
    std::atomic<int> overlaps{0};
    std::atomic<int> out_of_order{0};
    std::atomic<uint64_t> received{0};
  };
  std::vector<std::unique_ptr<PerSource>> sources;
  for (int i = 0; i < kSources; ++i) {
    sources.push_back(std::make_unique<PerSource>());
    PerSource* s = sources.back().get();
    ASSERT_TRUE(Reg(loop.get(), s->pair.loop_end, Token(100 + i),
                    Interest::Readable(),
                    [s](const Event&) {
                      if (s->in_handler.exchange(true)) ++s->overlaps;
                      Drain(s->pair.loop_end, &s->residual);
                      size_t used = 0;
                      while (s->residual.size() - used >= 8) {
                        uint64_t seq;
                        memcpy(&seq, s->residual.data() + used, 8);
                        used += 8;
                        if (seq != s->expected) ++s->out_of_order;
                        s->expected = seq + 1;
                        ++s->received;
                      }
                      s->residual.erase(0, used);
                      // Give concurrent deliveries a chance to
                      // overlap.
                      std::this_thread::yield();
                      s->in_handler.store(false);
                    })
                    .ok());
  }
  LoopRunner runner(loop.get());
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      for (uint64_t seq = 0; seq < kRecords; ++seq) {
        for (int i = w; i < kSources; i += kWriters) {
          WriteAll(sources[i]->pair.peer, &seq, sizeof(seq));
        }
      }
    });
  }
  for (auto& t : writers) t.join();
  EXPECT_TRUE(WaitFor([&] {
    for (auto& s : sources)
      if (s->received.load() != kRecords) return false;
    return true;
  })) << "lost readiness: some records were never delivered";
  ASSERT_TRUE(runner.StopAndJoin().ok());
  for (auto& s : sources) {
    EXPECT_EQ(s->received.load(), kRecords);
    EXPECT_EQ(s->overlaps.load(), 0);
    EXPECT_EQ(s->out_of_order.load(), 0);
  }
}

// Guarantee 3: after Deregister returns (other thread), the handler is not
// running, is never called again, and is destroyed after its last call.
TEST_P(HandlerTest, DeregisterWhileEventsFireNeverCallsAfterReturn) {
  auto loop = MakeLoop();
  LoopRunner runner(loop.get());
  const int kRounds = 1000 / kScale;
  std::atomic<int> calls_after_deregister{0};
  std::atomic<int> running_at_return{0};
  std::atomic<int> destroyed_while_running{0};
  std::atomic<int> total_calls{0};

  struct Probe : RegisteredHandler {
    int fd;
    std::atomic<bool>* deregistered;
    std::atomic<bool> running{false};
    std::atomic<int>* after;
    std::atomic<int>* destroyed_running;
    std::atomic<int>* calls;
    ~Probe() override {
      if (running.load()) ++*destroyed_running;
    }
    void HandleEvent(const Event&) override {
      running.store(true);
      if (deregistered->load()) ++*after;
      ++*calls;
      char buf[64];
      while (ReadSome(fd, buf, sizeof(buf)) > 0) {
      }
      running.store(false);
    }
  };

  for (int round = 0; round < kRounds; ++round) {
    SocketPair pair;
    std::atomic<bool> deregistered{false};
    const int calls_before = total_calls.load();
    auto probe = std::make_shared<Probe>();
    probe->fd = pair.loop_end;
    probe->deregistered = &deregistered;
    probe->after = &calls_after_deregister;
    probe->destroyed_running = &destroyed_while_running;
    probe->calls = &total_calls;
    std::weak_ptr<Probe> weak = probe;
    ASSERT_TRUE(Reg(loop.get(), pair.loop_end, Token(round),
                    Interest::Readable(), probe)
                    .ok());
    SetNonBlocking(pair.peer);  // the writer must not block once unread
    std::atomic<bool> stop_writer{false};
    std::thread writer([&] {
      char byte = 1;
      while (!stop_writer.load()) {
        (void)WriteSome(pair.peer, &byte, 1);
        std::this_thread::yield();
      }
    });
    SleepAtLeast(std::chrono::microseconds(round % 200));
    // Some rounds wait for a call, so that calls happen however slow the
    // platform's delivery is (the others race the Deregister).
    if (round % 10 == 0) {
      EXPECT_TRUE(WaitFor([&] { return total_calls.load() > calls_before; }));
    }
    ASSERT_TRUE(loop->Deregister(Token(round)).ok());
    if (probe->running.load()) ++running_at_return;
    deregistered.store(true);
    probe.reset();
    // Let any (forbidden) late delivery happen before we check.
    SleepAtLeast(std::chrono::microseconds(200));
    stop_writer.store(true);
    writer.join();
    // Nothing holds the handler any more once the loop let go of it.
    EXPECT_TRUE(WaitFor([&] { return weak.expired(); }));
  }
  EXPECT_EQ(calls_after_deregister.load(), 0);
  EXPECT_EQ(running_at_return.load(), 0);
  EXPECT_EQ(destroyed_while_running.load(), 0);
  EXPECT_GT(total_calls.load(), 0);
}

TEST_P(HandlerTest, DeregisterFromOwnHandlerStopsFurtherCalls) {
  auto loop = MakeLoop();
  SocketPair pair;
  std::atomic<int> calls{0};
  EventLoop* raw = loop.get();
  absl::Status inner;
  ASSERT_TRUE(Reg(loop.get(), pair.loop_end, Token(5), Interest::Readable(),
                  [&, raw](const Event&) {
                    ++calls;
                    inner = raw->Deregister(Token(5));
                    // Data stays unread: a level source would
                    // fire again if it were still registered.
                  })
                  .ok());
  LoopRunner runner(loop.get());
  WriteAll(pair.peer, "abc", 3);
  EXPECT_TRUE(WaitFor([&] { return calls.load() == 1; }));
  WriteAll(pair.peer, "def", 3);
  std::this_thread::sleep_for(milliseconds(100));
  ASSERT_TRUE(runner.StopAndJoin().ok());
  EXPECT_EQ(calls.load(), 1);
  EXPECT_TRUE(inner.ok()) << inner;
  EXPECT_EQ(loop->stats().registered, 0u);
}

// Guarantee 6: a token re-registered with a new fd never receives an event
// of the old registration. Two sources become ready together; whichever
// handler runs first moves the other's token to a silent fd, so the other's
// event in the same batch is stale and must be dropped.
TEST_P(HandlerTest, ReusedTokenGetsNoStaleEvents) {
  auto loop = MakeLoop();
  EventLoop* raw = loop.get();
  const int kRounds = 300 / kScale;
  std::atomic<int> stale_calls{0};
  std::atomic<int> rounds_done{0};
  std::vector<std::unique_ptr<SocketPair>> keep;  // fds stay open
  LoopRunner runner(loop.get());
  for (int i = 0; i < kRounds; ++i) {
    for (int k = 0; k < 3; ++k) keep.push_back(std::make_unique<SocketPair>());
    SocketPair& a = *keep[keep.size() - 3];
    SocketPair& b = *keep[keep.size() - 2];
    SocketPair& fresh = *keep[keep.size() - 1];  // never receives data
    const Token token_a(2 * i + 1), token_b(2 * i + 2);
    auto swapped = std::make_shared<std::atomic<bool>>(false);
    auto move_to_fresh = [&, raw, swapped](Token other) {
      if (swapped->exchange(true)) return;  // data stays unread
      EXPECT_TRUE(raw->Deregister(other).ok());
      const int fd = fresh.loop_end;
      EXPECT_TRUE(
          Reg(raw, fd, other, Interest::Readable(), [&, fd](const Event&) {
            if (BytesAvailable(fd) == 0) ++stale_calls;
          }).ok());
      ++rounds_done;
    };
    ASSERT_TRUE(
        Reg(raw, a.loop_end, token_a, Interest::Readable(), [=](const Event&) {
          move_to_fresh(token_b);
        }).ok());
    ASSERT_TRUE(
        Reg(raw, b.loop_end, token_b, Interest::Readable(), [=](const Event&) {
          move_to_fresh(token_a);
        }).ok());
    WriteAll(a.peer, "x", 1);
    WriteAll(b.peer, "y", 1);
    ASSERT_TRUE(WaitFor([&] { return rounds_done.load() == i + 1; }));
    SleepAtLeast(std::chrono::microseconds(500));
    ASSERT_TRUE(raw->Deregister(token_a).ok());
    ASSERT_TRUE(raw->Deregister(token_b).ok());
  }
  ASSERT_TRUE(runner.StopAndJoin().ok());
  EXPECT_EQ(stale_calls.load(), 0);
  EXPECT_EQ(loop->stats().registered, 0u);
}

// Guarantee 4: a throwing handler is counted and the loop keeps serving.
TEST_P(HandlerTest, ThrowingHandlerIsCountedAndLoopSurvives) {
  std::atomic<int> reported{0};
  std::atomic<uint64_t> reported_token{0};
  EventLoopOptions options;
  options.on_handler_exception = [&](Token token, std::exception_ptr) {
    reported_token = token.value();
    ++reported;
  };
  auto loop = MakeLoop(options);
  SocketPair bad, good;
  std::atomic<int> bad_calls{0};
  std::atomic<size_t> good_bytes{0};
  ASSERT_TRUE(Reg(loop.get(), bad.loop_end, Token(66), Interest::Readable(),
                  [&](const Event&) {
                    ++bad_calls;
                    Drain(bad.loop_end);
                    throw std::runtime_error("handler failure");
                  })
                  .ok());
  ASSERT_TRUE(Reg(loop.get(), good.loop_end, Token(67), Interest::Readable(),
                  [&](const Event&) { good_bytes += Drain(good.loop_end); })
                  .ok());
  LoopRunner runner(loop.get());
  for (int i = 0; i < 3; ++i) {
    WriteAll(bad.peer, "boom", 4);
    ASSERT_TRUE(WaitFor([&] { return bad_calls.load() == i + 1; }));
    WriteAll(good.peer, "ok", 2);
    ASSERT_TRUE(WaitFor([&] { return good_bytes.load() == 2u * (i + 1); }));
  }
  ASSERT_TRUE(runner.StopAndJoin().ok());
  EXPECT_EQ(loop->stats().handler_exceptions, 3u);
  EXPECT_EQ(reported.load(), 3);
  EXPECT_EQ(reported_token.load(), 66u);
}

// Guarantee 5: Stop under load returns Run promptly, with no handler left
// running.
TEST_P(HandlerTest, StopUnderLoadReturnsAfterRunningHandlersFinish) {
  auto loop = MakeLoop();
  constexpr int kSources = 8;
  std::vector<std::unique_ptr<SocketPair>> pairs;
  std::atomic<int> in_handler{0};
  std::atomic<int> calls{0};
  for (int i = 0; i < kSources; ++i) {
    pairs.push_back(std::make_unique<SocketPair>());
    int fd = pairs.back()->loop_end;
    ASSERT_TRUE(Reg(loop.get(), fd, Token(i), Interest::Readable(),
                    [&, fd](const Event&) {
                      ++in_handler;
                      ++calls;
                      Drain(fd);
                      std::this_thread::sleep_for(milliseconds(2));
                      --in_handler;
                    })
                    .ok());
  }
  std::atomic<bool> stop_writers{false};
  std::vector<std::thread> writers;
  for (int i = 0; i < kSources; ++i) {
    // Non-blocking: once the loop stopped nobody reads, and 278 writes of 4
    // bytes fill a Unix socket's buffer (a blocked writer hung the test).
    SetNonBlocking(pairs[i]->peer);
    writers.emplace_back([&, i] {
      while (!stop_writers.load()) {
        (void)WriteSome(pairs[i]->peer, "data", 4);
        SleepAtLeast(std::chrono::microseconds(100));
      }
    });
  }
  std::thread runner([&] { EXPECT_TRUE(loop->Run().ok()); });
  ASSERT_TRUE(WaitFor([&] { return calls.load() > 20; }));
  const auto stop_at = steady_clock::now();
  loop->Stop();
  runner.join();
  const auto took = steady_clock::now() - stop_at;
  EXPECT_EQ(in_handler.load(), 0);  // Run() waited for running handlers
  // Poll timeout (50 ms) + longest handler (2 ms), with slack for a loaded
  // machine and sanitizers; this guards against hangs, not for speed.
  EXPECT_LT(took, milliseconds(2000));
  const int calls_at_stop = calls.load();
  std::this_thread::sleep_for(milliseconds(20));
  EXPECT_EQ(calls.load(), calls_at_stop);  // nothing runs after Run returned
  stop_writers.store(true);
  for (auto& t : writers) t.join();
  EXPECT_TRUE(loop->is_stopped());
  EXPECT_TRUE(loop->Run().ok());  // a stopped loop returns at once
}

INSTANTIATE_TEST_SUITE_P(EveryMode, EventLoopTest, EveryLoopMode(),
                         LoopConfigName);
INSTANTIATE_TEST_SUITE_P(EveryModeAndKind, HandlerTest,
                         EveryLoopModeAndHandlerKind(), LoopConfigName);

}  // namespace
}  // namespace reactor_testing
}  // namespace mill
