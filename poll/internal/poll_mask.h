// Internal, POSIX: poll(2)'s event bits (POLLIN, POLLRDHUP, ...) to and from
// Interest and Event flags, shared by the poll(2) backend and the io_uring
// backend (whose poll requests speak the same bits).
//
// Thread-safety: pure functions.
#ifndef MILL_IO_POLL_INTERNAL_POLL_MASK_H_
#define MILL_IO_POLL_INTERNAL_POLL_MASK_H_

#include <poll.h>

#include <cstdint>

#include "poll/event.h"
#include "poll/interest.h"

namespace mill {
namespace poll_internal {

// The poll bits to wait for. Readable includes POLLRDHUP where the platform
// has it (Linux): the peer shut down its write side, like EPOLLRDHUP.
inline uint32_t InterestToPollMask(Interest interest) {
  uint32_t mask = 0;
  if (interest.is_readable()) {
    mask |= POLLIN;
#ifdef POLLRDHUP
    mask |= POLLRDHUP;
#endif
  }
  if (interest.is_writable()) mask |= POLLOUT;
  if (interest.is_priority()) mask |= POLLPRI;
  return mask;
}

// Event flags for what poll reported. POLLNVAL (a descriptor closed without
// Deregister) is an error, so that it is seen rather than spun on.
inline uint32_t PollMaskToEventFlags(uint32_t revents) {
  uint32_t flags = 0;
  if (revents & POLLIN) flags |= Event::kReadable;
  if (revents & POLLOUT) flags |= Event::kWritable;
  if (revents & POLLPRI) flags |= Event::kPriority;
  if (revents & (POLLERR | POLLNVAL)) {
    flags |= Event::kError | Event::kWriteClosed;
  }
  if (revents & POLLHUP) flags |= Event::kReadClosed | Event::kWriteClosed;
#ifdef POLLRDHUP
  if (revents & POLLRDHUP) flags |= Event::kReadClosed;
#endif
  return flags;
}

}  // namespace poll_internal
}  // namespace mill

#endif  // MILL_IO_POLL_INTERNAL_POLL_MASK_H_
