// The RESP parser of the Redis load client (bench/resp.h): every RESP2
// reply type, replies split at every byte, and malformed or oversized input.
#include "bench/resp.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mill {
namespace bench {
namespace {

using ::testing::HasSubstr;

// Parses `in`, expecting one complete reply spanning all of it.
RespReply ParseWhole(absl::string_view in) {
  RespReply reply;
  absl::StatusOr<bool> done = ParseRespReply(in, &reply);
  EXPECT_TRUE(done.ok()) << done.status();
  EXPECT_TRUE(done.ok() && *done) << "incomplete: " << in;
  EXPECT_EQ(reply.length, in.size());
  return reply;
}

absl::Status ParseError(absl::string_view in, const RespLimits& limits = {}) {
  RespReply reply;
  absl::StatusOr<bool> done = ParseRespReply(in, &reply, limits);
  return done.status();
}

TEST(RespTest, SimpleStringErrorAndInteger) {
  RespReply ok = ParseWhole("+OK\r\n");
  EXPECT_EQ(ok.type, RespType::kSimpleString);
  EXPECT_EQ(ok.text, "OK");
  EXPECT_EQ(ok.errors, 0);

  RespReply error = ParseWhole("-ERR unknown command\r\n");
  EXPECT_EQ(error.type, RespType::kError);
  EXPECT_EQ(error.text, "ERR unknown command");
  EXPECT_EQ(error.errors, 1);

  EXPECT_EQ(ParseWhole(":0\r\n").integer, 0);
  EXPECT_EQ(ParseWhole(":-42\r\n").integer, -42);
  EXPECT_EQ(ParseWhole(":9223372036854775807\r\n").integer, INT64_MAX);
  EXPECT_EQ(ParseWhole(":-9223372036854775808\r\n").integer, INT64_MIN);
}

TEST(RespTest, BulkStrings) {
  RespReply value = ParseWhole("$16\r\n0123456789abcdef\r\n");
  EXPECT_EQ(value.type, RespType::kBulkString);
  EXPECT_EQ(value.text, "0123456789abcdef");
  EXPECT_FALSE(value.null);

  // Binary-safe: CR and LF inside the payload are data.
  EXPECT_EQ(ParseWhole("$4\r\na\r\nb\r\n").text, "a\r\nb");
  EXPECT_EQ(ParseWhole("$0\r\n\r\n").text, "");
  RespReply nil = ParseWhole("$-1\r\n");
  EXPECT_TRUE(nil.null);
  EXPECT_EQ(nil.type, RespType::kBulkString);
}

TEST(RespTest, ArraysNestedAndNull) {
  RespReply array = ParseWhole("*3\r\n:1\r\n$3\r\nfoo\r\n*2\r\n+a\r\n-E x\r\n");
  EXPECT_EQ(array.type, RespType::kArray);
  EXPECT_EQ(array.integer, 3);
  EXPECT_EQ(array.errors, 1);  // the nested error counts
  EXPECT_EQ(ParseWhole("*0\r\n").integer, 0);
  EXPECT_TRUE(ParseWhole("*-1\r\n").null);
}

TEST(RespTest, OnlyTheFirstOfSeveralRepliesIsParsed) {
  RespReply reply;
  absl::StatusOr<bool> done = ParseRespReply("+A\r\n:2\r\n", &reply);
  ASSERT_TRUE(done.ok() && *done);
  EXPECT_EQ(reply.length, 4u);
  EXPECT_EQ(reply.text, "A");
}

TEST(RespTest, EveryProperPrefixIsIncomplete) {
  const std::string whole =
      "*4\r\n$5\r\nhello\r\n:-7\r\n*1\r\n$-1\r\n+done\r\n";
  for (size_t n = 0; n < whole.size(); ++n) {
    RespReply reply;
    absl::StatusOr<bool> done =
        ParseRespReply(absl::string_view(whole).substr(0, n), &reply);
    ASSERT_TRUE(done.ok()) << n << ": " << done.status();
    EXPECT_FALSE(*done) << "complete after " << n << " bytes";
  }
  EXPECT_EQ(ParseWhole(whole).integer, 4);
}

TEST(RespTest, MalformedInputIsAnError) {
  EXPECT_THAT(ParseError("?x\r\n").message(), HasSubstr("unknown reply type"));
  EXPECT_THAT(ParseError("+OK\rX").message(), HasSubstr("CR not followed"));
  EXPECT_THAT(ParseError(":\r\n").message(), HasSubstr("empty number"));
  EXPECT_THAT(ParseError(":12a\r\n").message(), HasSubstr("not a number"));
  EXPECT_THAT(ParseError(":9223372036854775808\r\n").message(),
              HasSubstr("out of range"));
  EXPECT_THAT(ParseError("$-2\r\n").message(), HasSubstr("negative bulk"));
  EXPECT_THAT(ParseError("$3\r\nfooXY").message(),
              HasSubstr("not followed by CRLF"));
  EXPECT_THAT(ParseError("*-5\r\n").message(), HasSubstr("negative array"));
  EXPECT_EQ(ParseError("*1\r\n!\r\n").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(RespTest, LimitsBoundWhatAPeerCanAnnounce) {
  RespLimits limits;
  limits.max_line_bytes = 8;
  limits.max_bulk_bytes = 4;
  limits.max_array_elements = 2;
  limits.max_depth = 2;
  // Failed at once, before the announced bytes arrive.
  EXPECT_THAT(ParseError("$5\r\n", limits).message(),
              HasSubstr("above the limit"));
  EXPECT_THAT(ParseError("*3\r\n", limits).message(),
              HasSubstr("above the limit"));
  EXPECT_THAT(ParseError("*1\r\n*1\r\n*1\r\n:1\r\n", limits).message(),
              HasSubstr("nested too deep"));
  // A line without CRLF fails once it is longer than the limit...
  EXPECT_THAT(ParseError("+123456789", limits).message(),
              HasSubstr("line too long"));
  // ...and a number line once it is longer than any number.
  EXPECT_THAT(ParseError(":0000000000000000000000").message(),
              HasSubstr("line too long"));
  // At the limits, replies parse.
  RespReply reply;
  absl::StatusOr<bool> done = ParseRespReply("$4\r\nabcd\r\n", &reply, limits);
  ASSERT_TRUE(done.ok() && *done);
  done = ParseRespReply("*2\r\n*1\r\n:1\r\n+12345678\r\n", &reply, limits);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_TRUE(*done);
}

TEST(RespTest, AppendCommandEncodesAnArrayOfBulkStrings) {
  std::string out = "x";
  AppendRespCommand({"GET", "key:1"}, &out);
  EXPECT_EQ(out, "x*2\r\n$3\r\nGET\r\n$5\r\nkey:1\r\n");
  // What it encodes parses back.
  RespReply reply;
  absl::StatusOr<bool> done =
      ParseRespReply(absl::string_view(out).substr(1), &reply);
  ASSERT_TRUE(done.ok() && *done);
  EXPECT_EQ(reply.type, RespType::kArray);
  EXPECT_EQ(reply.integer, 2);
}

}  // namespace
}  // namespace bench
}  // namespace mill
