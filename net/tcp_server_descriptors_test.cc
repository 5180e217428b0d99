// TcpServer and descriptors (POSIX: /proc/self/fd and RLIMIT_NOFILE): no
// descriptor leaks, and running out of descriptors neither spins nor stops
// the server for good.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "net/testing/server_fixture.h"

namespace mill {
namespace net_testing {
namespace {

// The descriptors open in this process.
inline int CountOpenFds() {
  int n = 0;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(dir);
  return n - 1;  // the directory's own descriptor
}

// The RLIMIT_NOFILE value under which exactly `free` descriptor numbers are
// unused: the process runs out after `free` more descriptors. Counts the
// holes below the highest open descriptor too (a test runner may hand the
// process a descriptor numbered 250 and little below it).
inline int FdLimitLeavingFree(int free) {
  int limit = 0;
  for (int left = free; left > 0; ++limit) {
    if (fcntl(limit, F_GETFD) == -1 && errno == EBADF) --left;
  }
  return limit;
}

// Puts RLIMIT_NOFILE back when it goes, even when an assertion returns
// early.
struct RestoreFdLimit {
  rlimit limit;
  ~RestoreFdLimit() { setrlimit(RLIMIT_NOFILE, &limit); }
};

// The descriptors open on /dev/null.
std::vector<int> DevNullDescriptors() {
  std::vector<int> fds;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return fds;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    char target[64] = {};
    const std::string link = std::string("/proc/self/fd/") + e->d_name;
    if (readlink(link.c_str(), target, sizeof(target) - 1) > 0 &&
        std::string(target) == "/dev/null") {
      fds.push_back(std::atoi(e->d_name));
    }
  }
  closedir(dir);
  return fds;
}

INSTANTIATE_TEST_SUITE_P(
    Modes, TcpServerTest,
    ::testing::Values(DispatchMode::kPool, DispatchMode::kDirect),
    [](const ::testing::TestParamInfo<DispatchMode>& info) {
      return info.param == DispatchMode::kPool ? "Pool" : "Direct";
    });

TEST_P(TcpServerTest, NoDescriptorLeaks) {
  const int before = CountOpenFds();
  ASSERT_GT(before, 0);
  Start();
  {
    std::vector<TestClient> clients;
    for (int i = 0; i < 50; ++i) clients.push_back(Connect());
    for (int i = 0; i < 50; ++i) {
      ASSERT_TRUE(clients[i].SendAll("x").ok());
      ASSERT_EQ(clients[i].RecvExactly(1), "x");
    }
    // Half of them close themselves (some with a reset), the rest are
    // closed by the server's destruction.
    for (int i = 0; i < 25; ++i) {
      if (i % 2) {
        clients[i].Reset();
      } else {
        clients[i].Close();
      }
    }
    ASSERT_TRUE(closes_.WaitForCount(25));
    server_.reset();
  }
  {
    std::lock_guard<std::mutex> lock(conns_mu_);
    conns_.clear();
  }
  EXPECT_EQ(closes_.size(), 50u);
  EXPECT_EQ(CountOpenFds(), before);
}

TEST_P(TcpServerTest, DescriptorExhaustionDoesNotSpinAndRecovers) {
  Start();
  rlimit saved;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  RestoreFdLimit restore{saved};
  // Spare descriptors to hand back one at a time once we are out.
  std::vector<int> spares;
  for (int i = 0; i < 3; ++i) {
    spares.push_back(open("/dev/null", O_RDONLY | O_CLOEXEC));
    ASSERT_GE(spares.back(), 0);
  }
  // Leave a few free descriptor numbers, counting the holes below the
  // highest one in use (ctest, unlike Bazel, hands its tests a descriptor
  // numbered in the hundreds).
  rlimit low = saved;
  low.rlim_cur = FdLimitLeavingFree(6);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);

  std::vector<int> fds;
  auto open_client = [&]() -> int {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    sockaddr_in sin = {};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port_);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) != 0) {
      close(fd);
      return -1000;
    }
    fds.push_back(fd);
    return fd;
  };
  bool exhausted = false;
  for (int i = 0; i < 100; ++i) {
    const TcpServerStats before = server_->stats();
    const int fd = open_client();
    if (fd == -EMFILE) {
      exhausted = true;
      break;
    }
    ASSERT_GE(fd, 0);
    // Let the server take it (accept or shed) before the next one.
    WaitFor(
        [&] {
          const TcpServerStats s = server_->stats();
          return s.accepted + s.refused_no_descriptor >
                 before.accepted + before.refused_no_descriptor;
        },
        absl::Seconds(2));
  }
  ASSERT_TRUE(exhausted);
  // Each freed descriptor lets a client connect while the server has none
  // left to accept with. (The server may win a freed descriptor back for
  // its spare; then the next one serves.)
  for (int spare : spares) {
    close(spare);
    if (server_->stats().refused_no_descriptor >= 1) continue;
    (void)open_client();
    WaitFor([&] { return server_->stats().refused_no_descriptor >= 1; },
            absl::Seconds(1));
  }
  const uint64_t shed = server_->stats().refused_no_descriptor;
  EXPECT_GE(shed, 1u);
  EXPECT_EQ(server_->stats().accept_errors, 0u);
  // Every shed connection was closed promptly (EOF for its client); the
  // accepted ones stay open and silent.
  auto closed_clients = [&] {
    uint64_t n = 0;
    for (int fd : fds) {
      pollfd pfd = {fd, POLLIN, 0};
      if (poll(&pfd, 1, 0) == 1) {
        char c;
        n += recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK) <= 0;
      }
    }
    return n;
  };
  EXPECT_TRUE(
      WaitFor([&] { return closed_clients() == shed; }, absl::Seconds(2)))
      << closed_clients() << " vs " << shed;

  // No busy loop while out of descriptors.
  rusage r0, r1;
  getrusage(RUSAGE_SELF, &r0);
  absl::SleepFor(absl::Milliseconds(300));
  getrusage(RUSAGE_SELF, &r1);
  const absl::Duration cpu = absl::DurationFromTimeval(r1.ru_utime) -
                             absl::DurationFromTimeval(r0.ru_utime) +
                             absl::DurationFromTimeval(r1.ru_stime) -
                             absl::DurationFromTimeval(r0.ru_stime);
  EXPECT_LT(cpu, absl::Milliseconds(100)) << "server spins without fds";

  // Free the descriptors: accepting works again.
  for (int fd : fds) close(fd);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  ASSERT_TRUE(WaitFor([&] { return server_->connection_count() == 0; }));
  TestClient client = Connect();
  ASSERT_TRUE(client.SendAll("back").ok());
  EXPECT_EQ(client.RecvExactly(4), "back");
}

// Opens /dev/null whenever descriptor `reserve` is closed, keeping what it
// gets, from `armed` until `stop`.
struct Thief {
  int reserve = -1;
  std::atomic<bool> stop{false};
  std::atomic<bool> armed{false};
  std::atomic<uint64_t> attempts{0};
  std::vector<int> stolen;

  static void* Run(void* arg) {
    Thief& t = *static_cast<Thief*>(arg);
    t.attempts.fetch_add(1);
    while (!t.armed.load() && !t.stop.load()) {
    }
    while (!t.stop.load(std::memory_order_relaxed)) {
      if (fcntl(t.reserve, F_GETFD) == -1 && errno == EBADF) {
        const int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) t.stolen.push_back(fd);
      }
      t.attempts.fetch_add(1, std::memory_order_relaxed);
    }
    return nullptr;
  }
};

// accept(2) fails with EMFILE before it looks at the queue, so a server
// that just took the last descriptor sees EMFILE with nobody waiting. It
// must not spend its spare descriptor then: each close-and-reopen of the
// spare is a window in which another thread of the process takes the
// number, and with the spare gone the server can never shed again. A
// thread here grabs every descriptor that comes free while the server
// meets that EMFILE; afterwards the spare must still be the server's, and
// the next client is shed with it.
TEST_P(TcpServerTest, SpareDescriptorIsKeptWhenNobodyWaits) {
  const std::vector<int> null_before = DevNullDescriptors();
  Start();
  // The server's spare is the /dev/null descriptor Start opened.
  int reserve = -1;
  for (int fd : DevNullDescriptors()) {
    if (std::find(null_before.begin(), null_before.end(), fd) ==
        null_before.end()) {
      reserve = fd;
    }
  }
  ASSERT_GE(reserve, 0);
  // One connection served while descriptors are plenty: a sanitizer's
  // first check of a type (the connection's, its handler's) needs a pipe.
  {
    TestClient warm_up = Connect();
    ASSERT_TRUE(warm_up.SendAll("w").ok());
    ASSERT_EQ(warm_up.RecvExactly(1), "w");
  }
  ASSERT_TRUE(WaitFor([&] { return server_->connection_count() == 0; }));
  rlimit saved;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  RestoreFdLimit restore{saved};
  const int spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(spare, 0);

  // Takes the spare's number whenever the server lets go of it: a plain
  // pthread, since a sanitizer's check of a std::thread's state (a virtual
  // call at its start and end) needs a pipe, which it cannot have while
  // descriptors are out.
  Thief thief;
  thief.reserve = reserve;
  pthread_t thief_thread;
  ASSERT_EQ(pthread_create(&thief_thread, nullptr, &Thief::Run, &thief), 0);
  WaitFor([&] { return thief.attempts.load() > 0; });
  // Two free numbers: the client's socket and the server's accepted one.
  rlimit low = saved;
  low.rlim_cur = FdLimitLeavingFree(2);
  if (setrlimit(RLIMIT_NOFILE, &low) != 0) thief.stop = true;
  thief.armed = true;
  const int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sin = {};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port_);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool connected =
      client >= 0 &&
      connect(client, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) == 0;
  // The server accepts it with the last number, then meets EMFILE at once
  // (same handler); the thief keeps trying well past that.
  const bool accepted =
      connected && WaitFor([&] { return server_->stats().accepted == 2; });
  const uint64_t seen = thief.attempts.load();
  WaitFor([&] { return thief.attempts.load() > seen + 50000; });
  thief.stop = true;
  pthread_join(thief_thread, nullptr);
  ASSERT_TRUE(connected);
  ASSERT_TRUE(accepted);
  EXPECT_TRUE(thief.stolen.empty())
      << "the server let go of its spare descriptor " << thief.stolen.size()
      << " time(s)";
  for (int fd : thief.stolen) close(fd);

  // A waiting client is shed with the spare.
  close(spare);
  const int second = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(second, 0);
  ASSERT_EQ(connect(second, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)), 0);
  EXPECT_TRUE(
      WaitFor([&] { return server_->stats().refused_no_descriptor == 1; }));
  char c;
  pollfd pfd = {second, POLLIN, 0};
  EXPECT_EQ(poll(&pfd, 1, 5000), 1);
  EXPECT_LE(recv(second, &c, 1, MSG_DONTWAIT), 0);  // EOF or reset
  close(second);
  close(client);
}

}  // namespace
}  // namespace net_testing
}  // namespace mill
