#include "examples/proxy/http_stream_parser.h"

#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"

namespace mill::proxy {
namespace {

// Records what the parser reports.
struct Recorder : HttpStreamParser::Listener {
  std::vector<MessageHead> heads;
  std::vector<std::string> bodies;  // one per message
  int completed = 0;
  std::vector<std::string> events;  // "head", "body:<bytes>", "complete"

  void OnHead(MessageHead& head) override {
    heads.push_back(head);
    bodies.emplace_back();
    events.push_back("head");
  }
  void OnBody(std::string_view piece) override {
    bodies.back().append(piece);
    events.push_back("body:" + std::string(piece));
  }
  void OnComplete() override {
    ++completed;
    events.push_back("complete");
  }
};

// Feeds all of `bytes`, `slice` bytes at a time at most (as a connection
// would deliver them), resuming after every stop; returns bytes consumed.
size_t FeedAll(HttpStreamParser& parser, std::string_view bytes,
               size_t slice = 1 << 20) {
  size_t used = 0;
  std::string pending;
  while (used < bytes.size()) {
    const size_t end = std::min(bytes.size(), used + slice);
    const size_t n = parser.Feed(bytes.substr(used, end - used));
    if (parser.failed()) return used + n;
    if (n == 0) break;  // needs more than this slice: widen
    used += n;
  }
  return used;
}

TEST(HttpStreamParserTest, StopsAfterTheHeadAndAfterTheMessage) {
  Recorder r;
  HttpStreamParser parser(HttpStreamParser::kRequest, &r);
  const std::string input =
      "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
      "GET /next HTTP/1.1\r\nHost: a\r\n\r\n";
  size_t used = parser.Feed(input);
  // Stopped right after the head: the body is still the caller's.
  ASSERT_EQ(r.heads.size(), 1u);
  EXPECT_EQ(r.completed, 0);
  EXPECT_EQ(parser.phase(), HttpStreamParser::Phase::kBody);
  EXPECT_LT(used, input.find("hello"));
  EXPECT_EQ(r.heads[0].method, "POST");
  EXPECT_EQ(r.heads[0].target, "/up");
  EXPECT_EQ(r.heads[0].framing, BodyFraming::kLength);
  EXPECT_EQ(r.heads[0].content_length, 5u);
  EXPECT_TRUE(r.heads[0].keep_alive);
  // Next stop: the end of the first message, not a byte further.
  used += parser.Feed(std::string_view(input).substr(used));
  EXPECT_EQ(r.completed, 1);
  EXPECT_EQ(used, input.find("GET"));
  EXPECT_EQ(r.bodies[0], "hello");
  EXPECT_EQ(parser.phase(), HttpStreamParser::Phase::kIdle);
  used += FeedAll(parser, std::string_view(input).substr(used));
  EXPECT_EQ(used, input.size());
  ASSERT_EQ(r.heads.size(), 2u);
  EXPECT_EQ(r.heads[1].target, "/next");
  EXPECT_EQ(r.heads[1].framing, BodyFraming::kNone);
  EXPECT_EQ(r.completed, 2);
  EXPECT_EQ(parser.messages_started(), 2u);
}

TEST(HttpStreamParserTest, DechunksBodiesSplitAnywhere) {
  const std::string input =
      "PUT /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n";
  for (size_t slice : {size_t{1}, size_t{3}, size_t{7}, input.size()}) {
    Recorder r;
    HttpStreamParser parser(HttpStreamParser::kRequest, &r);
    size_t used = 0;
    // Byte-by-byte delivery: each call sees only what "arrived".
    std::string buffered;
    for (size_t at = 0; at < input.size(); at += slice) {
      buffered += input.substr(at, slice);
      for (;;) {
        const size_t n = parser.Feed(buffered);
        buffered.erase(0, n);
        used += n;
        if (n == 0 || buffered.empty()) break;
      }
    }
    EXPECT_FALSE(parser.failed()) << parser.error();
    EXPECT_EQ(used, input.size()) << "slice " << slice;
    ASSERT_EQ(r.heads.size(), 1u);
    EXPECT_EQ(r.heads[0].framing, BodyFraming::kChunked);
    EXPECT_EQ(r.bodies[0], "hello world") << "slice " << slice;
    EXPECT_EQ(r.completed, 1);
  }
}

TEST(HttpStreamParserTest, KeepAliveFollowsVersionAndConnection) {
  struct Case {
    std::string request;
    bool keep_alive;
  } cases[] = {
      {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false},
      {"GET / HTTP/1.0\r\n\r\n", false},
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
  };
  for (const Case& c : cases) {
    Recorder r;
    HttpStreamParser parser(HttpStreamParser::kRequest, &r);
    FeedAll(parser, c.request);
    ASSERT_EQ(r.heads.size(), 1u) << c.request;
    EXPECT_EQ(r.heads[0].keep_alive, c.keep_alive) << c.request;
  }
}

TEST(HttpStreamParserTest, MalformedRequestsFailWith400) {
  for (std::string bad : {
           std::string("GARBAGE\r\n\r\n"),
           std::string("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n"),
           std::string("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
                       "Content-Length: 2\r\n\r\n"),
           std::string("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
                       "chunked\r\n\r\nzz\r\n"),
       }) {
    Recorder r;
    HttpStreamParser parser(HttpStreamParser::kRequest, &r);
    FeedAll(parser, bad);
    EXPECT_TRUE(parser.failed()) << bad;
    EXPECT_EQ(parser.error_status(), 400) << bad;
    EXPECT_FALSE(parser.error().empty());
    // Failed for good: nothing more is parsed.
    EXPECT_EQ(parser.Feed("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 0u);
  }
}

// Framing the parser cannot follow reliably is an error before the head is
// reported, so the proxy never starts forwarding such a request (RFC 9112
// §6.1, §6.3).
TEST(HttpStreamParserTest, UntrustworthyRequestFramingFailsWith400) {
  for (std::string bad : {
           // Final coding not chunked: the length is unknowable.
           std::string("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
                       "gzip\r\n\r\n"),
           std::string("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
                       "chunked\r\nTransfer-Encoding: gzip\r\n\r\n"),
           // Chunked twice.
           std::string("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
                       "chunked, chunked\r\n\r\n0\r\n\r\n"),
           // Read one way by http-parser, another by the list.
           std::string("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
                       "gzip, chunked,\r\n\r\n0\r\n\r\n"),
           std::string("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
                       "chunked;x=1\r\n\r\n0\r\n\r\n"),
           std::string("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
                       "\"gzip\", chunked\r\n\r\n0\r\n\r\n"),
           // Transfer-Encoding in HTTP/1.0: framing maybe faulty upstream.
           std::string("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n"
                       "\r\n0\r\n\r\n"),
       }) {
    Recorder r;
    HttpStreamParser parser(HttpStreamParser::kRequest, &r);
    FeedAll(parser, bad);
    EXPECT_TRUE(parser.failed()) << bad;
    EXPECT_EQ(parser.error_status(), 400) << bad;
    EXPECT_TRUE(r.heads.empty()) << bad;
  }
}

// Codings other than chunked are reported, not decoded (issue 16).
TEST(HttpStreamParserTest, TransferCodingsAreReported) {
  struct Case {
    HttpStreamParser::Type type;
    std::string message;
    BodyFraming framing;
    std::vector<std::string> codings;
    std::string body;
  } cases[] = {
      {HttpStreamParser::kResponse,
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b",
       BodyFraming::kUntilClose,
       {"gzip"},
       "\x1f\x8b"},
      {HttpStreamParser::kResponse,
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: deflate ,, gzip\r\n\r\nz",
       BodyFraming::kUntilClose,
       {"deflate", "gzip"},
       "z"},
      {HttpStreamParser::kResponse,
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n"
       "Transfer-Encoding: Chunked\r\n\r\n2\r\n\x1f\x8b\r\n0\r\n\r\n",
       BodyFraming::kChunked,
       {"gzip"},
       "\x1f\x8b"},
      {HttpStreamParser::kResponse,
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
       "1\r\nx\r\n0\r\n\r\n",
       BodyFraming::kChunked,
       {},
       "x"},
      {HttpStreamParser::kRequest,
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: x-c;p=1 , chunked"
       "\r\n\r\n1\r\ny\r\n0\r\n\r\n",
       BodyFraming::kChunked,
       {"x-c;p=1"},
       "y"},
  };
  for (const Case& c : cases) {
    Recorder r;
    HttpStreamParser parser(c.type, &r);
    FeedAll(parser, c.message);
    if (c.framing == BodyFraming::kUntilClose) parser.FinishAtEof();
    EXPECT_FALSE(parser.failed()) << c.message << parser.error();
    ASSERT_EQ(r.heads.size(), 1u) << c.message;
    EXPECT_EQ(r.heads[0].framing, c.framing) << c.message;
    EXPECT_EQ(r.heads[0].transfer_codings, c.codings) << c.message;
    EXPECT_EQ(r.bodies[0], c.body) << c.message;
    EXPECT_EQ(r.completed, 1) << c.message;
  }
}

TEST(HttpStreamParserTest, UntrustworthyResponseFramingFailsWith502) {
  for (std::string bad : {
           // Both a length and Transfer-Encoding (RFC 9112 §6.3 item 3).
           std::string("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                       "Content-Length: 5\r\n\r\n"),
           std::string("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n"
                       "Content-Length: 5\r\n\r\n"),
           // Chunked not last, or twice; an empty list.
           std::string("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip"
                       "\r\n\r\n"),
           std::string("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n"),
           std::string("HTTP/1.1 200 OK\r\nTransfer-Encoding: ,\r\n\r\n"),
       }) {
    Recorder r;
    HttpStreamParser parser(HttpStreamParser::kResponse, &r);
    FeedAll(parser, bad);
    EXPECT_TRUE(parser.failed()) << bad;
    EXPECT_EQ(parser.error_status(), 502) << bad;
    EXPECT_TRUE(r.heads.empty()) << bad;
  }
  // An HTTP/1.0 response with Transfer-Encoding is read as framed, but the
  // connection is not kept (RFC 9112 §6.1).
  Recorder r;
  HttpStreamParser parser(HttpStreamParser::kResponse, &r);
  FeedAll(parser,
          "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n"
          "Transfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n");
  EXPECT_FALSE(parser.failed()) << parser.error();
  ASSERT_EQ(r.heads.size(), 1u);
  EXPECT_EQ(r.heads[0].framing, BodyFraming::kChunked);
  EXPECT_FALSE(r.heads[0].keep_alive);
  EXPECT_EQ(r.bodies[0], "x");
  // Bodiless responses keep the length they describe; their
  // Transfer-Encoding is not read.
  Recorder h;
  HttpStreamParser head(HttpStreamParser::kResponse, &h);
  head.ExpectHeadResponse(true);
  FeedAll(head,
          "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"
          "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: gzip, chunked\r\n"
          "\r\n");
  EXPECT_FALSE(head.failed()) << head.error();
  ASSERT_EQ(h.heads.size(), 2u);
  EXPECT_EQ(h.heads[0].framing, BodyFraming::kNone);
  EXPECT_TRUE(h.heads[0].has_content_length);
  EXPECT_EQ(h.heads[0].content_length, 99u);
  EXPECT_EQ(h.heads[1].framing, BodyFraming::kNone);
  EXPECT_TRUE(h.heads[1].transfer_codings.empty());
  EXPECT_EQ(h.completed, 2);
}

TEST(HttpStreamParserTest, HeaderLimitGives431AndVersion2Gives505) {
  HttpStreamParser::Options options;
  options.max_header_bytes = 64;
  Recorder r;
  HttpStreamParser parser(HttpStreamParser::kRequest, &r, options);
  FeedAll(parser, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " +
                      std::string(100, 'x') + "\r\n\r\n");
  EXPECT_TRUE(parser.failed());
  EXPECT_EQ(parser.error_status(), 431);
  EXPECT_TRUE(r.heads.empty());

  Recorder r2;
  HttpStreamParser v2(HttpStreamParser::kRequest, &r2);
  FeedAll(v2, "GET / HTTP/2.0\r\nHost: a\r\n\r\n");
  EXPECT_TRUE(v2.failed());
  EXPECT_EQ(v2.error_status(), 505);
}

TEST(HttpStreamParserTest, ResponseFramings) {
  struct Case {
    std::string response;
    bool head_request;
    BodyFraming framing;
    std::string body;
    bool keep_alive;
  } cases[] = {
      {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", false,
       BodyFraming::kLength, "abc", true},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0"
       "\r\n\r\n",
       false, BodyFraming::kChunked, "abc", true},
      // HEAD: the Content-Length describes the GET body, which is absent.
      {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", true, BodyFraming::kNone,
       "", true},
      // 204 and 304: no body even when a length is (wrongly) given.
      {"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n", false,
       BodyFraming::kNone, "", true},
      {"HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n", false,
       BodyFraming::kNone, "", true},
      {"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi", false,
       BodyFraming::kLength, "hi", false},
  };
  for (const Case& c : cases) {
    Recorder r;
    HttpStreamParser parser(HttpStreamParser::kResponse, &r);
    parser.ExpectHeadResponse(c.head_request);
    EXPECT_EQ(FeedAll(parser, c.response), c.response.size()) << c.response;
    EXPECT_FALSE(parser.failed()) << c.response << parser.error();
    ASSERT_EQ(r.heads.size(), 1u) << c.response;
    EXPECT_EQ(r.heads[0].framing, c.framing) << c.response;
    EXPECT_EQ(r.bodies[0], c.body) << c.response;
    EXPECT_EQ(r.heads[0].keep_alive, c.keep_alive) << c.response;
    EXPECT_EQ(r.completed, 1) << c.response;
  }
}

TEST(HttpStreamParserTest, CloseDelimitedResponseEndsAtEof) {
  Recorder r;
  HttpStreamParser parser(HttpStreamParser::kResponse, &r);
  const std::string input = "HTTP/1.1 200 OK\r\nContent-Type: x\r\n\r\nsome";
  EXPECT_EQ(FeedAll(parser, input), input.size());
  ASSERT_EQ(r.heads.size(), 1u);
  EXPECT_EQ(r.heads[0].framing, BodyFraming::kUntilClose);
  EXPECT_FALSE(r.heads[0].keep_alive);
  EXPECT_EQ(r.completed, 0);
  EXPECT_EQ(FeedAll(parser, " more"), 5u);
  EXPECT_TRUE(parser.FinishAtEof());
  EXPECT_EQ(r.completed, 1);
  EXPECT_EQ(r.bodies[0], "some more");
}

TEST(HttpStreamParserTest, EofInsideALengthDelimitedBodyFails) {
  Recorder r;
  HttpStreamParser parser(HttpStreamParser::kResponse, &r);
  FeedAll(parser, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
  EXPECT_FALSE(parser.FinishAtEof());
  EXPECT_TRUE(parser.failed());
  EXPECT_EQ(parser.error_status(), 502);
  EXPECT_EQ(r.completed, 0);
  // Between messages EOF is fine.
  Recorder r2;
  HttpStreamParser idle(HttpStreamParser::kResponse, &r2);
  EXPECT_TRUE(idle.FinishAtEof());
}

TEST(HttpStreamParserTest, InterimResponsesComeBeforeTheFinalOne) {
  Recorder r;
  HttpStreamParser parser(HttpStreamParser::kResponse, &r);
  parser.ExpectHeadResponse(true);
  const std::string input =
      "HTTP/1.1 100 Continue\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n";
  EXPECT_EQ(FeedAll(parser, input), input.size());
  ASSERT_EQ(r.heads.size(), 2u);
  EXPECT_EQ(r.heads[0].status, 100);
  EXPECT_EQ(r.heads[1].status, 200);
  EXPECT_EQ(r.heads[1].reason, "OK");
  // The HEAD expectation held across the 100: no body was expected.
  EXPECT_EQ(r.heads[1].framing, BodyFraming::kNone);
  EXPECT_EQ(r.completed, 2);
}

TEST(HttpStreamParserTest, MalformedResponseFailsWith502) {
  Recorder r;
  HttpStreamParser parser(HttpStreamParser::kResponse, &r);
  FeedAll(parser, "HTTP/1.1 abc\r\n\r\n");
  EXPECT_TRUE(parser.failed());
  EXPECT_EQ(parser.error_status(), 502);
}

TEST(HttpStreamParserTest, UpgradeRequestEndsTheHttpStream) {
  Recorder r;
  HttpStreamParser parser(HttpStreamParser::kRequest, &r);
  const std::string input =
      "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: "
      "websocket\r\n\r\n\x81\x05hello";
  FeedAll(parser, input);
  ASSERT_EQ(r.heads.size(), 1u);
  EXPECT_TRUE(r.heads[0].upgrade);
  EXPECT_EQ(r.completed, 1);
  EXPECT_FALSE(parser.failed());
  EXPECT_EQ(parser.Feed("\x81\x05hello"), 0u);
}

}  // namespace
}  // namespace mill::proxy
