// Tests of the HTTP fuzz target's reference model: it predicts the real
// connection's responses for hand-picked streams, and its checker rejects
// output that breaks the rules (a checker that accepts everything would make
// the fuzzer useless).
#include "examples/http/http_fuzz_model.h"

#include <stdexcept>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "examples/http/http_connection.h"
#include "examples/http/http_message.h"
#include "gtest/gtest.h"

namespace mill::http {
namespace {

// What the real connection sends for `stream`, with the model's handler.
std::string RealOutput(const std::string& stream, size_t max_header_bytes) {
  HttpConnection::Options options;
  options.max_header_bytes = max_header_bytes;
  options.clock = [] { return kModelTime; };
  HttpConnection connection(
      [](const HttpRequest& request) {
        ModelRequest seen;
        seen.method = request.method;
        seen.target = request.target;
        seen.headers = request.headers;
        const ModelHandlerResponse handled = ModelHandler(seen);
        if (handled.throws) throw std::runtime_error("throws");
        HttpResponse response;
        response.body = handled.body;
        response.content_length = handled.content_length;
        response.close = handled.close;
        return response;
      },
      options);
  std::string out;
  mill::http::StringResponseSink sink(&out);
  connection.Feed(stream, &sink);
  return out;
}

std::vector<int> Statuses(const std::vector<ExpectedResponse>& responses) {
  std::vector<int> statuses;
  for (const auto& r : responses) statuses.push_back(r.status);
  return statuses;
}

TEST(HttpFuzzModelTest, PredictsPipelinedRequestsUntilClose) {
  const std::string stream =
      "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
      "HEAD /b HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
      "GET /ignored HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::vector<ExpectedResponse> expected =
      ExpectedResponses(stream, 8192);
  ASSERT_EQ(expected.size(), 3u);
  EXPECT_EQ(expected[0].body, "GET /a\nHost: x\n");
  EXPECT_FALSE(expected[0].close);
  EXPECT_TRUE(expected[1].head);
  EXPECT_EQ(expected[1].body, "");
  EXPECT_EQ(expected[1].content_length,
            std::string("HEAD /b\nHost: x\n").size());
  EXPECT_TRUE(expected[2].close);
  const absl::Status status =
      CheckResponses(RealOutput(stream, 8192), expected);
  EXPECT_TRUE(status.ok()) << status;
}

TEST(HttpFuzzModelTest, PredictsErrors) {
  struct Case {
    std::string stream;
    size_t max_header_bytes;
    std::vector<int> statuses;
  };
  const Case cases[] = {
      {"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 8192, {505}},
      {"GET / HTTP/1.1\r\nAccept: y\r\n\r\n", 8192, {400}},
      {"GET / HTTP/1.0\r\n\r\n", 8192, {200}},  // No Host needed in 1.0.
      {"GET / HTTP/1.1\r\nHost: a\r\nHOST: b\r\n\r\n", 8192, {400}},
      {"GET / HTTP/1.1\r\nHost: x\r\n\r\nBAD\r\n\r\n", 8192, {200, 400}},
      {"GET /0123456789 HTTP/1.1\r\nHost: x\r\n\r\n", 16, {431}},
      {"GET /01234567890123456789", 16, {431}},  // Before the request ends.
      {"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /partial HTTP/1.1\r\nHo",
       8192,
       {200}},
      {"GET /throw HTTP/1.1\r\nHost: x\r\n\r\n", 8192, {500}},
      // Framing an earlier hop may have read otherwise: 400, then nothing.
      {"POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: "
       "chunked\r\n\r\n0\r\n\r\nGET / HTTP/1.0\r\n\r\n",
       8192,
       {400}},
      {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
       "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       8192,
       {400}},
      {"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n"
       "\r\n0\r\n\r\n",
       8192,
       {200}},
      {"", 8192, {}},
  };
  for (const Case& c : cases) {
    const std::vector<ExpectedResponse> expected =
        ExpectedResponses(c.stream, c.max_header_bytes);
    EXPECT_EQ(Statuses(expected), c.statuses) << c.stream;
    const absl::Status status =
        CheckResponses(RealOutput(c.stream, c.max_header_bytes), expected);
    EXPECT_TRUE(status.ok()) << status << "\n" << c.stream;
  }
}

// The one split-dependent answer (found by the fuzzer): a header line that
// is malformed and, counting its bytes, over the limit.
TEST(HttpFuzzModelTest, MalformedAndOversizedHeaderMayBe400Or431) {
  const std::string stream = "GET /0123456789 HTTP/1.1\r\nHost: x\r\nX-Long2 " +
                             std::string(30, 'v') + "\x1d";
  const std::vector<ExpectedResponse> expected = ExpectedResponses(stream, 56);
  ASSERT_EQ(expected.size(), 1u);
  EXPECT_EQ(expected[0].status, 400);
  EXPECT_EQ(expected[0].or_error_status, 431);
  // Whole, the parser rejects the line before its bytes are counted.
  const std::string whole = RealOutput(stream, 56);
  EXPECT_EQ(whole.rfind("HTTP/1.1 400 ", 0), 0u) << whole;
  EXPECT_TRUE(CheckResponses(whole, expected).ok());
  // Byte by byte, the bytes are counted first.
  HttpConnection::Options options;
  options.max_header_bytes = 56;
  options.clock = [] { return kModelTime; };
  HttpConnection connection([](const HttpRequest&) { return HttpResponse(); },
                            options);
  std::string split;
  mill::http::StringResponseSink sink(&split);
  for (const char c : stream) connection.Feed(std::string(1, c), &sink);
  EXPECT_EQ(split.rfind("HTTP/1.1 431 ", 0), 0u) << split;
  EXPECT_TRUE(CheckResponses(split, expected).ok());
  // Any other status is still wrong.
  EXPECT_FALSE(CheckResponses("HTTP/1.1 505 HTTP Version Not Supported\r\n"
                              "Content-Length: 27\r\nConnection: close\r\n\r\n"
                              "HTTP Version Not Supported\n",
                              expected)
                   .ok());
}

class HttpCheckerTest : public ::testing::Test {
 protected:
  const std::string stream_ =
      "GET /a HTTP/1.1\r\nHost: x\r\n\r\nHEAD /b HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::vector<ExpectedResponse> expected_ =
      ExpectedResponses(stream_, 8192);
  const std::string good_ = RealOutput(stream_, 8192);

  // good_ with the first occurrence of `from` replaced by `to`.
  std::string Edited(const std::string& from, const std::string& to) {
    std::string out = good_;
    const size_t at = out.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return at == std::string::npos ? out : out.replace(at, from.size(), to);
  }
};

TEST_F(HttpCheckerTest, AcceptsTheRealOutput) {
  EXPECT_TRUE(CheckResponses(good_, expected_).ok());
}

TEST_F(HttpCheckerTest, RejectsBrokenOutput) {
  const std::string broken[] = {
      Edited("HTTP/1.1 200 OK", "HTTP/1.0 200 OK"),
      Edited("HTTP/1.1 200 OK", "HTTP/1.1 404 Not Found"),
      Edited("Content-Length: 15", "Content-Length: 14"),
      Edited("Content-Length: 15\r\n", ""),
      Edited("Content-Length: 15\r\n",
             "Content-Length: 15\r\nContent-Length: 15\r\n"),
      Edited("Content-Length: 15\r\n",
             "Content-Length: 15\r\nConnection: close\r\n"),
      Edited("GET /a", "GET /A"),  // The body describes another request.
      Edited("Server: mill-io", "Server mill-io"),
      good_.substr(0, good_.size() - 1),
      good_ + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
      good_ + "x",
      good_.substr(0, good_.find("HTTP/1.1", 5)),  // A response missing.
  };
  for (const std::string& output : broken) {
    EXPECT_FALSE(CheckResponses(output, expected_).ok()) << output;
  }
}

TEST_F(HttpCheckerTest, HeadResponsesHaveNoBody) {
  // A HEAD response followed by body bytes leaves trailing junk.
  EXPECT_FALSE(CheckResponses(good_ + std::string(15, 'x'), expected_).ok());
}

}  // namespace
}  // namespace mill::http
