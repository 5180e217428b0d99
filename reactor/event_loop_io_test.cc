// EventLoopOptions::io: which engine a loop polls with, the MILL_IO
// environment variable, and the fallback from io_uring to epoll when the
// kernel refuses a ring (forced here through the backend's test hook, as
// seccomp or kernel.io_uring_disabled would refuse it).
#include <stdlib.h>

#include <atomic>
#include <cerrno>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "poll/internal/backend.h"
#include "poll/poller.h"
#include "reactor/event_loop.h"
#include "reactor/testing/loop_fixture.h"

namespace mill {
namespace reactor_testing {
namespace {

class EventLoopIoTest : public ::testing::TestWithParam<DispatchMode> {
 protected:
  void SetUp() override {
    saved_env_ = getenv("MILL_IO") ? getenv("MILL_IO") : "";
    unsetenv("MILL_IO");
    uring_ = poll_internal::ProbeIoUring();
  }
  void TearDown() override {
    poll_internal::SetIoUringSetupErrorForTesting(0);
    if (!saved_env_.empty()) setenv("MILL_IO", saved_env_.c_str(), 1);
  }

  absl::StatusOr<std::unique_ptr<EventLoop>> Create(IoEngine io) {
    EventLoopOptions options;
    options.dispatch_mode = GetParam();
    options.workers = 2;
    options.polling_threads = 1;
    options.io = io;
    return EventLoop::Create(options);
  }

  // One byte through a socket pair registered with `loop`.
  static void ExpectEventsFlow(EventLoop& loop) {
    SocketPair pair;
    std::atomic<size_t> got{0};
    ASSERT_TRUE(
        loop.Register(pair.loop_end, Token(1), Interest::Readable(),
                      [&](const Event&) { got += Drain(pair.loop_end); })
            .ok());
    LoopRunner runner(&loop);
    WriteAll(pair.peer, "x", 1);
    EXPECT_TRUE(WaitFor([&] { return got.load() == 1; }));
    ASSERT_TRUE(runner.StopAndJoin().ok());
    EXPECT_TRUE(loop.Deregister(Token(1)).ok());
  }

  std::string saved_env_;
  absl::Status uring_;
};

TEST_P(EventLoopIoTest, EpollIsTheDefault) {
  absl::StatusOr<std::unique_ptr<EventLoop>> loop = Create(IoEngine::kDefault);
  ASSERT_TRUE(loop.ok()) << loop.status();
  EXPECT_EQ((*loop)->stats().backend, Poller::AvailableBackends().front());
  EXPECT_FALSE((*loop)->stats().io_uring_fallback);
  ExpectEventsFlow(**loop);
}

TEST_P(EventLoopIoTest, IoUringWhenAskedAndAvailable) {
  if (!uring_.ok()) GTEST_SKIP() << "io_uring refused here: " << uring_;
  for (IoEngine io : {IoEngine::kIoUring, IoEngine::kAuto}) {
    absl::StatusOr<std::unique_ptr<EventLoop>> loop = Create(io);
    ASSERT_TRUE(loop.ok()) << loop.status();
    EXPECT_EQ((*loop)->stats().backend, PollerBackend::kIoUring);
    EXPECT_FALSE((*loop)->stats().io_uring_fallback);
    ExpectEventsFlow(**loop);
  }
}

TEST_P(EventLoopIoTest, AutoFallsBackToEpollAndSaysSo) {
  for (int refusal : {EPERM, ENOSYS, EINVAL, ENOMEM}) {
    poll_internal::SetIoUringSetupErrorForTesting(refusal);
    absl::StatusOr<std::unique_ptr<EventLoop>> loop = Create(IoEngine::kAuto);
    ASSERT_TRUE(loop.ok()) << loop.status();
    EXPECT_EQ((*loop)->stats().backend, PollerBackend::kEpoll);
    EXPECT_TRUE((*loop)->stats().io_uring_fallback);
    ExpectEventsFlow(**loop);
  }
}

TEST_P(EventLoopIoTest, IoUringFailsClearlyWhenRefused) {
  poll_internal::SetIoUringSetupErrorForTesting(EPERM);
  absl::StatusOr<std::unique_ptr<EventLoop>> loop = Create(IoEngine::kIoUring);
  ASSERT_FALSE(loop.ok());
  EXPECT_EQ(loop.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(loop.status().message().find("io_uring cannot be used here"),
            absl::string_view::npos)
      << loop.status();
  EXPECT_NE(loop.status().message().find("Operation not permitted"),
            absl::string_view::npos)
      << loop.status();
}

TEST_P(EventLoopIoTest, EnvironmentChoosesForDefaultOnly) {
  setenv("MILL_IO", "bogus", 1);
  absl::StatusOr<std::unique_ptr<EventLoop>> bad = Create(IoEngine::kDefault);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("MILL_IO"), absl::string_view::npos);
  // An explicit engine ignores the environment.
  absl::StatusOr<std::unique_ptr<EventLoop>> epoll = Create(IoEngine::kEpoll);
  ASSERT_TRUE(epoll.ok()) << epoll.status();
  EXPECT_EQ((*epoll)->stats().backend, PollerBackend::kEpoll);
  setenv("MILL_IO", "auto", 1);
  poll_internal::SetIoUringSetupErrorForTesting(EPERM);
  absl::StatusOr<std::unique_ptr<EventLoop>> fallback =
      Create(IoEngine::kDefault);
  ASSERT_TRUE(fallback.ok()) << fallback.status();
  EXPECT_TRUE((*fallback)->stats().io_uring_fallback);
  poll_internal::SetIoUringSetupErrorForTesting(0);
  if (uring_.ok()) {
    setenv("MILL_IO", "uring", 1);
    absl::StatusOr<std::unique_ptr<EventLoop>> uring =
        Create(IoEngine::kDefault);
    ASSERT_TRUE(uring.ok()) << uring.status();
    EXPECT_EQ((*uring)->stats().backend, PollerBackend::kIoUring);
  }
  unsetenv("MILL_IO");
}

TEST(IoEngineTest, NamesRoundTrip) {
  for (IoEngine io : {IoEngine::kDefault, IoEngine::kAuto, IoEngine::kEpoll,
                      IoEngine::kIoUring}) {
    absl::StatusOr<IoEngine> parsed = ParseIoEngine(IoEngineName(io));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, io);
  }
  EXPECT_EQ(*ParseIoEngine("io_uring"), IoEngine::kIoUring);
  EXPECT_EQ(*ParseIoEngine("URING"), IoEngine::kIoUring);
  EXPECT_EQ(ParseIoEngine("kqueue").status().code(),
            absl::StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(BothModes, EventLoopIoTest,
                         ::testing::Values(DispatchMode::kDirect,
                                           DispatchMode::kPool),
                         [](const auto& info) {
                           return info.param == DispatchMode::kDirect ? "Direct"
                                                                      : "Pool";
                         });

}  // namespace
}  // namespace reactor_testing
}  // namespace mill
