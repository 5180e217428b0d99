#include "examples/proxy/forwarding.h"

#include <string>
#include <string_view>
#include <vector>

#include "examples/proxy/http_stream_parser.h"
#include "gtest/gtest.h"

namespace mill::proxy {
namespace {

struct HeadCatcher : HttpStreamParser::Listener {
  std::vector<MessageHead> heads;
  std::string body;
  void OnHead(MessageHead& head) override { heads.push_back(head); }
  void OnBody(std::string_view piece) override { body.append(piece); }
  void OnComplete() override {}
};

MessageHead Parse(HttpStreamParser::Type type, const std::string& bytes,
                  bool head_request = false) {
  HeadCatcher catcher;
  HttpStreamParser parser(type, &catcher);
  parser.ExpectHeadResponse(head_request);
  std::string_view rest = bytes;
  while (!rest.empty()) {
    const size_t n = parser.Feed(rest);
    EXPECT_FALSE(parser.failed()) << parser.error();
    if (n == 0) break;
    rest.remove_prefix(n);
  }
  EXPECT_EQ(catcher.heads.size(), 1u) << bytes;
  return catcher.heads.empty() ? MessageHead() : catcher.heads[0];
}

MessageHead Request(const std::string& bytes) {
  return Parse(HttpStreamParser::kRequest, bytes);
}
MessageHead Response(const std::string& bytes, bool head_request = false) {
  return Parse(HttpStreamParser::kResponse, bytes, head_request);
}

TEST(ForwardingTest, HopByHopFieldsAndConnectionTokens) {
  const MessageHead head = Request(
      "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret\r\n"
      "X-Secret: 1\r\nX-Public: 2\r\n\r\n");
  for (const char* name :
       {"Connection", "keep-alive", "TE", "Trailer", "Upgrade",
        "Transfer-Encoding", "Proxy-Connection", "x-secret"}) {
    EXPECT_TRUE(IsHopByHop(head, name)) << name;
  }
  EXPECT_FALSE(IsHopByHop(head, "X-Public"));
  EXPECT_FALSE(IsHopByHop(head, "Host"));
  EXPECT_FALSE(IsHopByHop(head, "Content-Length"));
}

TEST(ForwardingTest, UpstreamRequestHead) {
  const MessageHead request = Request(
      "GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n"
      "Connection: Keep-Alive, X-Hop\r\nKeep-Alive: timeout=5\r\nX-Hop: h\r\n"
      "TE: trailers\r\nProxy-Connection: keep-alive\r\nUpgrade: h2c\r\n"
      "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2 \r\n\r\n");
  std::string out;
  AppendUpstreamRequestHead(request, "127.0.0.1", "up:80", /*close=*/false,
                            &out);
  EXPECT_EQ(out,
            "GET /a?b=1 HTTP/1.1\r\n"
            "Host: example.com\r\n"
            "User-Agent: t\r\n"
            "X-Forwarded-For: 10.0.0.1, 10.0.0.2, 127.0.0.1\r\n"
            "Via: 1.1 mill-proxy\r\n"
            "\r\n");
}

TEST(ForwardingTest, UpstreamRequestFramingHostAndClose) {
  // HTTP/1.0 without Host: the upstream's authority; a Content-Length body.
  std::string out;
  AppendUpstreamRequestHead(
      Request("POST /p HTTP/1.0\r\nContent-Length: 3\r\nVia: 1.0 edge\r\n\r\n"
              "abc"),
      "::1", "127.0.0.1:8080", /*close=*/true, &out);
  EXPECT_EQ(out,
            "POST /p HTTP/1.1\r\n"
            "Host: 127.0.0.1:8080\r\n"
            "X-Forwarded-For: ::1\r\n"
            "Via: 1.0 edge, 1.1 mill-proxy\r\n"
            "Content-Length: 3\r\n"
            "Connection: close\r\n"
            "\r\n");
  // Chunked stays chunked.
  out.clear();
  AppendUpstreamRequestHead(
      Request("PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
              "0\r\n\r\n"),
      "127.0.0.1", "u:1", false, &out);
  EXPECT_EQ(out,
            "PUT /c HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 127.0.0.1\r\n"
            "Via: 1.1 mill-proxy\r\nTransfer-Encoding: chunked\r\n\r\n");
}

TEST(ForwardingTest, ClientResponsePlans) {
  const MessageHead get11 = Request("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  const MessageHead get10 =
      Request("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  const MessageHead length =
      Response("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
  const MessageHead chunked = Response(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
  const MessageHead until_close = Response("HTTP/1.0 200 OK\r\n\r\n");

  ClientResponsePlan plan = PlanClientResponse(get11, length, true);
  EXPECT_EQ(plan.framing, BodyFraming::kLength);
  EXPECT_FALSE(plan.close);
  plan = PlanClientResponse(get11, chunked, true);
  EXPECT_EQ(plan.framing, BodyFraming::kChunked);
  EXPECT_FALSE(plan.close);
  // A close-delimited upstream body reaches an HTTP/1.1 client chunked, so
  // the client connection survives it.
  plan = PlanClientResponse(get11, until_close, true);
  EXPECT_EQ(plan.framing, BodyFraming::kChunked);
  EXPECT_FALSE(plan.close);
  // HTTP/1.0 clients cannot take chunks: delimited by closing.
  plan = PlanClientResponse(get10, chunked, true);
  EXPECT_EQ(plan.framing, BodyFraming::kUntilClose);
  EXPECT_TRUE(plan.close);
  plan = PlanClientResponse(get10, length, true);
  EXPECT_EQ(plan.framing, BodyFraming::kLength);
  EXPECT_FALSE(plan.close);
  plan = PlanClientResponse(get11, length, /*client_keep_alive=*/false);
  EXPECT_TRUE(plan.close);
}

TEST(ForwardingTest, ClientResponseHeads) {
  const MessageHead get11 = Request("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  const MessageHead get10 =
      Request("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  const MessageHead until_close =
      Response("HTTP/1.0 200 Fine\r\nServer: up\r\nConnection: close\r\n\r\n");
  std::string out;
  AppendClientResponseHead(get11, until_close,
                           PlanClientResponse(get11, until_close, true), &out);
  EXPECT_EQ(out,
            "HTTP/1.1 200 Fine\r\nServer: up\r\nVia: 1.1 mill-proxy\r\n"
            "Transfer-Encoding: chunked\r\n\r\n");

  const MessageHead length = Response(
      "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\nKeep-Alive: x\r\n\r\n"
      "no");
  out.clear();
  AppendClientResponseHead(get10, length,
                           PlanClientResponse(get10, length, true), &out);
  EXPECT_EQ(out,
            "HTTP/1.1 404 Not Found\r\nVia: 1.1 mill-proxy\r\n"
            "Content-Length: 2\r\nConnection: keep-alive\r\n\r\n");

  // A chunked body re-chunked: no Content-Length, closing when asked.
  const MessageHead chunked = Response(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X\r\n\r\n"
      "0\r\n\r\n");
  out.clear();
  AppendClientResponseHead(get11, chunked,
                           PlanClientResponse(get11, chunked, false), &out);
  EXPECT_EQ(out,
            "HTTP/1.1 200 OK\r\nVia: 1.1 mill-proxy\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");

  // HEAD keeps the length it describes; 204 loses a stray one; 100 gets no
  // framing fields at all.
  const MessageHead head_reply =
      Response("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", true);
  out.clear();
  AppendClientResponseHead(get11, head_reply,
                           PlanClientResponse(get11, head_reply, true), &out);
  EXPECT_EQ(out,
            "HTTP/1.1 200 OK\r\nVia: 1.1 mill-proxy\r\n"
            "Content-Length: 99\r\n\r\n");
  const MessageHead no_content =
      Response("HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n");
  out.clear();
  AppendClientResponseHead(get11, no_content,
                           PlanClientResponse(get11, no_content, true), &out);
  EXPECT_EQ(out, "HTTP/1.1 204 No Content\r\nVia: 1.1 mill-proxy\r\n\r\n");
  const MessageHead cont = Response("HTTP/1.1 100 Continue\r\n\r\n");
  out.clear();
  AppendClientResponseHead(get11, cont, ClientResponsePlan{}, &out);
  EXPECT_EQ(out, "HTTP/1.1 100 Continue\r\nVia: 1.1 mill-proxy\r\n\r\n");
}

// Request smuggling (issue 16): a Connection field naming the framing or
// Host removed them from the forwarded message.
TEST(ForwardingTest, ConnectionNeverRemovesFramingOrHost) {
  const MessageHead head = Request(
      "GET / HTTP/1.1\r\nHost: a\r\n"
      "Connection: Content-Length, Host, Transfer-Encoding, X-A\r\n"
      "X-A: 1\r\n\r\n");
  EXPECT_FALSE(IsHopByHop(head, "Content-Length"));
  EXPECT_FALSE(IsHopByHop(head, "host"));
  EXPECT_TRUE(IsHopByHop(head, "Transfer-Encoding"));  // fixed; re-framed
  EXPECT_TRUE(IsHopByHop(head, "X-A"));

  const std::string body = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
  std::string out;
  AppendUpstreamRequestHead(
      Request("POST /p HTTP/1.1\r\nHost: h\r\nConnection: Content-Length, "
              "Host\r\nContent-Length: " +
              std::to_string(body.size()) + "\r\n\r\n" + body),
      "127.0.0.1", "u:1", false, &out);
  EXPECT_EQ(out,
            "POST /p HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 127.0.0.1\r\n"
            "Via: 1.1 mill-proxy\r\nContent-Length: " +
                std::to_string(body.size()) + "\r\n\r\n");
  // A chunked request naming Transfer-Encoding in Connection stays chunked.
  out.clear();
  AppendUpstreamRequestHead(
      Request("POST /p HTTP/1.1\r\nHost: h\r\nConnection: "
              "Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n"
              "0\r\n\r\n"),
      "127.0.0.1", "u:1", false, &out);
  EXPECT_EQ(out,
            "POST /p HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 127.0.0.1\r\n"
            "Via: 1.1 mill-proxy\r\nTransfer-Encoding: chunked\r\n\r\n");

  // The response direction, with a body and answering HEAD.
  const MessageHead get11 = Request("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  const MessageHead length = Response(
      "HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: "
      "5\r\n\r\nhello");
  out.clear();
  AppendClientResponseHead(get11, length,
                           PlanClientResponse(get11, length, true), &out);
  EXPECT_EQ(out,
            "HTTP/1.1 200 OK\r\nVia: 1.1 mill-proxy\r\nContent-Length: 5\r\n"
            "\r\n");
  const MessageHead head_reply = Response(
      "HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: "
      "99\r\n\r\n",
      /*head_request=*/true);
  out.clear();
  AppendClientResponseHead(get11, head_reply,
                           PlanClientResponse(get11, head_reply, true), &out);
  EXPECT_EQ(out,
            "HTTP/1.1 200 OK\r\nVia: 1.1 mill-proxy\r\nContent-Length: 99\r\n"
            "\r\n");
}

// The length sent is the one parsed, not the peer's spelling of it; a
// folded header line stays one line.
TEST(ForwardingTest, FramingIsWrittenFromTheParsedState) {
  std::string out;
  AppendUpstreamRequestHead(
      Request("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 003\r\n"
              "X-Folded: a\r\n Transfer-Encoding: chunked\r\n\r\nabc"),
      "127.0.0.1", "u:1", false, &out);
  EXPECT_EQ(out,
            "POST /p HTTP/1.1\r\nHost: h\r\n"
            "X-Folded: a Transfer-Encoding: chunked\r\n"
            "X-Forwarded-For: 127.0.0.1\r\nVia: 1.1 mill-proxy\r\n"
            "Content-Length: 3\r\n\r\n");
  const MessageHead get11 = Request("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  const MessageHead length =
      Response("HTTP/1.1 200 OK\r\nContent-Length: 0002\r\n\r\nhi");
  out.clear();
  AppendClientResponseHead(get11, length,
                           PlanClientResponse(get11, length, true), &out);
  EXPECT_EQ(out,
            "HTTP/1.1 200 OK\r\nVia: 1.1 mill-proxy\r\nContent-Length: 2\r\n"
            "\r\n");
}

// Issue 16: "Transfer-Encoding: gzip" lost its coding when re-chunked.
TEST(ForwardingTest, TransferCodingsOtherThanChunkedAreKept) {
  const MessageHead get11 = Request("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  const MessageHead get10 = Request("GET / HTTP/1.0\r\n\r\n");
  const MessageHead gzip_until_close =
      Response("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
  const MessageHead gzip_chunked = Response(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: x-coding;p=1, gzip\r\n"
      "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
  for (const MessageHead* response : {&gzip_until_close, &gzip_chunked}) {
    const ClientResponsePlan plan = PlanClientResponse(get11, *response, true);
    EXPECT_EQ(plan.framing, BodyFraming::kChunked);
    EXPECT_FALSE(plan.bad_gateway);
    std::string out;
    AppendClientResponseHead(get11, *response, plan, &out);
    const std::string codings = response == &gzip_chunked
                                    ? "x-coding;p=1, gzip, chunked"
                                    : "gzip, chunked";
    EXPECT_EQ(out,
              "HTTP/1.1 200 OK\r\nVia: 1.1 mill-proxy\r\n"
              "Transfer-Encoding: " +
                  codings + "\r\n\r\n");
    // HTTP/1.0 must not get Transfer-Encoding, and the proxy does not
    // decode: a 502 instead.
    EXPECT_TRUE(PlanClientResponse(get10, *response, true).bad_gateway);
  }
  // Plain chunked or close-delimited responses still reach HTTP/1.0.
  EXPECT_FALSE(
      PlanClientResponse(get10, Response("HTTP/1.1 200 OK\r\n\r\n"), true)
          .bad_gateway);
  // A request's codings go upstream as they came.
  std::string out;
  AppendUpstreamRequestHead(
      Request("POST /p HTTP/1.1\r\nHost: h\r\n"
              "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
      "127.0.0.1", "u:1", false, &out);
  EXPECT_EQ(out,
            "POST /p HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 127.0.0.1\r\n"
            "Via: 1.1 mill-proxy\r\nTransfer-Encoding: gzip, chunked\r\n"
            "\r\n");
}

TEST(ForwardingTest, BodyPiecesAndEnds) {
  std::string out;
  AppendBodyPiece(BodyFraming::kChunked, "hello world, this is 26 b", &out);
  AppendBodyPiece(BodyFraming::kChunked, "", &out);  // never a last chunk
  out.append(BodyEnd(BodyFraming::kChunked));
  EXPECT_EQ(out, "19\r\nhello world, this is 26 b\r\n0\r\n\r\n");
  out.clear();
  AppendBodyPiece(BodyFraming::kLength, "raw", &out);
  out.append(BodyEnd(BodyFraming::kLength));
  EXPECT_EQ(out, "raw");
  // What the proxy emits parses back to the same body.
  HeadCatcher catcher;
  HttpStreamParser parser(HttpStreamParser::kResponse, &catcher);
  std::string framed = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  AppendBodyPiece(BodyFraming::kChunked, std::string(5000, 'z'), &framed);
  AppendBodyPiece(BodyFraming::kChunked, "tail", &framed);
  framed.append(BodyEnd(BodyFraming::kChunked));
  std::string_view rest = framed;
  while (!rest.empty()) {
    const size_t n = parser.Feed(rest);
    ASSERT_FALSE(parser.failed());
    if (n == 0) break;
    rest.remove_prefix(n);
  }
  EXPECT_TRUE(rest.empty());
  EXPECT_EQ(catcher.body, std::string(5000, 'z') + "tail");
}

TEST(ForwardingTest, ErrorResponses) {
  EXPECT_EQ(ErrorResponse(502, true),
            "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; "
            "charset=utf-8\r\nContent-Length: 12\r\nConnection: close\r\n\r\n"
            "Bad Gateway\n");
  EXPECT_EQ(ErrorResponse(504, false),
            "HTTP/1.1 504 Gateway Timeout\r\nContent-Type: text/plain; "
            "charset=utf-8\r\nContent-Length: 16\r\n\r\nGateway Timeout\n");
}

}  // namespace
}  // namespace mill::proxy
