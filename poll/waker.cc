#include "poll/waker.h"

#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/errno_status.h"
#include "poll/internal/backend.h"
#include "poll/internal/wakeup_fd.h"

namespace mill {

absl::StatusOr<std::unique_ptr<Waker>> Waker::Create(Poller& poller,
                                                     Token token) {
  absl::StatusOr<std::unique_ptr<poll_internal::WakeupFd>> fd =
      poll_internal::WakeupFd::Create();
  if (!fd.ok()) return fd.status();
  if (absl::Status s = poller.Register((*fd)->read_fd(), token,
                                       Interest::Readable(), Trigger::kLevel);
      !s.ok()) {
    return s;
  }
  return std::unique_ptr<Waker>(new Waker(poller, token, *std::move(fd)));
}

Waker::Waker(Poller& poller, Token token,
             std::unique_ptr<poll_internal::WakeupFd> fd)
    : poller_(poller), token_(token), fd_(std::move(fd)) {}

Waker::~Waker() { poller_.Deregister(fd_->read_fd()).IgnoreError(); }

absl::Status Waker::Wake() {
  const int err = fd_->Signal();
  if (err == 0) return absl::OkStatus();
  return ErrnoStatus(err, "Waker::Wake: write");
}

void Waker::Drain() { fd_->Drain(); }

}  // namespace mill
