// Linux backend: epoll. The kernel keeps the interest list, so there is no
// fd table here and no lock: epoll_ctl is thread-safe and takes effect for a
// concurrent epoll_wait at once. Level-triggered (no EPOLLET); kOneShot is
// EPOLLONESHOT, re-armed by EPOLL_CTL_MOD, which re-checks readiness and
// queues an event at once if the condition holds.
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/errno_status.h"
#include "poll/internal/backend.h"

#if defined(__GLIBC__) && \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
#define MILL_POLL_HAVE_EPOLL_PWAIT2 1
#endif

namespace mill {
namespace poll_internal {
namespace {

uint32_t ToEpollEvents(Interest interest, Trigger trigger) {
  uint32_t events = 0;
  // EPOLLRDHUP distinguishes "peer shut down its write side" from plain
  // readability on sockets; only meaningful together with EPOLLIN.
  if (interest.is_readable()) events |= EPOLLIN | EPOLLRDHUP;
  if (interest.is_writable()) events |= EPOLLOUT;
  if (interest.is_priority()) events |= EPOLLPRI;
  if (trigger == Trigger::kOneShot) events |= EPOLLONESHOT;
  return events;
}

uint32_t ToEventFlags(uint32_t e) {
  uint32_t flags = 0;
  if (e & EPOLLIN) flags |= Event::kReadable;
  if (e & EPOLLOUT) flags |= Event::kWritable;
  if (e & EPOLLPRI) flags |= Event::kPriority;
  if (e & EPOLLERR) flags |= Event::kError | Event::kWriteClosed;
  if (e & EPOLLHUP) flags |= Event::kReadClosed | Event::kWriteClosed;
  if (e & EPOLLRDHUP) flags |= Event::kReadClosed;
  return flags;
}

class EpollBackend final : public Backend {
 public:
  explicit EpollBackend(int epfd) : epfd_(epfd) {}
  ~EpollBackend() override { close(epfd_); }

  absl::Status Register(int fd, Token token, Interest interest,
                        Trigger trigger) override {
    return Ctl(EPOLL_CTL_ADD, fd, token, interest, trigger,
               "epoll_ctl(EPOLL_CTL_ADD)");
  }

  absl::Status Reregister(int fd, Token token, Interest interest,
                          Trigger trigger) override {
    return Ctl(EPOLL_CTL_MOD, fd, token, interest, trigger,
               "epoll_ctl(EPOLL_CTL_MOD)");
  }

  absl::Status Deregister(int fd) override {
    // A non-null event pointer keeps pre-2.6.9 kernels happy.
    epoll_event ev{};
    if (epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, &ev) < 0) {
      return ErrnoStatus(errno, "epoll_ctl(EPOLL_CTL_DEL)");
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::unique_ptr<WakeChannel>> NewWakeChannel(
      Token token) override {
    return NewWakeupFdChannel(*this, token);
  }

  absl::StatusOr<size_t> Poll(Event* out, size_t capacity,
                              absl::Duration timeout) override {
    if (native_.size() < capacity) native_.resize(capacity);
    const int max_events = capacity > static_cast<size_t>(INT32_MAX)
                               ? INT32_MAX
                               : static_cast<int>(capacity);
    const int n = WaitNative(max_events, timeout);
    if (n < 0) {
      if (errno == EINTR) return 0;
      return ErrnoStatus(errno, "epoll_wait");
    }
    for (int i = 0; i < n; ++i) {
      out[i] =
          Event(Token(native_[i].data.u64), ToEventFlags(native_[i].events));
    }
    return static_cast<size_t>(n);
  }

 private:
  // epoll_wait takes whole milliseconds, so a deadline 1.3 ms away would be
  // waited as 2 ms: timers would fire up to a millisecond late. When the
  // timeout has a sub-millisecond part, epoll_pwait2 (Linux 5.11, glibc
  // 2.35) waits exactly as long as asked (hrtimer; never less). Kernels or
  // sandboxes without it answer ENOSYS once, and we stop asking.
  int WaitNative(int max_events, absl::Duration timeout) {
#ifdef MILL_POLL_HAVE_EPOLL_PWAIT2
    if (timeout > absl::ZeroDuration() && timeout < absl::Seconds(3600) &&
        !pwait2_missing_.load(std::memory_order_relaxed)) {
      const int64_t ns = absl::ToInt64Nanoseconds(timeout);
      if (ns % 1000000 != 0) {
        timespec ts;
        ts.tv_sec = ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        const int n =
            epoll_pwait2(epfd_, native_.data(), max_events, &ts, nullptr);
        if (n >= 0 || errno != ENOSYS) return n;
        pwait2_missing_.store(true, std::memory_order_relaxed);
      }
    }
#endif
    return epoll_wait(epfd_, native_.data(), max_events,
                      TimeoutToMillis(timeout));
  }

  absl::Status Ctl(int op, int fd, Token token, Interest interest,
                   Trigger trigger, const char* what) {
    epoll_event ev{};
    ev.events = ToEpollEvents(interest, trigger);
    ev.data.u64 = token.value();
    if (epoll_ctl(epfd_, op, fd, &ev) < 0) return ErrnoStatus(errno, what);
    return absl::OkStatus();
  }

  const int epfd_;
  static std::atomic<bool> pwait2_missing_;
  // Reused across Poll calls (only the polling thread touches it).
  std::vector<epoll_event> native_;
};

std::atomic<bool> EpollBackend::pwait2_missing_{false};

}  // namespace

absl::StatusOr<std::unique_ptr<Backend>> NewEpollBackend() {
  const int epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) return ErrnoStatus(errno, "epoll_create1");
  return std::unique_ptr<Backend>(new EpollBackend(epfd));
}

}  // namespace poll_internal
}  // namespace mill
