// Linux WakeupFd: one eventfd, used as a counter. Any number of Signal()s
// before a Drain() leave it readable once; Drain() reads the counter to 0.
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "base/errno_status.h"
#include "poll/internal/backend.h"
#include "poll/internal/wakeup_fd.h"

namespace mill {
namespace poll_internal {

absl::StatusOr<std::unique_ptr<WakeupFd>> WakeupFd::Create() {
  const int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "eventfd");
  return std::unique_ptr<WakeupFd>(new WakeupFd(fd, fd));
}

WakeupFd::~WakeupFd() { close(read_fd_); }

int WakeupFd::Signal() const {
  const int saved_errno = errno;
  const uint64_t one = 1;
  int result = 0;
  ssize_t n;
  do {
    n = write(write_fd_, &one, sizeof(one));
  } while (n < 0 && errno == EINTR);
  // EAGAIN: the counter is saturated, so it is readable already.
  if (n < 0 && errno != EAGAIN) result = errno;
  errno = saved_errno;
  return result;
}

void WakeupFd::Drain() const {
  uint64_t value;
  // Non-semaphore eventfd: one read resets the counter to 0.
  while (read(read_fd_, &value, sizeof(value)) < 0 && errno == EINTR) {
  }
}

}  // namespace poll_internal
}  // namespace mill
