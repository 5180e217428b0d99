#include <windows.h>

#include <atomic>
#include <cstdint>
#include <mutex>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/win32_status.h"
#include "reactor/event_loop.h"
#include "reactor/stop_on_signals.h"

// Windows has no SIGINT or SIGTERM to catch: a console process gets console
// control events instead, on a thread the system starts for the handler
// (SetConsoleCtrlHandler). They map to the signal numbers of the header as
// Go's os/signal maps them (see stop_on_signals.h).

namespace mill {
namespace {

constexpr int kSigInt = 2;
constexpr int kSigTerm = 15;
constexpr int kSigBreak = 21;  // <signal.h>'s SIGBREAK on Windows

constexpr uint32_t Bit(DWORD event) { return uint32_t{1} << event; }

uint32_t EventsFor(int signo) {
  switch (signo) {
    case kSigInt:
      return Bit(CTRL_C_EVENT) | Bit(CTRL_BREAK_EVENT);
    case kSigTerm:
      return Bit(CTRL_CLOSE_EVENT) | Bit(CTRL_LOGOFF_EVENT) |
             Bit(CTRL_SHUTDOWN_EVENT);
    case kSigBreak:
      return Bit(CTRL_BREAK_EVENT);
    default:
      return 0;
  }
}

std::atomic<EventLoop*> g_signal_loop{nullptr};
// The events asked for so far (like signal handlers, they stay handled).
std::atomic<uint32_t> g_events{0};

BOOL WINAPI StopLoopOnConsoleEvent(DWORD event) {
  if (event >= 32 ||
      (g_events.load(std::memory_order_acquire) & Bit(event)) == 0) {
    return FALSE;  // Not ours: the next handler (or the default) decides.
  }
  EventLoop* loop = g_signal_loop.load(std::memory_order_acquire);
  if (loop != nullptr) loop->Stop();
  if (loop != nullptr && event != CTRL_C_EVENT && event != CTRL_BREAK_EVENT) {
    // Close, logoff, shutdown: the system ends the process as soon as this
    // handler returns. Block instead, so that main() returns from Run() and
    // exits the process itself, as after SIGTERM (Windows still ends it
    // after its timeout: 5 s for a closed console, 20 s at shutdown).
    Sleep(INFINITE);
  }
  return TRUE;
}

}  // namespace

absl::Status StopOnSignals(EventLoop* loop, const std::vector<int>& signals) {
  uint32_t events = 0;
  for (int signo : signals) {
    const uint32_t mapped = EventsFor(signo);
    if (mapped == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "StopOnSignals: signal ", signo,
          " has no console control event on Windows (2, 15 and 21 do)"));
    }
    events |= mapped;
  }
  g_signal_loop.store(loop, std::memory_order_release);
  static std::once_flag once;
  static absl::Status installed;
  std::call_once(once, [] {
    if (!SetConsoleCtrlHandler(&StopLoopOnConsoleEvent, TRUE)) {
      installed = LastWin32ErrorStatus("SetConsoleCtrlHandler");
    }
  });
  if (!installed.ok()) return installed;
  g_events.fetch_or(events, std::memory_order_acq_rel);
  return absl::OkStatus();
}

}  // namespace mill
