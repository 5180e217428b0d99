// Portable POSIX WakeupFd: a non-blocking, close-on-exec pipe. Signal()
// writes one byte; when the pipe is full it is readable already, so the
// EAGAIN is the coalescing. Drain() reads until EAGAIN.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

#include "absl/status/statusor.h"
#include "base/errno_status.h"
#include "poll/internal/backend.h"
#include "poll/internal/wakeup_fd.h"

namespace mill {
namespace poll_internal {
namespace {

bool SetNonBlockingCloexec(int fd) {
  const int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return false;
  const int fdfl = fcntl(fd, F_GETFD);
  return fdfl >= 0 && fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) >= 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<WakeupFd>> WakeupFd::Create() {
  int fds[2];
  // pipe2() is not on every platform this file serves (macOS lacks it).
  if (pipe(fds) < 0) return ErrnoStatus(errno, "pipe");
  if (!SetNonBlockingCloexec(fds[0]) || !SetNonBlockingCloexec(fds[1])) {
    const int err = errno;
    close(fds[0]);
    close(fds[1]);
    return ErrnoStatus(err, "fcntl(pipe)");
  }
  return std::unique_ptr<WakeupFd>(new WakeupFd(fds[0], fds[1]));
}

WakeupFd::~WakeupFd() {
  close(read_fd_);
  close(write_fd_);
}

int WakeupFd::Signal() const {
  const int saved_errno = errno;
  const char byte = 1;
  int result = 0;
  ssize_t n;
  do {
    n = write(write_fd_, &byte, 1);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && errno != EAGAIN) result = errno;
  errno = saved_errno;
  return result;
}

void WakeupFd::Drain() const {
  char buf[256];
  for (;;) {
    const ssize_t n = read(read_fd_, buf, sizeof(buf));
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    break;  // 0 (cannot happen: we hold the write end), EAGAIN or error
  }
}

}  // namespace poll_internal
}  // namespace mill
