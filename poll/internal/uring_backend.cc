// Linux backend: io_uring (liburing 2.3), readiness through poll requests.
//
// Each registration that wants reports has one IORING_OP_POLL_ADD in the
// kernel. A completion is a report; level-triggered registrations get a new
// poll request at the next Poll, which the kernel checks at once (it
// completes inline while still ready), so kLevel behaves like epoll's level
// mode and kOneShot simply is not re-armed until Reregister. Interest
// changes cancel the request in flight (POLL_REMOVE) and add a new one; a
// per-descriptor sequence number in each request's user_data makes late
// completions of replaced requests recognisable, so they are dropped.
//
// One system call per Poll: every change made since the last one is written
// as submission entries and submitted together with the wait
// (io_uring_submit_and_wait_timeout with IORING_FEAT_EXT_ARG).
//
// Threads. Only the polling thread touches the ring: Register, Reregister
// and Deregister (any thread) edit the table under mu_ and queue the
// descriptor; the next Poll turns the queue into submissions. A change made
// while a Poll is blocked writes an eventfd whose read is always pending on
// the ring, so the blocked wait returns and the next one applies it. That
// keeps the ring single-issuer: it is created with
// IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN (completion work
// runs when the polling thread waits, in a batch, instead of interrupting
// it) when the kernel accepts them (6.1), else without. A single-issuer
// ring belongs to the first thread that polls it; when another thread polls
// (the event loop's standby taking over a blocked poller, or Run() called
// again on another thread) the backend moves to a new ring created for that
// thread and re-adds the armed registrations, which re-check readiness, so
// nothing is lost.
//
// A poll request holds a reference to the descriptor's file: a descriptor
// closed without Deregister stays open in the kernel (a socket sends no FIN)
// until it is deregistered, which the Poller contract requires anyway.
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "base/errno_status.h"
#include "base/mutex.h"
#include "poll/internal/backend.h"

namespace mill {
namespace poll_internal {
namespace {

// Set by the test hook (and MILL_IO_URING_SETUP_ERROR, read once): the errno
// that ring setup fails with instead of calling the kernel.
std::atomic<int> forced_setup_error{-1};

int ForcedSetupError() {
  int err = forced_setup_error.load(std::memory_order_acquire);
  if (err >= 0) return err;
  err = 0;
  if (const char* env = std::getenv("MILL_IO_URING_SETUP_ERROR")) {
    err = std::atoi(env);
    if (err < 0) err = 0;
  }
  int expected = -1;
  forced_setup_error.compare_exchange_strong(expected, err,
                                             std::memory_order_acq_rel);
  return forced_setup_error.load(std::memory_order_acquire);
}

// Submission queue entries per ring; a Poll with more changes submits in
// chunks. The completion queue is larger: every registration may complete
// in one iteration, and IORING_FEAT_NODROP keeps what does not fit.
constexpr unsigned kSqEntries = 256;
constexpr unsigned kCqEntries = 4096;

// user_data: (sequence << 32) | fd for poll requests; the two values below
// (fd 0xffffffff / 0xfffffffe, never a real descriptor) for the rest.
constexpr uint64_t kWakeTag = ~uint64_t{0};
constexpr uint64_t kIgnoreTag = ~uint64_t{0} - 1;

uint64_t PollTag(int fd, uint32_t seq) {
  return (uint64_t{seq} << 32) | static_cast<uint32_t>(fd);
}

uint32_t ToPollMask(Interest interest) {
  uint32_t mask = 0;
  if (interest.is_readable()) mask |= POLLIN | POLLRDHUP;
  if (interest.is_writable()) mask |= POLLOUT;
  if (interest.is_priority()) mask |= POLLPRI;
  return mask;
}

uint32_t ToEventFlags(uint32_t revents) {
  uint32_t flags = 0;
  if (revents & POLLIN) flags |= Event::kReadable;
  if (revents & POLLOUT) flags |= Event::kWritable;
  if (revents & POLLPRI) flags |= Event::kPriority;
  if (revents & (POLLERR | POLLNVAL)) {
    flags |= Event::kError | Event::kWriteClosed;
  }
  if (revents & POLLHUP) flags |= Event::kReadClosed | Event::kWriteClosed;
  if (revents & POLLRDHUP) flags |= Event::kReadClosed;
  return flags;
}

// The operations this backend submits; a kernel without one of them is
// "missing a feature" and the caller falls back to epoll.
constexpr int kRequiredOps[] = {IORING_OP_POLL_ADD, IORING_OP_POLL_REMOVE,
                                IORING_OP_READ};

// IORING_REGISTER_ENABLE_RINGS. liburing 2.3 declares io_uring_enable_rings
// but its shared library does not export it.
int EnableRing(io_uring* ring) {
  const long r = syscall(__NR_io_uring_register, ring->ring_fd,
                         IORING_REGISTER_ENABLE_RINGS, nullptr, 0);
  return r < 0 ? -errno : 0;
}

// Creates a ring: single-issuer with deferred task work, disabled until the
// polling thread enables it, when the kernel accepts that; else a plain one.
absl::Status SetupRing(io_uring* ring, bool* single_issuer) {
  const int forced = ForcedSetupError();
  if (forced != 0) {
    return ErrnoStatus(forced, "io_uring_setup (forced by a test)");
  }
  io_uring_params params;
  std::memset(&params, 0, sizeof(params));
  params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER |
                 IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED;
  params.cq_entries = kCqEntries;
  int r = io_uring_queue_init_params(kSqEntries, ring, &params);
  *single_issuer = r == 0;
  if (r == -EINVAL) {  // before 6.1: no SINGLE_ISSUER / DEFER_TASKRUN
    std::memset(&params, 0, sizeof(params));
    params.flags = IORING_SETUP_CQSIZE;
    params.cq_entries = kCqEntries;
    r = io_uring_queue_init_params(kSqEntries, ring, &params);
  }
  if (r < 0) return ErrnoStatus(-r, "io_uring_setup");
  const uint32_t needed = IORING_FEAT_NODROP | IORING_FEAT_EXT_ARG;
  std::string missing;
  if ((params.features & needed) != needed) {
    missing = "IORING_FEAT_NODROP and IORING_FEAT_EXT_ARG (Linux 5.11)";
  } else if (io_uring_probe* probe = io_uring_get_probe_ring(ring)) {
    for (int op : kRequiredOps) {
      if (!io_uring_opcode_supported(probe, op)) {
        missing = absl::StrCat("opcode ", op);
        break;
      }
    }
    io_uring_free_probe(probe);
  } else {
    missing = "IORING_REGISTER_PROBE (Linux 5.6)";
  }
  if (!missing.empty()) {
    io_uring_queue_exit(ring);
    return absl::UnimplementedError(
        absl::StrCat("io_uring: this kernel lacks ", missing));
  }
  return absl::OkStatus();
}

class UringBackend final : public Backend {
 public:
  UringBackend(io_uring ring, bool single_issuer, int wake_fd)
      : ring_(ring), single_issuer_(single_issuer), wake_fd_(wake_fd) {}

  ~UringBackend() override {
    io_uring_queue_exit(&ring_);
    close(wake_fd_);
  }

  absl::Status Register(int fd, Token token, Interest interest,
                        Trigger trigger) override {
    static constexpr char kWhat[] = "io_uring backend: register";
    if (absl::Status s = CheckPollableFd(fd, kWhat); !s.ok()) return s;
    MutexLock lock(&mu_);
    if (static_cast<size_t>(fd) >= regs_.size()) regs_.resize(fd + 1);
    Reg& reg = regs_[fd];
    if (reg.registered) return ErrnoStatus(EEXIST, kWhat);
    reg.registered = true;
    Set(fd, reg, token, interest, trigger);
    return absl::OkStatus();
  }

  absl::Status Reregister(int fd, Token token, Interest interest,
                          Trigger trigger) override {
    static constexpr char kWhat[] = "io_uring backend: reregister";
    if (absl::Status s = CheckPollableFd(fd, kWhat); !s.ok()) return s;
    MutexLock lock(&mu_);
    if (static_cast<size_t>(fd) >= regs_.size() || !regs_[fd].registered) {
      return ErrnoStatus(ENOENT, kWhat);
    }
    Set(fd, regs_[fd], token, interest, trigger);
    return absl::OkStatus();
  }

  absl::Status Deregister(int fd) override {
    static constexpr char kWhat[] = "io_uring backend: deregister";
    const bool closed = fcntl(fd, F_GETFD) < 0 && errno == EBADF;
    MutexLock lock(&mu_);
    const bool found =
        static_cast<size_t>(fd) < regs_.size() && regs_[fd].registered;
    if (found) {
      Reg& reg = regs_[fd];
      reg.registered = false;
      reg.armed = false;
      Changed(fd, reg);
    }
    // Like epoll: a closed descriptor is EBADF (its registration is gone
    // either way); an open one that was never registered is ENOENT.
    if (closed) return ErrnoStatus(EBADF, kWhat);
    if (!found) return ErrnoStatus(ENOENT, kWhat);
    return absl::OkStatus();
  }

  absl::StatusOr<std::unique_ptr<WakeChannel>> NewWakeChannel(
      Token token) override {
    return NewWakeupFdChannel(*this, token);
  }

  absl::StatusOr<size_t> Poll(Event* out, size_t capacity,
                              absl::Duration timeout) override {
    if (absl::Status s = OwnRing(/*moved_away=*/false); !s.ok()) return s;
    {
      MutexLock lock(&mu_);
      if (absl::Status s = ApplyChanges(); !s.ok()) return s;
      waiting_ = true;
    }
    int r;
    if (timeout <= absl::ZeroDuration()) {
      r = io_uring_submit_and_get_events(&ring_);
    } else if (timeout == absl::InfiniteDuration()) {
      r = io_uring_submit_and_wait(&ring_, 1);
    } else {
      const int64_t ns = absl::ToInt64Nanoseconds(timeout);
      __kernel_timespec ts;
      ts.tv_sec = ns / 1000000000;
      ts.tv_nsec = ns % 1000000000;
      io_uring_cqe* first = nullptr;
      r = io_uring_submit_and_wait_timeout(&ring_, &first, 1, &ts, nullptr);
    }
    if (r == -EEXIST && single_issuer_) {
      // Another task owns the ring (a thread id reused by a new thread):
      // nothing was submitted; move to a ring of this thread's.
      {
        MutexLock lock(&mu_);
        waiting_ = false;
      }
      if (absl::Status s = OwnRing(/*moved_away=*/true); !s.ok()) return s;
      return 0;  // Poller polls again
    }
    MutexLock lock(&mu_);
    waiting_ = false;
    // ETIME: timed out; EINTR: a signal (Poller waits again with the
    // remaining time); EAGAIN/EBUSY: completions are backed up (we read them
    // now, which makes room).
    if (r < 0 && r != -ETIME && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
      return ErrnoStatus(-r, "io_uring_enter");
    }
    return Harvest(out, capacity);
  }

 private:
  struct Reg {
    Token token;
    uint32_t mask = 0;         // wanted poll events
    uint32_t kernel_mask = 0;  // events of the request in the kernel
    uint32_t seq = 0;          // sequence of the last request added
    Trigger trigger = Trigger::kLevel;
    bool registered = false;
    bool armed = false;      // wants a request in the kernel
    bool in_kernel = false;  // request `seq` is pending in the kernel
    bool queued = false;     // in changed_
  };

  void Set(int fd, Reg& reg, Token token, Interest interest, Trigger trigger)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    reg.token = token;
    reg.mask = ToPollMask(interest);
    reg.trigger = trigger;
    reg.armed = true;
    // A re-arm of a level registration whose request is pending needs no
    // new request: that one reports as soon as the condition holds.
    if (!reg.in_kernel || reg.kernel_mask != reg.mask) Changed(fd, reg);
  }

  // Queues `fd` for the next Poll and wakes a blocked one.
  void Changed(int fd, Reg& reg) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!reg.queued) {
      reg.queued = true;
      changed_.push_back(fd);
    }
    if (waiting_ && !wake_signalled_) {
      wake_signalled_ = true;
      const uint64_t one = 1;
      // EAGAIN only if the counter is saturated: a wakeup is pending anyway.
      (void)!write(wake_fd_, &one, sizeof(one));
    }
  }

  // A free submission entry; submits the full queue first if needed.
  absl::StatusOr<io_uring_sqe*> Sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe != nullptr) return sqe;
    const int r = io_uring_submit(&ring_);
    if (r < 0 && r != -EAGAIN && r != -EBUSY) {
      return ErrnoStatus(-r, "io_uring_submit");
    }
    sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
      return absl::ResourceExhaustedError(
          "io_uring backend: submission queue stays full");
    }
    return sqe;
  }

  // Turns the queued changes into submission entries (not yet submitted).
  absl::Status ApplyChanges() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!wake_armed_) {
      absl::StatusOr<io_uring_sqe*> sqe = Sqe();
      if (!sqe.ok()) return sqe.status();
      io_uring_prep_read(*sqe, wake_fd_, &wake_value_, sizeof(wake_value_), 0);
      io_uring_sqe_set_data64(*sqe, kWakeTag);
      wake_armed_ = true;
    }
    size_t i = 0;
    for (; i < changed_.size(); ++i) {
      const int fd = changed_[i];
      Reg& reg = regs_[fd];
      const bool want = reg.registered && reg.armed;
      if (reg.in_kernel && (!want || reg.kernel_mask != reg.mask)) {
        absl::StatusOr<io_uring_sqe*> sqe = Sqe();
        if (!sqe.ok()) break;
        io_uring_prep_poll_remove(*sqe, PollTag(fd, reg.seq));
        io_uring_sqe_set_data64(*sqe, kIgnoreTag);
        reg.in_kernel = false;
      }
      if (want && !reg.in_kernel) {
        absl::StatusOr<io_uring_sqe*> sqe = Sqe();
        if (!sqe.ok()) break;
        if (++reg.seq == 0) reg.seq = 1;
        io_uring_prep_poll_add(*sqe, fd, reg.mask);
        io_uring_sqe_set_data64(*sqe, PollTag(fd, reg.seq));
        reg.in_kernel = true;
        reg.kernel_mask = reg.mask;
      }
      reg.queued = false;
    }
    if (i < changed_.size()) {
      // Out of submission entries (another error than a full queue): keep
      // the rest for the next Poll.
      changed_.erase(changed_.begin(), changed_.begin() + i);
      return absl::OkStatus();
    }
    changed_.clear();
    return absl::OkStatus();
  }

  size_t Harvest(Event* out, size_t capacity)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    size_t count = 0;
    unsigned seen = 0;
    unsigned head;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      if (count == capacity) break;
      ++seen;
      const uint64_t tag = io_uring_cqe_get_data64(cqe);
      if (tag == kWakeTag) {
        wake_armed_ = false;
        wake_signalled_ = false;
        continue;
      }
      if (tag == kIgnoreTag) continue;
      const int fd = static_cast<int>(static_cast<uint32_t>(tag));
      const uint32_t seq = static_cast<uint32_t>(tag >> 32);
      if (static_cast<size_t>(fd) >= regs_.size()) continue;
      Reg& reg = regs_[fd];
      if (!reg.in_kernel || reg.seq != seq) continue;  // replaced
      reg.in_kernel = false;
      if (!reg.registered || !reg.armed) continue;
      uint32_t revents;
      if (cqe->res >= 0) {
        revents = static_cast<uint32_t>(cqe->res) &
                  (reg.mask | POLLERR | POLLHUP | POLLNVAL);
      } else if (cqe->res == -ECANCELED) {
        revents = 0;  // cancelled by the kernel (not by us): ask again
      } else {
        revents = POLLNVAL;  // EBADF: closed without Deregister, like poll(2)
      }
      const uint32_t flags = ToEventFlags(revents);
      if (flags == 0) {
        Changed(fd, reg);
        continue;
      }
      out[count++] = Event(reg.token, flags);
      if (reg.trigger == Trigger::kOneShot) {
        reg.armed = false;
      } else {
        Changed(fd, reg);  // level: a new request re-checks at the next Poll
      }
    }
    io_uring_cq_advance(&ring_, seen);
    return count;
  }

  // A single-issuer ring submits from one thread only: enable it on the
  // first polling thread, and move to a new ring when another thread polls.
  // `moved_away`: the kernel said this thread is not the ring's issuer.
  absl::Status OwnRing(bool moved_away) {
    if (!single_issuer_) return absl::OkStatus();
    const pid_t self = gettid();
    if (issuer_ == self && !moved_away) return absl::OkStatus();
    if (issuer_ == 0) {
      const int r = EnableRing(&ring_);
      if (r < 0) return ErrnoStatus(-r, "io_uring_register(ENABLE_RINGS)");
      issuer_ = self;
      return absl::OkStatus();
    }
    io_uring fresh;
    bool single_issuer = false;
    if (absl::Status s = SetupRing(&fresh, &single_issuer); !s.ok()) return s;
    if (single_issuer) {
      const int r = EnableRing(&fresh);
      if (r < 0) {
        io_uring_queue_exit(&fresh);
        return ErrnoStatus(-r, "io_uring_register(ENABLE_RINGS)");
      }
    }
    // Closing the old ring cancels its requests; its unread completions
    // are lost, but every armed registration gets a new request, which
    // reports again whatever still holds.
    io_uring_queue_exit(&ring_);
    ring_ = fresh;
    single_issuer_ = single_issuer;
    issuer_ = self;
    MutexLock lock(&mu_);
    wake_armed_ = false;
    wake_signalled_ = false;
    for (size_t fd = 0; fd < regs_.size(); ++fd) {
      Reg& reg = regs_[fd];
      if (!reg.in_kernel) continue;
      reg.in_kernel = false;
      Changed(static_cast<int>(fd), reg);
    }
    return absl::OkStatus();
  }

  // The polling thread's (one at a time); other threads never touch it.
  io_uring ring_;
  bool single_issuer_;
  pid_t issuer_ = 0;         // polling thread of a single-issuer ring
  const int wake_fd_;        // eventfd: a change for a blocked Poll
  uint64_t wake_value_ = 0;  // the pending read's buffer

  Mutex mu_;
  std::vector<Reg> regs_ ABSL_GUARDED_BY(mu_);  // by descriptor
  std::vector<int> changed_ ABSL_GUARDED_BY(mu_);
  bool waiting_ ABSL_GUARDED_BY(mu_) = false;         // a Poll may block
  bool wake_signalled_ ABSL_GUARDED_BY(mu_) = false;  // wake_fd_ written
  bool wake_armed_ ABSL_GUARDED_BY(mu_) = false;      // its read is pending
};

}  // namespace

void SetIoUringSetupErrorForTesting(int error_number) {
  forced_setup_error.store(error_number < 0 ? 0 : error_number,
                           std::memory_order_release);
}

absl::Status ProbeIoUring() {
  io_uring ring;
  bool single_issuer = false;
  if (absl::Status s = SetupRing(&ring, &single_issuer); !s.ok()) return s;
  io_uring_queue_exit(&ring);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Backend>> NewIoUringBackend() {
  io_uring ring;
  bool single_issuer = false;
  if (absl::Status s = SetupRing(&ring, &single_issuer); !s.ok()) return s;
  const int wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd < 0) {
    const int err = errno;
    io_uring_queue_exit(&ring);
    return ErrnoStatus(err, "eventfd");
  }
  return std::unique_ptr<Backend>(
      new UringBackend(ring, single_issuer, wake_fd));
}

}  // namespace poll_internal
}  // namespace mill
