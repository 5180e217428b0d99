// POSIX: the WakeChannel of every POSIX backend, a WakeupFd (eventfd on
// Linux, a pipe elsewhere) registered with the backend as readable, kLevel.
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/errno_status.h"
#include "poll/internal/backend.h"
#include "poll/internal/wakeup_fd.h"

namespace mill {
namespace poll_internal {
namespace {

class WakeupFdChannel final : public WakeChannel {
 public:
  WakeupFdChannel(Backend& backend, std::unique_ptr<WakeupFd> fd)
      : backend_(backend), fd_(std::move(fd)) {}
  ~WakeupFdChannel() override {
    backend_.Deregister(fd_->read_fd()).IgnoreError();
  }

  // Only write(2) on the success path: async-signal-safe.
  absl::Status Wake() override {
    const int err = fd_->Signal();
    if (err == 0) return absl::OkStatus();
    return ErrnoStatus(err, "Waker::Wake: write");
  }

  void Drain() override { fd_->Drain(); }

 private:
  Backend& backend_;
  const std::unique_ptr<WakeupFd> fd_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<WakeChannel>> NewWakeupFdChannel(
    Backend& backend, Token token) {
  absl::StatusOr<std::unique_ptr<WakeupFd>> fd = WakeupFd::Create();
  if (!fd.ok()) return fd.status();
  if (absl::Status s = backend.Register((*fd)->read_fd(), token,
                                        Interest::Readable(), Trigger::kLevel);
      !s.ok()) {
    return s;
  }
  return std::unique_ptr<WakeChannel>(
      new WakeupFdChannel(backend, *std::move(fd)));
}

}  // namespace poll_internal
}  // namespace mill
