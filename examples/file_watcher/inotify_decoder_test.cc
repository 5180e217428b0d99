#include "examples/file_watcher/inotify_decoder.h"

#include <sys/inotify.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mill {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST(InotifyDecoderTest, DecodesConsecutiveRecords) {
  const InotifyRecord create{1, IN_CREATE, 0, "file.txt"};
  const InotifyRecord self{2, IN_DELETE_SELF, 0, ""};
  const InotifyRecord moved{1, IN_MOVED_FROM | IN_ISDIR, 77, "dir"};
  const InotifyRecord overflow{-1, IN_Q_OVERFLOW, 0, ""};
  const std::string bytes =
      EncodeInotifyRecord(create) + EncodeInotifyRecord(self) +
      EncodeInotifyRecord(moved, 64) + EncodeInotifyRecord(overflow);
  std::vector<InotifyRecord> records;
  ASSERT_TRUE(DecodeInotifyRecords(bytes, &records).ok());
  EXPECT_THAT(records, ElementsAre(create, self, moved, overflow));
}

TEST(InotifyDecoderTest, EncodingPadsLikeTheKernel) {
  EXPECT_EQ(EncodeInotifyRecord({1, IN_CREATE, 0, ""}).size(), 16u);
  EXPECT_EQ(EncodeInotifyRecord({1, IN_CREATE, 0, "a"}).size(), 32u);
  EXPECT_EQ(EncodeInotifyRecord({1, IN_CREATE, 0, std::string(15, 'x')}).size(),
            32u);
  EXPECT_EQ(EncodeInotifyRecord({1, IN_CREATE, 0, std::string(16, 'x')}).size(),
            48u);
  // A field too short for the name and its NUL is widened.
  EXPECT_EQ(EncodeInotifyRecord({1, IN_CREATE, 0, "abc"}, 2).size(), 20u);
}

TEST(InotifyDecoderTest, EmptyInputIsNoRecords) {
  std::vector<InotifyRecord> records;
  EXPECT_TRUE(DecodeInotifyRecords("", &records).ok());
  EXPECT_THAT(records, IsEmpty());
}

TEST(InotifyDecoderTest, TruncatedHeaderIsDataLossAfterTheGoodRecords) {
  const InotifyRecord good{1, IN_MODIFY, 0, "f"};
  const std::string bytes = EncodeInotifyRecord(good) + std::string(10, '\0');
  std::vector<InotifyRecord> records;
  absl::Status status = DecodeInotifyRecords(bytes, &records);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_NE(status.message().find("offset 32"), std::string::npos) << status;
  EXPECT_THAT(records, ElementsAre(good));
}

TEST(InotifyDecoderTest, NameRunningPastTheEndIsDataLossNotAnOverread) {
  std::string bytes = EncodeInotifyRecord({3, IN_CREATE, 0, "name"});
  bytes.resize(bytes.size() - 4);  // len says 16; 12 bytes remain.
  std::vector<InotifyRecord> records;
  EXPECT_EQ(DecodeInotifyRecords(bytes, &records).code(),
            absl::StatusCode::kDataLoss);
  EXPECT_THAT(records, IsEmpty());
  // A len near 2^32 must not wrap around either.
  std::string huge = EncodeInotifyRecord({3, IN_CREATE, 0, ""});
  huge[12] = huge[13] = huge[14] = huge[15] = '\xff';
  EXPECT_EQ(DecodeInotifyRecords(huge + "abcd", &records).code(),
            absl::StatusCode::kDataLoss);
}

TEST(InotifyDecoderTest, NamesThatWouldLeaveTheDirectoryAreRefused) {
  for (const char* name : {".", "..", "a/b", "../../etc/passwd", "/"}) {
    std::vector<InotifyRecord> records;
    EXPECT_EQ(DecodeInotifyRecords(EncodeInotifyRecord({1, IN_CREATE, 0, name}),
                                   &records)
                  .code(),
              absl::StatusCode::kDataLoss)
        << name;
    EXPECT_THAT(records, IsEmpty()) << name;
  }
  // Names merely containing dots are fine.
  std::vector<InotifyRecord> records;
  ASSERT_TRUE(DecodeInotifyRecords(
                  EncodeInotifyRecord({1, IN_CREATE, 0, "...x.."}), &records)
                  .ok());
  EXPECT_EQ(records.at(0).name, "...x..");
}

TEST(InotifyDecoderTest, NameEndsAtTheFirstNul) {
  std::string bytes = EncodeInotifyRecord({1, IN_CREATE, 0, "ab"}, 16);
  bytes[16 + 3] = 'z';  // After the NUL: padding, ignored.
  std::vector<InotifyRecord> records;
  ASSERT_TRUE(DecodeInotifyRecords(bytes, &records).ok());
  EXPECT_EQ(records.at(0).name, "ab");
}

}  // namespace
}  // namespace mill
