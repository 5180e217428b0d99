// Windows only: StopOnSignals's console control events beyond the CTRL_C
// that event_loop_tasks_test.cc's StopFromSignalHandler raises.
#include <windows.h>

#include <atomic>
#include <memory>
#include <thread>

#include "absl/status/status.h"
#include "base/testing/wine.h"
#include "base/win32_status.h"
#include "gtest/gtest.h"
#include "reactor/event_loop.h"
#include "reactor/stop_on_signals.h"

namespace mill {
namespace {

// `event` for this process alone, through a console of its own (see
// RaiseTestStopSignal in reactor/testing/loop_fixture_win.cc).
absl::Status RaiseConsoleEvent(DWORD event) {
  FreeConsole();
  if (!AllocConsole()) return LastWin32ErrorStatus("AllocConsole");
  absl::Status status;
  if (!GenerateConsoleCtrlEvent(event, 0)) {
    status = LastWin32ErrorStatus("GenerateConsoleCtrlEvent");
  }
  Sleep(100);
  FreeConsole();
  AttachConsole(ATTACH_PARENT_PROCESS);
  return status;
}

TEST(StopOnSignalsWinTest, CtrlBreakStopsTheLoopFor21And2) {
  if (testing::RunningUnderWine()) {
    GTEST_SKIP() << "Wine: GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT) fails "
                    "with ERROR_INVALID_HANDLE (Wine 8.0; CTRL_C_EVENT works)";
  }
  for (int signo : {21, 2}) {
    absl::StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create();
    ASSERT_TRUE(loop.ok()) << loop.status();
    ASSERT_TRUE(StopOnSignals(loop->get(), {signo}).ok());
    std::atomic<bool> returned{false};
    std::thread runner([&] {
      EXPECT_TRUE((*loop)->Run().ok());
      returned = true;
    });
    const absl::Status raised = RaiseConsoleEvent(CTRL_BREAK_EVENT);
    if (!raised.ok()) (*loop)->Stop();
    runner.join();
    ASSERT_TRUE(StopOnSignals(nullptr, {signo}).ok());
    ASSERT_TRUE(raised.ok()) << raised;
    EXPECT_TRUE(returned.load()) << signo;
  }
}

TEST(StopOnSignalsWinTest, MapsSigtermAndRejectsNumbersWithoutAnEvent) {
  EXPECT_TRUE(StopOnSignals(nullptr, {15}).ok());
  for (int signo : {1, 10, 22}) {
    EXPECT_EQ(StopOnSignals(nullptr, {signo}).code(),
              absl::StatusCode::kInvalidArgument)
        << signo;
  }
}

}  // namespace
}  // namespace mill
