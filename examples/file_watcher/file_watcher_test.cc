// Integration test: runs the real file_watcher binary and checks its output
// as a user would see it.
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "examples/testing/subprocess.h"
#include "gtest/gtest.h"

namespace mill {
namespace {

using std::chrono::milliseconds;
using testing::RunfilePath;
using testing::Subprocess;

std::string MakeTempDir() {
  std::string pattern =
      std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp") +
      "/fwXXXXXX";
  char* made = mkdtemp(pattern.data());
  EXPECT_NE(made, nullptr);
  return pattern;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

// Waits (up to 10 s) until process `pid` is stopped (state T).
bool WaitUntilStopped(pid_t pid) {
  for (int i = 0; i < 1000; ++i) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(f)),
                     std::istreambuf_iterator<char>());
    const size_t paren = stat.rfind(')');
    if (paren != std::string::npos && paren + 2 < stat.size() &&
        stat[paren + 2] == 'T') {
      return true;
    }
    usleep(10000);
  }
  return false;
}

class FileWatcherTest : public ::testing::Test {
 protected:
  void StartWatching(std::vector<std::string> dirs) {
    std::vector<std::string> argv = {
        RunfilePath("examples/file_watcher/file_watcher")};
    argv.insert(argv.end(), dirs.begin(), dirs.end());
    auto started = Subprocess::Start(argv);
    ASSERT_TRUE(started.ok()) << started.status();
    process_.emplace(std::move(*started));
    std::optional<std::string> ready =
        process_->ReadStderrLine(milliseconds(10000));
    ASSERT_TRUE(ready.has_value());
    ASSERT_EQ(ready->rfind("watching ", 0), 0u) << *ready;
  }
  // Next stdout line, or "<timeout>".
  std::string Next() {
    return process_->ReadStdoutLine(milliseconds(5000)).value_or("<timeout>");
  }
  std::optional<Subprocess> process_;
};

TEST_F(FileWatcherTest, ReportsCreateModifyMoveDeleteAndExitsCleanly) {
  const std::string dir = MakeTempDir();
  StartWatching({dir});
  WriteFile(dir + "/a.txt", "");
  EXPECT_EQ(Next(), "created " + dir + "/a.txt");
  {
    std::ofstream out(dir + "/a.txt", std::ios::app);
    out << "hello";
  }
  EXPECT_EQ(Next(), "modified " + dir + "/a.txt");
  ASSERT_EQ(rename((dir + "/a.txt").c_str(), (dir + "/b.txt").c_str()), 0);
  EXPECT_EQ(Next(), "moved " + dir + "/a.txt -> " + dir + "/b.txt");
  ASSERT_EQ(unlink((dir + "/b.txt").c_str()), 0);
  EXPECT_EQ(Next(), "deleted " + dir + "/b.txt");

  ASSERT_TRUE(process_->Signal(SIGTERM));
  std::optional<int> status = process_->Wait(milliseconds(10000));
  ASSERT_TRUE(status.has_value());
  ASSERT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0);
}

TEST_F(FileWatcherTest, WatchesSubdirectoriesCreatedLater) {
  const std::string dir = MakeTempDir();
  StartWatching({dir});
  ASSERT_EQ(mkdir((dir + "/sub").c_str(), 0755), 0);
  EXPECT_EQ(Next(), "created " + dir + "/sub");
  // Let the watcher add the new directory, then create inside it.
  WriteFile(dir + "/sub/inner.txt", "");
  EXPECT_EQ(Next(), "created " + dir + "/sub/inner.txt");
  ASSERT_EQ(unlink((dir + "/sub/inner.txt").c_str()), 0);
  EXPECT_EQ(Next(), "deleted " + dir + "/sub/inner.txt");
  ASSERT_TRUE(process_->Signal(SIGINT));
  std::optional<int> status = process_->Wait(milliseconds(10000));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
}

// IN_Q_OVERFLOW is reported as a line, and the watcher carries on. The
// kernel queue is overrun for real: the watcher is stopped (SIGSTOP) while
// more events than fs.inotify.max_queued_events happen, then continued.
TEST_F(FileWatcherTest, QueueOverflowIsReportedAndWatchingGoesOn) {
  long max_queued = 0;
  {
    std::ifstream in("/proc/sys/fs/inotify/max_queued_events");
    in >> max_queued;
  }
  if (max_queued <= 0 || max_queued > 1 << 20) {
    GTEST_SKIP() << "fs.inotify.max_queued_events=" << max_queued;
  }
  const std::string dir = MakeTempDir();
  StartWatching({dir});
  WriteFile(dir + "/f", "");
  EXPECT_EQ(Next(), "created " + dir + "/f");
  ASSERT_TRUE(process_->Signal(SIGSTOP));
  ASSERT_TRUE(WaitUntilStopped(process_->pid()));
  // Each rename queues two records the kernel cannot merge.
  const long renames = max_queued / 2 + 64;
  for (long i = 0; i < renames; ++i) {
    const std::string from = dir + (i % 2 == 0 ? "/f" : "/g");
    const std::string to = dir + (i % 2 == 0 ? "/g" : "/f");
    ASSERT_EQ(rename(from.c_str(), to.c_str()), 0);
  }
  // Created after the queue filled: only the watcher's rescan can find it.
  ASSERT_EQ(mkdir((dir + "/late").c_str(), 0755), 0);
  ASSERT_TRUE(process_->Signal(SIGCONT));
  const std::set<std::string> renames_seen = {
      "moved " + dir + "/f -> " + dir + "/g",
      "moved " + dir + "/g -> " + dir + "/f",
      // A rename cut in half by the overflow.
      "deleted " + dir + "/f", "deleted " + dir + "/g"};
  long moves = 0;
  for (;;) {
    std::optional<std::string> line =
        process_->ReadStdoutLine(milliseconds(30000));
    ASSERT_TRUE(line.has_value())
        << "no overflow line after " << moves << " moves";
    if (*line == "overflow: events lost") break;
    ASSERT_EQ(renames_seen.count(*line), 1u) << *line;
    if (line->rfind("moved ", 0) == 0) ++moves;
  }
  // The queue held max_queued records: every complete pair before the
  // overflow was reported.
  EXPECT_GE(moves, max_queued / 2 - 1);
  EXPECT_LT(moves, renames);
  // Still watching, including the directory found by the rescan.
  WriteFile(dir + "/late/x", "");
  EXPECT_EQ(Next(), "created " + dir + "/late/x");
  ASSERT_TRUE(process_->Signal(SIGTERM));
  std::optional<int> status = process_->Wait(milliseconds(10000));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
}

TEST_F(FileWatcherTest, WatchesSeveralRoots) {
  const std::string one = MakeTempDir();
  const std::string two = MakeTempDir();
  StartWatching({one, two});
  WriteFile(one + "/x", "");
  EXPECT_EQ(Next(), "created " + one + "/x");
  WriteFile(two + "/y", "");
  EXPECT_EQ(Next(), "created " + two + "/y");
}

// Regression (issue 11, 1.4): the loop was destroyed while StopOnSignals
// still pointed at it, so a SIGTERM arriving during exit called Stop() on
// freed memory (a heap-use-after-free report and exit status 1 under ASan).
// Here SIGTERM is sent back to back from the first one until the process has
// exited, over several runs: every run must exit with status 0.
TEST(FileWatcherSignals, SignalsArrivingDuringExitAreHarmless) {
  const std::string dir = MakeTempDir();
  constexpr int kRuns = 10;
  for (int run = 0; run < kRuns; ++run) {
    auto started = Subprocess::Start(
        {RunfilePath("examples/file_watcher/file_watcher"), dir});
    ASSERT_TRUE(started.ok()) << started.status();
    std::optional<std::string> ready =
        started->ReadStderrLine(milliseconds(10000));
    ASSERT_TRUE(ready.has_value());
    ASSERT_EQ(ready->rfind("watching ", 0), 0u) << *ready;
    const pid_t pid = started->pid();
    long sent = 0;
    for (;;) {
      ASSERT_EQ(kill(pid, SIGTERM), 0);  // A zombie still accepts it.
      ++sent;
      siginfo_t info = {};
      // WNOWAIT: leave the child unreaped, so its pid cannot be reused while
      // signals are still being sent to it.
      ASSERT_EQ(waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT), 0);
      if (info.si_pid == pid) break;
    }
    std::optional<int> status = started->Wait(milliseconds(10000));
    ASSERT_TRUE(status.has_value());
    std::string diagnostics;
    while (std::optional<std::string> line =
               started->ReadStderrLine(milliseconds(100))) {
      diagnostics += *line + "\n";
    }
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
        << "run " << run << " after " << sent << " signals: wait status "
        << *status << "\n"
        << diagnostics;
  }
}

TEST(FileWatcherErrors, MissingDirectoryIsAClearError) {
  auto started = Subprocess::Start(
      {RunfilePath("examples/file_watcher/file_watcher"), "/no/such/dir"});
  ASSERT_TRUE(started.ok());
  std::optional<std::string> message =
      started->ReadStderrLine(milliseconds(10000));
  ASSERT_TRUE(message.has_value());
  EXPECT_NE(message->find("/no/such/dir"), std::string::npos) << *message;
  std::optional<int> status = started->Wait(milliseconds(10000));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_NE(WEXITSTATUS(*status), 0);
}

TEST(FileWatcherErrors, NoArgumentsPrintsUsage) {
  auto started =
      Subprocess::Start({RunfilePath("examples/file_watcher/file_watcher")});
  ASSERT_TRUE(started.ok());
  std::optional<std::string> message =
      started->ReadStderrLine(milliseconds(10000));
  ASSERT_TRUE(message.has_value());
  EXPECT_NE(message->find("usage"), std::string::npos) << *message;
  std::optional<int> status = started->Wait(milliseconds(10000));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(WEXITSTATUS(*status), 2);
}

}  // namespace
}  // namespace mill
