// WakeupFd contract, run against whichever implementation the test links
// (wakeup_fd_pipe_test / wakeup_fd_eventfd_test).
#include "poll/internal/wakeup_fd.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace mill {
namespace poll_internal {
namespace {

bool IsReadable(int fd, int timeout_ms = 0) {
  pollfd p{};
  p.fd = fd;
  p.events = POLLIN;
  return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN) != 0;
}

TEST(WakeupFdTest, NonBlockingAndCloseOnExec) {
  auto w = WakeupFd::Create();
  ASSERT_TRUE(w.ok()) << w.status();
  const int fd = (*w)->read_fd();
  EXPECT_NE(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
  EXPECT_NE(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_FALSE(IsReadable(fd));
}

TEST(WakeupFdTest, SignalMakesReadableAndDrainClears) {
  auto w = WakeupFd::Create();
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ((*w)->Signal(), 0);
  EXPECT_TRUE(IsReadable((*w)->read_fd()));
  (*w)->Drain();
  EXPECT_FALSE(IsReadable((*w)->read_fd()));
  (*w)->Drain();  // draining an empty one is harmless
  EXPECT_FALSE(IsReadable((*w)->read_fd()));
}

TEST(WakeupFdTest, ManySignalsCoalesceEvenPastThePipeCapacity) {
  auto w = WakeupFd::Create();
  ASSERT_TRUE(w.ok()) << w.status();
  // 200,000 > any pipe buffer: the full-pipe EAGAIN must count as success.
  for (int i = 0; i < 200000; ++i) ASSERT_EQ((*w)->Signal(), 0) << i;
  EXPECT_TRUE(IsReadable((*w)->read_fd()));
  (*w)->Drain();
  EXPECT_FALSE(IsReadable((*w)->read_fd()));
  EXPECT_EQ((*w)->Signal(), 0);
  EXPECT_TRUE(IsReadable((*w)->read_fd()));
}

TEST(WakeupFdTest, SignalPreservesErrno) {
  auto w = WakeupFd::Create();
  ASSERT_TRUE(w.ok()) << w.status();
  for (int i = 0; i < 100000; ++i) {  // includes EAGAIN writes for a pipe
    errno = ERANGE;
    (*w)->Signal();
    ASSERT_EQ(errno, ERANGE);
  }
}

TEST(WakeupFdTest, SignalFromAnotherThreadWakesABlockedPoll) {
  auto w = WakeupFd::Create();
  ASSERT_TRUE(w.ok()) << w.status();
  std::thread t([&] { (*w)->Signal(); });
  EXPECT_TRUE(IsReadable((*w)->read_fd(), /*timeout_ms=*/10000));
  t.join();
}

TEST(WakeupFdTest, ClosesItsDescriptorsOnDestruction) {
  int fd;
  {
    auto w = WakeupFd::Create();
    ASSERT_TRUE(w.ok()) << w.status();
    fd = (*w)->read_fd();
    ASSERT_GE(fcntl(fd, F_GETFD), 0);
  }
  errno = 0;
  EXPECT_EQ(fcntl(fd, F_GETFD), -1);
  EXPECT_EQ(errno, EBADF);
}

}  // namespace
}  // namespace poll_internal
}  // namespace mill
