// FileBody, ReadFileRange and StringResponseSink over real POSIX files
// (descriptor checks with fcntl, truncate, a directory's read error).
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "examples/http/file_io.h"
#include "examples/http/http_message.h"
#include "gtest/gtest.h"

namespace mill::http {
namespace {

// ---- FileBody, ReadFileRange, StringResponseSink ----

class FileBodyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = ::testing::TempDir() + "/file_body_XXXXXX";
    const int fd = mkstemp(path_.data());
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, "0123456789", 10), 10);
    close(fd);
  }
  void TearDown() override { unlink(path_.c_str()); }

  std::shared_ptr<const FileBody> Open() {
    const int fd = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_GE(fd, 0);
    const absl::StatusOr<FileInfo> info = internal::StatOpenFile(fd);
    EXPECT_TRUE(info.ok()) << info.status();
    return std::make_shared<const FileBody>(fd, info.value_or(FileInfo()));
  }

  std::string path_;
};

TEST_F(FileBodyTest, KeepsTheMetadataAndClosesTheDescriptor) {
  auto file = Open();
  struct stat st;
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(file->size(), 10u);
  EXPECT_EQ(file->inode(), st.st_ino);
  EXPECT_EQ(file->mtime_sec(), st.st_mtim.tv_sec);
  EXPECT_EQ(file->mtime_nsec(), st.st_mtim.tv_nsec);
  const int fd = file->fd();
  EXPECT_GE(fcntl(fd, F_GETFD), 0);
  file.reset();
  errno = 0;
  EXPECT_EQ(fcntl(fd, F_GETFD), -1);
  EXPECT_EQ(errno, EBADF);
}

TEST_F(FileBodyTest, ReadFileRangeReadsInBoundedChunksFromTheOffset) {
  auto file = Open();
  std::vector<std::string> chunks;
  const auto collect = [&chunks](std::string_view b) {
    chunks.emplace_back(b);
  };
  ASSERT_TRUE(ReadFileRange(*file, 1, 8, collect, /*chunk_bytes=*/3).ok());
  EXPECT_EQ(chunks, (std::vector<std::string>{"123", "456", "78"}));
  chunks.clear();
  ASSERT_TRUE(ReadFileRange(*file, 0, 10, collect).ok());
  EXPECT_EQ(chunks, std::vector<std::string>{"0123456789"});
  chunks.clear();
  ASSERT_TRUE(ReadFileRange(*file, 4, 0, collect).ok());
  EXPECT_TRUE(chunks.empty());
  // Two readers of one descriptor do not disturb each other (pread).
  std::string a;
  std::string b;
  ASSERT_TRUE(ReadFileRange(
                  *file, 0, 5,
                  [&](std::string_view c) {
                    a.append(c);
                    ASSERT_TRUE(
                        ReadFileRange(*file, 5, 5, [&](std::string_view d) {
                          b.append(d);
                        }).ok());
                  },
                  /*chunk_bytes=*/2)
                  .ok());
  EXPECT_EQ(a, "01234");
  EXPECT_EQ(b, "567895678956789");
}

TEST_F(FileBodyTest, ReadFileRangeReportsAFileThatShrank) {
  auto file = Open();
  ASSERT_EQ(truncate(path_.c_str(), 6), 0);
  std::string got;
  const absl::Status status = ReadFileRange(
      *file, 2, 8, [&got](std::string_view b) { got.append(b); }, 3);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_EQ(got, "2345");
}

TEST_F(FileBodyTest, ReadFileRangeReportsReadErrorsWithErrnoText) {
  const int fd = open(::testing::TempDir().c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  const absl::StatusOr<FileInfo> info = internal::StatOpenFile(fd);
  ASSERT_TRUE(info.ok()) << info.status();
  const FileBody dir(fd, *info);
  const absl::Status status =
      ReadFileRange(dir, 0, 10, [](std::string_view) {});
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("pread"), std::string::npos) << status;
  EXPECT_NE(status.message().find("directory"), std::string::npos) << status;
}

TEST_F(FileBodyTest, StringResponseSinkFlattensPiecesInOrder) {
  std::string out = "old:";
  StringResponseSink sink(&out);
  sink.Write("head|");
  sink.WriteFile(Open(), 3, 4);
  sink.Write("|tail");
  EXPECT_TRUE(sink.status().ok());
  EXPECT_EQ(out, "old:head|3456|tail");
}

TEST_F(FileBodyTest, StringResponseSinkStopsAfterAFailedRead) {
  std::string out;
  StringResponseSink sink(&out);
  auto file = Open();
  ASSERT_EQ(truncate(path_.c_str(), 2), 0);
  sink.Write("H");
  sink.WriteFile(file, 0, 10);
  sink.Write("next response");
  sink.WriteFile(file, 0, 1);
  EXPECT_EQ(sink.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(out, "H01");
}

}  // namespace
}  // namespace mill::http
