#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "gtest/gtest.h"
#include "net/testing/socket_checks.h"

namespace mill {
namespace net_testing {

int GetSocketOptionInt(int fd, int level, int name) {
  int value = -1;
  socklen_t len = sizeof(value);
  EXPECT_EQ(getsockopt(fd, level, name, &value, &len), 0)
      << std::strerror(errno);
  return value;
}

bool IsDescriptorOpen(int fd) { return fcntl(fd, F_GETFD) != -1; }

std::optional<bool> IsNonBlocking(int fd) {
  return (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0;
}

bool IsCloseOnExec(int fd) { return (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0; }

int WaitReadable(int fd, int timeout_ms) {
  pollfd pfd = {fd, POLLIN, 0};
  return poll(&pfd, 1, timeout_ms);
}

bool ListenerSetsReuseAddress() { return true; }
bool PlatformHasReusePort() { return true; }

bool ReuseAddressSet(int fd) {
  return GetSocketOptionInt(fd, SOL_SOCKET, SO_REUSEADDR) != 0;
}

bool ReusePortSet(int fd) {
  return GetSocketOptionInt(fd, SOL_SOCKET, SO_REUSEPORT) != 0;
}

bool MakeStreamPair(int fds[2]) {
  const bool ok = socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0;
  EXPECT_TRUE(ok) << std::strerror(errno);
  return ok;
}

void CloseDescriptor(int fd) {
  if (fd >= 0) close(fd);
}

bool ReplaceWithNonSocket(int fd) {
  const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  EXPECT_GE(null_fd, 0);
  if (null_fd < 0) return false;
  const bool ok = dup2(null_fd, fd) == fd;
  EXPECT_TRUE(ok);
  close(null_fd);
  return ok;
}

bool CanReplaceWithNonSocket() { return true; }

}  // namespace net_testing
}  // namespace mill
