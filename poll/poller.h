// Poller: readiness notification for file descriptors (epoll, kqueue,
// poll(2) or IOCP behind one interface), the bottom layer of Mill-IO's
// reactor.
//
// The caller registers descriptors with a Token and an Interest, then calls
// Poll() to learn which became ready. Poll never reads or writes: it only
// says "an operation will probably not block now"; the caller does the I/O
// on its own non-blocking descriptors.
//
// Thread-safety: Register/Reregister/Deregister may be called from any
// thread, concurrently with each other and while another thread is blocked
// in Poll; a change takes effect for that blocked Poll without waiting for
// its timeout. Poll itself must be called by one thread at a time (it owns
// per-call scratch state); concurrent Polls on one Poller are undefined.
// Ownership: the Poller never owns registered descriptors and never closes
// them. Deregister a descriptor before closing it: epoll forgets a closed
// descriptor by itself only when no dup() of it remains, poll(2) would
// report it as an error (POLLNVAL) until deregistered, so the backends only
// agree if the caller deregisters first.
//
// Windows: the `int fd` of this API holds a SOCKET (kernel handles have 32
// significant bits), and only sockets can be polled (the AFD driver polls
// sockets; files, pipes and consoles are PermissionDenied). The semantics
// below hold there too. Visible differences: a burst of descriptors becoming
// ready at once may be reported over more than one Poll (each socket's
// request completes on its own; the conformance suite's Expectations table
// states it for the backend), timeouts have the millisecond granularity of
// GetQueuedCompletionStatusEx (rounded up, never early), and a socket closed
// while registered goes silent (AFD_POLL_LOCAL_CLOSE) until Deregister.
//
// Platforms (libuv-style: each backend in its own file behind
// poll/internal/backend.h; poller.cc includes no platform header):
//
//   backend  | platforms           | status
//   ---------+---------------------+-------------------------------------------
//   epoll    | Linux               | default on Linux; tested in CI
//   poll(2)  | any POSIX           | tested in CI on Linux (same suite);
//            |                     | not on Windows
//   kqueue   | macOS, FreeBSD,     | default there; written against the man
//            | OpenBSD             | pages, UNTESTED in CI (no BSD/macOS host)
//   iocp     | Windows             | default on Windows: IOCTL_AFD_POLL on
//            |                     | \Device\Afd through one I/O completion
//            |                     | port per Poller (the design of wepoll,
//            |                     | mio, libuv's uv_poll); sockets only;
//            |                     | tested in CI under Wine (same suite)
//   io_uring | Linux 5.11+ with    | poll requests on one io_uring per
//            | io_uring allowed    | Poller, changes and the wait in one
//            |                     | system call; listed by
//            |                     | AvailableBackends() only where a ring
//            |                     | can be set up; tested in CI (same
//            |                     | suite). A descriptor closed while
//            |                     | registered stays open in the kernel
//            |                     | until Deregister.
//
// Readiness semantics (the same on every backend):
//
//  * What triggers an event. A registration is reported when one of the
//    conditions in its Interest holds: readable (data, EOF or a pending
//    connection to accept), writable (buffer space, or a non-blocking
//    connect finished, successfully or not), priority (urgent / out-of-band
//    data). Error and hang-up conditions are reported whatever the Interest
//    (Event::is_error, is_read_closed, is_write_closed); a closed or failed
//    descriptor may come with is_readable/is_writable set too, because a
//    read or write would not block (it returns 0 or the error).
//  * Spurious events are possible and must be tolerated: an Event is a hint
//    that an operation will probably not block, not a promise. The handler
//    must cope with EAGAIN/EWOULDBLOCK (use non-blocking descriptors), and a
//    descriptor may appear twice in one Poll (kqueue reports read and write
//    separately) or once more after a Reregister or Deregister raced with a
//    Poll already returning.
//  * Trigger::kLevel: reported by every Poll while the condition holds. A
//    handler need NOT read or write until EAGAIN: unread data is reported
//    again by the next Poll. (No edge-triggered mode: there is no case where
//    a handler must drain to EAGAIN.)
//  * Trigger::kOneShot: checked like kLevel, reported once, then disarmed:
//    no event of any kind for that descriptor until Reregister() re-arms it
//    (with any Interest and Trigger). Re-arming reports at once if the
//    condition already holds, so readiness that arrived while disarmed is
//    not lost. The caller re-arms after handling; the handler may stop
//    before EAGAIN and the re-arm reports the remainder.
//  * Interest::None() (a paused registration): no readiness is reported,
//    whatever the trigger. Error and hang-up conditions, which epoll and
//    poll(2) report regardless of interest, are reported at most once: a
//    None() registration is always one-shot, so after such a report it stays
//    silent until Reregister (kqueue reports nothing at all). So a paused
//    descriptor can never make Poll spin, and it keeps its slot and token.
//  * Poll returns at most events.capacity() events; the rest are reported by
//    a later Poll (level registrations stay ready, one-shot ones stay
//    armed).
//  * Timeouts: std::nullopt (or absl::InfiniteDuration()) blocks until an
//    event; zero (or negative) checks once and returns at once; otherwise
//    Poll waits until an event or the timeout, and never returns 0 events
//    before the full timeout has passed (sub-millisecond remainders are
//    rounded up for epoll_wait/poll). Interrupted system calls (EINTR) are
//    retried with the remaining time: a signal never surfaces as an error,
//    never cuts the wait short and never lengthens it.
//
// Errors (absl::Status with the errno text, or the Win32 text on Windows;
// the same code on every backend). The Poller stays usable after every
// error.
//   InvalidArgument   negative, invalid or closed descriptor (EBADF;
//                     WSAENOTSOCK for a handle that is no longer open)
//   PermissionDenied  a descriptor that cannot be polled: regular file or
//                     directory (epoll's EPERM; poll(2)/kqueue match it);
//                     on Windows any open handle that is not a socket
//   AlreadyExists     Register of a descriptor already registered (EEXIST)
//   NotFound          Reregister/Deregister of a descriptor not registered
//   Unimplemented     Create(backend) for a backend not built here;
//                     Interest::Priority() on a kqueue without EVFILT_EXCEPT;
//                     Create(kIoUring) on a kernel without a feature it uses
//   PermissionDenied  also Create(kIoUring) where io_uring is refused
//                     (seccomp, kernel.io_uring_disabled)
//   other             resource errors (ENOMEM, EMFILE) mapped by
//                     absl::ErrnoToStatus
#ifndef MILL_IO_POLL_POLLER_H_
#define MILL_IO_POLL_POLLER_H_

#include <cstddef>
#include <memory>
#include <optional>
#include <ostream>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "poll/event.h"
#include "poll/interest.h"
#include "poll/token.h"

namespace mill {

namespace poll_internal {
class Backend;
struct PollerAccess;
}  // namespace poll_internal

enum class PollerBackend { kEpoll, kKqueue, kPoll, kIocp, kIoUring };

// "epoll", "kqueue", "poll", "iocp" or "io_uring".
absl::string_view PollerBackendName(PollerBackend backend);
std::ostream& operator<<(std::ostream& os, PollerBackend backend);

// Waits for readiness on many descriptors. Typical event loop:
//
//   ASSIGN_OR_RETURN(std::unique_ptr<mill::Poller> poller,
//                    mill::Poller::Create());
//   RETURN_IF_ERROR(poller->Register(fd, mill::Token(1),
//                                    mill::Interest::Readable()));
//   mill::Events events(1024);
//   for (;;) {
//     ASSIGN_OR_RETURN(size_t n, poller->Poll(events, std::nullopt));
//     for (const mill::Event& e : events) Handle(e);  // n == events.size()
//   }
//
// Poll allocates nothing per call (the backend's native buffers grow only
// when an Events of a larger capacity is first passed).
class Poller {
 public:
  // The platform default: epoll on Linux, kqueue on BSD/macOS, IOCP on
  // Windows, else poll(2).
  static absl::StatusOr<std::unique_ptr<Poller>> Create();
  // A specific backend; Unimplemented if it is not built on this platform.
  static absl::StatusOr<std::unique_ptr<Poller>> Create(PollerBackend backend);
  // Every backend built on this platform and usable here, the default
  // first (io_uring only where the kernel lets this process set up a ring).
  static std::vector<PollerBackend> AvailableBackends();

  Poller(const Poller&) = delete;
  Poller& operator=(const Poller&) = delete;
  ~Poller();

  // Starts watching `fd` (which the caller keeps open, non-blocking, and
  // deregisters before closing). Events for it carry `token`.
  absl::Status Register(int fd, Token token, Interest interest,
                        Trigger trigger = Trigger::kLevel);
  // Replaces token, interest and trigger of a registered `fd`; this is also
  // how a fired kOneShot registration is re-armed (reports at once if the
  // condition holds).
  absl::Status Reregister(int fd, Token token, Interest interest,
                          Trigger trigger = Trigger::kLevel);
  // Stops watching `fd`. Events already returned by a concurrent Poll may
  // still mention it (see "spurious events" above).
  absl::Status Deregister(int fd);

  // Waits for readiness; std::nullopt blocks. Clears `events`, stores up to
  // events.capacity() events in it and returns how many (0 only when the
  // timeout expired). One thread at a time.
  absl::StatusOr<size_t> Poll(Events& events,
                              std::optional<absl::Duration> timeout);

  PollerBackend backend() const { return backend_kind_; }

 private:
  friend class Waker;  // asks the backend for its WakeChannel
  friend struct poll_internal::PollerAccess;  // //reactor: receive-ahead

  Poller(PollerBackend kind, std::unique_ptr<poll_internal::Backend> backend);

  const PollerBackend backend_kind_;
  const std::unique_ptr<poll_internal::Backend> backend_;
};

}  // namespace mill

#endif  // MILL_IO_POLL_POLLER_H_
