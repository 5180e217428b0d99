// Interest and Trigger: what readiness a registration asks for, and how the
// poller reports it.
//
// Interest is a set of readiness kinds (readable, writable, priority), built
// from the named constructors and `|`. The empty set has its own name,
// Interest::None(): a registration that is kept (descriptor, token, slot) but
// paused, which reports no readiness (see poller.h). Trigger picks
// level-triggered or
// one-shot reporting; both behave the same on every backend (see poller.h for
// the precise readiness rules). Plain value types; thread-compatible.
#ifndef MILL_IO_POLL_INTEREST_H_
#define MILL_IO_POLL_INTEREST_H_

#include <cstdint>
#include <ostream>

namespace mill {

// The readiness kinds a caller wants to hear about for one descriptor.
//
//   poller->Register(fd, token, Interest::Readable() | Interest::Writable());
//
// Priority() asks for urgent / out-of-band data (EPOLLPRI, POLLPRI; on kqueue
// EVFILT_EXCEPT with NOTE_OOB where the platform has it). None() asks for
// nothing: use it to pause a registration without removing it (a connection
// that stopped reading and has nothing to write, a listener that stopped
// accepting); Reregister with a real interest resumes it.
class Interest {
 public:
  static constexpr Interest None() { return Interest(0); }
  static constexpr Interest Readable() { return Interest(kReadableBit); }
  static constexpr Interest Writable() { return Interest(kWritableBit); }
  static constexpr Interest Priority() { return Interest(kPriorityBit); }

  constexpr Interest operator|(Interest other) const {
    return Interest(bits_ | other.bits_);
  }
  Interest& operator|=(Interest other) {
    bits_ |= other.bits_;
    return *this;
  }

  constexpr bool is_readable() const { return (bits_ & kReadableBit) != 0; }
  constexpr bool is_writable() const { return (bits_ & kWritableBit) != 0; }
  constexpr bool is_priority() const { return (bits_ & kPriorityBit) != 0; }
  constexpr bool is_none() const { return bits_ == 0; }

  friend constexpr bool operator==(Interest a, Interest b) {
    return a.bits_ == b.bits_;
  }
  friend constexpr bool operator!=(Interest a, Interest b) {
    return a.bits_ != b.bits_;
  }

  // Prints e.g. "Interest(READABLE|WRITABLE)".
  friend std::ostream& operator<<(std::ostream& os, Interest interest) {
    os << "Interest(";
    const char* sep = "";
    if (interest.is_readable()) os << sep << "READABLE", sep = "|";
    if (interest.is_writable()) os << sep << "WRITABLE", sep = "|";
    if (interest.is_priority()) os << sep << "PRIORITY";
    if (interest.is_none()) os << "NONE";
    return os << ")";
  }

 private:
  static constexpr uint8_t kReadableBit = 1;
  static constexpr uint8_t kWritableBit = 2;
  static constexpr uint8_t kPriorityBit = 4;

  constexpr explicit Interest(uint8_t bits) : bits_(bits) {}

  uint8_t bits_;  // 0: None()
};

// How a registration reports readiness. The SAME on every backend.
enum class Trigger {
  // Reported by every Poll while the condition holds. A handler need not read
  // or write until EAGAIN: whatever it leaves behind is reported again.
  kLevel,
  // Level-checked, reported once, then disarmed (no further events of any
  // kind for the descriptor) until Reregister() re-arms it. Re-arming reports
  // at once if the condition already holds, so no readiness is lost between
  // the event and the re-arm. Lets one thread poll while workers handle a
  // descriptor without two of them seeing it at the same time.
  kOneShot,
};

inline std::ostream& operator<<(std::ostream& os, Trigger trigger) {
  return os << (trigger == Trigger::kLevel ? "kLevel" : "kOneShot");
}

}  // namespace mill

#endif  // MILL_IO_POLL_INTEREST_H_
