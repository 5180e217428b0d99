#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <utility>
#include <string>

#include "absl/status/status.h"
#include "base/errno_status.h"
#include "reactor/testing/loop_fixture.h"

namespace mill {
namespace reactor_testing {

long ReadSome(int fd, void* data, size_t size) {
  for (;;) {
    const ssize_t n = read(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    return static_cast<long>(n);
  }
}

long WriteSome(int fd, const void* data, size_t size) {
  for (;;) {
    const ssize_t n = write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    return static_cast<long>(n);
  }
}

bool LastErrorWouldBlock() { return errno == EAGAIN || errno == EWOULDBLOCK; }

std::string LastErrorText() { return strerror(errno); }

void CloseFd(int fd) { close(fd); }

size_t BytesAvailable(int fd) {
  int avail = 0;
  if (ioctl(fd, FIONREAD, &avail) != 0) return 0;
  return static_cast<size_t>(avail);
}

void SetNonBlocking(int fd) {
  ASSERT_EQ(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
}

void MakeSocketPair(int* a, int* b) {
  int fds[2] = {-1, -1};
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0) << strerror(errno);
  *a = fds[0];
  *b = fds[1];
}

int ListenLoopback(int* port) {
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  EXPECT_GE(listener, 0) << strerror(errno);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)),
            0);
  EXPECT_EQ(listen(listener, 16), 0);
  socklen_t len = sizeof(addr);
  EXPECT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  *port = ntohs(addr.sin_port);
  return listener;
}

int AcceptNonBlocking(int listener) {
  return accept4(listener, nullptr, nullptr, SOCK_NONBLOCK);
}

int ConnectLoopback(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

std::unique_ptr<SocketPair> SocketPairNumbered(int fd) {
  auto pair = std::make_unique<SocketPair>();
  if (pair->loop_end == fd) return pair;  // reused already
  if (pair->peer == fd) {
    std::swap(pair->loop_end, pair->peer);
    SetNonBlocking(pair->loop_end);
    return pair;
  }
  if (dup2(pair->loop_end, fd) != fd) {
    ADD_FAILURE() << "dup2: " << strerror(errno);
    return nullptr;
  }
  close(pair->loop_end);
  pair->loop_end = fd;
  return pair;
}

int TestStopSignal() { return SIGUSR1; }

absl::Status RaiseTestStopSignal() {
  if (kill(getpid(), SIGUSR1) != 0) return ErrnoStatus(errno, "kill");
  return absl::OkStatus();
}

}  // namespace reactor_testing
}  // namespace mill
