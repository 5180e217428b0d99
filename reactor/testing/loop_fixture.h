// The fixtures of the EventLoop tests (event_loop_*_test.cc): socket
// helpers, a loop runner, and the loop configurations every test runs in
// (EventLoopTest), with each kind of handler (HandlerTest). Test-only.
//
// The descriptor operations are portable (loop_fixture_posix.cc: socketpair,
// read/write; loop_fixture_win.cc: loopback TCP pairs, Winsock calls on
// SOCKETs stored in an int as the public API does).
#ifndef MILL_IO_REACTOR_TESTING_LOOP_FIXTURE_H_
#define MILL_IO_REACTOR_TESTING_LOOP_FIXTURE_H_

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

#include "absl/status/status.h"
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

// --- Descriptors (per platform) -------------------------------------------

// Non-blocking I/O on a socket: bytes moved, 0 at end of stream, -1 on error
// (then LastErrorWouldBlock() says whether it was EAGAIN / WSAEWOULDBLOCK).
long ReadSome(int fd, void* data, size_t size);
long WriteSome(int fd, const void* data, size_t size);
bool LastErrorWouldBlock();
std::string LastErrorText();
// close(2) / closesocket.
void CloseFd(int fd);
// Bytes waiting to be read (FIONREAD).
size_t BytesAvailable(int fd);
// O_NONBLOCK / FIONBIO.
void SetNonBlocking(int fd);

// A connected pair of stream sockets: socketpair(AF_UNIX) on POSIX, a
// loopback TCP connection (TCP_NODELAY) on Windows. Sets *a and *b.
void MakeSocketPair(int* a, int* b);

// A non-blocking TCP socket listening on 127.0.0.1 (port chosen by the
// system, returned in *port).
int ListenLoopback(int* port);
// accept on a non-blocking listener: a non-blocking socket, or -1.
int AcceptNonBlocking(int listener);
// A blocking TCP socket connected to 127.0.0.1:port, or -1.
int ConnectLoopback(int port);

// The signal StopOnSignals is tested with, and raising it for this process:
// SIGUSR1 and kill(2) on POSIX; on Windows 21 (SIGBREAK: CTRL_BREAK_EVENT)
// and GenerateConsoleCtrlEvent, which fails without a console.
int TestStopSignal();
absl::Status RaiseTestStopSignal();

// A non-blocking socketpair, closed on destruction.
struct SocketPair {
  int loop_end = -1;  // registered with the loop
  int peer = -1;      // driven by the test
  SocketPair() {
    MakeSocketPair(&loop_end, &peer);
    SetNonBlocking(loop_end);
  }
  ~SocketPair() {
    if (loop_end >= 0) CloseFd(loop_end);
    if (peer >= 0) CloseFd(peer);
  }
  SocketPair(const SocketPair&) = delete;
  SocketPair& operator=(const SocketPair&) = delete;
};

// A new SocketPair whose loop_end has the number `fd` (closed before), as
// when the system reuses a descriptor number: dup2 on POSIX; on Windows,
// which cannot choose a handle value, new pairs until the system hands out
// that value again (it reuses freed handle values). nullptr, with a test
// failure, if that does not happen.
std::unique_ptr<SocketPair> SocketPairNumbered(int fd);

// Reads everything available (until EAGAIN); returns bytes read.
inline size_t Drain(int fd, std::string* into = nullptr) {
  char buf[4096];
  size_t total = 0;
  for (;;) {
    long n = ReadSome(fd, buf, sizeof(buf));
    if (n > 0) {
      total += n;
      if (into) into->append(buf, n);
      continue;
    }
    return total;
  }
}

inline void WriteAll(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    long n = WriteSome(fd, p, size);
    if (n < 0 && LastErrorWouldBlock()) {
      std::this_thread::yield();
      continue;
    }
    ASSERT_GT(n, 0) << LastErrorText();
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
