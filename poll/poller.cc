#include "poll/poller.h"

#include <cerrno>
#include <chrono>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/errno_status.h"
#include "poll/internal/backend.h"

namespace mill {

absl::string_view PollerBackendName(PollerBackend backend) {
  switch (backend) {
    case PollerBackend::kEpoll:
      return "epoll";
    case PollerBackend::kKqueue:
      return "kqueue";
    case PollerBackend::kPoll:
      return "poll";
    case PollerBackend::kIocp:
      return "iocp";
    case PollerBackend::kIoUring:
      return "io_uring";
  }
  return "unknown";
}

std::ostream& operator<<(std::ostream& os, PollerBackend backend) {
  return os << PollerBackendName(backend);
}

// MILL_POLL_HAVE_EPOLL / _KQUEUE / _IOCP / _POLL come from the same select()
// in poll/BUILD.bazel that compiles the backend's file (poll(2) is built
// everywhere but Windows).
std::vector<PollerBackend> Poller::AvailableBackends() {
  std::vector<PollerBackend> backends;
#ifdef MILL_POLL_HAVE_IOCP
  backends.push_back(PollerBackend::kIocp);
#endif
#ifdef MILL_POLL_HAVE_EPOLL
  backends.push_back(PollerBackend::kEpoll);
#endif
#ifdef MILL_POLL_HAVE_IO_URING
  if (poll_internal::ProbeIoUring().ok()) {
    backends.push_back(PollerBackend::kIoUring);
  }
#endif
#ifdef MILL_POLL_HAVE_KQUEUE
  if (poll_internal::KqueueBackendCompiled()) {
    backends.push_back(PollerBackend::kKqueue);
  }
#endif
#ifdef MILL_POLL_HAVE_POLL
  backends.push_back(PollerBackend::kPoll);
#endif
  return backends;
}

absl::StatusOr<std::unique_ptr<Poller>> Poller::Create() {
  return Create(AvailableBackends().front());
}

absl::StatusOr<std::unique_ptr<Poller>> Poller::Create(PollerBackend kind) {
  absl::StatusOr<std::unique_ptr<poll_internal::Backend>> backend =
      absl::UnimplementedError(std::string("Poller backend '") +
                               std::string(PollerBackendName(kind)) +
                               "' is not built on this platform");
  // Branches look alike where a backend is not built (its #ifdef is empty).
  switch (kind) {
    // NOLINTNEXTLINE(bugprone-branch-clone)
    case PollerBackend::kEpoll:
#ifdef MILL_POLL_HAVE_EPOLL
      backend = poll_internal::NewEpollBackend();
#endif
      break;
    case PollerBackend::kKqueue:
#ifdef MILL_POLL_HAVE_KQUEUE
      backend = poll_internal::NewKqueueBackend();
#endif
      break;
    case PollerBackend::kPoll:
#ifdef MILL_POLL_HAVE_POLL
      backend = poll_internal::NewPollBackend();
#endif
      break;
    case PollerBackend::kIocp:
#ifdef MILL_POLL_HAVE_IOCP
      backend = poll_internal::NewIocpBackend();
#endif
      break;
    case PollerBackend::kIoUring:
#ifdef MILL_POLL_HAVE_IO_URING
      backend = poll_internal::NewIoUringBackend();
#endif
      break;
  }
  if (!backend.ok()) return backend.status();
  return std::unique_ptr<Poller>(new Poller(kind, *std::move(backend)));
}

Poller::Poller(PollerBackend kind,
               std::unique_ptr<poll_internal::Backend> backend)
    : backend_kind_(kind), backend_(std::move(backend)) {}

Poller::~Poller() = default;

absl::Status Poller::Register(int fd, Token token, Interest interest,
                              Trigger trigger) {
  if (fd < 0) return ErrnoStatus(EBADF, "Poller::Register");
  // A paused registration must not report a lasting error or hang-up on
  // every poll: None() is always one-shot (see poller.h).
  if (interest.is_none()) trigger = Trigger::kOneShot;
  return backend_->Register(fd, token, interest, trigger);
}

absl::Status Poller::Reregister(int fd, Token token, Interest interest,
                                Trigger trigger) {
  if (fd < 0) return ErrnoStatus(EBADF, "Poller::Reregister");
  if (interest.is_none()) trigger = Trigger::kOneShot;
  return backend_->Reregister(fd, token, interest, trigger);
}

absl::Status Poller::Deregister(int fd) {
  if (fd < 0) return ErrnoStatus(EBADF, "Poller::Deregister");
  return backend_->Deregister(fd);
}

absl::StatusOr<size_t> Poller::Poll(Events& events,
                                    std::optional<absl::Duration> timeout) {
  events.size_ = 0;
  Event* const out = events.data_.get();
  const size_t capacity = events.capacity_;

  // Beyond this a steady_clock deadline could overflow; it is "forever".
  constexpr absl::Duration kForever = absl::Hours(24 * 365 * 100);
  if (!timeout.has_value() || *timeout >= kForever) {
    // Block: a 0 from the backend is EINTR or an internal wakeup; wait again.
    for (;;) {
      absl::StatusOr<size_t> n =
          backend_->Poll(out, capacity, absl::InfiniteDuration());
      if (!n.ok()) return n;
      if (*n > 0) {
        events.size_ = *n;
        return n;
      }
    }
  }
  if (*timeout <= absl::ZeroDuration()) {
    absl::StatusOr<size_t> n =
        backend_->Poll(out, capacity, absl::ZeroDuration());
    if (n.ok()) events.size_ = *n;
    return n;
  }

  // Timed: measured against a monotonic clock so that neither EINTR nor a
  // kernel wait that ends a little early returns before the deadline.
  using Clock = std::chrono::steady_clock;
  const Clock::time_point deadline =
      Clock::now() +
      std::chrono::nanoseconds(absl::ToInt64Nanoseconds(*timeout));
  absl::Duration remaining = *timeout;
  for (;;) {
    absl::StatusOr<size_t> n = backend_->Poll(out, capacity, remaining);
    if (!n.ok()) return n;
    if (*n > 0) {
      events.size_ = *n;
      return n;
    }
    const Clock::time_point now = Clock::now();
    if (now >= deadline) return n;
    remaining = absl::FromChrono(deadline - now);
  }
}

}  // namespace mill
