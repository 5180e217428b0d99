// Internal: which poller backend an EventLoop uses (EventLoopOptions::io,
// ::backend and the MILL_IO environment variable), and the one-time report
// of an io_uring fallback.
//
// Thread-safety: ChooseIo is a pure function of its arguments and the
// environment; ReportIoUringFallback may be called from any thread and
// prints at most once per process.
#ifndef MILL_IO_REACTOR_INTERNAL_IO_CHOICE_H_
#define MILL_IO_REACTOR_INTERNAL_IO_CHOICE_H_

#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "poll/poller.h"
#include "reactor/event_loop.h"

namespace mill {
namespace reactor_internal {

struct IoChoice {
  PollerBackend backend;
  // Set for IoEngine::kAuto on io_uring: what to use if its setup fails.
  std::optional<PollerBackend> fallback;
};

// InvalidArgument for a MILL_IO value that names no engine.
absl::StatusOr<IoChoice> ChooseIo(const EventLoopOptions& options);

// True if the environment variable MILL_IO_RECEIVE_AHEAD is "1": then
// //net's connections on io_uring receive on the ring. Off by default: on
// a ring without IORING_SETUP_DEFER_TASKRUN it measured slower than plain
// recv(2) (docs/BENCHMARKS.md); the tests turn it on (bazel/io_engines.bzl).
bool ReceiveAheadWanted();

// Prints "mill-io: io_uring unavailable (<why>); using <backend>" on stderr,
// the first time only.
void ReportIoUringFallback(const absl::Status& why);

}  // namespace reactor_internal
}  // namespace mill

#endif  // MILL_IO_REACTOR_INTERNAL_IO_CHOICE_H_
