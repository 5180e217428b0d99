#include <signal.h>

#include <atomic>
#include <cerrno>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/errno_status.h"
#include "reactor/event_loop.h"
#include "reactor/stop_on_signals.h"

namespace mill {
namespace {

std::atomic<EventLoop*> g_signal_loop{nullptr};

extern "C" void StopLoopOnSignal(int) {
  const int saved_errno = errno;
  if (EventLoop* loop = g_signal_loop.load(std::memory_order_acquire)) {
    loop->Stop();
  }
  errno = saved_errno;
}

}  // namespace

absl::Status StopOnSignals(EventLoop* loop, const std::vector<int>& signals) {
  g_signal_loop.store(loop, std::memory_order_release);
  for (int signo : signals) {
    struct sigaction action = {};
    action.sa_handler = StopLoopOnSignal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    if (sigaction(signo, &action, nullptr) != 0) {
      return ErrnoStatus(errno, absl::StrCat("sigaction(", signo, ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace mill
