// POSIX: the descriptor checks that make poll(2) and kqueue reject what
// epoll rejects (see CheckPollableFd in backend.h).
#include <sys/stat.h>

#include <cerrno>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "base/errno_status.h"
#include "poll/internal/backend.h"

namespace mill {
namespace poll_internal {

absl::Status CheckPollableFd(int fd, absl::string_view what) {
  if (fd < 0) return ErrnoStatus(EBADF, what);
  struct stat st;
  if (fstat(fd, &st) < 0) return ErrnoStatus(errno, what);
  if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) {
    return ErrnoStatus(EPERM, what);
  }
  return absl::OkStatus();
}

}  // namespace poll_internal
}  // namespace mill
