// Integration test: runs the real file_watcher binary and checks its output
// as a user would see it.
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
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

TEST_F(FileWatcherTest, WatchesSeveralRoots) {
  const std::string one = MakeTempDir();
  const std::string two = MakeTempDir();
  StartWatching({one, two});
  WriteFile(one + "/x", "");
  EXPECT_EQ(Next(), "created " + one + "/x");
  WriteFile(two + "/y", "");
  EXPECT_EQ(Next(), "created " + two + "/y");
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
