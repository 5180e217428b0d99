// The choice of I/O engine (EventLoopOptions::io and ::backend, MILL_IO),
// and receive-ahead on io_uring for //net's connections.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "poll/poller.h"
#include "reactor/event_loop.h"
#include "reactor/internal/io_choice.h"
#include "reactor/internal/loop_impl.h"
#include "reactor/internal/receive_ahead.h"
#include "reactor/internal/source.h"

namespace mill {

absl::string_view IoEngineName(IoEngine engine) {
  switch (engine) {
    case IoEngine::kDefault:
      return "default";
    case IoEngine::kAuto:
      return "auto";
    case IoEngine::kEpoll:
      return "epoll";
    case IoEngine::kIoUring:
      return "uring";
  }
  return "unknown";
}

absl::StatusOr<IoEngine> ParseIoEngine(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "default") return IoEngine::kDefault;
  if (lower == "auto") return IoEngine::kAuto;
  if (lower == "epoll") return IoEngine::kEpoll;
  if (lower == "uring" || lower == "io_uring") return IoEngine::kIoUring;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown I/O engine '", name, "' (auto, epoll or uring)"));
}

namespace reactor_internal {

absl::StatusOr<IoChoice> ChooseIo(const EventLoopOptions& options) {
  const PollerBackend platform = Poller::AvailableBackends().front();
  if (options.backend.has_value()) return IoChoice{*options.backend, {}};
  IoEngine engine = options.io;
  if (engine == IoEngine::kDefault) {
    engine = IoEngine::kEpoll;
    // NOLINTNEXTLINE(concurrency-mt-unsafe): a read; Mill-IO never sets it
    if (const char* env = std::getenv("MILL_IO"); env != nullptr && *env) {
      absl::StatusOr<IoEngine> parsed = ParseIoEngine(env);
      if (!parsed.ok() || *parsed == IoEngine::kDefault) {
        return absl::InvalidArgumentError(absl::StrCat(
            "EventLoop: the environment variable MILL_IO must be auto, "
            "epoll or uring, got '",
            env, "'"));
      }
      engine = *parsed;
    }
  }
  switch (engine) {
    case IoEngine::kIoUring:
      return IoChoice{PollerBackend::kIoUring, {}};
    case IoEngine::kAuto:
#ifdef __linux__
      return IoChoice{PollerBackend::kIoUring, platform};
#else
      return IoChoice{platform, {}};  // no io_uring here: nothing to report
#endif
    case IoEngine::kDefault:
    case IoEngine::kEpoll:
      break;
  }
  return IoChoice{platform, {}};
}

bool ReceiveAheadWanted() {
  // NOLINTNEXTLINE(concurrency-mt-unsafe): a read; Mill-IO never sets it
  const char* env = std::getenv("MILL_IO_RECEIVE_AHEAD");
  return env != nullptr && absl::string_view(env) == "1";
}

bool ReceiveAhead::Supported(const EventLoop& loop) {
  return loop.impl_->receive_ahead();
}

absl::Status ReceiveAhead::Start(EventLoop& loop, RegisteredHandler& handler) {
  const Source& source = EmbeddedSourceAccess::Of(handler);
  return loop.impl_->BackendOf(source).StartReceiveAhead(source.fd);
}

int64_t ReceiveAhead::Receive(EventLoop& loop, RegisteredHandler& handler,
                              char* out, size_t max, int* error) {
  const Source& source = EmbeddedSourceAccess::Of(handler);
  return loop.impl_->BackendOf(source).Receive(source.fd, out, max, error);
}

int ReceiveAhead::Peek(EventLoop& loop, RegisteredHandler& handler,
                       int* error) {
  const Source& source = EmbeddedSourceAccess::Of(handler);
  return loop.impl_->BackendOf(source).PeekReceived(source.fd, error);
}

void ReportIoUringFallback(const absl::Status& why) {
  static std::atomic<bool> reported{false};
  if (reported.exchange(true, std::memory_order_relaxed)) return;
  const std::string text = why.ToString();
  std::fprintf(
      stderr, "mill-io: io_uring unavailable (%s); using %s\n", text.c_str(),
      std::string(PollerBackendName(Poller::AvailableBackends().front()))
          .c_str());
}

}  // namespace reactor_internal
}  // namespace mill
