#include "examples/file_watcher/inotify_watcher.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mill {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using Kind = WatchEvent::Kind;

// --- File system helpers: plain syscalls, so the events are predictable. ---

void Touch(const std::string& path) {
  const int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << path << ": " << strerror(errno);
  close(fd);
}

void Write(const std::string& path, const std::string& data,
           int flags = O_CREAT | O_WRONLY | O_TRUNC) {
  const int fd = open(path.c_str(), flags | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << path << ": " << strerror(errno);
  ASSERT_EQ(write(fd, data.data(), data.size()),
            static_cast<ssize_t>(data.size()));
  close(fd);
}

void MkDir(const std::string& path) {
  ASSERT_EQ(mkdir(path.c_str(), 0755), 0) << path << ": " << strerror(errno);
}

void Rename(const std::string& from, const std::string& to) {
  ASSERT_EQ(rename(from.c_str(), to.c_str()), 0)
      << from << " -> " << to << ": " << strerror(errno);
}

void Unlink(const std::string& path) {
  ASSERT_EQ(unlink(path.c_str()), 0) << path << ": " << strerror(errno);
}

void RmDir(const std::string& path) {
  ASSERT_EQ(rmdir(path.c_str()), 0) << path << ": " << strerror(errno);
}

class InotifyWatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    std::string templ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/wXXXXXX");
    ASSERT_NE(mkdtemp(templ.data()), nullptr) << strerror(errno);
    top_ = templ;
    root_ = top_ + "/root";
    outside_ = top_ + "/outside";
    MkDir(root_);
    MkDir(outside_);
    absl::StatusOr<std::unique_ptr<InotifyWatcher>> watcher =
        InotifyWatcher::Create();
    ASSERT_TRUE(watcher.ok()) << watcher.status();
    watcher_ = std::move(*watcher);
  }

  void TearDown() override {
    watcher_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(top_, ignored);
  }

  std::string R(const std::string& rel) const { return root_ + "/" + rel; }
  std::string O(const std::string& rel) const { return outside_ + "/" + rel; }

  void WatchRoot() {
    absl::Status status = watcher_->AddRecursive(root_);
    ASSERT_TRUE(status.ok()) << status;
  }

  // Reads events once (the fd must be readable) and appends their lines.
  void ReadInto(std::vector<std::string>* lines) {
    std::vector<WatchEvent> events;
    absl::Status status = watcher_->ReadEvents(&events, budget_);
    EXPECT_TRUE(status.ok()) << status;
    for (const WatchEvent& e : events) lines->push_back(e.ToLine());
  }

  // Waits up to 2 s, polling the watcher's fd, until `done` holds for the
  // lines collected so far; then keeps reading until the fd stays quiet for
  // 50 ms, so unexpected extra lines show up in the result.
  std::vector<std::string> CollectUntil(
      const std::function<bool(const std::vector<std::string>&)>& done) {
    std::vector<std::string> lines;
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(2);
    pollfd pfd{watcher_->fd(), POLLIN, 0};
    while (!done(lines)) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      const int ready = poll(&pfd, 1, static_cast<int>(left.count()));
      if (ready > 0) ReadInto(&lines);
    }
    while (poll(&pfd, 1, 50) > 0) ReadInto(&lines);
    return lines;
  }

  // Collects until at least `want` lines arrived (see CollectUntil).
  std::vector<std::string> Collect(size_t want) {
    return CollectUntil([want](const std::vector<std::string>& lines) {
      return lines.size() >= want;
    });
  }

  // The concurrent-creates scenario (see the tests that call it).
  void ConcurrentCreatesInNewDirectories();

  std::string top_;
  std::string root_;
  std::string outside_;
  std::unique_ptr<InotifyWatcher> watcher_;
  size_t budget_ = InotifyWatcher::kDefaultReadBudget;  // Per ReadEvents.
};

// True if `fd` is readable right now.
bool Readable(int fd) {
  pollfd pfd{fd, POLLIN, 0};
  return poll(&pfd, 1, 0) > 0;
}

// --- WatchEvent ---

TEST(WatchEventTest, ToLineFormats) {
  EXPECT_EQ((WatchEvent{Kind::kCreated, "d/f", "", false}).ToLine(),
            "created d/f");
  EXPECT_EQ((WatchEvent{Kind::kModified, "d/f", "", false}).ToLine(),
            "modified d/f");
  EXPECT_EQ((WatchEvent{Kind::kDeleted, "/abs/x y", "", false}).ToLine(),
            "deleted /abs/x y");
  EXPECT_EQ((WatchEvent{Kind::kMoved, "d/a", "e/b", false}).ToLine(),
            "moved d/a -> e/b");
  EXPECT_EQ((WatchEvent{Kind::kOverflow, "", "", false}).ToLine(),
            "overflow: events lost");
  // is_dir is informational and does not change the line.
  EXPECT_EQ((WatchEvent{Kind::kCreated, "d/sub", "", true}).ToLine(),
            "created d/sub");
}

TEST(WatchEventTest, EqualityComparesAllFields) {
  const WatchEvent a{Kind::kMoved, "a", "b", false};
  EXPECT_EQ(a, (WatchEvent{Kind::kMoved, "a", "b", false}));
  EXPECT_NE(a, (WatchEvent{Kind::kMoved, "a", "c", false}));
  EXPECT_NE(a, (WatchEvent{Kind::kMoved, "a", "b", true}));
  EXPECT_NE(a, (WatchEvent{Kind::kDeleted, "a", "b", false}));
}

// --- Lifecycle ---

TEST_F(InotifyWatcherTest, CreateGivesNonBlockingCloexecFdAndNoEvents) {
  const int fd = watcher_->fd();
  ASSERT_GE(fd, 0);
  EXPECT_NE(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
  EXPECT_NE(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_EQ(watcher_->watch_count(), 0u);
  std::vector<WatchEvent> events;
  EXPECT_TRUE(watcher_->ReadEvents(&events).ok());
  EXPECT_THAT(events, IsEmpty());
}

TEST_F(InotifyWatcherTest, DestructorClosesFd) {
  const int fd = watcher_->fd();
  watcher_.reset();
  errno = 0;
  EXPECT_EQ(fcntl(fd, F_GETFD), -1);
  EXPECT_EQ(errno, EBADF);
}

TEST_F(InotifyWatcherTest, AddRecursiveWatchesExistingTreeSilently) {
  MkDir(R("a"));
  MkDir(R("a/b"));
  MkDir(R("c"));
  Touch(R("f"));
  WatchRoot();
  EXPECT_EQ(watcher_->watch_count(), 4u);
  EXPECT_THAT(watcher_->WatchedPaths(),
              ElementsAre(root_, R("a"), R("a/b"), R("c")));
  EXPECT_THAT(Collect(0), IsEmpty());
  Touch(R("a/b/g"));
  EXPECT_THAT(Collect(1), ElementsAre("created " + R("a/b/g")));
}

TEST_F(InotifyWatcherTest, AddingTheSameTreeTwiceIsHarmless) {
  MkDir(R("a"));
  WatchRoot();
  WatchRoot();
  EXPECT_EQ(watcher_->watch_count(), 2u);
  Touch(R("a/f"));
  EXPECT_THAT(Collect(1), ElementsAre("created " + R("a/f")));
}

// --- Files ---

TEST_F(InotifyWatcherTest, CreateEmptyFile) {
  WatchRoot();
  Touch(R("f"));
  EXPECT_THAT(Collect(1), ElementsAre("created " + R("f")));
}

TEST_F(InotifyWatcherTest, CreateFileWithContentIsCreatedThenModified) {
  WatchRoot();
  Write(R("f"), "hello");
  EXPECT_THAT(Collect(2),
              ElementsAre("created " + R("f"), "modified " + R("f")));
}

TEST_F(InotifyWatcherTest, WriteBurstIsOneModifiedLine) {
  Write(R("f"), "x");
  WatchRoot();
  const int fd = open(R("f").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  for (int i = 0; i < 5; ++i) ASSERT_EQ(write(fd, "y", 1), 1);
  close(fd);
  EXPECT_THAT(Collect(1), ElementsAre("modified " + R("f")));
  // A later burst is a new line.
  Write(R("f"), "z", O_WRONLY | O_APPEND);
  EXPECT_THAT(Collect(1), ElementsAre("modified " + R("f")));
}

TEST_F(InotifyWatcherTest, InterleavedWritesAreNotMerged) {
  Write(R("f"), "x");
  Write(R("g"), "x");
  WatchRoot();
  Write(R("f"), "1", O_WRONLY | O_APPEND);
  Write(R("g"), "2", O_WRONLY | O_APPEND);
  Write(R("f"), "3", O_WRONLY | O_APPEND);
  EXPECT_THAT(Collect(3),
              ElementsAre("modified " + R("f"), "modified " + R("g"),
                          "modified " + R("f")));
}

TEST_F(InotifyWatcherTest, TruncateIsModified) {
  Write(R("f"), "content");
  WatchRoot();
  ASSERT_EQ(truncate(R("f").c_str(), 0), 0);
  EXPECT_THAT(Collect(1), ElementsAre("modified " + R("f")));
}

TEST_F(InotifyWatcherTest, DeleteFile) {
  Touch(R("f"));
  WatchRoot();
  Unlink(R("f"));
  EXPECT_THAT(Collect(1), ElementsAre("deleted " + R("f")));
}

TEST_F(InotifyWatcherTest, AttributeChangesAreNotReported) {
  Write(R("f"), "x");
  WatchRoot();
  ASSERT_EQ(chmod(R("f").c_str(), 0600), 0);
  ASSERT_EQ(utimes(R("f").c_str(), nullptr), 0);
  ASSERT_EQ(chmod(root_.c_str(), 0700), 0);
  EXPECT_THAT(Collect(0), IsEmpty());
}

// --- Moves ---

TEST_F(InotifyWatcherTest, RenameWithinDirectoryIsOneMovedLine) {
  Touch(R("f"));
  WatchRoot();
  Rename(R("f"), R("g"));
  EXPECT_THAT(Collect(1), ElementsAre("moved " + R("f") + " -> " + R("g")));
}

TEST_F(InotifyWatcherTest, RenameAcrossSubdirectoriesIsOneMovedLine) {
  MkDir(R("a"));
  MkDir(R("b"));
  Touch(R("a/f"));
  WatchRoot();
  Rename(R("a/f"), R("b/f"));
  EXPECT_THAT(Collect(1), ElementsAre("moved " + R("a/f") + " -> " + R("b/f")));
}

TEST_F(InotifyWatcherTest, RenameOverExistingFileIsMoved) {
  Touch(R("f"));
  Touch(R("g"));
  WatchRoot();
  Rename(R("f"), R("g"));
  EXPECT_THAT(Collect(1), ElementsAre("moved " + R("f") + " -> " + R("g")));
}

TEST_F(InotifyWatcherTest, MoveOutIsDeleted) {
  Touch(R("f"));
  WatchRoot();
  Rename(R("f"), O("f"));
  EXPECT_THAT(Collect(1), ElementsAre("deleted " + R("f")));
}

TEST_F(InotifyWatcherTest, MoveInIsCreated) {
  Touch(O("f"));
  WatchRoot();
  Rename(O("f"), R("f"));
  EXPECT_THAT(Collect(1), ElementsAre("created " + R("f")));
}

TEST_F(InotifyWatcherTest, MovedOutDirectoryIsNoLongerWatched) {
  MkDir(R("sub"));
  MkDir(R("sub/inner"));
  WatchRoot();
  ASSERT_EQ(watcher_->watch_count(), 3u);
  Rename(R("sub"), O("sub"));
  EXPECT_THAT(Collect(1), ElementsAre("deleted " + R("sub")));
  EXPECT_EQ(watcher_->watch_count(), 1u);
  Touch(O("sub/x"));
  Touch(O("sub/inner/y"));
  EXPECT_THAT(Collect(0), IsEmpty());
}

TEST_F(InotifyWatcherTest, MovedInDirectoryIsWatchedAndItsContentReported) {
  MkDir(O("d"));
  MkDir(O("d/e"));
  Touch(O("d/e/g"));
  Touch(O("d/f"));
  WatchRoot();
  Rename(O("d"), R("d"));
  EXPECT_THAT(Collect(4),
              ElementsAre("created " + R("d"), "created " + R("d/e"),
                          "created " + R("d/e/g"), "created " + R("d/f")));
  Touch(R("d/e/h"));
  EXPECT_THAT(Collect(1), ElementsAre("created " + R("d/e/h")));
}

TEST_F(InotifyWatcherTest, MovesBetweenTwoRootsArePaired) {
  Touch(R("f"));
  WatchRoot();
  ASSERT_TRUE(watcher_->AddRecursive(outside_).ok());
  Rename(R("f"), O("f"));
  EXPECT_THAT(Collect(1), ElementsAre("moved " + R("f") + " -> " + O("f")));
}

// --- Directories ---

TEST_F(InotifyWatcherTest, SubdirectoryThenFileInside) {
  WatchRoot();
  MkDir(R("sub"));
  EXPECT_THAT(Collect(1), ElementsAre("created " + R("sub")));
  Touch(R("sub/f"));
  EXPECT_THAT(Collect(1), ElementsAre("created " + R("sub/f")));
}

TEST_F(InotifyWatcherTest, FilesCreatedRightAfterMkdirAreReportedOnce) {
  WatchRoot();
  // Everything happens before the watcher learns about "sub": only the scan
  // after adding its watch can find the files.
  MkDir(R("sub"));
  Touch(R("sub/f"));
  Write(R("sub/g"), "content");
  EXPECT_THAT(Collect(3),
              ElementsAre("created " + R("sub"), "created " + R("sub/f"),
                          "created " + R("sub/g")));
  EXPECT_EQ(watcher_->watch_count(), 2u);
}

TEST_F(InotifyWatcherTest, NestedMkdirPThenFilesInside) {
  WatchRoot();
  MkDir(R("a"));
  MkDir(R("a/b"));
  MkDir(R("a/b/c"));
  EXPECT_THAT(Collect(3),
              ElementsAre("created " + R("a"), "created " + R("a/b"),
                          "created " + R("a/b/c")));
  EXPECT_THAT(watcher_->WatchedPaths(),
              ElementsAre(root_, R("a"), R("a/b"), R("a/b/c")));
  Touch(R("a/b/c/f1"));
  Touch(R("a/b/c/f2"));
  EXPECT_THAT(Collect(2), ElementsAre("created " + R("a/b/c/f1"),
                                      "created " + R("a/b/c/f2")));
}

TEST_F(InotifyWatcherTest, NestedMkdirPWithFileBeforeTheFirstRead) {
  WatchRoot();
  std::filesystem::create_directories(R("a/b/c"));
  Touch(R("a/b/c/f"));
  EXPECT_THAT(Collect(4),
              ElementsAre("created " + R("a"), "created " + R("a/b"),
                          "created " + R("a/b/c"), "created " + R("a/b/c/f")));
  Touch(R("a/b/c/g"));
  EXPECT_THAT(Collect(1), ElementsAre("created " + R("a/b/c/g")));
}

TEST_F(InotifyWatcherTest, RenamedSubdirectoryKeepsBeingWatchedUnderNewPath) {
  MkDir(R("sub"));
  MkDir(R("sub/inner"));
  WatchRoot();
  Rename(R("sub"), R("renamed"));
  EXPECT_THAT(Collect(1),
              ElementsAre("moved " + R("sub") + " -> " + R("renamed")));
  EXPECT_THAT(watcher_->WatchedPaths(),
              ElementsAre(root_, R("renamed"), R("renamed/inner")));
  Touch(R("renamed/f"));
  Touch(R("renamed/inner/g"));
  EXPECT_THAT(Collect(2), ElementsAre("created " + R("renamed/f"),
                                      "created " + R("renamed/inner/g")));
}

TEST_F(InotifyWatcherTest, RenameThenCreateInsideInOneBatch) {
  MkDir(R("sub"));
  WatchRoot();
  Rename(R("sub"), R("new"));
  Touch(R("new/f"));
  EXPECT_THAT(Collect(2), ElementsAre("moved " + R("sub") + " -> " + R("new"),
                                      "created " + R("new/f")));
}

TEST_F(InotifyWatcherTest, RenameIntoDirectoryCreatedInTheSameBatch) {
  Touch(R("f"));
  WatchRoot();
  MkDir(R("new"));
  // "new" is not watched yet, so this rename has no IN_MOVED_TO; the scan of
  // "new" finds the file, and the source is reported gone.
  Rename(R("f"), R("new/f"));
  EXPECT_THAT(Collect(3),
              ElementsAre("created " + R("new"), "created " + R("new/f"),
                          "deleted " + R("f")));
  Touch(R("new/g"));
  EXPECT_THAT(Collect(1), ElementsAre("created " + R("new/g")));
}

TEST_F(InotifyWatcherTest, DeleteSubdirectoryTree) {
  MkDir(R("sub"));
  MkDir(R("sub/deep"));
  Touch(R("sub/deep/h"));
  Touch(R("sub/f"));
  Touch(R("sub/g"));
  WatchRoot();
  ASSERT_EQ(watcher_->watch_count(), 3u);
  Unlink(R("sub/deep/h"));
  RmDir(R("sub/deep"));
  Unlink(R("sub/f"));
  Unlink(R("sub/g"));
  RmDir(R("sub"));
  EXPECT_THAT(Collect(5),
              ElementsAre("deleted " + R("sub/deep/h"),
                          "deleted " + R("sub/deep"), "deleted " + R("sub/f"),
                          "deleted " + R("sub/g"), "deleted " + R("sub")));
  EXPECT_EQ(watcher_->watch_count(), 1u);
}

TEST_F(InotifyWatcherTest, RemoveAllReportsEveryEntryAndTheDirectoryLast) {
  MkDir(R("sub"));
  MkDir(R("sub/deep"));
  Touch(R("sub/deep/h"));
  Touch(R("sub/f"));
  WatchRoot();
  std::filesystem::remove_all(R("sub"));
  std::vector<std::string> lines = Collect(4);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines.back(), "deleted " + R("sub"));
  // The order of siblings depends on readdir; a child always precedes its
  // directory.
  auto pos = [&](const std::string& line) {
    return std::find(lines.begin(), lines.end(), line) - lines.begin();
  };
  EXPECT_LT(pos("deleted " + R("sub/deep/h")), pos("deleted " + R("sub/deep")));
  EXPECT_LT(pos("deleted " + R("sub/f")), 3);
  EXPECT_EQ(watcher_->watch_count(), 1u);
}

TEST_F(InotifyWatcherTest, DeletedRootIsReportedAndForgotten) {
  MkDir(R("sub"));
  WatchRoot();
  RmDir(R("sub"));
  RmDir(root_);
  EXPECT_THAT(Collect(2),
              ElementsAre("deleted " + R("sub"), "deleted " + root_));
  EXPECT_EQ(watcher_->watch_count(), 0u);
}

TEST_F(InotifyWatcherTest, OverlappingRootsReportEachChangeOnce) {
  MkDir(R("a"));
  WatchRoot();
  ASSERT_TRUE(watcher_->AddRecursive(R("a")).ok());
  EXPECT_EQ(watcher_->watch_count(), 2u);
  Touch(R("a/f"));
  Unlink(R("a/f"));
  RmDir(R("a"));
  EXPECT_THAT(Collect(3),
              ElementsAre("created " + R("a/f"), "deleted " + R("a/f"),
                          "deleted " + R("a")));
  EXPECT_EQ(watcher_->watch_count(), 1u);
}

TEST_F(InotifyWatcherTest, SymlinkInsideTreeIsReportedButNotFollowed) {
  WatchRoot();
  ASSERT_EQ(symlink(outside_.c_str(), R("link").c_str()), 0);
  EXPECT_THAT(Collect(1), ElementsAre("created " + R("link")));
  Touch(O("x"));
  EXPECT_THAT(Collect(0), IsEmpty());
  EXPECT_EQ(watcher_->watch_count(), 1u);
}

// --- Paths ---

TEST_F(InotifyWatcherTest, TrailingSlashesOfTheRootAreRemoved) {
  ASSERT_TRUE(watcher_->AddRecursive(root_ + "//").ok());
  EXPECT_THAT(watcher_->WatchedPaths(), ElementsAre(root_));
  Touch(R("f"));
  EXPECT_THAT(Collect(1), ElementsAre("created " + root_ + "/f"));
}

TEST_F(InotifyWatcherTest, RootSymlinkIsFollowedAndPathsKeepTheGivenName) {
  const std::string link = top_ + "/link";
  ASSERT_EQ(symlink(root_.c_str(), link.c_str()), 0);
  ASSERT_TRUE(watcher_->AddRecursive(link).ok());
  Touch(R("f"));
  EXPECT_THAT(Collect(1), ElementsAre("created " + link + "/f"));
}

// --- Errors ---

TEST_F(InotifyWatcherTest, NonExistentDirectoryIsNotFound) {
  const std::string missing = R("missing");
  absl::Status status = watcher_->AddRecursive(missing);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_NE(status.message().find(missing), absl::string_view::npos) << status;
  EXPECT_EQ(watcher_->watch_count(), 0u);
}

TEST_F(InotifyWatcherTest, FileIsNotADirectory) {
  Touch(R("f"));
  absl::Status status = watcher_->AddRecursive(R("f"));
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_NE(status.message().find("Not a directory"), absl::string_view::npos)
      << status;
  EXPECT_EQ(watcher_->watch_count(), 0u);
}

TEST_F(InotifyWatcherTest, EmptyPathIsInvalid) {
  EXPECT_EQ(watcher_->AddRecursive("").code(),
            absl::StatusCode::kInvalidArgument);
}

// Runs `body` in a forked child without any capability, so that directory
// permissions apply even when the test runs as root. Returns the child's exit
// code, or -1 if capabilities could not be dropped.
int RunWithoutCapabilities(const std::function<int()>& body) {
  const pid_t pid = fork();
  if (pid == 0) {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
    if (syscall(SYS_capset, &header, data) != 0) _exit(100);
    _exit(body());
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) {
    return -2;
  }
  return WEXITSTATUS(status) == 100 ? -1 : WEXITSTATUS(status);
}

TEST_F(InotifyWatcherTest, UnreadableDirectoryIsPermissionDenied) {
  MkDir(R("ok"));
  MkDir(R("locked"));
  ASSERT_EQ(chmod(R("locked").c_str(), 0), 0);
  const std::string root = root_;
  // Exit code: bit 0 = root refused as expected, bit 1 = subdirectory error
  // reported while the rest of the tree is watched.
  const int result = RunWithoutCapabilities([&root]() {
    int bits = 0;
    auto watcher = InotifyWatcher::Create();
    if (!watcher.ok()) return 64;
    absl::Status locked = (*watcher)->AddRecursive(root + "/locked");
    if (locked.code() == absl::StatusCode::kPermissionDenied &&
        (*watcher)->watch_count() == 0) {
      bits |= 1;
    }
    absl::Status tree = (*watcher)->AddRecursive(root);
    if (tree.code() == absl::StatusCode::kPermissionDenied &&
        tree.message().find(root + "/locked") != absl::string_view::npos &&
        (*watcher)->WatchedPaths() ==
            std::vector<std::string>{root, root + "/ok"}) {
      bits |= 2;
    }
    return bits;
  });
  ASSERT_EQ(chmod(R("locked").c_str(), 0755), 0);
  if (result == -1) GTEST_SKIP() << "capset not permitted";
  EXPECT_EQ(result, 3);
}

// Runs `body` in a forked child inside a new user namespace whose inotify
// watch limit is `max_watches` (user.max_inotify_watches is per namespace), so
// ENOSPC can be provoked without touching the machine-wide limit. Returns the
// child's exit code, or -1 if the namespace could not be set up.
int RunWithWatchLimit(int max_watches, const std::function<int()>& body) {
  const pid_t pid = fork();
  if (pid == 0) {
    // Fails with EINVAL in a multithreaded process; under TSan the runtime
    // restarts its background thread in the forked child, so the test skips.
    if (unshare(CLONE_NEWUSER) != 0) _exit(100);
    const int fd = open("/proc/sys/user/max_inotify_watches", O_WRONLY);
    if (fd < 0) _exit(100);
    const std::string value = std::to_string(max_watches);
    if (write(fd, value.data(), value.size()) !=
        static_cast<ssize_t>(value.size())) {
      _exit(100);
    }
    close(fd);
    _exit(body());
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) {
    return -2;
  }
  return WEXITSTATUS(status) == 100 ? -1 : WEXITSTATUS(status);
}

TEST_F(InotifyWatcherTest, WatchLimitIsResourceExhausted) {
  MkDir(R("a"));
  MkDir(R("b"));
  MkDir(R("c"));
  const std::string root = root_;
  const std::string outside = outside_;
  // Exit code bits: 1 = the tree stops at the limit with a clear error,
  // 2 = a new root over the limit is refused and changes nothing,
  // 4 = ReadEvents reports the new directory it could not watch, and the
  // error, without dropping the event.
  const int result = RunWithWatchLimit(3, [&root, &outside]() {
    int bits = 0;
    auto watcher = InotifyWatcher::Create();
    if (!watcher.ok()) return 64;
    InotifyWatcher& w = **watcher;
    absl::Status tree = w.AddRecursive(root);
    if (tree.code() == absl::StatusCode::kResourceExhausted &&
        tree.message().find("max_user_watches") != absl::string_view::npos &&
        w.WatchedPaths() ==
            std::vector<std::string>{root, root + "/a", root + "/b"}) {
      bits |= 1;
    }
    absl::Status other = w.AddRecursive(outside);
    if (other.code() == absl::StatusCode::kResourceExhausted &&
        w.watch_count() == 3) {
      bits |= 2;
    }
    if (mkdir((root + "/a/x").c_str(), 0755) != 0) return 65;
    std::vector<WatchEvent> events;
    absl::Status read = w.ReadEvents(&events);
    if (read.code() == absl::StatusCode::kResourceExhausted &&
        events.size() == 1 &&
        events[0] ==
            WatchEvent{WatchEvent::Kind::kCreated, root + "/a/x", "", true}) {
      bits |= 4;
    }
    return bits;
  });
  if (result == -1) {
    GTEST_SKIP() << "unshare(CLONE_NEWUSER) or the per-namespace limit failed";
  }
  EXPECT_EQ(result, 7);
}

// --- Concurrency with the writer (the scan/event race) ---

TEST_F(InotifyWatcherTest, ConcurrentCreatesInNewDirectoriesAreReportedOnce) {
  ConcurrentCreatesInNewDirectories();
}

// The same with a budget that stops every call after one read(2): the
// suppression of duplicates must survive the calls in between.
TEST_F(InotifyWatcherTest, ConcurrentCreatesAreReportedOnceWithATinyBudget) {
  budget_ = 1;
  ConcurrentCreatesInNewDirectories();
}

void InotifyWatcherTest::ConcurrentCreatesInNewDirectories() {
  WatchRoot();
  constexpr int kDirs = 20;
  constexpr int kFiles = 5;
  // The writer races the reader: files land in a new directory before, while
  // and after the reader adds its watch and scans it.
  std::thread writer([this] {
    for (int d = 0; d < kDirs; ++d) {
      const std::string dir = R(absl::StrCat("d", d));
      mkdir(dir.c_str(), 0755);
      for (int f = 0; f < kFiles; ++f) {
        const std::string file = absl::StrCat(dir, "/f", f);
        const int fd = open(file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        if (fd >= 0) close(fd);
      }
    }
  });
  std::vector<std::string> lines = Collect(kDirs * (kFiles + 1));
  writer.join();
  std::vector<std::string> more = Collect(0);
  lines.insert(lines.end(), more.begin(), more.end());

  std::map<std::string, int> count;
  for (const std::string& line : lines) ++count[line];
  EXPECT_EQ(lines.size(), static_cast<size_t>(kDirs * (kFiles + 1)));
  for (int d = 0; d < kDirs; ++d) {
    const std::string dir_line = "created " + R(absl::StrCat("d", d));
    EXPECT_EQ(count[dir_line], 1) << dir_line;
    const auto dir_pos = std::find(lines.begin(), lines.end(), dir_line);
    for (int f = 0; f < kFiles; ++f) {
      const std::string file_line =
          "created " + R(absl::StrCat("d", d, "/f", f));
      EXPECT_EQ(count[file_line], 1) << file_line;
      EXPECT_LT(dir_pos, std::find(lines.begin(), lines.end(), file_line))
          << file_line;
    }
  }
  EXPECT_EQ(watcher_->watch_count(), static_cast<size_t>(kDirs + 1));
}

// --- Bounded reading ---

TEST_F(InotifyWatcherTest, ReadEventsStopsAtItsBudgetAndLosesNothing) {
  WatchRoot();
  constexpr int kFiles = 500;
  std::vector<std::string> expected;
  for (int i = 0; i < kFiles; ++i) {
    const std::string name = absl::StrCat("file_", 1000 + i);
    Touch(R(name));
    expected.push_back("created " + R(name));
  }
  // Each record is 32 bytes (16 of header, "file_NNNN" padded to 16), so
  // all of them are 16,000 bytes; a 1,024-byte budget reads a few dozen.
  std::vector<WatchEvent> events;
  ASSERT_TRUE(watcher_->ReadEvents(&events, 1024).ok());
  EXPECT_GE(events.size(), 1u);
  EXPECT_LE(events.size(), 50u);
  EXPECT_TRUE(Readable(watcher_->fd()));  // The rest is still queued...
  int calls = 1;
  while (Readable(watcher_->fd())) {
    ASSERT_TRUE(watcher_->ReadEvents(&events, 1024).ok());
    ++calls;
  }
  std::vector<std::string> lines;
  for (const WatchEvent& e : events) lines.push_back(e.ToLine());
  EXPECT_EQ(lines, expected);  // ...and comes in later calls, in order.
  EXPECT_GE(calls, 16);
}

TEST_F(InotifyWatcherTest, RenameSplitByTheBudgetIsStillOneMove) {
  // IN_MOVED_FROM "a" is 32 bytes and IN_MOVED_TO "b...b" (20 letters) 48,
  // so a pair is 80 bytes and the smallest read(2) the watcher makes (272
  // bytes) ends right after an IN_MOVED_FROM: 3 pairs and a half.
  const std::string a = R("a");
  const std::string b = R(std::string(20, 'b'));
  Touch(a);
  WatchRoot();
  constexpr int kRenames = 40;
  std::vector<std::string> expected;
  for (int i = 0; i < kRenames; ++i) {
    if (i % 2 == 0) {
      Rename(a, b);
      expected.push_back("moved " + a + " -> " + b);
    } else {
      Rename(b, a);
      expected.push_back("moved " + b + " -> " + a);
    }
  }
  budget_ = 1;
  EXPECT_EQ(Collect(kRenames), expected);
}

// --- Queue overflow ---

TEST_F(InotifyWatcherTest, OverflowIsReportedAndTheTreeRescanned) {
  long max_queued = 0;
  {
    std::ifstream in("/proc/sys/fs/inotify/max_queued_events");
    in >> max_queued;
  }
  if (max_queued <= 0 || max_queued > 65536) {
    GTEST_SKIP() << "max_queued_events=" << max_queued;
  }
  Touch(R("f"));
  WatchRoot();
  // Each rename queues two records (MOVED_FROM, MOVED_TO) that the kernel
  // cannot merge with the previous one.
  const long renames = max_queued / 2 + 16;
  for (long i = 0; i < renames; ++i) {
    if (i % 2 == 0) {
      Rename(R("f"), R("g"));
    } else {
      Rename(R("g"), R("f"));
    }
  }
  // Lost in the overflow; only the rescan can find it.
  MkDir(R("late"));
  std::vector<std::string> lines =
      CollectUntil([](const std::vector<std::string>& lines) {
        return !lines.empty() && lines.back() == "overflow: events lost";
      });
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.back(), "overflow: events lost");
  EXPECT_EQ(std::count(lines.begin(), lines.end(), "overflow: events lost"), 1);
  // All but the renames cut by the overflow are reported as moves.
  EXPECT_GE(lines.size(), static_cast<size_t>(max_queued / 2 - 1));
  EXPECT_EQ(lines.front(), "moved " + R("f") + " -> " + R("g"));
  EXPECT_THAT(watcher_->WatchedPaths(), ElementsAre(root_, R("late")));
  Touch(R("late/x"));
  EXPECT_THAT(Collect(1), ElementsAre("created " + R("late/x")));
}

}  // namespace
}  // namespace mill
