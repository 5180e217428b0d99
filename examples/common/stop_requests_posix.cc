// StopRequests on POSIX: SIGINT and SIGTERM.
#include <signal.h>

#include <memory>

#include "examples/common/stop_requests.h"
#include "reactor/stop_on_signals.h"

namespace mill {
namespace examples {
namespace {

class SignalStopRequests final : public StopRequests {
 public:
  ~SignalStopRequests() override { (void)StopOnSignals(nullptr); }
};

}  // namespace

absl::StatusOr<std::unique_ptr<StopRequests>> StopRequests::Start(
    EventLoop* loop) {
  // Sockets use MSG_NOSIGNAL already; this covers anything else.
  signal(SIGPIPE, SIG_IGN);
  absl::Status status = StopOnSignals(loop);
  if (!status.ok()) return status;
  return std::unique_ptr<StopRequests>(new SignalStopRequests());
}

}  // namespace examples
}  // namespace mill
