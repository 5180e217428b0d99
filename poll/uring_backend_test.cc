// The io_uring backend's own behaviour, beyond the conformance suite that
// every backend passes (poller_conformance_test.cc): refusal of ring setup
// (the fallback's trigger), polls from changing threads (an event loop's
// takeover), and a Deregister that reaches the kernel without a Poll.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "poll/event.h"
#include "poll/interest.h"
#include "poll/internal/backend.h"
#include "poll/poller.h"
#include "poll/testing/socket_pair.h"
#include "poll/token.h"

namespace mill {
namespace {

class UringBackendTest : public testing::Test {
 protected:
  void SetUp() override {
    const absl::Status usable = poll_internal::ProbeIoUring();
    if (!usable.ok()) GTEST_SKIP() << "io_uring not usable here: " << usable;
  }
  void TearDown() override { poll_internal::SetIoUringSetupErrorForTesting(0); }
};

TEST_F(UringBackendTest, NameAndListed) {
  EXPECT_EQ(PollerBackendName(PollerBackend::kIoUring), "io_uring");
  const std::vector<PollerBackend> backends = Poller::AvailableBackends();
  EXPECT_NE(
      std::find(backends.begin(), backends.end(), PollerBackend::kIoUring),
      backends.end());
  EXPECT_EQ(backends.front(), PollerBackend::kEpoll);
}

TEST_F(UringBackendTest, RefusedSetupIsAClearErrorAndUnlisted) {
  struct Case {
    int error_number;
    absl::StatusCode code;
  };
  for (const Case& c : {Case{EPERM, absl::StatusCode::kPermissionDenied},
                        Case{ENOSYS, absl::StatusCode::kUnimplemented},
                        Case{ENOMEM, absl::StatusCode::kResourceExhausted},
                        Case{EINVAL, absl::StatusCode::kInvalidArgument}}) {
    poll_internal::SetIoUringSetupErrorForTesting(c.error_number);
    auto poller = Poller::Create(PollerBackend::kIoUring);
    ASSERT_FALSE(poller.ok());
    EXPECT_EQ(poller.status().code(), c.code) << poller.status();
    EXPECT_NE(poller.status().message().find("io_uring_setup"),
              absl::string_view::npos)
        << poller.status();
    const std::vector<PollerBackend> backends = Poller::AvailableBackends();
    EXPECT_EQ(
        std::find(backends.begin(), backends.end(), PollerBackend::kIoUring),
        backends.end());
  }
  poll_internal::SetIoUringSetupErrorForTesting(0);
  EXPECT_TRUE(Poller::Create(PollerBackend::kIoUring).ok());
}

std::vector<Event> PollOn(Poller& poller, absl::Duration timeout) {
  std::vector<Event> out;
  std::thread thread([&] {
    Events events(8);
    absl::StatusOr<size_t> n = poller.Poll(events, timeout);
    EXPECT_TRUE(n.ok()) << n.status();
    out.assign(events.begin(), events.end());
  });
  thread.join();
  return out;
}

// Each Poll below runs on a new thread (as after a takeover): every
// registration's readiness comes along.
TEST_F(UringBackendTest, PollingFromAnotherThreadKeepsEveryRegistration) {
  auto created = Poller::Create(PollerBackend::kIoUring);
  ASSERT_TRUE(created.ok()) << created.status();
  Poller& poller = **created;
  auto level = poll_testing::MakeSocketPair();
  auto later = poll_testing::MakeSocketPair();
  auto oneshot = poll_testing::MakeSocketPair();
  ASSERT_TRUE(level.ok() && later.ok() && oneshot.ok());
  ASSERT_EQ(write(level->b.get(), "x", 1), 1);
  ASSERT_EQ(write(oneshot->b.get(), "y", 1), 1);
  ASSERT_TRUE(
      poller.Register(level->a.get(), Token(1), Interest::Readable()).ok());
  ASSERT_TRUE(
      poller.Register(later->a.get(), Token(2), Interest::Readable()).ok());
  ASSERT_TRUE(poller
                  .Register(oneshot->a.get(), Token(3), Interest::Readable(),
                            Trigger::kOneShot)
                  .ok());

  std::vector<Event> first = PollOn(poller, absl::Seconds(5));
  ASSERT_EQ(first.size(), 2u);
  // On a new thread: the level registration again (still readable), not the
  // fired one-shot; `later` once it becomes readable.
  std::vector<Event> second = PollOn(poller, absl::Seconds(5));
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].token(), Token(1));
  char c;
  ASSERT_EQ(read(level->a.get(), &c, 1), 1);
  ASSERT_EQ(write(later->b.get(), "z", 1), 1);
  std::vector<Event> third = PollOn(poller, absl::Seconds(5));
  ASSERT_EQ(third.size(), 1u);
  EXPECT_EQ(third[0].token(), Token(2));
  // Re-armed one-shot reports what is still there, on yet another thread.
  ASSERT_TRUE(poller
                  .Reregister(oneshot->a.get(), Token(3), Interest::Readable(),
                              Trigger::kOneShot)
                  .ok());
  ASSERT_EQ(read(later->a.get(), &c, 1), 1);
  std::vector<Event> fourth = PollOn(poller, absl::Seconds(5));
  ASSERT_EQ(fourth.size(), 1u);
  EXPECT_EQ(fourth[0].token(), Token(3));
  EXPECT_TRUE(poller.Deregister(level->a.get()).ok());
  EXPECT_TRUE(poller.Deregister(later->a.get()).ok());
  EXPECT_TRUE(poller.Deregister(oneshot->a.get()).ok());
  EXPECT_TRUE(PollOn(poller, absl::Milliseconds(20)).empty());
}

// Whether `fd`'s peer has gone (EOF or an error is pending), without
// waiting: the check is that close() after Deregister closes at once.
bool PeerClosedNow(int fd) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, 0) == 1 && (p.revents & (POLLIN | POLLHUP)) != 0;
}

// A poll request holds its descriptor's file: Deregister must remove it
// even when no Poll follows (a stopped loop), or close() would not close
// and the peer would never see EOF. Here the thread that submitted the
// request has also exited: the kernel completes a cancelled request a
// scheduler tick later then (its task work falls back to a kernel worker).
// Deregister waits for that, so close() closes at once.
TEST_F(UringBackendTest, DeregisterReleasesAtOnceAfterTheSubmitterExited) {
  auto created = Poller::Create(PollerBackend::kIoUring);
  ASSERT_TRUE(created.ok()) << created.status();
  Poller& poller = **created;
  for (int round = 0; round < 20; ++round) {
    auto pair = poll_testing::MakeSocketPair();
    ASSERT_TRUE(pair.ok());
    ASSERT_TRUE(
        poller.Register(pair->a.get(), Token(1), Interest::Readable()).ok());
    EXPECT_TRUE(PollOn(poller, absl::ZeroDuration()).empty());  // submitted
    ASSERT_TRUE(poller.Deregister(pair->a.get()).ok());
    pair->a.Reset();
    EXPECT_TRUE(PeerClosedNow(pair->b.get())) << "round " << round;
  }
}

// A thread that polled and exits takes none of its requests along: they
// are handed back (cancelled from that thread, re-added by the next Poll),
// so no file is held by a request whose thread is gone. Seen here by
// closing without Deregister (against the contract, but telling): the peer
// sees EOF at once, and the next Poll reports the closed descriptor. Before,
// every Deregister after a pool-mode loop's threads had exited waited a
// scheduler tick for the kernel's fallback worker (200 took 1.7 s).
TEST_F(UringBackendTest, AnExitingThreadHandsItsRequestsBack) {
  auto created = Poller::Create(PollerBackend::kIoUring);
  ASSERT_TRUE(created.ok()) << created.status();
  Poller& poller = **created;
  std::vector<poll_testing::FdPair> pairs;
  for (int i = 0; i < 50; ++i) {
    auto pair = poll_testing::MakeSocketPair();
    ASSERT_TRUE(pair.ok());
    ASSERT_TRUE(
        poller.Register(pair->a.get(), Token(i), Interest::Readable()).ok());
    pairs.push_back(std::move(*pair));
  }
  EXPECT_TRUE(PollOn(poller, absl::ZeroDuration()).empty());  // submitted
  // That thread has exited. A still-registered one closed: EOF at once.
  const int closed = pairs[7].a.get();
  pairs[7].a.Reset();
  EXPECT_TRUE(PeerClosedNow(pairs[7].b.get()));
  // The others are watched again by the next Poll, on another thread.
  ASSERT_EQ(write(pairs[3].b.get(), "x", 1), 1);
  std::vector<Event> events = PollOn(poller, absl::Seconds(5));
  bool saw_data = false;
  for (const Event& e : events) saw_data |= e.token() == Token(3);
  EXPECT_TRUE(saw_data);
  EXPECT_FALSE(poller.Deregister(closed).ok());  // EBADF, like epoll
  for (size_t i = 0; i < pairs.size(); ++i) {
    if (i != 7) EXPECT_TRUE(poller.Deregister(pairs[i].a.get()).ok());
  }
}

// Registrations come and go while another thread polls (a pool-mode
// server's listener and connections): whatever stage the request is in
// (entry written but not yet submitted, pending, completing on the polling
// thread), close() after Deregister closes at once.
TEST_F(UringBackendTest, DeregisterReleasesAtOnceWhileAnotherThreadPolls) {
  auto created = Poller::Create(PollerBackend::kIoUring);
  ASSERT_TRUE(created.ok()) << created.status();
  Poller& poller = **created;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> polls{0};
  std::thread polling([&] {
    Events events(8);
    while (!stop.load()) {
      absl::StatusOr<size_t> n = poller.Poll(events, absl::Milliseconds(1));
      ASSERT_TRUE(n.ok()) << n.status();
      polls.fetch_add(1);
    }
  });
  int still_open = 0;
  for (int round = 0; round < 1000; ++round) {
    auto pair = poll_testing::MakeSocketPair();
    ASSERT_TRUE(pair.ok());
    ASSERT_TRUE(
        poller.Register(pair->a.get(), Token(1), Interest::Readable()).ok());
    // Vary the stage the Deregister meets.
    for (int spin = 0; spin < round % 7 * 300; ++spin) polls.load();
    ASSERT_TRUE(poller.Deregister(pair->a.get()).ok());
    pair->a.Reset();
    if (!PeerClosedNow(pair->b.get())) ++still_open;
  }
  stop = true;
  polling.join();
  EXPECT_EQ(still_open, 0);
  EXPECT_GT(polls.load(), 0u);
}

// Deregistered and closed while a Poll waits, then the number is reused by
// a new socket registered before the next Poll: the new socket must get
// its own request (the old one watched the old file, and is removed).
TEST_F(UringBackendTest, NumberReusedBeforeTheNextPollIsWatchedAnew) {
  auto created = Poller::Create(PollerBackend::kIoUring);
  ASSERT_TRUE(created.ok()) << created.status();
  Poller& poller = **created;
  auto first = poll_testing::MakeSocketPair();
  ASSERT_TRUE(first.ok());
  const int fd = first->a.get();
  ASSERT_TRUE(poller.Register(fd, Token(1), Interest::Readable()).ok());
  std::atomic<bool> seen_new{false};
  std::thread polling([&] {
    Events events(8);
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (!seen_new.load() && absl::Now() < deadline) {
      absl::StatusOr<size_t> n = poller.Poll(events, absl::Seconds(1));
      ASSERT_TRUE(n.ok()) << n.status();
      for (const Event& e : events) {
        if (e.token() == Token(2)) seen_new = true;
      }
    }
  });
  // Let the Poll block (if it has not yet, the case is merely easier).
  absl::SleepFor(absl::Milliseconds(50));
  ASSERT_TRUE(poller.Deregister(fd).ok());
  auto second = poll_testing::MakeSocketPair();
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(dup2(second->a.get(), fd), fd);  // closes the first socket
  ASSERT_TRUE(poller.Register(fd, Token(2), Interest::Readable()).ok());
  ASSERT_EQ(write(second->b.get(), "n", 1), 1);
  polling.join();
  EXPECT_TRUE(seen_new.load());
  EXPECT_TRUE(poller.Deregister(fd).ok());
}

// The kernel interrupts every live thread that created or submitted to a
// ring once when the ring is closed: a blocking call with a timeout fails
// with EINTR. The application's thread that creates, deregisters on and
// destroys a poller must not be one of them (rings are created on a
// short-lived thread; Deregister cancels without submitting).
TEST_F(UringBackendTest, ClosingAPollerDoesNotInterruptTheCreatingThread) {
  for (int round = 0; round < 3; ++round) {
    {
      auto created = Poller::Create(PollerBackend::kIoUring);
      ASSERT_TRUE(created.ok()) << created.status();
      auto pair = poll_testing::MakeSocketPair();
      ASSERT_TRUE(pair.ok());
      ASSERT_TRUE((*created)
                      ->Register(pair->a.get(), Token(1), Interest::Readable())
                      .ok());
      EXPECT_TRUE(PollOn(**created, absl::ZeroDuration()).empty());
      ASSERT_TRUE((*created)->Deregister(pair->a.get()).ok());
    }  // the poller closes its ring here, on this thread
    auto quiet = poll_testing::MakeSocketPair();
    ASSERT_TRUE(quiet.ok());
    timeval timeout{0, 300 * 1000};
    ASSERT_EQ(setsockopt(quiet->a.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout,
                         sizeof(timeout)),
              0);
    // Make it blocking: the timeout applies to blocking reads.
    ASSERT_EQ(fcntl(quiet->a.get(), F_SETFL, 0), 0);
    char c;
    errno = 0;
    EXPECT_EQ(recv(quiet->a.get(), &c, 1, 0), -1);
    EXPECT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK)
        << "round " << round << ": " << std::strerror(errno);
  }
}

}  // namespace
}  // namespace mill
