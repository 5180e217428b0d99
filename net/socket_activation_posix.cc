#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "net/internal/socket_util.h"
#include "net/socket_activation.h"

namespace mill {
namespace {

// The first passed descriptor (SD_LISTEN_FDS_START).
constexpr int kFirstFd = 3;

std::string Take(const char* name, bool* present) {
  // NOLINTNEXTLINE(concurrency-mt-unsafe): main() only, before threads
  const char* value = std::getenv(name);
  *present = value != nullptr;
  return value != nullptr ? std::string(value) : std::string();
}

}  // namespace

absl::StatusOr<std::vector<ListenFd>> NamedListenFdsFromEnvironment() {
  bool has_pid = false;
  bool has_fds = false;
  bool has_names = false;
  const std::string pid_text = Take("LISTEN_PID", &has_pid);
  const std::string fds_text = Take("LISTEN_FDS", &has_fds);
  const std::string names_text = Take("LISTEN_FDNAMES", &has_names);
  // unset=1: whatever comes next, children must not inherit them.
  // The environment is process-wide and unlocked: the header asks for a
  // call from main() before any thread starts.
  ::unsetenv("LISTEN_PID");      // NOLINT(concurrency-mt-unsafe)
  ::unsetenv("LISTEN_FDS");      // NOLINT(concurrency-mt-unsafe)
  ::unsetenv("LISTEN_FDNAMES");  // NOLINT(concurrency-mt-unsafe)

  std::vector<ListenFd> result;
  if (!has_pid) return result;
  int64_t pid = 0;
  if (!absl::SimpleAtoi(pid_text, &pid) || pid <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("LISTEN_PID is not a process id: '", pid_text, "'"));
  }
  if (pid != ::getpid()) return result;  // meant for another process
  int64_t count = 0;
  if (!has_fds || !absl::SimpleAtoi(fds_text, &count) || count < 0 ||
      count > INT32_MAX - kFirstFd) {
    return absl::InvalidArgumentError(
        absl::StrCat("LISTEN_FDS is not a descriptor count: '", fds_text, "'"));
  }
  std::vector<std::string> names;
  if (has_names) {
    names = absl::StrSplit(names_text, ':');
    if (names.size() != static_cast<size_t>(count)) {
      return absl::InvalidArgumentError(
          absl::StrCat("LISTEN_FDNAMES names ", names.size(),
                       " descriptors, LISTEN_FDS says ", count));
    }
  }
  result.reserve(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    const int fd = kFirstFd + i;
    absl::Status status = net_internal::SetCloseOnExec(fd);
    if (!status.ok()) {
      return absl::Status(status.code(),
                          absl::StrCat("LISTEN_FDS: passed descriptor ", fd,
                                       ": ", status.message()));
    }
    std::string name = has_names ? std::move(names[i]) : "unknown";
    if (name.empty()) name = "unknown";
    result.push_back(ListenFd{fd, std::move(name)});
  }
  return result;
}

absl::StatusOr<std::vector<int>> ListenFdsFromEnvironment() {
  absl::StatusOr<std::vector<ListenFd>> named = NamedListenFdsFromEnvironment();
  if (!named.ok()) return named.status();
  std::vector<int> fds;
  fds.reserve(named->size());
  for (const ListenFd& entry : *named) fds.push_back(entry.fd);
  return fds;
}

}  // namespace mill
