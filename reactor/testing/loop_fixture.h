// The fixtures of the EventLoop tests (event_loop_*_test.cc): socket
// helpers, a loop runner, and the loop configurations every test runs in
// (EventLoopTest), with each kind of handler (HandlerTest). Test-only.
#ifndef MILL_IO_REACTOR_TESTING_LOOP_FIXTURE_H_
#define MILL_IO_REACTOR_TESTING_LOOP_FIXTURE_H_

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
#include "reactor/event_loop.h"
#include "threadpool/thread_pool.h"

namespace mill {
namespace reactor_testing {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

#ifdef MILL_IO_SANITIZER
constexpr int kScale = 4;  // sanitizers are slow: fewer iterations
#else
constexpr int kScale = 1;
#endif

// Polls `pred` until it holds or `timeout` passes; returns its last value.
template <typename Pred>
inline bool WaitFor(Pred pred, milliseconds timeout = milliseconds(10000)) {
  const auto deadline = steady_clock::now() + timeout;
  while (!pred()) {
    if (steady_clock::now() > deadline) return pred();
    std::this_thread::sleep_for(milliseconds(1));
  }
  return true;
}

inline void SetNonBlocking(int fd) {
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
inline size_t Drain(int fd, std::string* into = nullptr) {
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

inline void WriteAll(int fd, const void* data, size_t size) {
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

// The configurations above, for INSTANTIATE_TEST_SUITE_P: every mode for an
// EventLoopTest, every mode with each kind of handler for a HandlerTest.
inline auto EveryLoopMode() {
  return ::testing::Values(
      LoopConfig{"Direct", DispatchMode::kDirect, 1, 1},
      LoopConfig{"PoolOneThread", DispatchMode::kPool, 1, 1},
      LoopConfig{"PoolOnePoller", DispatchMode::kPool, 3, 1},
      LoopConfig{"PoolTwoPollers", DispatchMode::kPool, 3, 2});
}
inline auto EveryLoopModeAndHandlerKind() {
  return ::testing::Values(
      LoopConfig{"Direct", DispatchMode::kDirect, 1, 1},
      LoopConfig{"PoolOneThread", DispatchMode::kPool, 1, 1},
      LoopConfig{"PoolOnePoller", DispatchMode::kPool, 3, 1},
      LoopConfig{"PoolTwoPollers", DispatchMode::kPool, 3, 2},
      LoopConfig{"DirectEmbedded", DispatchMode::kDirect, 1, 1,
                 HandlerKind::kEmbedded},
      LoopConfig{"PoolOneThreadEmbedded", DispatchMode::kPool, 1, 1,
                 HandlerKind::kEmbedded},
      LoopConfig{"PoolOnePollerEmbedded", DispatchMode::kPool, 3, 1,
                 HandlerKind::kEmbedded},
      LoopConfig{"PoolTwoPollersEmbedded", DispatchMode::kPool, 3, 2,
                 HandlerKind::kEmbedded});
}
inline std::string LoopConfigName(
    const ::testing::TestParamInfo<LoopConfig>& info) {
  return info.param.name;
}

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

}  // namespace reactor_testing
}  // namespace mill

#endif  // MILL_IO_REACTOR_TESTING_LOOP_FIXTURE_H_
