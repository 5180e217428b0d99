// StopRequests: what stops an example server besides its own loop, per
// platform (stop_requests_posix.cc, stop_requests_win.cc):
//   * POSIX: SIGINT and SIGTERM (StopOnSignals); SIGPIPE is ignored.
//   * Windows: Ctrl+C / Ctrl+Break (StopOnSignals maps them through
//     SetConsoleCtrlHandler), and the named event
//     "Local\mill-io-stop-<pid>": setting it (OpenEventW + SetEvent) is the
//     Windows counterpart of SIGTERM, for supervisors and tests, which have
//     no console to send a control event through (GenerateConsoleCtrlEvent
//     needs one shared with the server; a headless process has none). The
//     event exists from Start() on, so a request sent as soon as the server
//     announces itself is not lost.
//
// Thread-safety: create and destroy on main()'s thread. Ownership: watches
// `loop`, which must outlive the StopRequests; destroying it stops watching.
#ifndef MILL_IO_EXAMPLES_COMMON_STOP_REQUESTS_H_
#define MILL_IO_EXAMPLES_COMMON_STOP_REQUESTS_H_

#include <memory>

#include "absl/status/statusor.h"
#include "reactor/event_loop.h"

namespace mill {
namespace examples {

class StopRequests {
 public:
  // Starts watching: a request calls loop->Stop().
  static absl::StatusOr<std::unique_ptr<StopRequests>> Start(EventLoop* loop);

  virtual ~StopRequests() = default;

 protected:
  StopRequests() = default;
};

}  // namespace examples
}  // namespace mill

#endif  // MILL_IO_EXAMPLES_COMMON_STOP_REQUESTS_H_
