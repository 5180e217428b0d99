// ListenFdsFromEnvironment per sd_listen_fds(3): the variables' validation,
// unsetting, and a forked child that finds the sockets passed at fds 3 and
// 4 (as a service manager passes them) and serves one of them.
#include "net/socket_activation.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "net/socket_address.h"
#include "net/tcp_listener.h"
#include "net/tcp_stream.h"

namespace mill {
namespace {

bool Unset(const char* name) { return std::getenv(name) == nullptr; }

void Set(const char* pid, const char* fds, const char* names) {
  ::setenv("LISTEN_PID", pid, 1);
  if (fds != nullptr) ::setenv("LISTEN_FDS", fds, 1);
  if (names != nullptr) ::setenv("LISTEN_FDNAMES", names, 1);
}

void ExpectAllUnset() {
  EXPECT_TRUE(Unset("LISTEN_PID"));
  EXPECT_TRUE(Unset("LISTEN_FDS"));
  EXPECT_TRUE(Unset("LISTEN_FDNAMES"));
}

TEST(SocketActivationTest, NothingWithoutLISTEN_PID) {
  ::unsetenv("LISTEN_PID");
  ::setenv("LISTEN_FDS", "2", 1);
  absl::StatusOr<std::vector<int>> fds = ListenFdsFromEnvironment();
  ASSERT_TRUE(fds.ok()) << fds.status();
  EXPECT_TRUE(fds->empty());
  ExpectAllUnset();
}

TEST(SocketActivationTest, NothingForAnotherProcessButStillUnsets) {
  const std::string other = absl::StrCat(::getpid() + 1);
  Set(other.c_str(), "1", "web");
  absl::StatusOr<std::vector<int>> fds = ListenFdsFromEnvironment();
  ASSERT_TRUE(fds.ok()) << fds.status();
  EXPECT_TRUE(fds->empty());
  ExpectAllUnset();
}

TEST(SocketActivationTest, MalformedVariablesAreInvalidArgument) {
  const std::string self = absl::StrCat(::getpid());
  Set("abc", "1", nullptr);
  EXPECT_EQ(ListenFdsFromEnvironment().status().code(),
            absl::StatusCode::kInvalidArgument);
  ExpectAllUnset();
  Set(self.c_str(), "one", nullptr);
  EXPECT_EQ(ListenFdsFromEnvironment().status().code(),
            absl::StatusCode::kInvalidArgument);
  Set(self.c_str(), "-1", nullptr);
  EXPECT_EQ(ListenFdsFromEnvironment().status().code(),
            absl::StatusCode::kInvalidArgument);
  Set(self.c_str(), nullptr, nullptr);  // LISTEN_FDS missing
  EXPECT_EQ(ListenFdsFromEnvironment().status().code(),
            absl::StatusCode::kInvalidArgument);
  Set(self.c_str(), "1", "a:b");  // two names, one descriptor
  absl::Status mismatch = ListenFdsFromEnvironment().status();
  EXPECT_EQ(mismatch.code(), absl::StatusCode::kInvalidArgument) << mismatch;
  ExpectAllUnset();
}

TEST(SocketActivationTest, ZeroDescriptorsIsEmpty) {
  const std::string self = absl::StrCat(::getpid());
  Set(self.c_str(), "0", nullptr);
  absl::StatusOr<std::vector<int>> fds = ListenFdsFromEnvironment();
  ASSERT_TRUE(fds.ok()) << fds.status();
  EXPECT_TRUE(fds->empty());
}

// Exit codes of the child below: which check failed.
enum ChildResult {
  kOk = 0,
  kSetupFailed = 10,
  kCallFailed,
  kWrongFds,
  kWrongNames,
  kNotCloexec,
  kNotUnset,
  kAcceptFailed,
};

// In the child (single-threaded; async-signal-safe enough: only system
// calls and our parsing): puts `a` and `b` at descriptors 3 and 4, as a
// service manager would, then checks what ListenFdsFromEnvironment finds
// and accepts one connection on the first.
[[noreturn]] void RunChild(int a, int b) {
  if (::dup2(a, 3) != 3 || ::dup2(b, 4) != 4) ::_exit(kSetupFailed);
  // dup2 leaves the copies inheritable, as an exec'd child gets them.
  const std::string self = absl::StrCat(::getpid());
  Set(self.c_str(), "2", "web:admin");
  absl::StatusOr<std::vector<ListenFd>> fds = NamedListenFdsFromEnvironment();
  if (!fds.ok()) ::_exit(kCallFailed);
  if (fds->size() != 2 || (*fds)[0].fd != 3 || (*fds)[1].fd != 4) {
    ::_exit(kWrongFds);
  }
  if ((*fds)[0].name != "web" || (*fds)[1].name != "admin") {
    ::_exit(kWrongNames);
  }
  for (const ListenFd& entry : *fds) {
    if ((::fcntl(entry.fd, F_GETFD) & FD_CLOEXEC) == 0) ::_exit(kNotCloexec);
  }
  if (!Unset("LISTEN_PID") || !Unset("LISTEN_FDS") ||
      !Unset("LISTEN_FDNAMES")) {
    ::_exit(kNotUnset);
  }
  absl::StatusOr<TcpListener> listener = TcpListener::Adopt(3);
  if (!listener.ok()) ::_exit(kAcceptFailed);
  // Non-blocking now: wait for the parent's connection with poll.
  pollfd pfd = {listener->fd(), POLLIN, 0};
  if (::poll(&pfd, 1, 10000) != 1) ::_exit(kAcceptFailed);
  absl::StatusOr<TcpStream> conn = listener->Accept();
  if (!conn.ok()) ::_exit(kAcceptFailed);
  (void)conn->Write("activated", 9);
  ::_exit(kOk);
}

TEST(SocketActivationTest, AForkedChildFindsThePassedSockets) {
  absl::StatusOr<TcpListener> web =
      TcpListener::Bind(SocketAddress::LoopbackIPv4(0));
  absl::StatusOr<TcpListener> admin =
      TcpListener::Bind(SocketAddress::LoopbackIPv4(0));
  ASSERT_TRUE(web.ok() && admin.ok());
  const uint16_t port = web->local_address()->port();
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) RunChild(web->fd(), admin->fd());
  web->Close();
  admin->Close();
  absl::StatusOr<TcpStream> conn = TcpStream::ConnectAndWait(
      SocketAddress::LoopbackIPv4(port), absl::Seconds(10));
  ASSERT_TRUE(conn.ok()) << conn.status();
  pollfd pfd = {conn->fd(), POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, 10000), 1);
  char buf[16] = {};
  EXPECT_EQ(conn->Read(buf, sizeof(buf)), 9);
  EXPECT_EQ(std::string(buf), "activated");
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), kOk);
}

}  // namespace
}  // namespace mill
