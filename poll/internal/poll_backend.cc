// Portable POSIX backend: poll(2).
//
// poll(2) has no kernel-side interest list, so this backend keeps one: a
// dense pollfd array (slot 0 is an internal wakeup descriptor) plus a
// parallel array of registrations and an fd -> slot index, all under `mu_`.
// The polling thread waits on a private copy (`active_`), refreshed only when
// the table changed, so other threads can edit the table while it is blocked
// in the kernel; an edit made during a wait signals the wakeup descriptor so
// the wait restarts with the new table at once (Poller retries with the
// remaining timeout). Results are checked against the current table, so an
// fd deregistered or changed during the wait is not reported stale.
// kOneShot is emulated: a reported registration is disarmed (its slot's fd
// set to -1, which poll ignores) until Reregister re-arms it.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/errno_status.h"
#include "poll/internal/backend.h"
#include "poll/internal/poll_mask.h"
#include "poll/internal/wakeup_fd.h"

namespace mill {
namespace poll_internal {
namespace {

struct Registration {
  int fd = -1;
  Token token;
  short events = 0;  // requested poll events
  Trigger trigger = Trigger::kLevel;
  bool armed = true;  // false: a kOneShot that fired and awaits Reregister
};

class PollBackend final : public Backend {
 public:
  explicit PollBackend(std::unique_ptr<WakeupFd> wakeup)
      : wakeup_(std::move(wakeup)) {
    pollfd wake{};
    wake.fd = wakeup_->read_fd();
    wake.events = POLLIN;
    pollfds_.push_back(wake);
    regs_.emplace_back();  // keeps regs_ parallel to pollfds_
  }

  absl::Status Register(int fd, Token token, Interest interest,
                        Trigger trigger) override {
    static constexpr char kWhat[] = "poll backend: register";
    if (absl::Status s = CheckPollableFd(fd, kWhat); !s.ok()) return s;
    std::lock_guard<std::mutex> lock(mu_);
    if (index_.contains(fd)) return ErrnoStatus(EEXIST, kWhat);
    Registration reg;
    reg.fd = fd;
    reg.token = token;
    reg.events = static_cast<short>(InterestToPollMask(interest));
    reg.trigger = trigger;
    pollfd p{};
    p.fd = fd;
    p.events = reg.events;
    index_.emplace(fd, pollfds_.size());
    pollfds_.push_back(p);
    regs_.push_back(reg);
    ChangedLocked();
    return absl::OkStatus();
  }

  absl::Status Reregister(int fd, Token token, Interest interest,
                          Trigger trigger) override {
    static constexpr char kWhat[] = "poll backend: reregister";
    if (absl::Status s = CheckPollableFd(fd, kWhat); !s.ok()) return s;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(fd);
    if (it == index_.end()) return ErrnoStatus(ENOENT, kWhat);
    Registration& reg = regs_[it->second];
    reg.token = token;
    reg.events = static_cast<short>(InterestToPollMask(interest));
    reg.trigger = trigger;
    reg.armed = true;
    pollfds_[it->second].fd = fd;
    pollfds_[it->second].events = reg.events;
    ChangedLocked();
    return absl::OkStatus();
  }

  absl::Status Deregister(int fd) override {
    static constexpr char kWhat[] = "poll backend: deregister";
    const bool closed = fd < 0 || (fcntl(fd, F_GETFD) < 0 && errno == EBADF);
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(fd);
    const bool found = it != index_.end();
    if (found) {
      // Swap-remove from the dense arrays.
      const size_t slot = it->second;
      const size_t last = pollfds_.size() - 1;
      if (slot != last) {
        pollfds_[slot] = pollfds_[last];
        regs_[slot] = regs_[last];
        index_[regs_[slot].fd] = slot;
      }
      pollfds_.pop_back();
      regs_.pop_back();
      index_.erase(fd);
      ChangedLocked();
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
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (dirty_) {
        active_ = pollfds_;  // reuses active_'s capacity: no allocation
        dirty_ = false;
      }
      in_wait_ = true;
    }
    int n = poll(active_.data(), static_cast<nfds_t>(active_.size()),
                 TimeoutToMillis(timeout));
    const int err = errno;

    std::lock_guard<std::mutex> lock(mu_);
    in_wait_ = false;
    if (n < 0) {
      if (err == EINTR) return 0;
      return ErrnoStatus(err, "poll");
    }
    if (n > 0 && active_[0].revents != 0) {
      wakeup_->Drain();
      notified_ = false;
      --n;
    }
    // Scan from a rotating start so that, when more descriptors are ready
    // than `capacity`, level-triggered ones at high slots are not starved
    // (epoll gets the same fairness from its ready-list rotation).
    const size_t slots = active_.size() - 1;  // slot 0 is the wakeup fd
    if (scan_start_ >= slots) scan_start_ = 0;
    size_t count = 0;
    size_t k = 0;
    for (; k < slots && n > 0 && count < capacity; ++k) {
      size_t i = 1 + scan_start_ + k;
      if (i > slots) i -= slots;
      const short revents = active_[i].revents;
      if (revents == 0) continue;
      --n;
      auto it = index_.find(active_[i].fd);
      if (it == index_.end()) continue;  // deregistered during the wait
      const size_t slot = it->second;
      Registration& reg = regs_[slot];
      if (!reg.armed) continue;
      // Mask by the current interest: it may have changed during the wait.
      const uint32_t flags = PollMaskToEventFlags(static_cast<uint16_t>(
          revents & (reg.events | POLLERR | POLLHUP | POLLNVAL)));
      if (flags == 0) continue;
      out[count++] = Event(reg.token, flags);
      if (reg.trigger == Trigger::kOneShot) {
        reg.armed = false;
        pollfds_[slot].fd = -1;
        // Same layout as the table unless it changed during the wait (then
        // the next Poll copies it anyway).
        if (!dirty_) active_[i].fd = -1;
      }
    }
    if (slots > 0) scan_start_ = (scan_start_ + k) % slots;
    return count;
  }

 private:
  // Called with mu_ held after every table edit.
  void ChangedLocked() {
    dirty_ = true;
    if (in_wait_ && !notified_) {
      notified_ = true;
      wakeup_->Signal();
    }
  }

  const std::unique_ptr<WakeupFd> wakeup_;

  std::mutex mu_;
  std::vector<pollfd> pollfds_;     // guarded by mu_; [0] = wakeup_
  std::vector<Registration> regs_;  // guarded by mu_; parallel to pollfds_
  absl::flat_hash_map<int, size_t> index_;  // guarded by mu_; fd -> slot
  bool dirty_ = true;                       // guarded by mu_; active_ is stale
  bool in_wait_ = false;   // guarded by mu_; the poller is in poll(2)
  bool notified_ = false;  // guarded by mu_; wakeup_ signalled, not drained

  // Owned by the polling thread (one at a time). Written under mu_ when
  // refreshed; read by poll(2) without it.
  std::vector<pollfd> active_;
  size_t scan_start_ = 0;  // rotating first slot examined (minus 1)
};

}  // namespace

absl::StatusOr<std::unique_ptr<Backend>> NewPollBackend() {
  absl::StatusOr<std::unique_ptr<WakeupFd>> wakeup = WakeupFd::Create();
  if (!wakeup.ok()) return wakeup.status();
  return std::unique_ptr<Backend>(new PollBackend(*std::move(wakeup)));
}

}  // namespace poll_internal
}  // namespace mill
