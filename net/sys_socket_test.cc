// The socket calls of net/internal/sys_socket.h never raise SIGPIPE: a
// library must not kill a program that has not ignored it. send(2) has
// MSG_NOSIGNAL; sendfile(2) has no flag, so SendFileSome blocks SIGPIPE
// around the call. This test runs with SIGPIPE at its default action (the
// process would die) and checks that nothing is left pending or blocked.
#include "net/internal/sys_socket.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>

#include "gtest/gtest.h"

namespace mill {
namespace {

bool SigpipeBlockedOrPending() {
  sigset_t mask;
  pthread_sigmask(SIG_SETMASK, nullptr, &mask);
  sigset_t pending;
  sigpending(&pending);
  return sigismember(&mask, SIGPIPE) == 1 ||
         sigismember(&pending, SIGPIPE) == 1;
}

TEST(SysSocketTest, SendFileToAClosedPeerFailsWithoutSigpipe) {
  ASSERT_EQ(signal(SIGPIPE, SIG_DFL), SIG_DFL);  // as in a program's main
  char path[] = "/tmp/mill_sys_socket_testXXXXXX";
  const int file = mkstemp(path);
  ASSERT_GE(file, 0);
  unlink(path);
  const std::string contents(4096, 'f');
  ASSERT_EQ(write(file, contents.data(), contents.size()),
            static_cast<ssize_t>(contents.size()));
  for (int round = 0; round < 3; ++round) {
    int pair[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
    close(pair[1]);  // the peer is gone: a write raises SIGPIPE
    int err = 0;
    const int64_t n =
        net_internal::SendFileSome(pair[0], file, 0, contents.size(), &err);
    EXPECT_EQ(n, -1);
    EXPECT_EQ(err, EPIPE);
    EXPECT_FALSE(SigpipeBlockedOrPending());
    close(pair[0]);
  }
  close(file);
}

// A thread that blocks SIGPIPE itself keeps it blocked, and what the
// kernel raised stays pending for it to take.
TEST(SysSocketTest, SendFileLeavesAThreadsOwnBlockAlone) {
  sigset_t pipe_only;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  sigset_t before;
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &pipe_only, &before), 0);
  char path[] = "/tmp/mill_sys_socket_testXXXXXX";
  const int file = mkstemp(path);
  ASSERT_GE(file, 0);
  unlink(path);
  ASSERT_EQ(write(file, "abc", 3), 3);
  int pair[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
  close(pair[1]);
  int err = 0;
  EXPECT_EQ(net_internal::SendFileSome(pair[0], file, 0, 3, &err), -1);
  EXPECT_EQ(err, EPIPE);
  sigset_t mask;
  pthread_sigmask(SIG_SETMASK, nullptr, &mask);
  EXPECT_EQ(sigismember(&mask, SIGPIPE), 1);
  sigset_t pending;
  sigpending(&pending);
  EXPECT_EQ(sigismember(&pending, SIGPIPE), 1);
  const timespec zero{0, 0};
  EXPECT_EQ(sigtimedwait(&pipe_only, nullptr, &zero), SIGPIPE);
  pthread_sigmask(SIG_SETMASK, &before, nullptr);
  close(pair[0]);
  close(file);
}

}  // namespace
}  // namespace mill
