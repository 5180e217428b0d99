#include "examples/http/http_connection.h"

#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "examples/http/file_io.h"
#include "examples/http/static_file_service.h"
#include "examples/http/test_util.h"
#include "gtest/gtest.h"

namespace mill::http {
namespace {

using Action = HttpConnection::Action;
using testing::FeedToString;
using testing::ParsedResponse;
using testing::ParseResponses;

constexpr std::time_t kFixedTime = 784111777;  // Sun, 06 Nov 1994 08:49:37
constexpr char kGreeting[] = "Hello from Mill-IO!\n";

class HttpConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto service = StaticFileService::Create({});
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = *std::move(service);
  }

  HttpConnection::Options FixedClock(size_t max_header_bytes = 8 * 1024) {
    HttpConnection::Options options;
    options.clock = [] { return kFixedTime; };
    options.max_header_bytes = max_header_bytes;
    return options;
  }

  std::unique_ptr<HttpConnection> NewConnection(
      size_t max_header_bytes = 8 * 1024) {
    return std::make_unique<HttpConnection>(service_->AsHandler(),
                                            FixedClock(max_header_bytes));
  }

  std::unique_ptr<StaticFileService> service_;
};

// ---- Output pieces: bytes and file ranges ----

// Records what the connection writes, piece by piece.
class RecordingSink : public ResponseSink {
 public:
  struct Piece {
    std::string bytes;                     // A Write().
    std::shared_ptr<const FileBody> file;  // A WriteFile().
    uint64_t offset = 0;
    uint64_t length = 0;
  };

  void Write(std::string_view bytes) override {
    pieces.push_back({std::string(bytes), nullptr, 0, 0});
  }
  void WriteFile(std::shared_ptr<const FileBody> file, uint64_t offset,
                 uint64_t length) override {
    pieces.push_back({"", std::move(file), offset, length});
  }

  std::vector<Piece> pieces;
};

// A temporary file holding "0123456789", opened as a FileBody.
std::shared_ptr<const FileBody> DigitsFile() {
  static int counter = 0;
  const std::string path =
      ::testing::TempDir() + "/digits_" + std::to_string(counter++) + ".txt";
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << "0123456789";
    EXPECT_TRUE(out.good()) << path;
  }
  const absl::StatusOr<int> opened = internal::OpenFileForReading(path);
  EXPECT_TRUE(opened.ok()) << opened.status();
  const int fd = opened.value_or(-1);
  const absl::StatusOr<FileInfo> info = internal::StatOpenFile(fd);
  EXPECT_TRUE(info.ok()) << info.status();
  return std::make_shared<const FileBody>(fd, info.value_or(FileInfo()));
}

// Answers "/file" with bytes 2..5 of the digits file, anything else with
// a short text.
HttpHandler FileHandler(std::shared_ptr<const FileBody> file) {
  return [file](const HttpRequest& request) {
    if (request.target != "/file") return HttpResponse::Text(200, "text");
    HttpResponse response;
    response.status = 206;
    response.headers.emplace_back("Content-Range", "bytes 2-5/10");
    response.file = file;
    response.file_offset = 2;
    response.file_length = 4;
    return response;
  };
}

HttpConnection::Options NoDate() {
  HttpConnection::Options options;
  options.send_date = false;
  return options;
}

TEST(HttpConnectionFileTest, FileBodiesArePassedOnAsRangesInOrder) {
  auto file = DigitsFile();
  HttpConnection conn(FileHandler(file), NoDate());
  RecordingSink sink;
  EXPECT_EQ(conn.Feed("GET /file HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /text HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /file HTTP/1.1\r\nHost: x\r\n\r\n",
                      &sink),
            Action::kKeepOpen);
  ASSERT_EQ(sink.pieces.size(), 5u);
  EXPECT_EQ(sink.pieces[0].bytes,
            "HTTP/1.1 206 Partial Content\r\n"
            "Server: mill-io\r\n"
            "Content-Range: bytes 2-5/10\r\n"
            "Content-Length: 4\r\n"
            "\r\n");
  EXPECT_EQ(sink.pieces[1].file, file);  // The same open file, unread.
  EXPECT_EQ(sink.pieces[1].offset, 2u);
  EXPECT_EQ(sink.pieces[1].length, 4u);
  EXPECT_EQ(sink.pieces[2].file, nullptr);
  EXPECT_NE(sink.pieces[2].bytes.find("Content-Length: 4\r\n\r\ntext"),
            std::string::npos);
  EXPECT_EQ(sink.pieces[3].bytes, sink.pieces[0].bytes);
  EXPECT_EQ(sink.pieces[4].file, file);
  // Flattened, the same stream parses into three responses.
  std::string out;
  StringResponseSink flat(&out);
  for (const auto& piece : sink.pieces) {
    if (piece.file != nullptr) {
      flat.WriteFile(piece.file, piece.offset, piece.length);
    } else {
      flat.Write(piece.bytes);
    }
  }
  ASSERT_TRUE(flat.status().ok());
  auto responses = ParseResponses(out);
  ASSERT_EQ(responses.size(), 3u);
  EXPECT_EQ(responses[0].body, "2345");
  EXPECT_EQ(responses[1].body, "text");
  EXPECT_EQ(responses[2].body, "2345");
}

TEST(HttpConnectionFileTest, HeadSendsNoFileRange) {
  HttpConnection conn(FileHandler(DigitsFile()), NoDate());
  RecordingSink sink;
  conn.Feed("HEAD /file HTTP/1.1\r\nHost: x\r\n\r\n", &sink);
  ASSERT_EQ(sink.pieces.size(), 1u);
  EXPECT_EQ(sink.pieces[0].file, nullptr);
  EXPECT_NE(sink.pieces[0].bytes.find("Content-Length: 4\r\n"),
            std::string::npos);
  EXPECT_EQ(sink.pieces[0].bytes.substr(sink.pieces[0].bytes.size() - 4),
            "\r\n\r\n");
}

TEST(HttpConnectionFileTest, EmptyFileRangeSendsOnlyTheHead) {
  auto file = DigitsFile();
  HttpConnection conn(
      [file](const HttpRequest&) {
        HttpResponse response;
        response.file = file;
        response.file_offset = 10;
        response.file_length = 0;
        return response;
      },
      NoDate());
  RecordingSink sink;
  conn.Feed("GET / HTTP/1.1\r\nHost: x\r\n\r\n", &sink);
  ASSERT_EQ(sink.pieces.size(), 1u);
  EXPECT_NE(sink.pieces[0].bytes.find("Content-Length: 0\r\n"),
            std::string::npos);
}

TEST(HttpConnectionFileTest, FileRangeOutsideTheFileIs500) {
  auto file = DigitsFile();
  for (const auto& [offset, length] : {std::pair<uint64_t, uint64_t>{0, 11},
                                       {11, 0},
                                       {5, 6},
                                       {1, UINT64_MAX}}) {
    HttpConnection conn(
        [file, offset = offset, length = length](const HttpRequest&) {
          HttpResponse response;
          response.file = file;
          response.file_offset = offset;
          response.file_length = length;
          return response;
        },
        NoDate());
    RecordingSink sink;
    conn.Feed("GET / HTTP/1.1\r\nHost: x\r\n\r\n", &sink);
    ASSERT_EQ(sink.pieces.size(), 1u) << offset << "+" << length;
    auto responses = ParseResponses(sink.pieces[0].bytes);
    ASSERT_EQ(responses.size(), 1u);
    EXPECT_EQ(responses[0].status, 500) << offset << "+" << length;
  }
}

TEST(HttpConnectionFileTest, NotModifiedAndNoContentHaveNoBodyNorLength) {
  for (const int status : {304, 204}) {
    HttpConnection conn(
        [status](const HttpRequest&) {
          HttpResponse response;
          response.status = status;
          response.headers.emplace_back("ETag", "\"x\"");
          response.body = "must not be sent";
          return response;
        },
        NoDate());
    std::string out;
    EXPECT_EQ(FeedToString(conn,
                           "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
                           "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                           &out),
              Action::kKeepOpen);
    const std::string head = "HTTP/1.1 " + std::to_string(status) + " " +
                             StatusReason(status) +
                             "\r\nServer: mill-io\r\nETag: \"x\"\r\n\r\n";
    EXPECT_EQ(out, head + head);
  }
}

TEST_F(HttpConnectionTest, GetRootIsTheGreetingByteForByte) {
  auto conn = NewConnection();
  std::string out;
  EXPECT_EQ(FeedToString(*conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", &out),
            Action::kKeepOpen);
  EXPECT_EQ(out,
            "HTTP/1.1 200 OK\r\n"
            "Server: mill-io\r\n"
            "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 20\r\n"
            "\r\n"
            "Hello from Mill-IO!\n");
  EXPECT_EQ(conn->responses(), 1u);
  EXPECT_FALSE(conn->closed());
}

TEST_F(HttpConnectionTest, HeadHasGetHeadersAndNoBody) {
  auto conn = NewConnection();
  std::string get_out;
  std::string head_out;
  FeedToString(*conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", &get_out);
  EXPECT_EQ(
      FeedToString(*conn, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", &head_out),
      Action::kKeepOpen);
  // Same bytes, minus the body.
  EXPECT_EQ(head_out, get_out.substr(0, get_out.size() - strlen(kGreeting)));
  EXPECT_NE(head_out.find("Content-Length: 20\r\n"), std::string::npos);
  EXPECT_EQ(head_out.substr(head_out.size() - 4), "\r\n\r\n");
}

TEST_F(HttpConnectionTest, NotFound) {
  auto conn = NewConnection();
  std::string out;
  FeedToString(*conn, "GET /nothing/here HTTP/1.1\r\nHost: x\r\n\r\n", &out);
  auto responses = ParseResponses(out);
  ASSERT_EQ(responses.size(), 1u);
  EXPECT_EQ(responses[0].status_line, "HTTP/1.1 404 Not Found");
  EXPECT_EQ(responses[0].body, "Not Found\n");
}

TEST_F(HttpConnectionTest, OtherMethodsAre405WithAllow) {
  for (const char* method : {"POST", "PUT", "DELETE", "OPTIONS", "PATCH"}) {
    auto conn = NewConnection();
    std::string out;
    EXPECT_EQ(FeedToString(*conn,
                           std::string(method) +
                               " / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                               "\r\nhello",
                           &out),
              Action::kKeepOpen);
    auto responses = ParseResponses(out);
    ASSERT_EQ(responses.size(), 1u) << method;
    EXPECT_EQ(responses[0].status, 405) << method;
    EXPECT_EQ(responses[0].Header("Allow"), "GET, HEAD");
  }
}

// Found by the fuzzer: trailer fields after a chunked body are not headers
// of the request (RFC 9110, 6.5.1); the handler sees the header section
// only, and the next request is unaffected.
TEST(HttpConnectionTrailerTest, TrailerFieldsAreNotHeaders) {
  std::vector<std::vector<std::pair<std::string, std::string>>> seen;
  HttpConnection::Options options;
  options.clock = [] { return kFixedTime; };
  HttpConnection conn(
      [&seen](const HttpRequest& request) {
        seen.push_back(request.headers);
        return HttpResponse::Text(200, request.target);
      },
      options);
  std::string out;
  FeedToString(conn,
               "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
               "\r\n5\r\nhello\r\n0\r\nUpgrade: websocket\r\nX-T: 1\r\n\r\n"
               "GET /after HTTP/1.1\r\nHost: x\r\n\r\n",
               &out);
  const std::vector<ParsedResponse> responses = ParseResponses(out);
  ASSERT_EQ(responses.size(), 2u) << out;
  EXPECT_EQ(responses[0].body, "/c");
  EXPECT_EQ(responses[1].body, "/after");
  ASSERT_EQ(seen.size(), 2u);
  const std::vector<std::pair<std::string, std::string>> first = {
      {"Host", "x"}, {"Transfer-Encoding", "chunked"}};
  const std::vector<std::pair<std::string, std::string>> second = {
      {"Host", "x"}};
  EXPECT_EQ(seen[0], first);
  EXPECT_EQ(seen[1], second);
}

TEST_F(HttpConnectionTest, RequestBodiesAreSkippedNotMistakenForRequests) {
  auto conn = NewConnection();
  std::string out;
  const std::string body = "GET /smuggled HTTP/1.1\r\n\r\n";
  FeedToString(
      *conn,
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " +
          std::to_string(body.size()) + "\r\n\r\n" + body +
          "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
          "5\r\nhello\r\n0\r\n\r\n"
          "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
      &out);
  auto responses = ParseResponses(out);
  ASSERT_EQ(responses.size(), 3u);
  EXPECT_EQ(responses[0].status, 405);
  EXPECT_EQ(responses[1].status, 405);
  EXPECT_EQ(responses[2].status, 200);
}

// A Connection field naming the framing or Host changes nothing: the body
// is still skipped by its length (no request smuggled in it), and the Host
// rule still holds (issue 16: the proxy's bug, checked here too).
TEST_F(HttpConnectionTest, ConnectionFieldDoesNotChangeFramingOrHost) {
  auto conn = NewConnection();
  std::string out;
  const std::string body = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
  EXPECT_EQ(
      FeedToString(*conn,
                   "POST / HTTP/1.1\r\nHost: x\r\n"
                   "Connection: Content-Length, Host\r\nContent-Length: " +
                       std::to_string(body.size()) + "\r\n\r\n" + body +
                       "GET / HTTP/1.1\r\nConnection: Host\r\n\r\n",
                   &out),
      Action::kClose);
  auto responses = ParseResponses(out);
  ASSERT_EQ(responses.size(), 2u) << out;
  EXPECT_EQ(responses[0].status, 405);
  EXPECT_EQ(responses[1].status, 400);  // no Host, whatever Connection says
}

// Transfer-Encoding the connection cannot frame reliably, where a peer
// before it may have read the body differently (RFC 9112 6.1, 6.3): 400 and
// close, never a guess followed by more requests on the connection.
TEST_F(HttpConnectionTest, UntrustworthyTransferEncodingIs400AndCloses) {
  for (const char* request : {
           // HTTP/1.0 with Transfer-Encoding: an HTTP/1.0 hop before may
           // have forwarded the chunks without reading them as such.
           "POST / HTTP/1.0\r\nConnection: keep-alive\r\n"
           "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
           // chunked twice, or not last, or read another way by the parser.
           "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, "
           "chunked\r\n\r\n0\r\n\r\n",
           "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
           "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
           "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \"x\", chunked"
           "\r\n\r\n0\r\n\r\n",
           "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
       }) {
    auto conn = NewConnection();
    std::string out;
    EXPECT_EQ(
        FeedToString(*conn,
                     std::string(request) + "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                     &out),
        Action::kClose)
        << request;
    auto responses = ParseResponses(out);
    ASSERT_EQ(responses.size(), 1u) << request << out;
    EXPECT_EQ(responses[0].status, 400) << request;
    EXPECT_EQ(responses[0].Header("Connection"), "close") << request;
  }
  // A coding before a final chunked is fine (the body is skipped anyway).
  auto conn = NewConnection();
  std::string out;
  EXPECT_EQ(FeedToString(*conn,
                         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
                         "gzip, chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n"
                         "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                         &out),
            Action::kKeepOpen);
  auto responses = ParseResponses(out);
  ASSERT_EQ(responses.size(), 2u) << out;
  EXPECT_EQ(responses[0].status, 405);
  EXPECT_EQ(responses[1].status, 200);
}

TEST_F(HttpConnectionTest, GarbageIs400AndCloses) {
  for (const char* garbage :
       {"GARBAGE\r\n\r\n", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        "GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
        "Content-Length: 2\r\n\r\n",
        "GET / HTTX/1.1\r\n\r\n"}) {
    auto conn = NewConnection();
    std::string out;
    EXPECT_EQ(FeedToString(*conn, garbage, &out), Action::kClose) << garbage;
    auto responses = ParseResponses(out);
    ASSERT_EQ(responses.size(), 1u) << garbage;
    EXPECT_EQ(responses[0].status, 400) << garbage;
    EXPECT_EQ(responses[0].Header("Connection"), "close");
    EXPECT_TRUE(conn->closed());
    // A closed connection ignores whatever else arrives.
    out.clear();
    EXPECT_EQ(FeedToString(*conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", &out),
              Action::kClose);
    EXPECT_EQ(out, "");
  }
}

TEST_F(HttpConnectionTest, ResponsesBeforeAMalformedRequestAreKept) {
  auto conn = NewConnection();
  std::string out;
  EXPECT_EQ(
      FeedToString(*conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\nBOGUS\x01\r\n\r\n",
                   &out),
      Action::kClose);
  auto responses = ParseResponses(out);
  ASSERT_EQ(responses.size(), 2u);
  EXPECT_EQ(responses[0].status, 200);
  EXPECT_EQ(responses[1].status, 400);
}

TEST_F(HttpConnectionTest, HostHeaderRules) {
  struct Case {
    const char* request;
    int status;
  };
  for (const Case& c : {
           Case{"GET / HTTP/1.1\r\n\r\n", 400},
           Case{"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400},
           Case{"GET / HTTP/1.0\r\n\r\n", 200},
           Case{"GET / HTTP/1.1\r\nHOST: a\r\n\r\n", 200},
       }) {
    auto conn = NewConnection();
    std::string out;
    FeedToString(*conn, c.request, &out);
    auto responses = ParseResponses(out);
    ASSERT_EQ(responses.size(), 1u) << c.request;
    EXPECT_EQ(responses[0].status, c.status) << c.request;
  }
}

TEST_F(HttpConnectionTest, OversizedHeadersAre431AndClose) {
  auto conn = NewConnection(/*max_header_bytes=*/256);
  std::string out;
  const std::string request =
      "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(300, 'a') +
      "\r\n\r\n";
  EXPECT_EQ(FeedToString(*conn, request, &out), Action::kClose);
  auto responses = ParseResponses(out);
  ASSERT_EQ(responses.size(), 1u);
  EXPECT_EQ(responses[0].status_line,
            "HTTP/1.1 431 Request Header Fields Too Large");
  EXPECT_EQ(responses[0].Header("Connection"), "close");
}

TEST_F(HttpConnectionTest, HeaderLimitCountsManyHeadersAndLongTargets) {
  {  // Default limit is 8 KiB: 7 KiB passes, 9 KiB does not.
    auto ok = NewConnection();
    auto big = NewConnection();
    std::string out_ok;
    std::string out_big;
    FeedToString(*ok,
                 "GET / HTTP/1.1\r\nHost: x\r\nX-A: " +
                     std::string(7 * 1024, 'a') + "\r\n\r\n",
                 &out_ok);
    FeedToString(*big,
                 "GET / HTTP/1.1\r\nHost: x\r\nX-A: " +
                     std::string(9 * 1024, 'a') + "\r\n\r\n",
                 &out_big);
    EXPECT_EQ(ParseResponses(out_ok).at(0).status, 200);
    EXPECT_EQ(ParseResponses(out_big).at(0).status, 431);
  }
  {  // Many small headers add up, including their per-line overhead.
    auto conn = NewConnection(/*max_header_bytes=*/1024);
    std::string request = "GET / HTTP/1.1\r\nHost: x\r\n";
    for (int i = 0; i < 300; ++i) request += "A:\r\n";  // 1 + 4 bytes each.
    std::string out;
    EXPECT_EQ(FeedToString(*conn, request + "\r\n", &out), Action::kClose);
    EXPECT_EQ(ParseResponses(out).at(0).status, 431);
  }
  {  // The request-target counts too.
    auto conn = NewConnection(/*max_header_bytes=*/1024);
    std::string out;
    FeedToString(
        *conn,
        "GET /" + std::string(2000, 'p') + " HTTP/1.1\r\nHost: x\r\n\r\n",
        &out);
    EXPECT_EQ(ParseResponses(out).at(0).status, 431);
  }
  {  // Fed in small pieces, the limit trips before the section ends.
    auto conn = NewConnection(/*max_header_bytes=*/1024);
    std::string out;
    Action action =
        FeedToString(*conn, "GET / HTTP/1.1\r\nHost: x\r\nX-A: ", &out);
    for (int i = 0; i < 100 && action == Action::kKeepOpen; ++i) {
      action = FeedToString(*conn, std::string(64, 'a'), &out);
    }
    EXPECT_EQ(action, Action::kClose);
    EXPECT_EQ(ParseResponses(out).at(0).status, 431);
  }
}

TEST_F(HttpConnectionTest, PipelinedRequestsAreAnsweredInOrder) {
  auto conn = NewConnection();
  std::string out;
  EXPECT_EQ(FeedToString(*conn,
                         "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
                         "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"
                         "GET /missing HTTP/1.1\r\nHost: x\r\n\r\n",
                         &out),
            Action::kKeepOpen);
  auto responses = ParseResponses(out, {false, true, false});
  ASSERT_EQ(responses.size(), 3u);
  EXPECT_EQ(responses[0].status, 200);
  EXPECT_EQ(responses[0].body, kGreeting);
  EXPECT_EQ(responses[1].status, 200);
  EXPECT_EQ(responses[1].Header("Content-Length"), "20");
  EXPECT_EQ(responses[1].body, "");
  EXPECT_EQ(responses[2].status, 404);
  EXPECT_EQ(conn->responses(), 3u);
}

TEST_F(HttpConnectionTest, RequestSplitByteByByte) {
  auto conn = NewConnection();
  const std::string requests =
      "GET / HTTP/1.1\r\nHost: example.com\r\nUser-Agent: test\r\n"
      "Accept: */*\r\n\r\n"
      "GET /x HTTP/1.1\r\nHost: example.com\r\n\r\n";
  std::string out;
  size_t first_response_at = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ(FeedToString(*conn, requests.substr(i, 1), &out),
              Action::kKeepOpen);
    if (first_response_at == 0 && !out.empty()) first_response_at = i;
  }
  // Answered exactly when the first request's last byte arrived.
  EXPECT_EQ(first_response_at, requests.find("\r\n\r\n") + 3);
  auto responses = ParseResponses(out);
  ASSERT_EQ(responses.size(), 2u);
  EXPECT_EQ(responses[0].status, 200);
  EXPECT_EQ(responses[0].body, kGreeting);
  EXPECT_EQ(responses[1].status, 404);
}

TEST_F(HttpConnectionTest, KeepAliveRules) {
  struct Case {
    const char* request;
    Action action;
    const char* connection_header;
  };
  for (const Case& c : {
           Case{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", Action::kKeepOpen,
                "<absent>"},
           Case{"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                Action::kClose, "close"},
           Case{"GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n",
                Action::kClose, "close"},
           Case{"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
                Action::kKeepOpen, "<absent>"},
           Case{"GET / HTTP/1.0\r\n\r\n", Action::kClose, "close"},
           Case{"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                Action::kKeepOpen, "keep-alive"},
           Case{"GET / HTTP/1.0\r\nConnection: close\r\n\r\n", Action::kClose,
                "close"},
       }) {
    auto conn = NewConnection();
    std::string out;
    EXPECT_EQ(FeedToString(*conn, c.request, &out), c.action) << c.request;
    auto responses = ParseResponses(out);
    ASSERT_EQ(responses.size(), 1u) << c.request;
    EXPECT_EQ(responses[0].status, 200) << c.request;
    EXPECT_EQ(responses[0].status_line.substr(0, 9), "HTTP/1.1 ");
    EXPECT_EQ(responses[0].Header("Connection"), c.connection_header)
        << c.request;
  }
}

TEST_F(HttpConnectionTest, NothingAfterConnectionCloseIsAnswered) {
  auto conn = NewConnection();
  std::string out;
  EXPECT_EQ(
      FeedToString(*conn,
                   "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                   "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                   &out),
      Action::kClose);
  EXPECT_EQ(ParseResponses(out).size(), 1u);
  EXPECT_EQ(conn->responses(), 1u);
}

TEST_F(HttpConnectionTest, KeepAliveServesManyRequestsOnOneConnection) {
  auto conn = NewConnection();
  for (int i = 0; i < 50; ++i) {
    std::string out;
    ASSERT_EQ(FeedToString(*conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", &out),
              Action::kKeepOpen);
    ASSERT_EQ(ParseResponses(out).size(), 1u);
  }
  EXPECT_EQ(conn->responses(), 50u);
}

TEST_F(HttpConnectionTest, UnsupportedVersionIs505) {
  auto conn = NewConnection();
  std::string out;
  EXPECT_EQ(FeedToString(*conn, "GET / HTTP/2.0\r\nHost: x\r\n\r\n", &out),
            Action::kClose);
  auto responses = ParseResponses(out);
  ASSERT_EQ(responses.size(), 1u);
  EXPECT_EQ(responses[0].status_line,
            "HTTP/1.1 505 HTTP Version Not Supported");
}

TEST_F(HttpConnectionTest, UpgradeIsAnsweredThenClosed) {
  auto conn = NewConnection();
  std::string out;
  EXPECT_EQ(FeedToString(*conn,
                         "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                         "Upgrade: websocket\r\n\r\n\x81\x05hello",
                         &out),
            Action::kClose);
  auto responses = ParseResponses(out);
  ASSERT_EQ(responses.size(), 1u);
  EXPECT_EQ(responses[0].status, 200);
  EXPECT_EQ(responses[0].Header("Connection"), "close");

  auto connect = NewConnection();
  out.clear();
  EXPECT_EQ(FeedToString(*connect,
                         "CONNECT example.com:443 HTTP/1.1\r\n"
                         "Host: example.com:443\r\n\r\n",
                         &out),
            Action::kClose);
  EXPECT_EQ(ParseResponses(out).at(0).status, 405);
}

TEST_F(HttpConnectionTest, HandlerExceptionIs500) {
  HttpConnection conn(
      [](const HttpRequest&) -> HttpResponse {
        throw std::runtime_error("handler bug");
      },
      FixedClock());
  std::string out;
  EXPECT_EQ(FeedToString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", &out),
            Action::kKeepOpen);
  EXPECT_EQ(ParseResponses(out).at(0).status_line,
            "HTTP/1.1 500 Internal Server Error");
}

TEST_F(HttpConnectionTest, HandlerSeesTheParsedRequest) {
  std::vector<HttpRequest> seen;
  HttpConnection conn(
      [&seen](const HttpRequest& request) {
        seen.push_back(request);
        HttpResponse response = HttpResponse::Text(200, "ok");
        response.close = request.target == "/bye";
        return response;
      },
      FixedClock());
  std::string out;
  EXPECT_EQ(FeedToString(conn,
                         "GET /a%20b?q=1 HTTP/1.1\r\nHost: h\r\n"
                         "X-Empty:\r\nX-Multi: one\r\n\r\n"
                         "HEAD /bye HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                         &out),
            Action::kClose);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].method, "GET");
  EXPECT_EQ(seen[0].target, "/a%20b?q=1");
  EXPECT_EQ(seen[0].version_minor, 1);
  ASSERT_EQ(seen[0].headers.size(), 3u);
  EXPECT_EQ(seen[0].headers[1].first, "X-Empty");
  EXPECT_EQ(seen[0].headers[1].second, "");
  ASSERT_NE(seen[0].FindHeader("x-multi"), nullptr);
  EXPECT_EQ(*seen[0].FindHeader("x-multi"), "one");
  EXPECT_EQ(seen[0].FindHeader("missing"), nullptr);
  EXPECT_TRUE(seen[0].keep_alive);
  EXPECT_EQ(seen[1].method, "HEAD");
  EXPECT_EQ(seen[1].version_minor, 0);
  EXPECT_TRUE(seen[1].keep_alive);
  // The handler asked to close: the response says so.
  auto responses = ParseResponses(out, {false, true});
  ASSERT_EQ(responses.size(), 2u);
  EXPECT_EQ(responses[1].Header("Connection"), "close");
  EXPECT_EQ(responses[1].Header("Content-Length"), "2");
}

TEST_F(HttpConnectionTest, ServerAndDateHeadersAreOptional) {
  HttpConnection::Options options;
  options.server_name = "";
  options.send_date = false;
  HttpConnection conn(service_->AsHandler(), options);
  std::string out;
  FeedToString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", &out);
  auto responses = ParseResponses(out);
  ASSERT_EQ(responses.size(), 1u);
  EXPECT_EQ(responses[0].HeaderCount("Server"), 0);
  EXPECT_EQ(responses[0].HeaderCount("Date"), 0);
  EXPECT_EQ(responses[0].HeaderCount("Content-Length"), 1);
}

}  // namespace
}  // namespace mill::http
