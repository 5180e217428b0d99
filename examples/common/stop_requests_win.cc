// StopRequests on Windows: console control events (StopOnSignals) and the
// named stop event "Local\mill-io-stop-<pid>", waited for on a thread of
// its own that calls loop->Stop() when it is set.
#include <windows.h>

#include <memory>
#include <string>
#include <thread>

#include "base/win32_status.h"
#include "examples/common/stop_requests.h"
#include "reactor/stop_on_signals.h"

namespace mill {
namespace examples {
namespace {

class EventStopRequests final : public StopRequests {
 public:
  EventStopRequests(EventLoop* loop, HANDLE stop, HANDLE quit)
      : stop_(stop), quit_(quit), thread_([loop, stop, quit] {
          const HANDLE events[2] = {stop, quit};
          if (WaitForMultipleObjects(2, events, FALSE, INFINITE) ==
              WAIT_OBJECT_0) {
            loop->Stop();
          }
        }) {}

  ~EventStopRequests() override {
    (void)StopOnSignals(nullptr);
    SetEvent(quit_);
    thread_.join();
    CloseHandle(quit_);
    CloseHandle(stop_);
  }

 private:
  const HANDLE stop_;
  const HANDLE quit_;
  std::thread thread_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<StopRequests>> StopRequests::Start(
    EventLoop* loop) {
  const std::wstring name =
      L"Local\\mill-io-stop-" + std::to_wstring(GetCurrentProcessId());
  // Manual reset: once set, it stays set.
  const HANDLE stop = CreateEventW(nullptr, TRUE, FALSE, name.c_str());
  if (stop == nullptr) return LastWin32ErrorStatus("CreateEventW (stop event)");
  const HANDLE quit = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  if (quit == nullptr) {
    const absl::Status status = LastWin32ErrorStatus("CreateEventW");
    CloseHandle(stop);
    return status;
  }
  absl::Status status = StopOnSignals(loop);
  if (!status.ok()) {
    CloseHandle(quit);
    CloseHandle(stop);
    return status;
  }
  return std::unique_ptr<StopRequests>(new EventStopRequests(loop, stop, quit));
}

}  // namespace examples
}  // namespace mill
