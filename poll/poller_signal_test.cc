// POSIX only: signals and a blocked Poll, over every backend. Windows has no
// signals that interrupt a wait (StopOnSignals there calls Waker::Wake from a
// console control handler thread, which WakeFromAnotherThreadUnblocksPoll in
// the conformance suite covers), so this target is not built for Windows.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "poll/event.h"
#include "poll/poller.h"
#include "poll/token.h"
#include "poll/waker.h"

namespace mill {
namespace {

using Clock = std::chrono::steady_clock;

double MillisSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start)
      .count();
}

// Signal plumbing (handlers must be plain functions).
std::atomic<Waker*> g_signal_waker{nullptr};
std::atomic<int> g_signal_count{0};

void WakeFromSignal(int) {
  if (Waker* w = g_signal_waker.load()) w->Wake().IgnoreError();
}

void CountSignal(int) { g_signal_count.fetch_add(1); }

// Installs `handler` for `sig` without SA_RESTART (so blocking calls fail
// with EINTR); restores the old action on destruction.
class ScopedSignalHandler {
 public:
  ScopedSignalHandler(int sig, void (*handler)(int)) : sig_(sig) {
    struct sigaction sa {};
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART
    EXPECT_EQ(sigaction(sig, &sa, &old_), 0) << strerror(errno);
  }
  ~ScopedSignalHandler() { sigaction(sig_, &old_, nullptr); }

 private:
  int sig_;
  struct sigaction old_ {};
};

class PollerSignalTest : public testing::TestWithParam<PollerBackend> {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Poller>> poller = Poller::Create(GetParam());
    ASSERT_TRUE(poller.ok()) << poller.status();
    poller_ = *std::move(poller);
  }

  std::vector<Event> PollOnce(std::optional<absl::Duration> timeout) {
    Events events(64);
    absl::StatusOr<size_t> n = poller_->Poll(events, timeout);
    EXPECT_TRUE(n.ok()) << n.status();
    if (!n.ok()) return {};
    return std::vector<Event>(events.begin(), events.end());
  }

  std::unique_ptr<Poller> poller_;
};

std::string BackendName(const testing::TestParamInfo<PollerBackend>& info) {
  return std::string(PollerBackendName(info.param));
}

INSTANTIATE_TEST_SUITE_P(AllBackends, PollerSignalTest,
                         testing::ValuesIn(Poller::AvailableBackends()),
                         BackendName);

TEST_P(PollerSignalTest, WakeFromSignalHandlerUnblocksPoll) {
  absl::StatusOr<std::unique_ptr<Waker>> waker =
      Waker::Create(*poller_, Token(98));
  ASSERT_TRUE(waker.ok()) << waker.status();
  g_signal_waker.store(waker->get());
  ScopedSignalHandler handler(SIGUSR1, WakeFromSignal);
  const pthread_t poller_thread = pthread_self();
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    pthread_kill(poller_thread, SIGUSR1);
  });
  std::vector<Event> events = PollOnce(std::nullopt);
  t.join();
  g_signal_waker.store(nullptr);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].token(), Token(98));
  (*waker)->Drain();
  EXPECT_TRUE(PollOnce(absl::ZeroDuration()).empty());
}

TEST_P(PollerSignalTest, EintrNeitherSurfacesNorShortensTheWait) {
  ScopedSignalHandler handler(SIGUSR2, CountSignal);
  g_signal_count.store(0);
  const pthread_t poller_thread = pthread_self();
  std::atomic<bool> stop{false};
  std::thread t([&] {
    while (!stop.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(15));
      if (!stop.load()) pthread_kill(poller_thread, SIGUSR2);
    }
  });
  const absl::Duration timeout = absl::Milliseconds(250);
  Events events(4);
  const Clock::time_point start = Clock::now();
  absl::StatusOr<size_t> n = poller_->Poll(events, timeout);
  const double elapsed_ms = MillisSince(start);

  // Blocking poll, interrupted the same way, ended by a Waker.
  absl::StatusOr<std::unique_ptr<Waker>> waker =
      Waker::Create(*poller_, Token(95));
  ASSERT_TRUE(waker.ok()) << waker.status();
  std::thread waker_thread([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(120));
    EXPECT_TRUE((*waker)->Wake().ok());
  });
  absl::StatusOr<size_t> blocking = poller_->Poll(events, std::nullopt);
  waker_thread.join();
  stop.store(true);
  t.join();

  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 0u);
  EXPECT_GE(elapsed_ms, 250.0);
  EXPECT_LE(elapsed_ms, 250.0 + 200);
  ASSERT_TRUE(blocking.ok()) << blocking.status();
  ASSERT_EQ(*blocking, 1u);
  EXPECT_EQ(events[0].token(), Token(95));
  EXPECT_GE(g_signal_count.load(), 5) << "signals did not arrive";
}

}  // namespace
}  // namespace mill
