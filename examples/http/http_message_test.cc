#include "examples/http/http_message.h"

#include <ctime>
#include <string>
#include <vector>

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

}  // namespace
}  // namespace mill::http
