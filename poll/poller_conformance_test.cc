// Conformance suite: every backend built on this platform must pass exactly
// the same tests (TEST_P over Poller::AvailableBackends()).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "poll/event.h"
#include "poll/interest.h"
#include "poll/poller.h"
#include "poll/token.h"
#include "poll/waker.h"

namespace mill {
namespace {

using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------
// Descriptor helpers.

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    Reset();
    fd_ = std::exchange(other.fd_, -1);
    return *this;
  }
  ~Fd() { Reset(); }
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

void SetNonBlocking(int fd) {
  const int fl = fcntl(fd, F_GETFL);
  ASSERT_GE(fl, 0) << strerror(errno);
  ASSERT_EQ(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0) << strerror(errno);
}

struct FdPair {
  Fd a;  // pipes: read end
  Fd b;  // pipes: write end
};

FdPair MakePipe() {
  int fds[2];
  if (pipe(fds) != 0) {
    ADD_FAILURE() << "pipe: " << strerror(errno);
    return {};
  }
  SetNonBlocking(fds[0]);
  SetNonBlocking(fds[1]);
  return {Fd(fds[0]), Fd(fds[1])};
}

FdPair MakeSocketPair() {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) {
    ADD_FAILURE() << "socketpair: " << strerror(errno);
    return {};
  }
  SetNonBlocking(fds[0]);
  SetNonBlocking(fds[1]);
  return {Fd(fds[0]), Fd(fds[1])};
}

sockaddr_in Loopback(uint16_t port_be) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = port_be;
  return addr;
}

// A bound 127.0.0.1 TCP socket on an ephemeral port; listening if asked.
Fd BoundTcpSocket(bool listening, sockaddr_in* bound) {
  Fd s(socket(AF_INET, SOCK_STREAM, 0));
  if (s.get() < 0) {
    ADD_FAILURE() << "socket: " << strerror(errno);
    return s;
  }
  sockaddr_in addr = Loopback(0);
  if (bind(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ADD_FAILURE() << "bind: " << strerror(errno);
  }
  socklen_t len = sizeof(*bound);
  getsockname(s.get(), reinterpret_cast<sockaddr*>(bound), &len);
  if (listening && listen(s.get(), 16) != 0) {
    ADD_FAILURE() << "listen: " << strerror(errno);
  }
  return s;
}

// A connected TCP pair over 127.0.0.1: a = client, b = accepted server side.
FdPair MakeTcpPair() {
  sockaddr_in addr;
  Fd listener = BoundTcpSocket(/*listening=*/true, &addr);
  Fd client(socket(AF_INET, SOCK_STREAM, 0));
  if (connect(client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) !=
      0) {
    ADD_FAILURE() << "connect: " << strerror(errno);
    return {};
  }
  Fd server(accept(listener.get(), nullptr, nullptr));
  if (server.get() < 0) {
    ADD_FAILURE() << "accept: " << strerror(errno);
    return {};
  }
  SetNonBlocking(client.get());
  SetNonBlocking(server.get());
  return {std::move(client), std::move(server)};
}

void WriteBytes(int fd, size_t n) {
  std::string data(n, 'x');
  ASSERT_EQ(write(fd, data.data(), n), static_cast<ssize_t>(n))
      << strerror(errno);
}

// Reads what is there (non-blocking); returns the byte count.
size_t ReadAvailable(int fd, size_t max = 1 << 20) {
  char buf[4096];
  size_t total = 0;
  while (total < max) {
    const ssize_t n = read(fd, buf, std::min(sizeof(buf), max - total));
    if (n <= 0) break;
    total += static_cast<size_t>(n);
  }
  return total;
}

double MillisSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start)
      .count();
}

// ---------------------------------------------------------------------------
// Signal plumbing (handlers must be plain functions).

std::atomic<Waker*> g_signal_waker{nullptr};
std::atomic<int> g_signal_count{0};

void WakeFromSignal(int) {
  if (Waker* w = g_signal_waker.load()) w->Wake().IgnoreError();
}

void CountSignal(int) { g_signal_count.fetch_add(1); }

// Installs `handler` for `sig` without SA_RESTART (so blocking calls fail
// with EINTR); restores the old action on destruction.
class ScopedSignalHandler {
 public:
  ScopedSignalHandler(int sig, void (*handler)(int)) : sig_(sig) {
    struct sigaction sa {};
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART
    EXPECT_EQ(sigaction(sig, &sa, &old_), 0) << strerror(errno);
  }
  ~ScopedSignalHandler() { sigaction(sig_, &old_, nullptr); }

 private:
  int sig_;
  struct sigaction old_ {};
};

// ---------------------------------------------------------------------------

class PollerConformanceTest : public testing::TestWithParam<PollerBackend> {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Poller>> poller = Poller::Create(GetParam());
    ASSERT_TRUE(poller.ok()) << poller.status();
    poller_ = *std::move(poller);
    ASSERT_EQ(poller_->backend(), GetParam());
  }

  // Polls once and returns the events (copied for easy assertions).
  std::vector<Event> PollOnce(std::optional<absl::Duration> timeout,
                              size_t capacity = 64) {
    Events events(capacity);
    absl::StatusOr<size_t> n = poller_->Poll(events, timeout);
    EXPECT_TRUE(n.ok()) << n.status();
    if (!n.ok()) return {};
    EXPECT_EQ(*n, events.size());
    return std::vector<Event>(events.begin(), events.end());
  }

  // Polls until `token` shows up (or `budget` passes); returns its flags
  // merged over the events seen (kqueue may split read and write).
  std::optional<Event> PollFor(Token token,
                               absl::Duration budget = absl::Seconds(5)) {
    const Clock::time_point deadline =
        Clock::now() + absl::ToChronoNanoseconds(budget);
    while (Clock::now() < deadline) {
      uint32_t flags = 0;
      for (const Event& e : PollOnce(absl::Milliseconds(100))) {
        if (e.token() == token) flags |= e.flags();
      }
      if (flags != 0) return Event(token, flags);
    }
    return std::nullopt;
  }

  std::unique_ptr<Poller> poller_;
};

std::string BackendName(const testing::TestParamInfo<PollerBackend>& info) {
  return std::string(PollerBackendName(info.param));
}

INSTANTIATE_TEST_SUITE_P(AllBackends, PollerConformanceTest,
                         testing::ValuesIn(Poller::AvailableBackends()),
                         BackendName);

// --- Basic readiness --------------------------------------------------------

TEST_P(PollerConformanceTest, ReadableOnPipe) {
  FdPair p = MakePipe();
  ASSERT_TRUE(
      poller_->Register(p.a.get(), Token(1), Interest::Readable()).ok());
  EXPECT_TRUE(PollOnce(absl::ZeroDuration()).empty());
  WriteBytes(p.b.get(), 3);
  std::vector<Event> events = PollOnce(absl::Seconds(5));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].token(), Token(1));
  EXPECT_TRUE(events[0].is_readable());
  EXPECT_FALSE(events[0].is_writable());
  EXPECT_FALSE(events[0].is_error());
  EXPECT_FALSE(events[0].is_read_closed());
}

TEST_P(PollerConformanceTest, ReadableOnSocketPair) {
  FdPair s = MakeSocketPair();
  ASSERT_TRUE(
      poller_->Register(s.a.get(), Token(7), Interest::Readable()).ok());
  EXPECT_TRUE(PollOnce(absl::ZeroDuration()).empty());
  WriteBytes(s.b.get(), 10);
  std::vector<Event> events = PollOnce(absl::Seconds(5));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].token(), Token(7));
  EXPECT_TRUE(events[0].is_readable());
  EXPECT_FALSE(events[0].is_read_closed());
  EXPECT_EQ(ReadAvailable(s.a.get()), 10u);
  EXPECT_TRUE(PollOnce(absl::ZeroDuration()).empty());
}

TEST_P(PollerConformanceTest, WritableOnSocketPairAndPipe) {
  FdPair s = MakeSocketPair();
  FdPair p = MakePipe();
  ASSERT_TRUE(
      poller_->Register(s.a.get(), Token(1), Interest::Writable()).ok());
  ASSERT_TRUE(
      poller_->Register(p.b.get(), Token(2), Interest::Writable()).ok());
  std::vector<Event> events = PollOnce(absl::Seconds(5));
  ASSERT_EQ(events.size(), 2u);
  std::sort(events.begin(), events.end(), [](const Event& x, const Event& y) {
    return x.token() < y.token();
  });
  EXPECT_EQ(events[0].token(), Token(1));
  EXPECT_EQ(events[1].token(), Token(2));
  for (const Event& e : events) {
    EXPECT_TRUE(e.is_writable()) << e;
    EXPECT_FALSE(e.is_readable()) << e;
    EXPECT_FALSE(e.is_error()) << e;
  }
}

TEST_P(PollerConformanceTest, FullPipeIsNotWritableUntilDrained) {
  FdPair p = MakePipe();
  // Fill the pipe.
  std::string chunk(65536, 'x');
  while (write(p.b.get(), chunk.data(), chunk.size()) > 0) {
  }
  ASSERT_EQ(errno, EAGAIN);
  ASSERT_TRUE(
      poller_->Register(p.b.get(), Token(3), Interest::Writable()).ok());
  EXPECT_TRUE(PollOnce(absl::Milliseconds(20)).empty());
  ReadAvailable(p.a.get());
  std::optional<Event> e = PollFor(Token(3));
  ASSERT_TRUE(e.has_value());
  EXPECT_TRUE(e->is_writable());
}

TEST_P(PollerConformanceTest, FullSixtyFourBitTokenRoundTrips) {
  FdPair s = MakeSocketPair();
  const Token token(UINT64_MAX - 1);
  ASSERT_TRUE(poller_->Register(s.a.get(), token, Interest::Writable()).ok());
  std::vector<Event> events = PollOnce(absl::Seconds(5));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].token(), token);
}

TEST_P(PollerConformanceTest, PriorityDataOnTcp) {
  FdPair t = MakeTcpPair();
  ASSERT_TRUE(
      poller_->Register(t.b.get(), Token(5), Interest::Priority()).ok());
  EXPECT_TRUE(PollOnce(absl::ZeroDuration()).empty());
  const char byte = '!';
  ASSERT_EQ(send(t.a.get(), &byte, 1, MSG_OOB), 1) << strerror(errno);
  std::optional<Event> e = PollFor(Token(5));
  ASSERT_TRUE(e.has_value());
  EXPECT_TRUE(e->is_priority()) << *e;
  // Readable was not asked for, so it is not reported.
  EXPECT_FALSE(e->is_readable()) << *e;
}

// --- Closed / error conditions ----------------------------------------------

TEST_P(PollerConformanceTest, TcpPeerCloseIsReadClosed) {
  FdPair t = MakeTcpPair();
  ASSERT_TRUE(
      poller_->Register(t.b.get(), Token(9), Interest::Readable()).ok());
  EXPECT_TRUE(PollOnce(absl::ZeroDuration()).empty());
  t.a.Reset();  // client closes
  std::optional<Event> e = PollFor(Token(9));
  ASSERT_TRUE(e.has_value());
  EXPECT_TRUE(e->is_read_closed()) << *e;
  EXPECT_TRUE(e->is_readable()) << *e;  // read() returns 0 without blocking
  char c;
  EXPECT_EQ(read(t.b.get(), &c, 1), 0);
}

TEST_P(PollerConformanceTest, TcpPeerShutdownWriteIsReadClosedNotWriteClosed) {
  FdPair t = MakeTcpPair();
  ASSERT_TRUE(
      poller_->Register(t.b.get(), Token(9), Interest::Readable()).ok());
  ASSERT_EQ(shutdown(t.a.get(), SHUT_WR), 0);
  std::optional<Event> e = PollFor(Token(9));
  ASSERT_TRUE(e.has_value());
  EXPECT_TRUE(e->is_read_closed()) << *e;
  // Our side can still write: the peer only closed its write direction.
  EXPECT_FALSE(e->is_write_closed()) << *e;
  EXPECT_FALSE(e->is_error()) << *e;
}

TEST_P(PollerConformanceTest, SocketPairPeerCloseIsReadClosed) {
  FdPair s = MakeSocketPair();
  ASSERT_TRUE(
      poller_->Register(s.a.get(), Token(4), Interest::Readable()).ok());
  s.b.Reset();
  std::optional<Event> e = PollFor(Token(4));
  ASSERT_TRUE(e.has_value());
  EXPECT_TRUE(e->is_read_closed()) << *e;
  EXPECT_TRUE(e->is_readable()) << *e;
}

TEST_P(PollerConformanceTest, PipeWriterCloseIsReadClosed) {
  FdPair p = MakePipe();
  ASSERT_TRUE(
      poller_->Register(p.a.get(), Token(4), Interest::Readable()).ok());
  p.b.Reset();
  std::optional<Event> e = PollFor(Token(4));
  ASSERT_TRUE(e.has_value());
  EXPECT_TRUE(e->is_read_closed()) << *e;
}

TEST_P(PollerConformanceTest, PipeReaderCloseIsWriteClosed) {
  FdPair p = MakePipe();
  ASSERT_TRUE(
      poller_->Register(p.b.get(), Token(4), Interest::Writable()).ok());
  p.a.Reset();
  std::optional<Event> e = PollFor(Token(4));
  ASSERT_TRUE(e.has_value());
  EXPECT_TRUE(e->is_write_closed()) << *e;
}

TEST_P(PollerConformanceTest, ConnectToClosedPortReportsError) {
  // A bound but not listening socket: connecting to its port is refused, and
  // keeping it open means no one else can take the port meanwhile.
  sockaddr_in addr;
  Fd closed_port = BoundTcpSocket(/*listening=*/false, &addr);
  Fd s(socket(AF_INET, SOCK_STREAM, 0));
  ASSERT_GE(s.get(), 0);
  SetNonBlocking(s.get());
  const int rc =
      connect(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  if (rc == 0 || errno != EINPROGRESS) {
    GTEST_SKIP() << "connect did not go asynchronous: "
                 << (rc == 0 ? "connected" : strerror(errno));
  }
  ASSERT_TRUE(poller_
                  ->Register(s.get(), Token(11),
                             Interest::Readable() | Interest::Writable())
                  .ok());
  std::optional<Event> e = PollFor(Token(11));
  ASSERT_TRUE(e.has_value());
  EXPECT_TRUE(e->is_error() || e->is_write_closed() || e->is_read_closed())
      << *e;
  int err = 0;
  socklen_t len = sizeof(err);
  ASSERT_EQ(getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &err, &len), 0);
  EXPECT_EQ(err, ECONNREFUSED) << strerror(err);
}

// --- Interest changes, triggers, deregistration ------------------------------

TEST_P(PollerConformanceTest, ReregisterChangesInterestAndToken) {
  FdPair s = MakeSocketPair();
  ASSERT_TRUE(
      poller_->Register(s.a.get(), Token(1), Interest::Readable()).ok());
  EXPECT_TRUE(PollOnce(absl::ZeroDuration()).empty());  // nothing to read

  ASSERT_TRUE(
      poller_->Reregister(s.a.get(), Token(2), Interest::Writable()).ok());
  std::vector<Event> events = PollOnce(absl::Seconds(5));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].token(), Token(2));
  EXPECT_TRUE(events[0].is_writable());
  EXPECT_FALSE(events[0].is_readable());

  ASSERT_TRUE(
      poller_->Reregister(s.a.get(), Token(3), Interest::Readable()).ok());
  EXPECT_TRUE(PollOnce(absl::ZeroDuration()).empty());  // no longer writable
  WriteBytes(s.b.get(), 1);
  events = PollOnce(absl::Seconds(5));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].token(), Token(3));
  EXPECT_TRUE(events[0].is_readable());
  EXPECT_FALSE(events[0].is_writable());

  ASSERT_TRUE(poller_
                  ->Reregister(s.a.get(), Token(4),
                               Interest::Readable() | Interest::Writable())
                  .ok());
  std::optional<Event> e = PollFor(Token(4));
  ASSERT_TRUE(e.has_value());
  EXPECT_TRUE(e->is_readable() && e->is_writable()) << *e;
}

TEST_P(PollerConformanceTest, LevelReportsAgainWhileDataUnread) {
  FdPair s = MakeSocketPair();
  ASSERT_TRUE(
      poller_
          ->Register(s.a.get(), Token(1), Interest::Readable(), Trigger::kLevel)
          .ok());
  WriteBytes(s.b.get(), 10);
  for (int i = 0; i < 3; ++i) {
    std::vector<Event> events = PollOnce(absl::Seconds(5));
    ASSERT_EQ(events.size(), 1u) << "poll " << i;
    EXPECT_TRUE(events[0].is_readable());
  }
  EXPECT_EQ(ReadAvailable(s.a.get(), 5), 5u);  // partial read
  ASSERT_EQ(PollOnce(absl::ZeroDuration()).size(), 1u);
  EXPECT_EQ(ReadAvailable(s.a.get()), 5u);
  EXPECT_TRUE(PollOnce(absl::ZeroDuration()).empty());
}

TEST_P(PollerConformanceTest, OneShotReportsOnceUntilReregistered) {
  FdPair s = MakeSocketPair();
  ASSERT_TRUE(poller_
                  ->Register(s.a.get(), Token(1), Interest::Readable(),
                             Trigger::kOneShot)
                  .ok());
  WriteBytes(s.b.get(), 4);
  std::vector<Event> events = PollOnce(absl::Seconds(5));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].token(), Token(1));
  // Disarmed: unread data and new data are not reported.
  EXPECT_TRUE(PollOnce(absl::ZeroDuration()).empty());
  WriteBytes(s.b.get(), 4);
  EXPECT_TRUE(PollOnce(absl::Milliseconds(20)).empty());

  // Re-arming with data pending reports at once.
  ASSERT_TRUE(poller_
                  ->Reregister(s.a.get(), Token(2), Interest::Readable(),
                               Trigger::kOneShot)
                  .ok());
  events = PollOnce(absl::ZeroDuration());
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].token(), Token(2));
  EXPECT_TRUE(events[0].is_readable());
  EXPECT_TRUE(PollOnce(absl::ZeroDuration()).empty());

  // Drained, re-armed: nothing until new data, then exactly one event.
  EXPECT_EQ(ReadAvailable(s.a.get()), 8u);
  ASSERT_TRUE(poller_
                  ->Reregister(s.a.get(), Token(3), Interest::Readable(),
                               Trigger::kOneShot)
                  .ok());
  EXPECT_TRUE(PollOnce(absl::ZeroDuration()).empty());
  WriteBytes(s.b.get(), 1);
  events = PollOnce(absl::Seconds(5));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].token(), Token(3));
  EXPECT_TRUE(PollOnce(absl::ZeroDuration()).empty());
}

TEST_P(PollerConformanceTest, OneShotDisarmsWholeDescriptor) {
  // Readable and writable at once: one report, then silence for both.
  FdPair s = MakeSocketPair();
  WriteBytes(s.b.get(), 1);
  ASSERT_TRUE(poller_
                  ->Register(s.a.get(), Token(1),
                             Interest::Readable() | Interest::Writable(),
                             Trigger::kOneShot)
                  .ok());
  std::vector<Event> events = PollOnce(absl::Seconds(5));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events[0].is_readable() && events[0].is_writable()) << events[0];
  EXPECT_TRUE(PollOnce(absl::Milliseconds(20)).empty());
  // Re-armed as level: reported on every poll.
  ASSERT_TRUE(poller_
                  ->Reregister(s.a.get(), Token(1), Interest::Writable(),
                               Trigger::kLevel)
                  .ok());
  EXPECT_EQ(PollOnce(absl::ZeroDuration()).size(), 1u);
  EXPECT_EQ(PollOnce(absl::ZeroDuration()).size(), 1u);
}

// --- Paused registrations (Interest::None())
// ----------------------------------

TEST_P(PollerConformanceTest, NoneReportsNoReadinessUntilResumed) {
  FdPair s = MakeSocketPair();
  WriteBytes(s.b.get(), 4);
  // Level-triggered and both readable and writable, yet paused: silent.
  ASSERT_TRUE(
      poller_->Register(s.a.get(), Token(1), Interest::None(), Trigger::kLevel)
          .ok());
  EXPECT_TRUE(PollOnce(absl::Milliseconds(20)).empty());
  // Urgent data on TCP must not wake a paused registration either (a paused
  // connection parked on Priority() used to spin on MSG_OOB).
  FdPair t = MakeTcpPair();
  ASSERT_TRUE(poller_->Register(t.b.get(), Token(2), Interest::None()).ok());
  const char byte = '!';
  ASSERT_EQ(send(t.a.get(), &byte, 1, MSG_OOB), 1) << strerror(errno);
  WriteBytes(t.a.get(), 8);
  EXPECT_TRUE(PollOnce(absl::Milliseconds(50)).empty());

  // Resuming reports what arrived while paused (level-checked).
  ASSERT_TRUE(poller_
                  ->Reregister(s.a.get(), Token(3), Interest::Readable(),
                               Trigger::kLevel)
                  .ok());
  std::vector<Event> events = PollOnce(absl::Seconds(5));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].token(), Token(3));
  EXPECT_TRUE(events[0].is_readable());
  // Paused again: silent again, though the data is still unread.
  ASSERT_TRUE(
      poller_
          ->Reregister(s.a.get(), Token(3), Interest::None(), Trigger::kLevel)
          .ok());
  EXPECT_TRUE(PollOnce(absl::Milliseconds(20)).empty());
  EXPECT_EQ(ReadAvailable(s.a.get()), 4u);
}

TEST_P(PollerConformanceTest, NoneReportsAHangUpAtMostOnce) {
  // A paused socket whose peer is gone must not make every Poll return.
  FdPair s = MakeSocketPair();
  ASSERT_TRUE(
      poller_->Register(s.a.get(), Token(7), Interest::None(), Trigger::kLevel)
          .ok());
  s.b.Reset();
  int reports = 0;
  for (int i = 0; i < 5; ++i) {
    for (const Event& e : PollOnce(absl::Milliseconds(20))) {
      EXPECT_EQ(e.token(), Token(7));
      EXPECT_FALSE(e.is_readable() && !e.is_read_closed()) << e;
      ++reports;
    }
  }
  EXPECT_LE(reports, 1);
  // Still registered: Reregister and Deregister work, and re-arming for
  // reading reports the end of stream.
  ASSERT_TRUE(poller_
                  ->Reregister(s.a.get(), Token(8), Interest::Readable(),
                               Trigger::kLevel)
                  .ok());
  std::optional<Event> e = PollFor(Token(8));
  ASSERT_TRUE(e.has_value());
  EXPECT_TRUE(e->is_read_closed()) << *e;
  EXPECT_TRUE(poller_->Deregister(s.a.get()).ok());
}

TEST_P(PollerConformanceTest, DeregisterStopsEvents) {
  FdPair s = MakeSocketPair();
  ASSERT_TRUE(
      poller_->Register(s.a.get(), Token(1), Interest::Readable()).ok());
  WriteBytes(s.b.get(), 1);
  ASSERT_EQ(PollOnce(absl::Seconds(5)).size(), 1u);
  ASSERT_TRUE(poller_->Deregister(s.a.get()).ok());
  EXPECT_TRUE(PollOnce(absl::Milliseconds(20)).empty());
  // Registering again works and sees the still-pending data.
  ASSERT_TRUE(
      poller_->Register(s.a.get(), Token(2), Interest::Readable()).ok());
  std::vector<Event> events = PollOnce(absl::Seconds(5));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].token(), Token(2));
}

TEST_P(PollerConformanceTest, MoreReadyThanCapacityIsReportedAcrossPolls) {
  std::vector<FdPair> pairs;
  for (int i = 0; i < 5; ++i) {
    pairs.push_back(MakeSocketPair());
    ASSERT_TRUE(poller_
                    ->Register(pairs.back().a.get(), Token(100 + i),
                               Interest::Readable(), Trigger::kOneShot)
                    .ok());
    WriteBytes(pairs.back().b.get(), 1);
  }
  std::vector<uint64_t> seen;
  for (int round = 0; round < 3; ++round) {
    std::vector<Event> events = PollOnce(absl::Seconds(5), /*capacity=*/2);
    EXPECT_EQ(events.size(), round < 2 ? 2u : 1u);
    for (const Event& e : events) seen.push_back(e.token().value());
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<uint64_t>{100, 101, 102, 103, 104}));
  EXPECT_TRUE(PollOnce(absl::ZeroDuration()).empty());
}

TEST_P(PollerConformanceTest, LevelReadyBeyondCapacityIsNotStarved) {
  // Five always-readable level registrations, two events per Poll: within
  // three polls every one of them must have been reported.
  std::vector<FdPair> pairs;
  for (int i = 0; i < 5; ++i) {
    pairs.push_back(MakeSocketPair());
    ASSERT_TRUE(poller_
                    ->Register(pairs.back().a.get(), Token(200 + i),
                               Interest::Readable())
                    .ok());
    WriteBytes(pairs.back().b.get(), 1);
  }
  std::vector<uint64_t> seen;
  for (int round = 0; round < 3; ++round) {
    std::vector<Event> events = PollOnce(absl::Seconds(5), /*capacity=*/2);
    EXPECT_EQ(events.size(), 2u);
    for (const Event& e : events) seen.push_back(e.token().value());
  }
  std::sort(seen.begin(), seen.end());
  seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
  EXPECT_EQ(seen, (std::vector<uint64_t>{200, 201, 202, 203, 204}));
}

// --- Scale ----------------------------------------------------------------

TEST_P(PollerConformanceTest, TenThousandDescriptorsReportExactlyTheActive) {
  constexpr int kDescriptors = 10000;  // both ends of 5,000 socketpairs
  constexpr rlim_t kNeeded = kDescriptors + 256;
  rlimit lim;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &lim), 0);
  if (lim.rlim_cur < kNeeded) {
    if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < kNeeded) {
      GTEST_SKIP() << "RLIMIT_NOFILE hard limit " << lim.rlim_max
                   << " is below the " << kNeeded << " descriptors needed";
    }
    rlimit raised = lim;
    raised.rlim_cur = kNeeded;
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &raised), 0) << strerror(errno);
  }

  std::vector<FdPair> pairs;
  pairs.reserve(kDescriptors / 2);
  for (int i = 0; i < kDescriptors / 2; ++i) {
    pairs.push_back(MakeSocketPair());
    ASSERT_GE(pairs.back().b.get(), 0);
    ASSERT_TRUE(
        poller_
            ->Register(pairs.back().a.get(), Token(2 * i), Interest::Readable())
            .ok());
    ASSERT_TRUE(poller_
                    ->Register(pairs.back().b.get(), Token(2 * i + 1),
                               Interest::Readable())
                    .ok());
  }
  EXPECT_TRUE(PollOnce(absl::ZeroDuration(), 1024).empty());

  // Make a few descriptors readable by writing to their peers.
  const std::vector<uint64_t> active = {0, 1, 777, 4242, 5001, 9998, 9999};
  for (uint64_t token : active) {
    const FdPair& p = pairs[token / 2];
    WriteBytes(token % 2 == 0 ? p.b.get() : p.a.get(), 1);
  }
  std::vector<uint64_t> seen;
  for (const Event& e : PollOnce(absl::Seconds(5), 1024)) {
    EXPECT_TRUE(e.is_readable()) << e;
    seen.push_back(e.token().value());
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, active);  // exactly those, each once

  for (uint64_t token : active) {
    const FdPair& p = pairs[token / 2];
    EXPECT_EQ(ReadAvailable(token % 2 == 0 ? p.a.get() : p.b.get()), 1u);
  }
  EXPECT_TRUE(PollOnce(absl::ZeroDuration(), 1024).empty());
  for (FdPair& p : pairs) {
    ASSERT_TRUE(poller_->Deregister(p.a.get()).ok());
    ASSERT_TRUE(poller_->Deregister(p.b.get()).ok());
  }
  pairs.clear();
  setrlimit(RLIMIT_NOFILE, &lim);
}

// --- Timeouts ----------------------------------------------------------------

TEST_P(PollerConformanceTest, TimeoutNeverReturnsEarly) {
  FdPair s = MakeSocketPair();  // registered but never ready
  ASSERT_TRUE(
      poller_->Register(s.a.get(), Token(1), Interest::Readable()).ok());
  for (absl::Duration timeout :
       {absl::Microseconds(300), absl::Milliseconds(1),
        absl::Microseconds(2500), absl::Milliseconds(15),
        absl::Milliseconds(60)}) {
    Events events(8);
    const Clock::time_point start = Clock::now();
    absl::StatusOr<size_t> n = poller_->Poll(events, timeout);
    const double elapsed_ms = MillisSince(start);
    ASSERT_TRUE(n.ok()) << n.status();
    EXPECT_EQ(*n, 0u);
    EXPECT_TRUE(events.empty());
    const double want_ms = absl::ToDoubleMilliseconds(timeout);
    EXPECT_GE(elapsed_ms, want_ms) << "returned early for " << timeout;
    EXPECT_LE(elapsed_ms, want_ms + 200) << "far too late for " << timeout;
  }
}

TEST_P(PollerConformanceTest, ZeroTimeoutReturnsImmediately) {
  FdPair s = MakeSocketPair();
  ASSERT_TRUE(
      poller_->Register(s.a.get(), Token(1), Interest::Readable()).ok());
  const Clock::time_point start = Clock::now();
  for (int i = 0; i < 10; ++i)
    EXPECT_TRUE(PollOnce(absl::ZeroDuration()).empty());
  // Ten non-blocking polls; a generous bound for a loaded sanitizer run.
  EXPECT_LT(MillisSince(start), 200);
  // Negative timeouts behave like zero.
  EXPECT_TRUE(PollOnce(absl::Milliseconds(-5)).empty());
}

TEST_P(PollerConformanceTest, EventsBufferIsClearedByPoll) {
  FdPair s = MakeSocketPair();
  ASSERT_TRUE(
      poller_->Register(s.a.get(), Token(1), Interest::Writable()).ok());
  Events events(4);
  ASSERT_TRUE(poller_->Poll(events, absl::Seconds(5)).ok());
  ASSERT_EQ(events.size(), 1u);
  ASSERT_TRUE(poller_->Deregister(s.a.get()).ok());
  absl::StatusOr<size_t> n = poller_->Poll(events, absl::ZeroDuration());
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0u);
  EXPECT_TRUE(events.empty());
}

// --- Waker -------------------------------------------------------------------

TEST_P(PollerConformanceTest, WakeFromAnotherThreadUnblocksPoll) {
  absl::StatusOr<std::unique_ptr<Waker>> waker =
      Waker::Create(*poller_, Token(99));
  ASSERT_TRUE(waker.ok()) << waker.status();
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_TRUE((*waker)->Wake().ok());
  });
  std::vector<Event> events = PollOnce(std::nullopt);
  t.join();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].token(), Token(99));
  EXPECT_TRUE(events[0].is_readable());
  (*waker)->Drain();
  EXPECT_TRUE(PollOnce(absl::ZeroDuration()).empty());
}

TEST_P(PollerConformanceTest, WakeFromSignalHandlerUnblocksPoll) {
  absl::StatusOr<std::unique_ptr<Waker>> waker =
      Waker::Create(*poller_, Token(98));
  ASSERT_TRUE(waker.ok()) << waker.status();
  g_signal_waker.store(waker->get());
  ScopedSignalHandler handler(SIGUSR1, WakeFromSignal);
  const pthread_t poller_thread = pthread_self();
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    pthread_kill(poller_thread, SIGUSR1);
  });
  std::vector<Event> events = PollOnce(std::nullopt);
  t.join();
  g_signal_waker.store(nullptr);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].token(), Token(98));
  (*waker)->Drain();
  EXPECT_TRUE(PollOnce(absl::ZeroDuration()).empty());
}

TEST_P(PollerConformanceTest, ManyWakesCoalesceAndDrainClears) {
  absl::StatusOr<std::unique_ptr<Waker>> waker =
      Waker::Create(*poller_, Token(97));
  ASSERT_TRUE(waker.ok()) << waker.status();
  EXPECT_EQ((*waker)->token(), Token(97));
  EXPECT_TRUE(PollOnce(absl::ZeroDuration()).empty());
  // More wakes than a pipe could buffer, to cover the "already full" path.
  for (int i = 0; i < 100000; ++i) ASSERT_TRUE((*waker)->Wake().ok());
  std::vector<Event> events = PollOnce(absl::Seconds(5));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].token(), Token(97));
  // Level-triggered: still pending until drained.
  EXPECT_EQ(PollOnce(absl::ZeroDuration()).size(), 1u);
  (*waker)->Drain();
  EXPECT_TRUE(PollOnce(absl::ZeroDuration()).empty());
  EXPECT_TRUE(PollOnce(absl::Milliseconds(20)).empty());
  // And it still works afterwards.
  ASSERT_TRUE((*waker)->Wake().ok());
  EXPECT_EQ(PollOnce(absl::Seconds(5)).size(), 1u);
}

TEST_P(PollerConformanceTest, WakeIsThreadSafeAndNeverLost) {
  absl::StatusOr<std::unique_ptr<Waker>> waker =
      Waker::Create(*poller_, Token(96));
  ASSERT_TRUE(waker.ok()) << waker.status();
  // Producers bump a counter then wake; the poller drains and reads the
  // counter. Every increment must be observed without timing out.
  constexpr int kPerThread = 500;
  std::atomic<int> produced{0};
  std::vector<std::thread> producers;
  for (int t = 0; t < 2; ++t) {
    producers.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        produced.fetch_add(1);
        EXPECT_TRUE((*waker)->Wake().ok());
      }
    });
  }
  int observed = 0;
  const Clock::time_point deadline = Clock::now() + std::chrono::seconds(20);
  while (observed < 2 * kPerThread && Clock::now() < deadline) {
    std::vector<Event> events = PollOnce(absl::Seconds(5));
    ASSERT_LE(events.size(), 1u);
    if (events.empty()) continue;
    EXPECT_EQ(events[0].token(), Token(96));
    (*waker)->Drain();
    observed = produced.load();
  }
  for (std::thread& t : producers) t.join();
  EXPECT_EQ(observed, 2 * kPerThread);
}

// --- Signals -----------------------------------------------------------------

TEST_P(PollerConformanceTest, EintrNeitherSurfacesNorShortensTheWait) {
  ScopedSignalHandler handler(SIGUSR2, CountSignal);
  g_signal_count.store(0);
  const pthread_t poller_thread = pthread_self();
  std::atomic<bool> stop{false};
  std::thread t([&] {
    while (!stop.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(15));
      if (!stop.load()) pthread_kill(poller_thread, SIGUSR2);
    }
  });
  const absl::Duration timeout = absl::Milliseconds(250);
  Events events(4);
  const Clock::time_point start = Clock::now();
  absl::StatusOr<size_t> n = poller_->Poll(events, timeout);
  const double elapsed_ms = MillisSince(start);

  // Blocking poll, interrupted the same way, ended by a Waker.
  absl::StatusOr<std::unique_ptr<Waker>> waker =
      Waker::Create(*poller_, Token(95));
  ASSERT_TRUE(waker.ok()) << waker.status();
  std::thread waker_thread([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(120));
    EXPECT_TRUE((*waker)->Wake().ok());
  });
  absl::StatusOr<size_t> blocking = poller_->Poll(events, std::nullopt);
  waker_thread.join();
  stop.store(true);
  t.join();

  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 0u);
  EXPECT_GE(elapsed_ms, 250.0);
  EXPECT_LE(elapsed_ms, 250.0 + 200);
  ASSERT_TRUE(blocking.ok()) << blocking.status();
  ASSERT_EQ(*blocking, 1u);
  EXPECT_EQ(events[0].token(), Token(95));
  EXPECT_GE(g_signal_count.load(), 5) << "signals did not arrive";
}

// --- Errors ------------------------------------------------------------------

TEST_P(PollerConformanceTest, ErrorsHaveTheSameCodesAndThePollerSurvives) {
  FdPair s = MakeSocketPair();
  const Interest r = Interest::Readable();

  // Invalid and closed descriptors.
  EXPECT_EQ(poller_->Register(-1, Token(1), r).code(),
            absl::StatusCode::kInvalidArgument);
  int closed_fd;
  {
    FdPair tmp = MakePipe();
    closed_fd = tmp.a.get();
  }
  absl::Status st = poller_->Register(closed_fd, Token(1), r);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  EXPECT_NE(st.message().find(strerror(EBADF)), absl::string_view::npos) << st;
  EXPECT_EQ(poller_->Reregister(closed_fd, Token(1), r).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(poller_->Deregister(closed_fd).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(poller_->Deregister(-1).code(), absl::StatusCode::kInvalidArgument);

  // Twice.
  ASSERT_TRUE(poller_->Register(s.a.get(), Token(1), r).ok());
  st = poller_->Register(s.a.get(), Token(2), Interest::Writable());
  EXPECT_EQ(st.code(), absl::StatusCode::kAlreadyExists) << st;

  // Not registered.
  st = poller_->Reregister(s.b.get(), Token(3), r);
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound) << st;
  st = poller_->Deregister(s.b.get());
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound) << st;

  // Regular file and directory cannot be polled (epoll's EPERM).
  const char* tmpdir = std::getenv("TEST_TMPDIR");
  const std::string dir = tmpdir != nullptr ? tmpdir : "/tmp";
  const std::string path =
      absl::StrCat(dir, "/poller_regular_", PollerBackendName(GetParam()));
  Fd file(open(path.c_str(), O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0600));
  ASSERT_GE(file.get(), 0) << strerror(errno);
  st = poller_->Register(file.get(), Token(4), r);
  EXPECT_EQ(st.code(), absl::StatusCode::kPermissionDenied) << st;
  Fd dirfd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_GE(dirfd.get(), 0) << strerror(errno);
  st = poller_->Register(dirfd.get(), Token(5), r);
  EXPECT_EQ(st.code(), absl::StatusCode::kPermissionDenied) << st;
  unlink(path.c_str());

  // Deregistering twice.
  ASSERT_TRUE(poller_->Deregister(s.a.get()).ok());
  EXPECT_EQ(poller_->Deregister(s.a.get()).code(), absl::StatusCode::kNotFound);

  // Still fully usable.
  ASSERT_TRUE(poller_->Register(s.a.get(), Token(6), r).ok());
  WriteBytes(s.b.get(), 1);
  std::vector<Event> events = PollOnce(absl::Seconds(5));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].token(), Token(6));
}

// --- Cross-thread registration
// -------------------------------------------------

TEST_P(PollerConformanceTest, RegisterFromAnotherThreadReachesBlockedPoll) {
  FdPair s = MakeSocketPair();
  WriteBytes(s.b.get(), 1);  // ready as soon as it is registered
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_TRUE(
        poller_->Register(s.a.get(), Token(21), Interest::Readable()).ok());
  });
  const Clock::time_point start = Clock::now();
  std::vector<Event> events = PollOnce(absl::Seconds(10));
  const double elapsed_ms = MillisSince(start);
  t.join();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].token(), Token(21));
  // Taking effect means long before the 10 s timeout.
  EXPECT_LT(elapsed_ms, 5000);
}

TEST_P(PollerConformanceTest, ReregisterFromAnotherThreadRearmsBlockedPoll) {
  FdPair s = MakeSocketPair();
  ASSERT_TRUE(poller_
                  ->Register(s.a.get(), Token(22), Interest::Readable(),
                             Trigger::kOneShot)
                  .ok());
  WriteBytes(s.b.get(), 1);
  ASSERT_EQ(PollOnce(absl::Seconds(5)).size(), 1u);  // fired, now disarmed
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_TRUE(poller_
                    ->Reregister(s.a.get(), Token(23), Interest::Readable(),
                                 Trigger::kOneShot)
                    .ok());
  });
  const Clock::time_point start = Clock::now();
  std::vector<Event> events = PollOnce(absl::Seconds(10));
  const double elapsed_ms = MillisSince(start);
  t.join();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].token(), Token(23));
  EXPECT_LT(elapsed_ms, 5000);
}

// The event loop's pattern: one thread polls one-shot registrations, workers
// handle them and re-arm. One-shot must never hand a descriptor to two
// workers at once, and no data may be stranded.
TEST_P(PollerConformanceTest, WorkersRearmOneShotWhileLoopPolls) {
  constexpr int kSockets = 8;
  constexpr int kMessagesPerSocket = 200;
  std::vector<FdPair> pairs;
  std::vector<std::atomic<bool>> in_handler(kSockets);
  for (int i = 0; i < kSockets; ++i) {
    pairs.push_back(MakeSocketPair());
    in_handler[i].store(false);
    ASSERT_TRUE(poller_
                    ->Register(pairs[i].a.get(), Token(i), Interest::Readable(),
                               Trigger::kOneShot)
                    .ok());
  }

  std::mutex mu;
  std::condition_variable cv;
  std::deque<int> queue;  // guarded by mu
  bool done = false;      // guarded by mu
  std::atomic<size_t> received{0};
  std::atomic<int> overlaps{0};

  std::vector<std::thread> workers;
  for (int w = 0; w < 2; ++w) {
    workers.emplace_back([&] {
      for (;;) {
        int i;
        {
          std::unique_lock<std::mutex> lock(mu);
          cv.wait(lock, [&] { return done || !queue.empty(); });
          if (queue.empty()) return;
          i = queue.front();
          queue.pop_front();
        }
        if (in_handler[i].exchange(true)) overlaps.fetch_add(1);
        // Read only part of what is there on purpose: the re-arm must report
        // the remainder.
        received.fetch_add(ReadAvailable(pairs[i].a.get(), 3));
        in_handler[i].store(false);
        EXPECT_TRUE(poller_
                        ->Reregister(pairs[i].a.get(), Token(i),
                                     Interest::Readable(), Trigger::kOneShot)
                        .ok());
      }
    });
  }
  std::thread writer([&] {
    for (int m = 0; m < kMessagesPerSocket; ++m) {
      for (int i = 0; i < kSockets; ++i) WriteBytes(pairs[i].b.get(), 1);
      if (m % 50 == 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });

  const size_t total = static_cast<size_t>(kSockets) * kMessagesPerSocket;
  const Clock::time_point deadline = Clock::now() + std::chrono::seconds(30);
  Events events(16);
  while (received.load() < total && Clock::now() < deadline) {
    absl::StatusOr<size_t> n = poller_->Poll(events, absl::Milliseconds(50));
    ASSERT_TRUE(n.ok()) << n.status();
    std::lock_guard<std::mutex> lock(mu);
    for (const Event& e : events)
      queue.push_back(static_cast<int>(e.token().value()));
    cv.notify_all();
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    done = true;
  }
  cv.notify_all();
  for (std::thread& w : workers) w.join();
  writer.join();
  EXPECT_EQ(received.load(), total);
  EXPECT_EQ(overlaps.load(), 0);
}

}  // namespace
}  // namespace mill
