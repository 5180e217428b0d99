#include "examples/http/http_message.h"

#include <clocale>

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

}  // namespace
}  // namespace mill::http
