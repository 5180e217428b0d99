// Internal: the interface every platform backend implements, and the helpers
// they share. Platform-neutral: no platform header is included here, so
// poller.cc and waker.cc stay portable; each backend's .cc file includes what
// its platform needs and is compiled only where that platform exists (see the
// select() in poll/BUILD.bazel).
//
// Contract, relied on by Poller (which adds argument checks, the EINTR /
// remaining-timeout loop and the conversion to the public Events buffer):
//  - The same verbs as Poller's: Register/Reregister/Deregister may be
//    called from any thread, concurrently with each other and with one
//    thread blocked in Poll; a change must reach a blocked Poll without
//    waiting for its timeout.
//  - Poll is called by one thread at a time. It may return 0 events before
//    the timeout (EINTR, internal wakeups); Poller then waits again with the
//    remaining time.
//  - Errors use the same codes on every backend: InvalidArgument (bad fd),
//    PermissionDenied (descriptor that cannot be polled: regular file,
//    directory), AlreadyExists (Register of a registered fd),
//    NotFound (Reregister/Deregister of an unregistered fd), Unimplemented
//    (an interest the platform cannot watch).
//  - NewWakeChannel gives Waker its wakeup mechanism: a WakeupFd registered
//    with the backend on POSIX (NewWakeupFdChannel), a completion packet
//    posted to the port on Windows (IOCP). waker.cc only sees WakeChannel.
#ifndef MILL_IO_POLL_INTERNAL_BACKEND_H_
#define MILL_IO_POLL_INTERNAL_BACKEND_H_

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "poll/event.h"
#include "poll/interest.h"
#include "poll/token.h"

namespace mill {
namespace poll_internal {

// What a Waker drives (see poll/waker.h for the guarantees): Wake() makes the
// channel's token reported as readable, level-triggered, until Drain().
// Wake() is thread-safe (async-signal-safe on POSIX); Drain() is called by the
// polling thread. Destroying the channel removes it from its backend, which
// must outlive it.
class WakeChannel {
 public:
  virtual ~WakeChannel() = default;
  virtual absl::Status Wake() = 0;
  virtual void Drain() = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual absl::Status Register(int fd, Token token, Interest interest,
                                Trigger trigger) = 0;
  // Replaces token, interest and trigger; re-arms a disarmed kOneShot.
  virtual absl::Status Reregister(int fd, Token token, Interest interest,
                                  Trigger trigger) = 0;
  virtual absl::Status Deregister(int fd) = 0;

  // Waits at most `timeout` (absl::InfiniteDuration() blocks; zero polls)
  // and stores up to `capacity` (>= 1) events into `out`. Returns how many;
  // 0 on timeout, on EINTR and on internal wakeups. Must not allocate except
  // when `capacity` grows beyond anything seen before.
  virtual absl::StatusOr<size_t> Poll(Event* out, size_t capacity,
                                      absl::Duration timeout) = 0;

  // A wakeup channel reported under `token` (readable, kLevel).
  virtual absl::StatusOr<std::unique_ptr<WakeChannel>> NewWakeChannel(
      Token token) = 0;

  // --- Receive-ahead: a completion backend (io_uring) receives a stream
  // socket's bytes itself, so a report comes with the bytes already read
  // and no recv(2) follows. Readiness backends keep the defaults.

  // Readies receive-ahead (buffers), so that StartReceiveAhead cannot fail
  // for want of them: OK, or why this backend or kernel cannot.
  virtual absl::Status PrepareReceiveAhead() {
    return absl::UnimplementedError("receive-ahead: not on this backend");
  }
  // From now on the backend receives registered `fd` (a connected stream
  // socket) itself: the registration is reported readable while received
  // bytes, the end of the stream or an error wait (level-triggered, or
  // once for kOneShot, like any readable condition), and the caller takes
  // them with Receive, never with recv(2). Other interests (writable) are
  // watched as before. Deregister ends it; bytes not yet taken are dropped.
  // After a successful PrepareReceiveAhead, fails only for an unregistered
  // `fd` (NotFound); Unimplemented where the backend has no such path.
  virtual absl::Status StartReceiveAhead(int fd) {
    (void)fd;
    return absl::UnimplementedError("receive-ahead: not on this backend");
  }
  // Like recv(2) on a receive-ahead `fd`: copies up to `max` received bytes
  // into `out` and returns how many (> 0); 0 at the end of the stream once
  // every byte was taken; -1 with *error set: EAGAIN if nothing waits (a
  // report follows when something does), the socket's error code, or
  // ENOTCONN if `fd` does not receive ahead. Any thread.
  virtual int64_t Receive(int fd, char* out, size_t max, int* error) {
    (void)fd;
    (void)out;
    (void)max;
    *error = ENOTCONN;
    return -1;
  }
  // Without taking anything: 1 if received bytes wait, 0 if the stream
  // ended (and nothing waits), -1 with *error set otherwise (EAGAIN: nothing
  // received ahead yet, look at the socket itself).
  virtual int PeekReceived(int fd, int* error) {
    (void)fd;
    *error = ENOTCONN;
    return -1;
  }
};

// Factories. Each is defined in its backend's .cc file, which the BUILD file
// compiles only on platforms that have the backend; Poller references them
// under the matching MILL_POLL_HAVE_* define set by that same select().
absl::StatusOr<std::unique_ptr<Backend>> NewEpollBackend();    // Linux
absl::StatusOr<std::unique_ptr<Backend>> NewKqueueBackend();   // BSD, macOS
absl::StatusOr<std::unique_ptr<Backend>> NewPollBackend();     // any POSIX
absl::StatusOr<std::unique_ptr<Backend>> NewIocpBackend();     // Windows
absl::StatusOr<std::unique_ptr<Backend>> NewIoUringBackend();  // Linux
// OK if an io_uring ring with every feature the backend uses can be set up
// here (not refused by seccomp, kernel.io_uring_disabled, an old kernel);
// else why not. Creates and closes a small ring. (uring_backend.cc)
absl::Status ProbeIoUring();
// Testing: makes every io_uring ring setup of this process fail with
// `error_number` (EPERM, ENOSYS, ...) as if the kernel refused it; 0 undoes
// it. The environment variable MILL_IO_URING_SETUP_ERROR=<errno number> does
// the same for a whole process (black-box tests of the fallback).
void SetIoUringSetupErrorForTesting(int error_number);
// False when kqueue_backend.cc was compiled without <sys/event.h> (its
// __has_include guard failed), so AvailableBackends() does not lie.
bool KqueueBackendCompiled();

// --- Shared helpers (platform-neutral; defined in backend.cc). ---

// Milliseconds for epoll_wait/poll: -1 for infinite, sub-millisecond
// remainders rounded UP (never wake early), clamped to INT_MAX.
int TimeoutToMillis(absl::Duration timeout);

// For backends whose kernel interface accepts any descriptor (poll(2),
// kqueue): fails like epoll_ctl(EPOLL_CTL_ADD) would, so every backend
// rejects the same descriptors with the same codes. InvalidArgument (EBADF)
// for a closed or invalid fd; PermissionDenied (EPERM) for a regular file or
// directory, which are always "ready" and cannot be polled meaningfully.
// Defined in fd_check.cc (POSIX).
absl::Status CheckPollableFd(int fd, absl::string_view what);

// POSIX backends' NewWakeChannel: a WakeupFd (eventfd or pipe) registered
// with `backend` under `token`, deregistered when the channel is destroyed.
// Defined in wakeup_fd_channel.cc (POSIX).
absl::StatusOr<std::unique_ptr<WakeChannel>> NewWakeupFdChannel(
    Backend& backend, Token token);

}  // namespace poll_internal
}  // namespace mill

#endif  // MILL_IO_POLL_INTERNAL_BACKEND_H_
