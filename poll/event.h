// Event and Events: the readiness reports that Poller::Poll hands back.
//
// An Event carries the registration's Token and what the kernel reported for
// the descriptor (readable, writable, error, read/write side closed,
// priority data). Events is a caller-owned buffer of fixed capacity that Poll
// fills; reuse it across calls so polling allocates nothing.
//
// Thread-safety: plain values; thread-compatible. An Events buffer is written
// by Poll and must not be read by another thread while Poll runs.
// Ownership: the caller owns its Events; Poll only writes into it.
#ifndef MILL_IO_POLL_EVENT_H_
#define MILL_IO_POLL_EVENT_H_

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <ostream>

#include "poll/token.h"

namespace mill {

class Poller;

// One readiness report for one registration.
//
// The flags are hints, not guarantees: a readable event can be spurious, so
// the handler must still cope with EAGAIN (see poller.h). Closed/error flags
// are reported whatever the Interest was (the kernel always reports them).
//
// Backends and tests build events from a token and a set of Flag bits:
//
//   Event e(Token(7), Event::kReadable | Event::kReadClosed);
class Event {
 public:
  enum Flag : uint32_t {
    kReadable = 1u << 0,
    kWritable = 1u << 1,
    kError = 1u << 2,
    kReadClosed = 1u << 3,
    kWriteClosed = 1u << 4,
    kPriority = 1u << 5,
  };

  Event() = default;
  constexpr Event(Token token, uint32_t flags) : token_(token), flags_(flags) {}

  Token token() const { return token_; }
  // All Flag bits at once, for logging and tests.
  uint32_t flags() const { return flags_; }

  // Data (or EOF) can be read without blocking. epoll EPOLLIN, poll POLLIN,
  // kqueue EVFILT_READ.
  bool is_readable() const { return (flags_ & kReadable) != 0; }
  // Data can be written without blocking. EPOLLOUT, POLLOUT, EVFILT_WRITE.
  bool is_writable() const { return (flags_ & kWritable) != 0; }
  // The descriptor has a pending error (EPOLLERR, POLLERR/POLLNVAL, kqueue
  // EV_ERROR or EV_EOF with a non-zero error in fflags). Read it with
  // getsockopt(SO_ERROR) for sockets.
  bool is_error() const { return (flags_ & kError) != 0; }
  // The peer shut down its write side or hung up: reads will hit EOF once
  // buffered data is consumed (EPOLLRDHUP|EPOLLHUP, POLLRDHUP|POLLHUP, kqueue
  // EV_EOF on EVFILT_READ).
  bool is_read_closed() const { return (flags_ & kReadClosed) != 0; }
  // Our write side can no longer write (EPOLLHUP/EPOLLERR, POLLHUP/POLLERR,
  // kqueue EV_EOF on EVFILT_WRITE).
  bool is_write_closed() const { return (flags_ & kWriteClosed) != 0; }
  // Urgent / out-of-band data is pending (EPOLLPRI, POLLPRI, EVFILT_EXCEPT).
  bool is_priority() const { return (flags_ & kPriority) != 0; }

  friend bool operator==(const Event& a, const Event& b) {
    return a.token_ == b.token_ && a.flags_ == b.flags_;
  }
  friend bool operator!=(const Event& a, const Event& b) { return !(a == b); }

  // Prints e.g. "Event(Token(3), READABLE|READ_CLOSED)".
  friend std::ostream& operator<<(std::ostream& os, const Event& event);

 private:
  Token token_;
  uint32_t flags_ = 0;
};

// A caller-owned buffer of at most capacity() events, filled by Poll.
//
//   mill::Events events(256);  // allocate once
//   for (;;) {
//     poller->Poll(events, std::nullopt);
//     for (const mill::Event& e : events) Dispatch(e);
//   }
//
// When more descriptors are ready than fit, the rest are reported by a later
// Poll (level-triggered ones stay ready; one-shot ones stay armed).
class Events {
 public:
  // Requires capacity >= 1 (debug builds assert; release builds use 1).
  explicit Events(size_t capacity);

  Events(Events&&) = default;
  Events& operator=(Events&&) = default;
  Events(const Events&) = delete;
  Events& operator=(const Events&) = delete;

  size_t capacity() const { return capacity_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  const Event& operator[](size_t i) const {
    assert(i < size_);
    return data_[i];
  }
  const Event* begin() const { return data_.get(); }
  const Event* end() const { return data_.get() + size_; }

  void clear() { size_ = 0; }

  // Appends `event`; returns false (and stores nothing) when full. For tests
  // and for code that merges events from several sources.
  bool push_back(const Event& event) {
    if (size_ == capacity_) return false;
    data_[size_++] = event;
    return true;
  }

 private:
  friend class Poller;  // fills data_ directly, without a copy per event

  std::unique_ptr<Event[]> data_;
  size_t capacity_;
  size_t size_ = 0;
};

}  // namespace mill

#endif  // MILL_IO_POLL_EVENT_H_
