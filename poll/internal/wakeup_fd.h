// Internal, POSIX: a descriptor that another thread or a signal handler can
// make readable, used by Waker (through the POSIX backends' WakeChannel,
// wakeup_fd_channel.cc) and by the poll(2) backend to interrupt a blocked
// wait. Platform-neutral interface; the implementation is
// wakeup_fd_eventfd.cc (Linux: one eventfd) or wakeup_fd_pipe.cc (other
// POSIX: a non-blocking pipe), chosen by poll/BUILD.bazel. Windows has none:
// the IOCP backend's Waker posts completion packets.
//
// Thread-safety: Signal() may run concurrently with anything, including from
// a signal handler. Drain() is called by one thread (the polling thread).
// Ownership: owns its descriptors and closes them on destruction.
#ifndef MILL_IO_POLL_INTERNAL_WAKEUP_FD_H_
#define MILL_IO_POLL_INTERNAL_WAKEUP_FD_H_

#include <memory>

#include "absl/status/statusor.h"

namespace mill {
namespace poll_internal {

class WakeupFd {
 public:
  // Non-blocking, close-on-exec.
  static absl::StatusOr<std::unique_ptr<WakeupFd>> Create();

  WakeupFd(const WakeupFd&) = delete;
  WakeupFd& operator=(const WakeupFd&) = delete;
  ~WakeupFd();

  // The descriptor to watch for readability.
  int read_fd() const { return read_fd_; }

  // Makes read_fd() readable. Only write(2); preserves errno;
  // async-signal-safe. Returns 0, or the errno of a failed write other than
  // EAGAIN (EAGAIN means a wakeup is already pending: the wakes coalesce).
  int Signal() const;

  // Consumes every pending signal, so read_fd() is no longer readable.
  void Drain() const;

 private:
  WakeupFd(int read_fd, int write_fd)
      : read_fd_(read_fd), write_fd_(write_fd) {}

  const int read_fd_;
  const int write_fd_;  // == read_fd_ for an eventfd
};

}  // namespace poll_internal
}  // namespace mill

#endif  // MILL_IO_POLL_INTERNAL_WAKEUP_FD_H_
