#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/errno_status.h"
#include "net/testing/echo_clients.h"

namespace mill {
namespace net_testing {

std::string Pattern(uint64_t seed, size_t n, uint64_t offset) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = PatternByte(seed, offset + i);
  return s;
}

namespace {

sockaddr_in Loopback(uint16_t port) {
  sockaddr_in sin = {};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return sin;
}

void SetTimeouts(int fd, absl::Duration d) {
  timeval tv = absl::ToTimeval(d);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

}  // namespace

absl::StatusOr<TestClient> TestClient::Connect(uint16_t port, int rcvbuf) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoStatus(errno, "socket");
  TestClient client(fd);
  if (rcvbuf > 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  }
  SetTimeouts(fd, absl::Seconds(10));
  const sockaddr_in sin = Loopback(port);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&sin), sizeof(sin)) !=
      0) {
    return ErrnoStatus(errno, "connect");
  }
  return client;
}

TestClient::TestClient(TestClient&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)) {}

TestClient& TestClient::operator=(TestClient&& other) noexcept {
  if (this != &other) {
    Close();
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

TestClient::~TestClient() { Close(); }

absl::Status TestClient::SendAll(absl::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return ErrnoStatus(errno, "send");
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

std::string TestClient::RecvExactly(size_t n) {
  std::string out;
  out.resize(n);
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::recv(fd_, &out[got], n - got, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  out.resize(got);
  return out;
}

std::string TestClient::RecvUntilEof() {
  std::string out;
  char buf[64 * 1024];
  for (;;) {
    const ssize_t r = ::recv(fd_, buf, sizeof(buf), 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    out.append(buf, static_cast<size_t>(r));
  }
  return out;
}

bool TestClient::WaitClosed(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  char buf[4096];
  while (absl::Now() < deadline) {
    pollfd pfd = {fd_, POLLIN, 0};
    const int ms = static_cast<int>(std::max<int64_t>(
        1, absl::ToInt64Milliseconds(deadline - absl::Now())));
    if (::poll(&pfd, 1, ms) <= 0) continue;
    const ssize_t r = ::recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
    if (r == 0) return true;
    if (r < 0 && errno != EAGAIN && errno != EINTR) return true;  // reset
  }
  return false;
}

void TestClient::ShutdownWrite() { ::shutdown(fd_, SHUT_WR); }

void TestClient::Reset() {
  linger lg = {1, 0};
  setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  Close();
}

void TestClient::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

EchoSwarmResult RunEchoSwarm(uint16_t port, size_t connections, size_t bytes,
                             absl::Duration timeout, uint64_t seed_base) {
  struct Conn {
    int fd = -1;
    uint64_t seed = 0;
    size_t sent = 0;
    size_t received = 0;
    bool done = false;
  };
  EchoSwarmResult result;
  auto fail = [&result](std::string why) {
    ++result.failed;
    if (result.first_error.empty()) result.first_error = std::move(why);
  };
  std::vector<Conn> conns(connections);
  const sockaddr_in sin = Loopback(port);
  for (size_t i = 0; i < connections; ++i) {
    Conn& c = conns[i];
    c.seed = seed_base + i;
    c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c.fd < 0 || ::connect(c.fd, reinterpret_cast<const sockaddr*>(&sin),
                              sizeof(sin)) != 0) {
      fail(absl::StrCat("connect #", i, ": errno ", errno));
      c.done = true;
      continue;
    }
    fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) | O_NONBLOCK);
  }
  const absl::Time deadline = absl::Now() + timeout;
  std::string chunk;
  std::vector<char> buf(64 * 1024);
  std::vector<pollfd> pfds;
  std::vector<size_t> index;
  for (;;) {
    pfds.clear();
    index.clear();
    for (size_t i = 0; i < conns.size(); ++i) {
      const Conn& c = conns[i];
      if (c.done) continue;
      short events = POLLIN;
      if (c.sent < bytes) events |= POLLOUT;
      pfds.push_back({c.fd, events, 0});
      index.push_back(i);
    }
    if (pfds.empty()) break;
    if (absl::Now() >= deadline) {
      result.timed_out = true;
      break;
    }
    const int rc = ::poll(pfds.data(), pfds.size(), 100);
    if (rc < 0 && errno != EINTR) {
      fail(absl::StrCat("poll: errno ", errno));
      break;
    }
    for (size_t k = 0; k < pfds.size() && rc > 0; ++k) {
      Conn& c = conns[index[k]];
      const short re = pfds[k].revents;
      if (re == 0) continue;
      if ((re & POLLOUT) && c.sent < bytes) {
        const size_t n = std::min<size_t>(16 * 1024, bytes - c.sent);
        chunk = Pattern(c.seed, n, c.sent);
        const ssize_t w = ::send(c.fd, chunk.data(), n, MSG_NOSIGNAL);
        if (w > 0) {
          c.sent += static_cast<size_t>(w);
        } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
          fail(absl::StrCat("send #", index[k], ": errno ", errno));
          c.done = true;
          continue;
        }
      }
      if (re & (POLLIN | POLLHUP | POLLERR)) {
        const ssize_t r = ::recv(c.fd, buf.data(), buf.size(), 0);
        if (r > 0) {
          for (ssize_t j = 0; j < r; ++j) {
            if (buf[j] != PatternByte(c.seed, c.received + j)) {
              ++result.mismatches;
              if (result.first_error.empty()) {
                result.first_error = absl::StrCat("mismatch on #", index[k],
                                                  " at byte ", c.received + j);
              }
              c.done = true;
              break;
            }
          }
          if (c.done) continue;
          c.received += static_cast<size_t>(r);
          if (c.received > bytes) {
            fail(absl::StrCat("#", index[k], " got extra bytes"));
            c.done = true;
          } else if (c.received == bytes) {
            ++result.completed;
            c.done = true;
          }
        } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
          fail(absl::StrCat("#", index[k], " closed early after ", c.received,
                            " bytes (errno ", r == 0 ? 0 : errno, ")"));
          c.done = true;
        }
      }
    }
  }
  for (Conn& c : conns) {
    if (c.fd >= 0) ::close(c.fd);
  }
  return result;
}

}  // namespace net_testing
}  // namespace mill
