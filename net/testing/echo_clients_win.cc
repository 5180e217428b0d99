// The Windows build of echo_clients.h: Winsock, WSAPoll.
#include "net/testing/echo_clients.h"

// clang-format off
#include <winsock2.h>
#include <ws2tcpip.h>
// clang-format on

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/win32_status.h"

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

SOCKET S(int fd) { return static_cast<SOCKET>(static_cast<intptr_t>(fd)); }

int NewSocket() {
  static const bool started = [] {
    WSADATA data;
    return WSAStartup(MAKEWORD(2, 2), &data) == 0;
  }();
  (void)started;
  const SOCKET s = ::socket(AF_INET, SOCK_STREAM, 0);
  return s == INVALID_SOCKET ? -1 : static_cast<int>(s);
}

int Error() { return WSAGetLastError(); }

absl::Status ErrorStatus(absl::string_view what) {
  return Win32ErrorStatus(static_cast<uint32_t>(Error()), what);
}

void SetTimeouts(int fd, absl::Duration d) {
  const DWORD ms = static_cast<DWORD>(absl::ToInt64Milliseconds(d));
  setsockopt(S(fd), SOL_SOCKET, SO_RCVTIMEO, reinterpret_cast<const char*>(&ms),
             sizeof(ms));
  setsockopt(S(fd), SOL_SOCKET, SO_SNDTIMEO, reinterpret_cast<const char*>(&ms),
             sizeof(ms));
}

}  // namespace

absl::StatusOr<TestClient> TestClient::Connect(uint16_t port, int rcvbuf) {
  const int fd = NewSocket();
  if (fd < 0) return ErrorStatus("socket");
  TestClient client(fd);
  if (rcvbuf > 0) {
    setsockopt(S(fd), SOL_SOCKET, SO_RCVBUF,
               reinterpret_cast<const char*>(&rcvbuf), sizeof(rcvbuf));
  }
  SetTimeouts(fd, absl::Seconds(10));
  const sockaddr_in sin = Loopback(port);
  if (::connect(S(fd), reinterpret_cast<const sockaddr*>(&sin), sizeof(sin)) !=
      0) {
    return ErrorStatus("connect");
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
    const int n =
        ::send(S(fd_), data.data(),
               static_cast<int>(std::min<size_t>(data.size(), 1 << 30)), 0);
    if (n <= 0) return ErrorStatus("send");
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

std::string TestClient::RecvExactly(size_t n) {
  std::string out;
  out.resize(n);
  size_t got = 0;
  while (got < n) {
    const int r =
        ::recv(S(fd_), &out[got],
               static_cast<int>(std::min<size_t>(n - got, 1 << 30)), 0);
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
    const int r = ::recv(S(fd_), buf, sizeof(buf), 0);
    if (r <= 0) break;
    out.append(buf, static_cast<size_t>(r));
  }
  return out;
}

bool TestClient::WaitClosed(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  char buf[4096];
  while (absl::Now() < deadline) {
    WSAPOLLFD pfd = {S(fd_), POLLRDNORM, 0};
    const int ms = static_cast<int>(std::max<int64_t>(
        1, absl::ToInt64Milliseconds(deadline - absl::Now())));
    if (WSAPoll(&pfd, 1, ms) <= 0) continue;
    // Readable: this recv does not block (a blocking socket otherwise).
    const int r = ::recv(S(fd_), buf, sizeof(buf), 0);
    if (r == 0) return true;
    if (r < 0 && Error() != WSAEWOULDBLOCK) return true;  // reset
  }
  return false;
}

void TestClient::ShutdownWrite() { ::shutdown(S(fd_), SD_SEND); }

void TestClient::Reset() {
  linger lg = {};
  lg.l_onoff = 1;
  lg.l_linger = 0;
  setsockopt(S(fd_), SOL_SOCKET, SO_LINGER, reinterpret_cast<const char*>(&lg),
             sizeof(lg));
  Close();
}

void TestClient::Close() {
  if (fd_ >= 0) ::closesocket(S(fd_));
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
    c.fd = NewSocket();
    if (c.fd < 0 || ::connect(S(c.fd), reinterpret_cast<const sockaddr*>(&sin),
                              sizeof(sin)) != 0) {
      fail(absl::StrCat("connect #", i, ": error ", Error()));
      c.done = true;
      continue;
    }
    u_long on = 1;
    ioctlsocket(S(c.fd), FIONBIO, &on);
  }
  const absl::Time deadline = absl::Now() + timeout;
  std::string chunk;
  std::vector<char> buf(64 * 1024);
  std::vector<WSAPOLLFD> pfds;
  std::vector<size_t> index;
  for (;;) {
    pfds.clear();
    index.clear();
    for (size_t i = 0; i < conns.size(); ++i) {
      const Conn& c = conns[i];
      if (c.done) continue;
      short events = POLLRDNORM;
      if (c.sent < bytes) events |= POLLWRNORM;
      pfds.push_back({S(c.fd), events, 0});
      index.push_back(i);
    }
    if (pfds.empty()) break;
    if (absl::Now() >= deadline) {
      result.timed_out = true;
      break;
    }
    const int rc = WSAPoll(pfds.data(), static_cast<ULONG>(pfds.size()), 100);
    if (rc < 0) {
      fail(absl::StrCat("WSAPoll: error ", Error()));
      break;
    }
    for (size_t k = 0; k < pfds.size() && rc > 0; ++k) {
      Conn& c = conns[index[k]];
      const short re = pfds[k].revents;
      if (re == 0) continue;
      if ((re & POLLWRNORM) && c.sent < bytes) {
        const size_t n = std::min<size_t>(16 * 1024, bytes - c.sent);
        chunk = Pattern(c.seed, n, c.sent);
        const int w = ::send(S(c.fd), chunk.data(), static_cast<int>(n), 0);
        if (w > 0) {
          c.sent += static_cast<size_t>(w);
        } else if (w < 0 && Error() != WSAEWOULDBLOCK) {
          fail(absl::StrCat("send #", index[k], ": error ", Error()));
          c.done = true;
          continue;
        }
      }
      if (re & (POLLRDNORM | POLLHUP | POLLERR)) {
        const int r =
            ::recv(S(c.fd), buf.data(), static_cast<int>(buf.size()), 0);
        if (r > 0) {
          for (int j = 0; j < r; ++j) {
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
        } else if (r == 0 || Error() != WSAEWOULDBLOCK) {
          fail(absl::StrCat("#", index[k], " closed early after ", c.received,
                            " bytes (error ", r == 0 ? 0 : Error(), ")"));
          c.done = true;
        }
      }
    }
  }
  for (Conn& c : conns) {
    if (c.fd >= 0) ::closesocket(S(c.fd));
  }
  return result;
}

}  // namespace net_testing
}  // namespace mill
