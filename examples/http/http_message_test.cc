#include "examples/http/http_message.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <clocale>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "examples/http/file_io.h"
#include "gtest/gtest.h"

namespace mill::http {
namespace {

TEST(HttpMessageTest, FormatHttpDateIsImfFixdate) {
  EXPECT_EQ(FormatHttpDate(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(FormatHttpDate(0), "Thu, 01 Jan 1970 00:00:00 GMT");
  EXPECT_EQ(FormatHttpDate(951782400), "Tue, 29 Feb 2000 00:00:00 GMT");
  EXPECT_EQ(FormatHttpDate(1700000000), "Tue, 14 Nov 2023 22:13:20 GMT");
}

TEST(HttpMessageTest, StatusReasons) {
  EXPECT_STREQ(StatusReason(200), "OK");
  EXPECT_STREQ(StatusReason(404), "Not Found");
  EXPECT_STREQ(StatusReason(405), "Method Not Allowed");
  EXPECT_STREQ(StatusReason(431), "Request Header Fields Too Large");
  EXPECT_STREQ(StatusReason(505), "HTTP Version Not Supported");
  EXPECT_STREQ(StatusReason(299), "Unknown");
}

TEST(HttpMessageTest, FindHeaderIsCaseInsensitiveAndReturnsTheFirst) {
  HttpRequest request;
  request.headers = {{"Accept", "a"}, {"X-Dup", "1"}, {"x-dup", "2"}};
  ASSERT_NE(request.FindHeader("ACCEPT"), nullptr);
  EXPECT_EQ(*request.FindHeader("ACCEPT"), "a");
  EXPECT_EQ(*request.FindHeader("x-DUP"), "1");
  EXPECT_EQ(request.FindHeader("Accep"), nullptr);
}

TEST(HttpMessageTest, TextResponse) {
  HttpResponse r = HttpResponse::Text(418, "short and stout\n");
  EXPECT_EQ(r.status, 418);
  EXPECT_EQ(r.body, "short and stout\n");
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0].second, "text/plain; charset=utf-8");
  EXPECT_FALSE(r.content_length.has_value());
  EXPECT_FALSE(r.close);
}

TEST(HttpMessageTest, FindHeadersReturnsEveryValueInOrder) {
  HttpRequest request;
  request.headers = {{"Range", "a"}, {"X", "b"}, {"range", "c"}};
  EXPECT_EQ(request.FindHeaders("RANGE"),
            (std::vector<std::string_view>{"a", "c"}));
  EXPECT_TRUE(request.FindHeaders("Rang").empty());
}

TEST(HttpMessageTest, ContentLengthFollowsTheBody) {
  HttpResponse r = HttpResponse::Text(200, "abc");
  EXPECT_EQ(r.ContentLength(), 3u);
  r.content_length = 7;
  EXPECT_EQ(r.ContentLength(), 7u);
}

// ---- ParseHttpDate ----

constexpr std::time_t kSunday1994 = 784111777;  // Sun, 06 Nov 1994 08:49:37
constexpr std::time_t k2025 = 1735689600;       // Wed, 01 Jan 2025 00:00:00
constexpr std::time_t k1999 = 915148800;        // Fri, 01 Jan 1999 00:00:00

TEST(ParseHttpDateTest, AcceptsTheThreeFormatsOfRfc9110) {
  EXPECT_EQ(ParseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT", k2025), kSunday1994);
  EXPECT_EQ(ParseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT", k2025),
            kSunday1994);
  EXPECT_EQ(ParseHttpDate("Sun Nov  6 08:49:37 1994", k2025), kSunday1994);
  EXPECT_EQ(ParseHttpDate("Sun Nov 16 08:49:37 1994", k2025),
            kSunday1994 + 10 * 86400);
  EXPECT_EQ(ParseHttpDate("  Sun, 06 Nov 1994 08:49:37 GMT\t", k2025),
            kSunday1994);
  EXPECT_EQ(ParseHttpDate("Thu, 01 Jan 1970 00:00:00 GMT", k2025), 0);
  EXPECT_EQ(ParseHttpDate("Tue, 29 Feb 2000 00:00:00 GMT", k2025), 951782400);
}

TEST(ParseHttpDateTest, RoundTripsFormatHttpDate) {
  for (const std::time_t t :
       {std::time_t{0}, kSunday1994, std::time_t{951782400},
        std::time_t{1700000000}, std::time_t{4102444799}}) {
    EXPECT_EQ(ParseHttpDate(FormatHttpDate(t), k2025), t) << t;
  }
}

TEST(ParseHttpDateTest, TwoDigitYearsStayWithinFiftyYearsOfNow) {
  // 2094 would be more than 50 years ahead of 2025: 1994.
  EXPECT_EQ(ParseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT", k2025),
            kSunday1994);
  // 2030 is five years ahead: kept.
  EXPECT_EQ(ParseHttpDate("Wednesday, 06-Nov-30 08:49:37 GMT", k2025),
            ParseHttpDate("Wed, 06 Nov 2030 08:49:37 GMT", k2025));
  // Seen in 1999, "05" is 2005, not 1905.
  EXPECT_EQ(ParseHttpDate("Sunday, 06-Nov-05 08:49:37 GMT", k1999),
            ParseHttpDate("Sun, 06 Nov 2005 08:49:37 GMT", k1999));
  // And seen in 2025, "94" still is 1994, "75" 2075 (50 years ahead).
  EXPECT_EQ(ParseHttpDate("Wednesday, 06-Nov-75 08:49:37 GMT", k2025),
            ParseHttpDate("Wed, 06 Nov 2075 08:49:37 GMT", k2025));
}

TEST(ParseHttpDateTest, RejectsEverythingElse) {
  for (const char* text : {
           "",
           "   ",
           "yesterday",
           "784111777",
           "Sun, 06 Nov 1994 08:49:37 UTC",
           "Sun, 06 Nov 1994 08:49:37 GMT trailing",
           "Sun, 06 Nov 1994 08:49:37",
           "Sun, 32 Nov 1994 08:49:37 GMT",
           "Sun, 06 Foo 1994 08:49:37 GMT",
           "Sun, 06 Nov 1994 24:00:00 GMT",
           "Sun, 06 Nov 1994 08:60:00 GMT",
           "Sun, 06 Nov 1994 08:49:60 GMT",
           "Sun, 06 Nov 1994 08:49 GMT",
           "Xyz, 06 Nov 1994 08:49:37 GMT",
           "Sunday, 06-Nov-1994x 08:49:37 GMT",
           "Sun Nov  6 08:49:37",
           "2024-01-01T00:00:00Z",
       }) {
    EXPECT_FALSE(ParseHttpDate(text, k2025).has_value()) << text;
  }
  EXPECT_FALSE(ParseHttpDate(std::string(1000, 'a'), k2025).has_value());
  EXPECT_FALSE(
      ParseHttpDate(
          std::string_view("Sun, 06 Nov 1994 08:49:37 GMT").substr(0, 20),
          k2025)
          .has_value());
}

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
