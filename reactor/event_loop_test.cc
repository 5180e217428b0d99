#include "reactor/event_loop.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "objectpool/buffer_pool.h"
#include "threadpool/thread_pool.h"

namespace mill {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

#ifdef MILL_IO_SANITIZER
constexpr int kScale = 4;  // sanitizers are slow: fewer iterations
#else
constexpr int kScale = 1;
#endif

// Polls `pred` until it holds or `timeout` passes; returns its last value.
template <typename Pred>
bool WaitFor(Pred pred, milliseconds timeout = milliseconds(10000)) {
  const auto deadline = steady_clock::now() + timeout;
  while (!pred()) {
    if (steady_clock::now() > deadline) return pred();
    std::this_thread::sleep_for(milliseconds(1));
  }
  return true;
}

void SetNonBlocking(int fd) {
  ASSERT_EQ(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
}

// A non-blocking socketpair, closed on destruction.
struct SocketPair {
  int loop_end = -1;  // registered with the loop
  int peer = -1;      // driven by the test
  SocketPair() {
    int fds[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    loop_end = fds[0];
    peer = fds[1];
    SetNonBlocking(loop_end);
  }
  ~SocketPair() {
    if (loop_end >= 0) close(loop_end);
    if (peer >= 0) close(peer);
  }
  SocketPair(const SocketPair&) = delete;
  SocketPair& operator=(const SocketPair&) = delete;
};

// Reads everything available (until EAGAIN); returns bytes read.
size_t Drain(int fd, std::string* into = nullptr) {
  char buf[4096];
  size_t total = 0;
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n > 0) {
      total += n;
      if (into) into->append(buf, n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return total;
  }
}

void WriteAll(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = write(fd, p, size);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      std::this_thread::yield();
      continue;
    }
    ASSERT_GT(n, 0) << strerror(errno);
    p += n;
    size -= n;
  }
}

// Runs a loop on a background thread for the duration of a test.
class LoopRunner {
 public:
  explicit LoopRunner(EventLoop* loop) : loop_(loop) {
    thread_ = std::thread([this] { result_ = loop_->Run(); });
  }
  ~LoopRunner() { (void)StopAndJoin(); }
  absl::Status StopAndJoin() {
    if (thread_.joinable()) {
      loop_->Stop();
      thread_.join();
    }
    return result_;
  }

 private:
  EventLoop* loop_;
  std::thread thread_;
  absl::Status result_;
};

// How a HandlerTest registers its handlers: as plain EventHandlers (the
// loop allocates their registration state) or as RegisteredHandlers
// carrying it (reactor/event_handler.h).
enum class HandlerKind { kShared, kEmbedded };

// The loop configurations every test runs in: direct mode; pool mode with
// one thread (no standby); one poller and two standby-capable threads (a
// blocked handler is taken over); two pollers and a standby. HandlerTests
// run in each of them with each kind of handler.
struct LoopConfig {
  const char* name;
  DispatchMode mode;
  int workers;
  int polling_threads;
  HandlerKind kind = HandlerKind::kShared;
};

class EventLoopTest : public ::testing::TestWithParam<LoopConfig> {
 protected:
  DispatchMode mode() const { return GetParam().mode; }
  // Whether a handler that blocks leaves other sources served.
  bool tolerates_blocking() const {
    return GetParam().mode == DispatchMode::kPool && GetParam().workers > 1;
  }
  void Configure(EventLoopOptions& options) const {
    options.dispatch_mode = GetParam().mode;
    options.workers = GetParam().workers;
    options.polling_threads = GetParam().polling_threads;
  }
  std::unique_ptr<EventLoop> MakeLoop(EventLoopOptions options = {}) {
    Configure(options);
    options.poll_timeout = absl::Milliseconds(50);
    // Short, so that takeovers (also spurious ones, of handlers merely
    // preempted on a loaded machine) are exercised often.
    options.takeover_delay = absl::Milliseconds(1);
    absl::StatusOr<std::unique_ptr<EventLoop>> loop =
        EventLoop::Create(std::move(options));
    EXPECT_TRUE(loop.ok()) << loop.status();
    return std::move(*loop);
  }
};

// Calls `fn`. A RegisteredHandler, so that it can be registered either way.
class FnHandler final : public RegisteredHandler {
 public:
  explicit FnHandler(std::function<void(const Event&)> fn)
      : fn_(std::move(fn)) {}
  void HandleEvent(const Event& event) override { fn_(event); }

 private:
  std::function<void(const Event&)> fn_;
};

// The tests of the guarantees of reactor/event_loop.h that concern handlers:
// they register through Reg(), which registers a RegisteredHandler with its
// embedded state or as a plain EventHandler, as the parameter says.
class HandlerTest : public EventLoopTest {
 protected:
  bool embedded() const { return GetParam().kind == HandlerKind::kEmbedded; }
  static std::shared_ptr<RegisteredHandler> Handler(
      std::function<void(const Event&)> fn) {
    return std::make_shared<FnHandler>(std::move(fn));
  }
  absl::Status Reg(EventLoop* loop, int fd, Token token, Interest interest,
                   std::shared_ptr<RegisteredHandler> handler) const {
    if (embedded()) return loop->Register(fd, token, interest, handler);
    return loop->Register(fd, token, interest,
                          std::shared_ptr<EventHandler>(handler));
  }
  absl::Status Reg(EventLoop* loop, int fd, Token token, Interest interest,
                   std::function<void(const Event&)> fn) const {
    return Reg(loop, fd, token, interest, Handler(std::move(fn)));
  }
  absl::StatusOr<Registration> Reg(
      EventLoop* loop, int fd, Interest interest,
      std::shared_ptr<RegisteredHandler> handler) const {
    if (embedded()) return loop->Register(fd, interest, handler);
    return loop->Register(fd, interest, std::shared_ptr<EventHandler>(handler));
  }
};

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

TEST_P(EventLoopTest, DefaultConfiguration) {
  EventLoopOptions defaults;
  EXPECT_EQ(defaults.workers, 0);          // polling threads + 1
  EXPECT_EQ(defaults.polling_threads, 0);  // one per CPU we may run on
  EXPECT_EQ(defaults.events_capacity, 1024u);
  EXPECT_EQ(defaults.poll_timeout, absl::Milliseconds(100));
  EXPECT_EQ(defaults.dispatch_mode, DispatchMode::kPool);
  cpu_set_t cpus;
  ASSERT_EQ(sched_getaffinity(0, sizeof(cpus), &cpus), 0);
  const int available = CPU_COUNT(&cpus);
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
      while (read(fd, buf, sizeof(buf)) > 0) {
      }
      running.store(false);
    }
  };

  for (int round = 0; round < kRounds; ++round) {
    SocketPair pair;
    std::atomic<bool> deregistered{false};
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
        (void)write(pair.peer, &byte, 1);
        std::this_thread::yield();
      }
    });
    std::this_thread::sleep_for(std::chrono::microseconds(round % 200));
    ASSERT_TRUE(loop->Deregister(Token(round)).ok());
    if (probe->running.load()) ++running_at_return;
    deregistered.store(true);
    probe.reset();
    // Let any (forbidden) late delivery happen before we check.
    std::this_thread::sleep_for(std::chrono::microseconds(200));
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
            int avail = 0;
            ioctl(fd, FIONREAD, &avail);
            if (avail == 0) ++stale_calls;
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
    std::this_thread::sleep_for(std::chrono::microseconds(500));
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
        (void)write(pairs[i]->peer, "data", 4);
        std::this_thread::sleep_for(std::chrono::microseconds(100));
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

TEST_P(EventLoopTest, StopBeforeRunReturnsImmediatelyAndIsIdempotent) {
  auto loop = MakeLoop();
  loop->Stop();
  loop->Stop();
  EXPECT_TRUE(loop->Run().ok());
}

TEST_P(EventLoopTest, RunTwiceConcurrentlyIsRejected) {
  auto loop = MakeLoop();
  LoopRunner runner(loop.get());
  ASSERT_TRUE(WaitFor([&] {
    absl::Status s = loop->RunInLoop([] {});
    return s.ok();
  }));
  std::atomic<bool> entered{false};
  ASSERT_TRUE(loop->RunInLoop([&] { entered = true; }).ok());
  ASSERT_TRUE(WaitFor([&] { return entered.load(); }));
  EXPECT_EQ(loop->Run().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_P(EventLoopTest, StopFromSignalHandler) {
  auto loop = MakeLoop();
  ASSERT_TRUE(StopOnSignals(loop.get(), {SIGUSR1}).ok());
  std::atomic<bool> returned{false};
  std::thread runner([&] {
    EXPECT_TRUE(loop->Run().ok());
    returned = true;
  });
  std::this_thread::sleep_for(milliseconds(20));
  EXPECT_FALSE(returned.load());
  ASSERT_EQ(kill(getpid(), SIGUSR1), 0);
  runner.join();
  EXPECT_TRUE(returned.load());
  EXPECT_TRUE(loop->is_stopped());
  ASSERT_TRUE(StopOnSignals(nullptr, {SIGUSR1}).ok());
}

TEST_P(EventLoopTest, RunInLoopRunsOnLoopThread) {
  auto loop = MakeLoop();
  LoopRunner runner(loop.get());
  std::atomic<bool> on_loop{false};
  std::atomic<bool> ran{false};
  EventLoop* raw = loop.get();
  ASSERT_TRUE(loop->RunInLoop([&, raw] {
                    on_loop = raw->IsInLoopThread();
                    ran = true;
                  })
                  .ok());
  EXPECT_TRUE(WaitFor([&] { return ran.load(); }));
  EXPECT_TRUE(on_loop.load());
  EXPECT_FALSE(loop->IsInLoopThread());
  ASSERT_TRUE(runner.StopAndJoin().ok());
  EXPECT_EQ(loop->RunInLoop([] {}).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_P(EventLoopTest, SpawnComputeRunsOffTheIoWorkers) {
  auto loop = MakeLoop();
  std::promise<int> result;
  ASSERT_TRUE(
      loop->SpawnCompute([&] { result.set_value(6 * 7); }, Priority::kHigh)
          .ok());
  EXPECT_EQ(result.get_future().get(), 42);
  EXPECT_TRUE(WaitFor(
      [&] { return loop->compute_pool().GetMetrics().completed == 1; }));
}

TEST_P(EventLoopTest, BufferPoolIsShared) {
  EventLoopOptions options;
  options.buffer_size = 1024;
  auto loop = MakeLoop(options);
  {
    BufferPool::Handle buffer = loop->buffer_pool().Acquire();
    EXPECT_EQ(buffer->capacity(), 1024u);
  }
  BufferPool::Handle again = loop->buffer_pool().Acquire();
  EXPECT_EQ(loop->buffer_pool().GetStats().hits, 1u);
}

// Guarantee 7: with a read budget, a busy source does not starve others.
TEST_P(HandlerTest, BusySourceDoesNotStarveOthers) {
  auto loop = MakeLoop();
  SocketPair busy, quiet;
  const size_t budget = loop->options().read_budget;
  std::atomic<size_t> busy_bytes{0};
  std::atomic<int> quiet_calls{0};
  ASSERT_TRUE(Reg(loop.get(), busy.loop_end, Token(1), Interest::Readable(),
                  [&](const Event&) {
                    char buf[4096];
                    size_t taken = 0;
                    while (taken < budget) {
                      ssize_t n = read(busy.loop_end, buf, sizeof(buf));
                      if (n <= 0) break;
                      taken += n;
                    }
                    busy_bytes += taken;
                  })
                  .ok());
  ASSERT_TRUE(Reg(loop.get(), quiet.loop_end, Token(2), Interest::Readable(),
                  [&](const Event&) {
                    Drain(quiet.loop_end);
                    ++quiet_calls;
                  })
                  .ok());
  std::atomic<bool> stop{false};
  std::thread firehose([&] {
    std::string chunk(16384, 'f');
    while (!stop.load()) (void)write(busy.peer, chunk.data(), chunk.size());
  });
  LoopRunner runner(loop.get());
  for (int i = 0; i < 20; ++i) {
    WriteAll(quiet.peer, "q", 1);
    EXPECT_TRUE(WaitFor([&] { return quiet_calls.load() >= i + 1; },
                        milliseconds(5000)))
        << "quiet source starved at message " << i;
  }
  stop.store(true);
  firehose.join();
  ASSERT_TRUE(runner.StopAndJoin().ok());
  EXPECT_GT(busy_bytes.load(), 0u);
}

// End to end: a TCP echo server on loopback through the loop.
TEST_P(HandlerTest, TcpEchoEndToEnd) {
  auto loop = MakeLoop();
  EventLoop* raw = loop.get();
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)),
            0);
  ASSERT_EQ(listen(listener, 16), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  std::mutex conns_mu;
  std::vector<int> conns;
  std::atomic<uint64_t> next_token{10};
  ASSERT_TRUE(Reg(raw, listener, Token(1), Interest::Readable(),
                  [&, raw](const Event&) {
                    for (;;) {
                      int fd =
                          accept4(listener, nullptr, nullptr, SOCK_NONBLOCK);
                      if (fd < 0) return;
                      {
                        std::lock_guard<std::mutex> lock(conns_mu);
                        conns.push_back(fd);
                      }
                      auto pending = std::make_shared<std::string>();
                      EXPECT_TRUE(Reg(raw, fd, Token(next_token++),
                                      Interest::Readable(),
                                      [fd, pending](const Event&) {
                                        // Blocking-free echo: read what is
                                        // there, write back what the
                                        // socket takes.
                                        Drain(fd, pending.get());
                                        while (!pending->empty()) {
                                          ssize_t n = write(fd, pending->data(),
                                                            pending->size());
                                          if (n <= 0) {
                                            std::this_thread::yield();
                                            continue;
                                          }
                                          pending->erase(0, n);
                                        }
                                      })
                                      .ok());
                    }
                  })
                  .ok());
  LoopRunner runner(raw);
  constexpr int kClients = 4;
  std::vector<std::thread> clients;
  std::atomic<int> verified{0};
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      int fd = socket(AF_INET, SOCK_STREAM, 0);
      ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)),
                0);
      std::string sent, got;
      for (int i = 0; i < 200000; ++i) sent.push_back(char('a' + (i + c) % 26));
      std::thread reader([&] {
        char buf[8192];
        while (got.size() < sent.size()) {
          ssize_t n = read(fd, buf, sizeof(buf));
          if (n <= 0) break;
          got.append(buf, n);
        }
      });
      size_t off = 0;
      while (off < sent.size()) {
        ssize_t n = write(fd, sent.data() + off,
                          std::min<size_t>(3000, sent.size() - off));
        ASSERT_GT(n, 0);
        off += n;
      }
      reader.join();
      if (got == sent) ++verified;
      close(fd);
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(verified.load(), kClients);
  ASSERT_TRUE(runner.StopAndJoin().ok());
  for (int fd : conns) close(fd);
  close(listener);
}

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
  SocketPair second;
  // Give the new socket the old number, as the kernel would on reuse.
  ASSERT_EQ(dup2(second.loop_end, fd), fd) << strerror(errno);
  std::atomic<size_t> bytes{0};
  absl::Status reg = Reg(loop.get(), fd, Token(2), Interest::Readable(),
                         [&](const Event&) { bytes += Drain(fd); });
  if (loop->options().backend == PollerBackend::kPoll) {
    GTEST_SKIP() << "poll(2) refuses the newer registration instead";
  }
  ASSERT_TRUE(reg.ok()) << reg;
  absl::Status stale = loop->Deregister(Token(1));
  EXPECT_EQ(stale.code(), absl::StatusCode::kFailedPrecondition) << stale;
  EXPECT_EQ(loop->Reregister(Token(1), Interest::Readable()).code(),
            absl::StatusCode::kNotFound);
  LoopRunner runner(loop.get());
  WriteAll(second.peer, "live", 4);
  EXPECT_TRUE(WaitFor([&] { return bytes.load() == 4; }));
  ASSERT_TRUE(runner.StopAndJoin().ok());
  EXPECT_TRUE(loop->Deregister(Token(2)).ok());
  close(fd);
}

// --- Blocking handlers (issue 12) ---------------------------------------

// One handler sleeps for a second; another source's round trips and a
// repeating timer carry on meanwhile (the standby takes the poller over).
TEST_P(HandlerTest, BlockingHandlerDoesNotStallOtherSources) {
  if (!tolerates_blocking()) {
    GTEST_SKIP() << "one thread: a blocking handler delays everything";
  }
  auto loop = MakeLoop();
  SocketPair slow, echo;
  std::atomic<bool> sleeping{false};
  std::atomic<bool> slept{false};
  // Registered first: on the first poller, the one that also runs timers.
  ASSERT_TRUE(Reg(loop.get(), slow.loop_end, Token(1), Interest::Readable(),
                  [&](const Event&) {
                    Drain(slow.loop_end);
                    sleeping = true;
                    std::this_thread::sleep_for(milliseconds(1000));
                    sleeping = false;
                    slept = true;
                  })
                  .ok());
  ASSERT_TRUE(Reg(loop.get(), echo.loop_end, Token(2), Interest::Readable(),
                  [&](const Event&) {
                    std::string data;
                    Drain(echo.loop_end, &data);
                    WriteAll(echo.loop_end, data.data(), data.size());
                  })
                  .ok());
  std::atomic<int> ticks_while_sleeping{0};
  EventLoop::TimerId ticker = loop->RunEvery(absl::Milliseconds(10), [&] {
    if (sleeping.load()) ++ticks_while_sleeping;
  });
  SetNonBlocking(echo.peer);
  LoopRunner runner(loop.get());
  WriteAll(slow.peer, "z", 1);
  ASSERT_TRUE(WaitFor([&] { return sleeping.load(); }));
  int round_trips = 0;
  while (sleeping.load()) {
    WriteAll(echo.peer, "ping", 4);
    std::string got;
    const auto deadline = steady_clock::now() + milliseconds(5000);
    while (got.size() < 4 && steady_clock::now() < deadline) {
      Drain(echo.peer, &got);
      if (got.size() < 4) std::this_thread::sleep_for(milliseconds(1));
    }
    ASSERT_EQ(got, "ping");
    if (sleeping.load()) ++round_trips;
  }
  ASSERT_TRUE(WaitFor([&] { return slept.load(); }));
  // About 1,000 round trips and 100 ticks fit in the second; a stalled loop
  // completes none until the handler returns.
  EXPECT_GE(round_trips, 10);
  EXPECT_GE(ticks_while_sleeping.load(), 5);
  EXPECT_GE(loop->stats().takeovers, 1u);
  EXPECT_TRUE(loop->Cancel(ticker));
  // The slow source still works after the takeover (re-armed).
  WriteAll(slow.peer, "y", 1);
  ASSERT_TRUE(WaitFor([&] { return sleeping.load() || !slept.load(); }));
}

// A RunInLoop task that blocks (waiting in Deregister, say) does not stall
// sources either.
TEST_P(EventLoopTest, BlockingTaskDoesNotStallSources) {
  if (!tolerates_blocking()) GTEST_SKIP() << "one thread";
  auto loop = MakeLoop();
  SocketPair pair;
  std::atomic<size_t> bytes{0};
  ASSERT_TRUE(
      loop->Register(pair.loop_end, Token(1), Interest::Readable(),
                     [&](const Event&) { bytes += Drain(pair.loop_end); })
          .ok());
  LoopRunner runner(loop.get());
  std::atomic<bool> release{false}, in_task{false};
  ASSERT_TRUE(loop->RunInLoop([&] {
                    in_task = true;
                    while (!release.load()) {
                      std::this_thread::sleep_for(milliseconds(1));
                    }
                  })
                  .ok());
  ASSERT_TRUE(WaitFor([&] { return in_task.load(); }));
  for (size_t i = 1; i <= 5; ++i) {
    WriteAll(pair.peer, "x", 1);
    EXPECT_TRUE(WaitFor([&] { return bytes.load() == i; }));
  }
  release = true;
}

// No busy waiting: a loop with a standby and nothing to do sleeps (the
// standby stops ticking once every owner has been idle for a while).
TEST_P(EventLoopTest, IdleLoopUsesNoCpu) {
  auto loop = MakeLoop();
  SocketPair pair;
  std::atomic<int> calls{0};
  ASSERT_TRUE(loop->Register(pair.loop_end, Token(1), Interest::Readable(),
                             [&](const Event&) {
                               Drain(pair.loop_end);
                               ++calls;
                             })
                  .ok());
  LoopRunner runner(loop.get());
  WriteAll(pair.peer, "x", 1);  // wake everything once
  ASSERT_TRUE(WaitFor([&] { return calls.load() == 1; }));
  std::this_thread::sleep_for(milliseconds(100));  // standby settles
  auto cpu_now = [] {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;  // ms
  };
  const double before = cpu_now();
  std::this_thread::sleep_for(milliseconds(500));
  const double used_ms = cpu_now() - before;
  // A spinning thread would use ~500 ms; an idle loop uses next to none.
  EXPECT_LT(used_ms, 50.0);
}

// --- RunInLoop, IsInLoopThread -------------------------------------------

// Tasks never overlap and run in the order they were queued (per poster;
// they are queued under one lock, so in one global order).
TEST_P(EventLoopTest, RunInLoopTasksRunOneAtATimeInOrder) {
  auto loop = MakeLoop();
  EventLoop* raw = loop.get();
  LoopRunner runner(raw);
  constexpr int kPosters = 3;
  const int kTasks = 2000 / kScale;
  std::atomic<bool> in_task{false};
  std::atomic<int> overlaps{0}, out_of_order{0}, ran{0}, not_loop_thread{0};
  std::vector<int> last(kPosters, -1);  // touched by tasks only
  std::vector<std::thread> posters;
  for (int p = 0; p < kPosters; ++p) {
    posters.emplace_back([&, p] {
      for (int i = 0; i < kTasks; ++i) {
        ASSERT_TRUE(raw->RunInLoop([&, p, i] {
                         if (in_task.exchange(true)) ++overlaps;
                         if (!raw->IsInLoopThread()) ++not_loop_thread;
                         if (last[p] != i - 1) ++out_of_order;
                         last[p] = i;
                         // A nested call runs inline, in this task.
                         bool nested = false;
                         EXPECT_TRUE(
                             raw->RunInLoop([&] { nested = true; }).ok());
                         EXPECT_TRUE(nested);
                         in_task.store(false);
                         ++ran;
                       })
                        .ok());
      }
    });
  }
  for (auto& t : posters) t.join();
  ASSERT_TRUE(WaitFor([&] { return ran.load() == kPosters * kTasks; }));
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_EQ(out_of_order.load(), 0);
  EXPECT_EQ(not_loop_thread.load(), 0);
}

TEST_P(EventLoopTest, IsInLoopThreadInHandlersTimersAndTasksOnly) {
  auto loop = MakeLoop();
  EventLoop* raw = loop.get();
  SocketPair pair;
  std::atomic<int> in_handler{-1}, in_timer{-1}, in_compute{-1};
  ASSERT_TRUE(loop->Register(pair.loop_end, Token(1), Interest::Readable(),
                             [&, raw](const Event&) {
                               Drain(pair.loop_end);
                               in_handler = raw->IsInLoopThread();
                             })
                  .ok());
  EXPECT_FALSE(raw->IsInLoopThread());
  LoopRunner runner(raw);
  WriteAll(pair.peer, "x", 1);
  raw->RunAfter(absl::Milliseconds(1),
                [&, raw] { in_timer = raw->IsInLoopThread(); });
  ASSERT_TRUE(
      raw->SpawnCompute([&, raw] { in_compute = raw->IsInLoopThread(); }).ok());
  ASSERT_TRUE(WaitFor([&] {
    return in_handler.load() >= 0 && in_timer.load() >= 0 &&
           in_compute.load() >= 0;
  }));
  EXPECT_EQ(in_handler.load(), 1);
  EXPECT_EQ(in_timer.load(), 1);
  EXPECT_EQ(in_compute.load(), 0);
  EXPECT_FALSE(raw->IsInLoopThread());
}

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
    std::this_thread::sleep_for(std::chrono::microseconds(round % 7 * 150));
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
  auto handler = std::make_shared<FnHandler>([&](const Event& event) {
    if (running.exchange(true)) ++overlaps;
    if (event.token().value() != live_token.load() || on_silent.load()) {
      ++stale_calls;
    }
    ++calls;
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
      std::this_thread::sleep_for(std::chrono::microseconds(round % 5 * 50));
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

INSTANTIATE_TEST_SUITE_P(
    EveryMode, EventLoopTest,
    ::testing::Values(LoopConfig{"Direct", DispatchMode::kDirect, 1, 1},
                      LoopConfig{"PoolOneThread", DispatchMode::kPool, 1, 1},
                      LoopConfig{"PoolOnePoller", DispatchMode::kPool, 3, 1},
                      LoopConfig{"PoolTwoPollers", DispatchMode::kPool, 3, 2}),
    [](const auto& info) { return std::string(info.param.name); });

INSTANTIATE_TEST_SUITE_P(
    EveryModeAndKind, HandlerTest,
    ::testing::Values(LoopConfig{"Direct", DispatchMode::kDirect, 1, 1},
                      LoopConfig{"PoolOneThread", DispatchMode::kPool, 1, 1},
                      LoopConfig{"PoolOnePoller", DispatchMode::kPool, 3, 1},
                      LoopConfig{"PoolTwoPollers", DispatchMode::kPool, 3, 2},
                      LoopConfig{"DirectEmbedded", DispatchMode::kDirect, 1, 1,
                                 HandlerKind::kEmbedded},
                      LoopConfig{"PoolOneThreadEmbedded", DispatchMode::kPool,
                                 1, 1, HandlerKind::kEmbedded},
                      LoopConfig{"PoolOnePollerEmbedded", DispatchMode::kPool,
                                 3, 1, HandlerKind::kEmbedded},
                      LoopConfig{"PoolTwoPollersEmbedded", DispatchMode::kPool,
                                 3, 2, HandlerKind::kEmbedded}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace mill
