// Subprocess on every platform (fork/exec on POSIX, CreateProcessW under
// Wine): arguments reach the child intact, stdout and stderr lines, exit
// codes, SIGKILL, Wait's timeout.
#include "examples/testing/subprocess.h"

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"

namespace mill::testing {
namespace {

constexpr char kChild[] = "examples/testing/subprocess_test_child";

TEST(SubprocessTest, ArgumentsArriveIntact) {
  const std::vector<std::string> args = {
      "plain",           "with space",  "",
      "quote\"inside",   "back\\slash", "trailing\\",
      "\\\"mixed\\\\\"", "tab\there"};
  std::vector<std::string> argv = {RunfilePath(kChild), "args"};
  argv.insert(argv.end(), args.begin(), args.end());
  absl::StatusOr<Subprocess> p = Subprocess::Start(argv);
  ASSERT_TRUE(p.ok()) << p.status();
  for (const std::string& arg : args) {
    EXPECT_EQ(p->ReadStdoutLine(std::chrono::seconds(20)), "[" + arg + "]");
  }
  EXPECT_EQ(p->ReadStdoutLine(std::chrono::seconds(20)), std::nullopt);
  const std::optional<int> status = p->Wait(std::chrono::seconds(20));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(ExitCode(*status), 0);
}

TEST(SubprocessTest, ExitCodeAndStderr) {
  absl::StatusOr<Subprocess> p =
      Subprocess::Start({RunfilePath(kChild), "exit", "3"});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->ReadStderrLine(std::chrono::seconds(20)), "to stderr");
  const std::optional<int> status = p->Wait(std::chrono::seconds(20));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(ExitCode(*status), 3);
}

TEST(SubprocessTest, KillEndsAProcessThatWaitWouldNotSeeEnd) {
  absl::StatusOr<Subprocess> p =
      Subprocess::Start({RunfilePath(kChild), "sleep"});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->ReadStdoutLine(std::chrono::seconds(20)), "sleeping");
  EXPECT_EQ(p->Wait(std::chrono::milliseconds(100)), std::nullopt);
  ASSERT_TRUE(p->Signal(9));  // SIGKILL; TerminateProcess on Windows.
  const std::optional<int> status = p->Wait(std::chrono::seconds(20));
  ASSERT_TRUE(status.has_value());
  // Killed by a signal (POSIX), or terminated with 137 (Windows).
  EXPECT_NE(ExitCode(*status), 0);
}

TEST(SubprocessTest, AMissingProgramIsAnErrorOrExits127) {
  absl::StatusOr<Subprocess> p =
      Subprocess::Start({RunfilePath("examples/testing/no_such_program")});
  if (!p.ok()) return;  // Windows: CreateProcessW fails.
  // POSIX: the forked child's exec fails.
  const std::optional<int> status = p->Wait(std::chrono::seconds(20));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(ExitCode(*status), 127);
}

}  // namespace
}  // namespace mill::testing
