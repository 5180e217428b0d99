// End-to-end test of //examples/http:http_server: runs the real binary and
// talks to it over real sockets, and through the real curl and wrk.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "examples/http/test_util.h"
#include "examples/testing/concurrent_clients.h"
#include "examples/testing/line_reader.h"
#include "examples/testing/server_process.h"
#include "examples/testing/subprocess.h"
#include "gtest/gtest.h"
#include "net/testing/echo_clients.h"

// In the fixture's namespace (//examples/testing): its helpers unqualified.
namespace mill::testing {
namespace {

using mill::http::testing::ParsedResponse;
using mill::http::testing::ParseResponses;
using mill::net_testing::TestClient;

constexpr char kServer[] = "examples/http/http_server";

constexpr char kGreeting[] = "Hello from Mill-IO!\n";
// GET / without its Date line (whose value changes every second).
constexpr char kGreetingResponse[] =
    "HTTP/1.1 200 OK\r\n"
    "Server: mill-io\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Length: 20\r\n"
    "\r\n"
    "Hello from Mill-IO!\n";

// ---------------------------------------------------------------------------
// Helpers.

// A fresh directory under TEST_TMPDIR.
std::string MakeTempDir(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/", name, "_",
                                 getpid(), "_", absl::ToUnixNanos(absl::Now()));
  EXPECT_EQ(mkdir(dir.c_str(), 0755), 0) << dir;
  return dir;
}

// The files served in the tests, and one file outside the root that a
// traversal would reach.
struct Site {
  std::string base;  // holds root/ and secret.txt
  std::string root;
  std::string binary;  // contents of /pic.png (every byte value)
  std::string big;     // contents of /big.bin (256 KiB)
};

Site MakeSite() {
  Site site;
  site.base = MakeTempDir("http_site");
  site.root = site.base + "/root";
  mkdir(site.root.c_str(), 0755);
  mkdir((site.root + "/sub").c_str(), 0755);
  WriteFile(site.base + "/secret.txt", "top secret\n");
  WriteFile(site.root + "/hello.txt", "hello, file\n");
  WriteFile(site.root + "/page.html", "<html><body>page</body></html>\n");
  WriteFile(site.root + "/style.css", "body { color: red; }\n");
  WriteFile(site.root + "/data.json", "{\"a\": 1}\n");
  WriteFile(site.root + "/sub/index.html", "<p>sub index</p>\n");
  for (int i = 0; i < 3 * 256; ++i) site.binary.push_back(static_cast<char>(i));
  WriteFile(site.root + "/pic.png", site.binary);
  WriteFile(site.root + "/blob.unknownext", "opaque");
  site.big = mill::net_testing::Pattern(7, 256 * 1024);
  WriteFile(site.root + "/big.bin", site.big);
  return site;
}

// Removes the "Date: <IMF-fixdate>\r\n" line of a response head, checking its
// shape. Returns false when there is no well-formed Date line.
bool StripDate(std::string* response) {
  const size_t head_end = response->find("\r\n\r\n");
  const size_t at = response->find("\r\nDate: ");
  if (at == std::string::npos || at > head_end) return false;
  // "Sun, 06 Nov 1994 08:49:37 GMT" is 29 characters.
  const size_t value = at + 8;
  if (response->size() < value + 31 ||
      response->compare(value + 29, 2, "\r\n") != 0 ||
      response->compare(value + 25, 4, " GMT") != 0 ||
      (*response)[value + 3] != ',') {
    return false;
  }
  response->erase(at, 8 + 29);
  return true;
}

// The validator headers the server sends for the file at `path`, in its
// order: Last-Modified (mtime), a strong ETag of inode, size and nanosecond
// mtime in hex, and Accept-Ranges.
std::string FileHeaders(const std::string& path) {
  struct stat st;
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  const uint64_t mtime_ns =
      static_cast<uint64_t>(st.st_mtim.tv_sec) * uint64_t{1000000000} +
      static_cast<uint64_t>(st.st_mtim.tv_nsec);
  return absl::StrCat(
      "Last-Modified: ",
      absl::FormatTime("%a, %d %b %Y %H:%M:%S GMT",
                       absl::FromTimeT(st.st_mtim.tv_sec), absl::UTCTimeZone()),
      "\r\nETag: \"", absl::Hex(st.st_ino), "-", absl::Hex(st.st_size), "-",
      absl::Hex(mtime_ns), "\"\r\nAccept-Ranges: bytes\r\n");
}

// Length of the first complete response in `buffer` (headers only when
// `head`), or 0 if it is not complete yet.
size_t CompleteResponseLength(const std::string& buffer, bool head) {
  const size_t end = buffer.find("\r\n\r\n");
  if (end == std::string::npos) return 0;
  size_t length = 0;
  if (!head) {
    const size_t cl = buffer.find("\r\nContent-Length: ");
    if (cl != std::string::npos && cl < end) {
      length = std::strtoull(buffer.c_str() + cl + 18, nullptr, 10);
    }
  }
  const size_t total = end + 4 + length;
  return buffer.size() >= total ? total : 0;
}

// A keep-alive HTTP client over one socket.
class HttpClient : public SocketClient {
 public:
  static absl::StatusOr<HttpClient> Connect(int port) {
    absl::StatusOr<TestClient> c = TestClient::Connect(port);
    if (!c.ok()) return c.status();
    return HttpClient(std::move(*c));
  }

  // The raw bytes of the next response; empty on EOF or timeout.
  std::string ReadRaw(bool head = false,
                      absl::Duration timeout = absl::Seconds(20)) {
    const absl::Time deadline = absl::Now() + timeout;
    for (;;) {
      std::string& buffer = reader_.buffered();
      if (const size_t n = CompleteResponseLength(buffer, head); n > 0) {
        std::string out = buffer.substr(0, n);
        buffer.erase(0, n);
        return out;
      }
      if (reader_.eof() || absl::Now() > deadline) return "";
      reader_.Fill(std::chrono::milliseconds(50));
    }
  }

  ParsedResponse Read(bool head = false) {
    const std::string raw = ReadRaw(head);
    if (raw.empty()) {
      ADD_FAILURE() << "no response (EOF or timeout)";
      return {};
    }
    std::vector<ParsedResponse> parsed = ParseResponses(raw, {head});
    if (parsed.size() != 1) {
      ADD_FAILURE() << "unparsable response: " << raw;
      return {};
    }
    return parsed[0];
  }

  ParsedResponse Get(const std::string& target, bool head = false) {
    EXPECT_TRUE(Send(absl::StrCat(head ? "HEAD " : "GET ", target,
                                  " HTTP/1.1\r\nHost: test\r\n\r\n")));
    return Read(head);
  }

  // True when the server closed the connection (EOF or reset) within
  // `timeout`, with no unread response bytes left.
  bool WaitEof(absl::Duration timeout = absl::Seconds(10)) {
    if (!reader_.buffered().empty()) return false;
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      // Bytes are unexpected; EOF and a reset both end the stream.
      if (reader_.Fill(std::chrono::milliseconds(50))) return false;
      if (reader_.eof()) return true;
    }
    return false;
  }

  const std::string& leftover() const { return reader_.buffered(); }

 private:
  explicit HttpClient(TestClient client) : SocketClient(std::move(client)) {}
};

// ---------------------------------------------------------------------------
// Behaviour, in both dispatch modes.

class HttpServerTest : public ServerModeTest {
 protected:
  void SetUp() override {
    site_ = MakeSite();
    StartInMode(kServer, {"--workers=2", "--root=" + site_.root,
                          "--max_header_bytes=2048", "--linger_timeout=30s"});
  }

  std::string Url(const std::string& path) const {
    return absl::StrCat("http://127.0.0.1:", server_.port, path);
  }

  // curl, without any user configuration or proxy.
  std::vector<std::string> Curl() const {
    return {"/usr/bin/curl", "-q", "--silent",   "--show-error",
            "--noproxy",     "*",  "--max-time", "30"};
  }

  Site site_;
};

INSTANTIATE_TEST_SUITE_P(Modes, HttpServerTest, Modes(), ModeName);

TEST_P(HttpServerTest, GetRootIsTheGreetingByteForByte) {
  absl::StatusOr<HttpClient> c = HttpClient::Connect(server_.port);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->Send("GET / HTTP/1.1\r\nHost: test\r\n\r\n"));
  std::string raw = c->ReadRaw();
  ASSERT_TRUE(StripDate(&raw)) << raw;
  EXPECT_EQ(raw, kGreetingResponse);
}

TEST_P(HttpServerTest, HeadRootHasGetHeadersAndNoBody) {
  absl::StatusOr<HttpClient> c = HttpClient::Connect(server_.port);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->Send("HEAD / HTTP/1.1\r\nHost: test\r\n\r\n"));
  std::string raw = c->ReadRaw(/*head=*/true);
  ASSERT_TRUE(StripDate(&raw)) << raw;
  EXPECT_EQ(raw,
            "HTTP/1.1 200 OK\r\n"
            "Server: mill-io\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 20\r\n"
            "\r\n");
  // No body followed: the next response starts right away.
  const ParsedResponse next = c->Get("/hello.txt");
  EXPECT_EQ(next.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(next.body, "hello, file\n");
  EXPECT_TRUE(c->leftover().empty());
}

TEST_P(HttpServerTest, MissingFileIs404) {
  absl::StatusOr<HttpClient> c = HttpClient::Connect(server_.port);
  ASSERT_TRUE(c.ok()) << c.status();
  const ParsedResponse r = c->Get("/no/such/file.txt");
  EXPECT_EQ(r.status_line, "HTTP/1.1 404 Not Found");
  EXPECT_EQ(r.body, "Not Found\n");
  EXPECT_EQ(r.Header("Content-Length"), "10");
  EXPECT_EQ(r.Header("Connection"), "<absent>");
}

TEST_P(HttpServerTest, OtherMethodsGet405WithAllowAndKeepTheConnection) {
  absl::StatusOr<HttpClient> c = HttpClient::Connect(server_.port);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(
      c->Send("POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello"
              "DELETE /hello.txt HTTP/1.1\r\nHost: test\r\n\r\n"));
  for (int i = 0; i < 2; ++i) {
    const ParsedResponse r = c->Read();
    EXPECT_EQ(r.status_line, "HTTP/1.1 405 Method Not Allowed");
    EXPECT_EQ(r.Header("Allow"), "GET, HEAD");
    EXPECT_EQ(r.body, "Method Not Allowed\n");
  }
  // The request body was skipped, not taken for a request; still open.
  EXPECT_EQ(c->Get("/").body, kGreeting);
}

TEST_P(HttpServerTest, GarbageGets400AndTheConnectionCloses) {
  absl::StatusOr<HttpClient> c = HttpClient::Connect(server_.port);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->Send("GARBAGE\x01\x02 nonsense\r\n\r\n"));
  const ParsedResponse r = c->Read();
  EXPECT_EQ(r.status_line, "HTTP/1.1 400 Bad Request");
  EXPECT_EQ(r.Header("Connection"), "close");
  EXPECT_EQ(r.body, "Bad Request\n");
  EXPECT_TRUE(c->WaitEof()) << "connection left open; got " << c->leftover();
}

TEST_P(HttpServerTest, ErrorResponseSurvivesUnreadClientBytes) {
  // Closing a socket with unread input makes the kernel send a reset, which
  // can destroy the response before the client reads it. The server lingers
  // instead (--linger_timeout, 30 s here): the 400 arrives intact, then EOF,
  // although the client keeps sending.
  absl::StatusOr<HttpClient> c = HttpClient::Connect(server_.port);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->Send(
      absl::StrCat("BAD REQUEST LINE\r\n\r\n", std::string(256 * 1024, 'x'))));
  const ParsedResponse r = c->Read();
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body, "Bad Request\n");
  EXPECT_TRUE(c->WaitEof());
  // Only our read side is closed: more bytes are still taken (and dropped)
  // rather than answered with a reset, until the client closes.
  for (int i = 0; i < 5; ++i) {
    absl::SleepFor(absl::Milliseconds(20));
    ASSERT_EQ(send(c->socket().fd(), "more", 4, MSG_NOSIGNAL), 4)
        << "send " << i << ": " << std::strerror(errno);
  }
}

TEST_P(HttpServerTest, MissingHostIs400) {
  absl::StatusOr<HttpClient> c = HttpClient::Connect(server_.port);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->Send("GET / HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(c->Read().status, 400);
  EXPECT_TRUE(c->WaitEof());
}

TEST_P(HttpServerTest, OversizedHeadersGet431AndClose) {
  // Under the limit (2048, set by SetUp): served.
  {
    absl::StatusOr<HttpClient> c = HttpClient::Connect(server_.port);
    ASSERT_TRUE(c.ok()) << c.status();
    ASSERT_TRUE(c->Send(absl::StrCat("GET / HTTP/1.1\r\nHost: test\r\nX-Big: ",
                                     std::string(1500, 'a'), "\r\n\r\n")));
    EXPECT_EQ(c->Read().status, 200);
  }
  absl::StatusOr<HttpClient> c = HttpClient::Connect(server_.port);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->Send(absl::StrCat("GET / HTTP/1.1\r\nHost: test\r\nX-Big: ",
                                   std::string(3000, 'a'), "\r\n\r\n")));
  const ParsedResponse r = c->Read();
  EXPECT_EQ(r.status_line, "HTTP/1.1 431 Request Header Fields Too Large");
  EXPECT_EQ(r.Header("Connection"), "close");
  EXPECT_TRUE(c->WaitEof());
}

TEST_P(HttpServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  absl::StatusOr<HttpClient> c = HttpClient::Connect(server_.port);
  ASSERT_TRUE(c.ok()) << c.status();
  const ParsedResponse first = c->Get("/");
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(first.body, kGreeting);
  EXPECT_EQ(first.Header("Connection"), "<absent>");
  const ParsedResponse second = c->Get("/hello.txt");
  EXPECT_EQ(second.status, 200);
  EXPECT_EQ(second.body, "hello, file\n");
  // Connection: close is honoured: answered, then EOF.
  ASSERT_TRUE(
      c->Send("GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"));
  const ParsedResponse last = c->Read();
  EXPECT_EQ(last.body, kGreeting);
  EXPECT_EQ(last.Header("Connection"), "close");
  EXPECT_TRUE(c->WaitEof());
}

TEST_P(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  absl::StatusOr<HttpClient> c = HttpClient::Connect(server_.port);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(
      c->Send("GET /hello.txt HTTP/1.1\r\nHost: test\r\n\r\n"
              "HEAD /page.html HTTP/1.1\r\nHost: test\r\n\r\n"
              "GET /missing HTTP/1.1\r\nHost: test\r\n\r\n"));
  const ParsedResponse a = c->Read();
  const ParsedResponse b = c->Read(/*head=*/true);
  const ParsedResponse d = c->Read();
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.body, "hello, file\n");
  EXPECT_EQ(b.status, 200);
  EXPECT_EQ(b.Header("Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(b.Header("Content-Length"), "31");
  EXPECT_EQ(b.body, "");
  EXPECT_EQ(d.status, 404);
  EXPECT_TRUE(c->leftover().empty());
}

TEST_P(HttpServerTest, ServesFilesWithContentTypes) {
  absl::StatusOr<HttpClient> c = HttpClient::Connect(server_.port);
  ASSERT_TRUE(c.ok()) << c.status();
  struct Case {
    std::string path, type, body;
  };
  const std::vector<Case> cases = {
      {"/hello.txt", "text/plain; charset=utf-8", "hello, file\n"},
      {"/page.html", "text/html; charset=utf-8",
       "<html><body>page</body></html>\n"},
      {"/style.css", "text/css; charset=utf-8", "body { color: red; }\n"},
      {"/data.json", "application/json", "{\"a\": 1}\n"},
      {"/pic.png", "image/png", site_.binary},
      {"/blob.unknownext", "application/octet-stream", "opaque"},
      {"/sub/", "text/html; charset=utf-8", "<p>sub index</p>\n"},
      {"/sub", "text/html; charset=utf-8", "<p>sub index</p>\n"},
      {"/hello.txt?query=1#frag", "text/plain; charset=utf-8", "hello, file\n"},
      {"/./sub/./index.html", "text/html; charset=utf-8", "<p>sub index</p>\n"},
  };
  for (const Case& k : cases) {
    const ParsedResponse r = c->Get(k.path);
    EXPECT_EQ(r.status, 200) << k.path;
    EXPECT_EQ(r.Header("Content-Type"), k.type) << k.path;
    EXPECT_EQ(r.Header("Content-Length"), std::to_string(k.body.size()))
        << k.path;
    EXPECT_TRUE(r.body == k.body) << k.path;
  }
}

TEST_P(HttpServerTest, TraversalIsRefusedWith403) {
  // Each of these would reach <base>/secret.txt if it were followed.
  const std::vector<std::string> targets = {
      "/../secret.txt",
      "/%2e%2e/secret.txt",
      "/%2E%2E/secret.txt",
      "/sub/../../secret.txt",
      "/sub/%2e%2e/%2e%2e/secret.txt",
      "/..%2fsecret.txt",
      "/..%5csecret.txt",
      "/sub/..\\..\\secret.txt",
  };
  absl::StatusOr<HttpClient> c = HttpClient::Connect(server_.port);
  ASSERT_TRUE(c.ok()) << c.status();
  for (const std::string& target : targets) {
    const ParsedResponse r = c->Get(target);
    EXPECT_EQ(r.status_line, "HTTP/1.1 403 Forbidden") << target;
    EXPECT_EQ(r.body, "Forbidden\n") << target;
  }
  // The connection survives refusals.
  EXPECT_EQ(c->Get("/").body, kGreeting);
}

TEST_P(HttpServerTest, CurlGetsGreetingFilesAndHeaders) {
  const std::string body_file = site_.base + "/curl_body";
  auto [status, out] = RunCommand([&] {
    std::vector<std::string> argv = Curl();
    argv.insert(argv.end(),
                {"-o", body_file, "-w",
                 "%{http_code} %{content_type} %{size_download}\\n", Url("/")});
    return argv;
  }());
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(out, "200 text/plain; charset=utf-8 20\n");
  EXPECT_EQ(ReadFile(body_file), kGreeting);

  // HEAD, with the headers dumped to a file.
  const std::string header_file = site_.base + "/curl_headers";
  std::tie(status, out) = RunCommand([&] {
    std::vector<std::string> argv = Curl();
    argv.insert(argv.end(), {"--head", "-D", header_file, "-o", "/dev/null",
                             "-w", "%{http_code}\\n", Url("/")});
    return argv;
  }());
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(out, "200\n");
  std::string headers = ReadFile(header_file);
  ASSERT_TRUE(StripDate(&headers)) << headers;
  EXPECT_EQ(headers,
            "HTTP/1.1 200 OK\r\n"
            "Server: mill-io\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 20\r\n"
            "\r\n");

  // A binary file, and several URLs over one keep-alive connection.
  std::tie(status, out) = RunCommand([&] {
    std::vector<std::string> argv = Curl();
    argv.insert(argv.end(),
                {"-w", "%{http_code} %{num_connects}\\n", "-o", body_file,
                 Url("/pic.png"), "-o", "/dev/null", Url("/nope")});
    return argv;
  }());
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  // The second transfer reused the first one's connection (0 new connects).
  EXPECT_EQ(out, "200 1\n404 0\n");
  EXPECT_TRUE(ReadFile(body_file) == site_.binary);
}

// curl as the client: a byte range, a time condition (-z) and an ETag
// round trip (--etag-save, then --etag-compare).
TEST_P(HttpServerTest, CurlRangeTimeConditionAndEtag) {
  const std::string body_file = site_.base + "/curl_range_body";
  const auto curl = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = Curl();
    argv.insert(argv.end(),
                {"-o", body_file, "-w", "%{http_code} %{size_download}\\n"});
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  };
  auto [status, out] = curl({"-r", "0-4", Url("/hello.txt")});
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(out, "206 5\n");
  EXPECT_EQ(ReadFile(body_file), "hello");

  struct stat st;
  ASSERT_EQ(stat((site_.root + "/hello.txt").c_str(), &st), 0);
  const std::string mtime =
      absl::FormatTime("%a, %d %b %Y %H:%M:%S GMT",
                       absl::FromTimeT(st.st_mtim.tv_sec), absl::UTCTimeZone());
  std::tie(status, out) = curl({"-z", mtime, Url("/hello.txt")});
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(out, "304 0\n");

  const std::string etag_file = site_.base + "/curl_etag";
  std::tie(status, out) = curl({"--etag-save", etag_file, Url("/hello.txt")});
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(out, "200 12\n");
  EXPECT_NE(ReadFile(etag_file).find('"'), std::string::npos);
  std::tie(status, out) =
      curl({"--etag-compare", etag_file, Url("/hello.txt")});
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(out, "304 0\n");
}

TEST_P(HttpServerTest, CurlTraversalIsRefused) {
  struct Case {
    std::vector<std::string> flags;
    std::string path;
    std::string expected;
  };
  const std::vector<Case> cases = {
      // Sent as is: the server must refuse it.
      {{"--path-as-is"}, "/../secret.txt", "403\n"},
      {{"--path-as-is"}, "/sub/../../secret.txt", "403\n"},
      {{"--path-as-is"}, "/%2e%2e/secret.txt", "403\n"},
      {{"--path-as-is"}, "/%2e%2e/%2e%2e/etc/passwd", "403\n"},
      // Without --path-as-is curl squashes the dots itself: /secret.txt is
      // not under the root.
      {{}, "/../secret.txt", "404\n"},
  };
  for (const Case& k : cases) {
    std::vector<std::string> argv = Curl();
    argv.insert(argv.end(), k.flags.begin(), k.flags.end());
    argv.insert(argv.end(),
                {"-o", "/dev/null", "-w", "%{http_code}\\n", Url(k.path)});
    auto [status, out] = RunCommand(argv);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << k.path;
    EXPECT_EQ(out, k.expected) << k.path;
  }
}

TEST_P(HttpServerTest, WrkLoadSeesNoErrors) {
  // Connections and duration are modest: this checks correctness under a
  // real load generator, not speed.
  ASSERT_NO_FATAL_FAILURE(ExpectCleanWrkRun(Url("/"), 32, 32));
  // Still serving afterwards.
  absl::StatusOr<HttpClient> c = HttpClient::Connect(server_.port);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->Get("/").body, kGreeting);
}

// 200 concurrent keep-alive connections, each sending a sequence of
// requests; every response is compared byte for byte (Date line aside). One
// thread drives all sockets with poll(2).
TEST_P(HttpServerTest, ConcurrentKeepAliveConnectionsEveryByteChecked) {
  constexpr int kConnections = 200;
  constexpr int kRequests = 20;
  struct Kind {
    std::string request;
    bool head;
    std::string expected;  // without the Date line
  };
  const auto response = [](const std::string& status, const std::string& type,
                           const std::string& body, bool head,
                           const std::string& validators = "") {
    return absl::StrCat("HTTP/1.1 ", status, "\r\nServer: mill-io\r\n",
                        "Content-Type: ", type, "\r\n", validators,
                        "Content-Length: ", body.size(), "\r\n\r\n",
                        head ? "" : body);
  };
  const auto file = [this](const std::string& name) {
    return FileHeaders(site_.root + "/" + name);
  };
  const std::vector<Kind> kinds = {
      {"GET / HTTP/1.1\r\nHost: t\r\n\r\n", false, kGreetingResponse},
      {"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n", false,
       response("200 OK", "text/plain; charset=utf-8", "hello, file\n", false,
                file("hello.txt"))},
      {"HEAD /page.html HTTP/1.1\r\nHost: t\r\n\r\n", true,
       response("200 OK", "text/html; charset=utf-8",
                "<html><body>page</body></html>\n", true, file("page.html"))},
      {"GET /pic.png HTTP/1.1\r\nHost: t\r\n\r\n", false,
       response("200 OK", "image/png", site_.binary, false, file("pic.png"))},
      {"GET /missing HTTP/1.1\r\nHost: t\r\n\r\n", false,
       response("404 Not Found", "text/plain; charset=utf-8", "Not Found\n",
                false)},
  };

  const auto kind_of = [&](int conn, int request) -> const Kind& {
    return kinds[(conn + request) % kinds.size()];
  };
  Exchange exchange;
  exchange.request = [&](int i, int k) { return kind_of(i, k).request; };
  exchange.reply_length = [&](int i, int k, const std::string& received) {
    return CompleteResponseLength(received, kind_of(i, k).head);
  };
  exchange.check = [&](int i, int k, std::string raw) -> std::string {
    if (StripDate(&raw) && raw == kind_of(i, k).expected) return "";
    return absl::StrCat("got\n", raw.substr(0, 300));
  };
  const ExchangeResult r = RunConcurrentExchanges(
      server_.port, kConnections, kRequests, exchange, absl::Seconds(45));
  EXPECT_EQ(r.finished, kConnections) << r.first_error;
  EXPECT_EQ(r.mismatches, 0) << r.first_error;
  EXPECT_EQ(r.failures, 0) << r.first_error;
}

// Range and conditional requests on the real server, pipelined on one
// keep-alive connection: a 206 frames only its range, a 304 and a 416 frame
// no file body, and the connection stays usable after each.
TEST_P(HttpServerTest, RangeAndConditionalRequestsKeepTheConnectionInSync) {
  absl::StatusOr<HttpClient> c = HttpClient::Connect(server_.port);
  ASSERT_TRUE(c.ok()) << c.status();
  const ParsedResponse full = c->Get("/big.bin");
  ASSERT_EQ(full.status, 200);
  EXPECT_EQ(full.Header("Accept-Ranges"), "bytes");
  const std::string etag = full.Header("ETag");
  const std::string last_modified = full.Header("Last-Modified");
  ASSERT_NE(etag, "<absent>");
  ASSERT_NE(last_modified, "<absent>");
  ASSERT_TRUE(c->Send(absl::StrCat(
      "GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=1000-1999\r\n\r\n",
      "GET /big.bin HTTP/1.1\r\nHost: t\r\nIf-None-Match: ", etag, "\r\n\r\n",
      "GET /big.bin HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: ", last_modified,
      "\r\n\r\n",
      "GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=-10\r\n\r\n",
      "GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=999999999-\r\n\r\n",
      "GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-0,5-5\r\n\r\n",
      "GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")));
  const ParsedResponse range = c->Read();
  EXPECT_EQ(range.status, 206);
  EXPECT_EQ(range.Header("Content-Range"), "bytes 1000-1999/262144");
  EXPECT_TRUE(range.body == site_.big.substr(1000, 1000));
  const ParsedResponse by_tag = c->Read();
  EXPECT_EQ(by_tag.status, 304);
  EXPECT_EQ(by_tag.HeaderCount("Content-Length"), 0);
  EXPECT_EQ(by_tag.Header("ETag"), etag);
  EXPECT_EQ(c->Read().status, 304);
  const ParsedResponse suffix = c->Read();
  EXPECT_EQ(suffix.status, 206);
  EXPECT_TRUE(suffix.body == site_.big.substr(site_.big.size() - 10));
  const ParsedResponse unsatisfiable = c->Read();
  EXPECT_EQ(unsatisfiable.status, 416);
  EXPECT_EQ(unsatisfiable.Header("Content-Range"), "bytes */262144");
  const ParsedResponse several = c->Read();
  EXPECT_EQ(several.status, 200);
  EXPECT_TRUE(several.body == site_.big);
  EXPECT_EQ(c->Read().body, "hello, file\n");
  EXPECT_TRUE(c->leftover().empty());
}

TEST_P(HttpServerTest, SlowClientSplitRequestIsServed) {
  // Bytes arriving one at a time are assembled by the server.
  absl::StatusOr<HttpClient> c = HttpClient::Connect(server_.port);
  ASSERT_TRUE(c.ok()) << c.status();
  const std::string request = "GET /hello.txt HTTP/1.1\r\nHost: test\r\n\r\n";
  for (char ch : request) {
    ASSERT_TRUE(c->Send(std::string(1, ch)));
    if (ch == '\n') absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(c->Read().body, "hello, file\n");
}

// A client that pipelines many requests for a large file and does not read
// must not make the server buffer every response: the server stops feeding
// requests at the output high-water mark (1 MiB) and resumes as the client
// reads. Every response still arrives, in order, and after the client's
// half-close the server answers all of them before closing.
TEST_P(HttpServerTest, PipelinedLargeResponsesAreThrottled) {
  constexpr int kRequests = 300;  // 75 MiB of responses
                                  // A short header timeout: requests waiting in
                                  // the input buffer behind
  // our own backpressure are not a slow client and must not get 408.
  ServerProcess server = StartServerForMemoryTest(
      kServer,
      {"--mode=" + GetParam(), "--root=" + site_.root, "--header_timeout=1s"});
  ASSERT_NE(server.port, 0);
  absl::StatusOr<HttpClient> c = HttpClient::Connect(server.port);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->Get("/big.bin").body == site_.big);  // warm up
  const size_t before = PeakResidentBytes(server.process->pid());
  ASSERT_GT(before, 0u);
  std::string requests;
  for (int i = 0; i < kRequests; ++i) {
    absl::StrAppend(&requests, "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
  }
  ASSERT_TRUE(c->Send(requests));
  c->socket().ShutdownWrite();
  // Let the server do all it will before anything is read, and wait out
  // the header timeout.
  WaitUntilIdle(server.process->pid());
  absl::SleepFor(absl::Milliseconds(1500));
  for (int i = 0; i < kRequests; ++i) {
    const std::string raw = c->ReadRaw();
    ASSERT_FALSE(raw.empty()) << "response " << i << " missing";
    ASSERT_TRUE(absl::EndsWith(raw, site_.big)) << "response " << i;
    ASSERT_TRUE(absl::StartsWith(raw, "HTTP/1.1 200 OK\r\n")) << i;
  }
  EXPECT_TRUE(c->WaitEof());
  // Unthrottled, the peak grows by 80 MiB or more (the responses queued for
  // the socket); throttled, by 5-20 MiB (the high-water mark, a slice of
  // responses, allocator caches; most under sanitizers).
  ExpectPeakGrewLessThan(server.process->pid(), before, 40u << 20);
  ExpectCleanExit(*server.process, SIGTERM);
}

// Issue 11 §2: files are streamed with sendfile, never read into memory.
// Four clients each pipeline five requests for a 64 MiB file and read
// nothing: the server queues one file range per connection (the ranges
// count against the output high-water mark) and its memory does not grow
// with the file (it used to by gigabytes). Then each client reads
// everything, which arrives intact and in order.
TEST_P(HttpServerTest, HugeFilesPipelinedByNonReadingClientsCostNoMemory) {
#ifdef MILL_IO_SANITIZER
  constexpr size_t kFileBytes = 16 << 20;  // sanitizers: slower copies
#else
  constexpr size_t kFileBytes = 64 << 20;
#endif
  constexpr int kClients = 4;
  constexpr int kRequests = 5;
  const std::string huge = mill::net_testing::Pattern(11, kFileBytes);
  WriteFile(site_.root + "/huge.bin", huge);
  ServerProcess server = StartServerForMemoryTest(
      kServer, {"--mode=" + GetParam(), "--workers=2", "--root=" + site_.root});
  ASSERT_NE(server.port, 0);
  {
    absl::StatusOr<HttpClient> warm = HttpClient::Connect(server.port);
    ASSERT_TRUE(warm.ok());
    EXPECT_EQ(warm->Get("/hello.txt").status, 200);
  }
  const size_t before = PeakResidentBytes(server.process->pid());
  std::vector<HttpClient> clients;
  for (int i = 0; i < kClients; ++i) {
    absl::StatusOr<HttpClient> c = HttpClient::Connect(server.port);
    ASSERT_TRUE(c.ok()) << c.status();
    std::string requests;
    for (int r = 0; r < kRequests; ++r) {
      absl::StrAppend(&requests, "GET /huge.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    ASSERT_TRUE(c->Send(requests));
    clients.push_back(std::move(*c));
  }
  WaitUntilIdle(server.process->pid());
  const size_t stalled = PeakResidentBytes(server.process->pid());
  std::printf(
      "server peak memory: %zu -> %zu bytes with %d x %d x %zu MiB "
      "pending\n",
      before, stalled, kClients, kRequests, kFileBytes >> 20);
  EXPECT_LT(stalled, before + (16u << 20));
  // Every byte arrives once the clients read.
  for (HttpClient& c : clients) {
    for (int r = 0; r < kRequests; ++r) {
      const std::string raw = c.ReadRaw(false, absl::Seconds(60));
      ASSERT_EQ(raw.size() > kFileBytes, true) << "response " << r;
      EXPECT_TRUE(absl::StartsWith(raw, "HTTP/1.1 200 OK\r\n"));
      EXPECT_TRUE(raw.compare(raw.size() - kFileBytes, kFileBytes, huge) == 0)
          << "response " << r << " corrupted";
    }
  }
  const size_t after = PeakResidentBytes(server.process->pid());
  EXPECT_LT(after, before + (16u << 20));
  ExpectCleanExit(*server.process, SIGTERM);
}

// ---------------------------------------------------------------------------
// Idle timeout, root-less serving and shutdown, per mode.

class HttpServerModeTest : public ::testing::TestWithParam<std::string> {};

INSTANTIATE_TEST_SUITE_P(Modes, HttpServerModeTest, Modes(), ModeName);

TEST_P(HttpServerModeTest, IdleConnectionsAreClosedAfterTheIdleTimeout) {
  ServerProcess server =
      StartServer(kServer, {"--mode=" + GetParam(), "--idle_timeout=1s"});
  ASSERT_NE(server.port, 0);
  absl::StatusOr<HttpClient> idle = HttpClient::Connect(server.port);
  ASSERT_TRUE(idle.ok()) << idle.status();
  absl::StatusOr<HttpClient> used = HttpClient::Connect(server.port);
  ASSERT_TRUE(used.ok()) << used.status();
  const absl::Time start = absl::Now();
  EXPECT_EQ(used->Get("/").body, kGreeting);
  EXPECT_TRUE(idle->WaitEof(absl::Seconds(8)));
  EXPECT_TRUE(used->WaitEof(absl::Seconds(8)));
  // Never early: a connection is idle for a full second first.
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(900));
  // New connections are still served.
  absl::StatusOr<HttpClient> fresh = HttpClient::Connect(server.port);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_EQ(fresh->Get("/").body, kGreeting);
  ExpectCleanExit(*server.process, SIGTERM);
}

TEST_P(HttpServerModeTest, LingeringEndsAfterTheLingerTimeout) {
  ServerProcess server =
      StartServer(kServer, {"--mode=" + GetParam(), "--linger_timeout=200ms"});
  ASSERT_NE(server.port, 0);
  absl::StatusOr<HttpClient> c = HttpClient::Connect(server.port);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->Send("GARBAGE\r\n\r\n"));
  EXPECT_EQ(c->Read().status, 400);
  EXPECT_TRUE(c->WaitEof());
  // The client does not close. After the linger timeout the server closes
  // its socket for good, so the client's writes soon fail (reset).
  bool reset = false;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!reset && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
    reset = send(c->socket().fd(), "x", 1, MSG_NOSIGNAL) < 0;
  }
  EXPECT_TRUE(reset) << "server kept the connection open";
  ExpectCleanExit(*server.process, SIGTERM);
}

// Issue 11 §2: a header section trickling in one byte at a time used to be
// kept open forever (every byte reset the idle timer). It must be complete
// within --header_timeout of its first byte, else 408 and close.
TEST_P(HttpServerModeTest, TricklingHeadersGet408AfterTheHeaderTimeout) {
  ServerProcess server =
      StartServer(kServer, {"--mode=" + GetParam(), "--header_timeout=1s",
                            "--idle_timeout=30s", "--linger_timeout=0s"});
  ASSERT_NE(server.port, 0);
  absl::StatusOr<HttpClient> c = HttpClient::Connect(server.port);
  ASSERT_TRUE(c.ok()) << c.status();
  const absl::Time start = absl::Now();
  ASSERT_TRUE(c->Send("GET / HTTP/1.1\r\nHost: t\r\n"));
  // One header byte every 100 ms, for up to 8 s: never a complete request.
  std::string raw;
  const std::string trickle = "X-Slow: " + std::string(200, 'a');
  for (size_t i = 0; i < trickle.size() && raw.empty(); ++i) {
    if (!c->Send(std::string(1, trickle[i]))) break;
    raw = c->ReadRaw(false, absl::Milliseconds(100));
  }
  if (raw.empty()) raw = c->ReadRaw(false, absl::Seconds(5));
  const absl::Duration took = absl::Now() - start;
  ASSERT_FALSE(raw.empty()) << "no 408 while the client trickled";
  EXPECT_TRUE(absl::StartsWith(raw, "HTTP/1.1 408 ")) << raw;
  EXPECT_TRUE(absl::StrContains(raw, "Connection: close")) << raw;
  EXPECT_TRUE(c->WaitEof());
  EXPECT_GE(took, absl::Milliseconds(990));  // never before the timeout
  EXPECT_LT(took, absl::Seconds(6));         // not extended by the bytes
  // Other clients are served all along.
  absl::StatusOr<HttpClient> other = HttpClient::Connect(server.port);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->Get("/").body, kGreeting);
  ExpectCleanExit(*server.process, SIGTERM);
}

// The same for a request body that stalls after its headers.
TEST_P(HttpServerModeTest, StalledBodyGets408AfterTheBodyTimeout) {
  ServerProcess server =
      StartServer(kServer, {"--mode=" + GetParam(), "--body_timeout=1s",
                            "--idle_timeout=30s", "--linger_timeout=0s"});
  ASSERT_NE(server.port, 0);
  absl::StatusOr<HttpClient> c = HttpClient::Connect(server.port);
  ASSERT_TRUE(c.ok()) << c.status();
  const absl::Time start = absl::Now();
  ASSERT_TRUE(c->Send(
      "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789"));
  const std::string raw = c->ReadRaw(false, absl::Seconds(8));
  ASSERT_FALSE(raw.empty()) << "no answer to a stalled body";
  EXPECT_TRUE(absl::StartsWith(raw, "HTTP/1.1 408 ")) << raw;
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(990));
  EXPECT_TRUE(c->WaitEof());
  ExpectCleanExit(*server.process, SIGTERM);
}

// A request that completes in time is not affected by the timers, and a
// keep-alive connection may then sit idle (idle timeout only).
TEST_P(HttpServerModeTest, TimelyRequestsOutliveTheHeaderTimeout) {
  ServerProcess server = StartServer(
      kServer,
      {"--mode=" + GetParam(), "--header_timeout=300ms", "--idle_timeout=30s"});
  ASSERT_NE(server.port, 0);
  absl::StatusOr<HttpClient> c = HttpClient::Connect(server.port);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->Get("/").body, kGreeting);
  absl::SleepFor(absl::Milliseconds(600));
  EXPECT_EQ(c->Get("/").body, kGreeting);
  ExpectCleanExit(*server.process, SIGTERM);
}

TEST_P(HttpServerModeTest, WithoutRootOnlyTheGreetingIsServed) {
  ServerProcess server =
      StartServer(kServer, {"--mode=" + GetParam(), "--workers=1"});
  ASSERT_NE(server.port, 0);
  absl::StatusOr<HttpClient> c = HttpClient::Connect(server.port);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->Get("/").body, kGreeting);
  EXPECT_EQ(c->Get("/index.html").status, 404);
  EXPECT_EQ(c->Get("/../etc/passwd").status, 403);
  ExpectCleanExit(*server.process, SIGINT);
}

TEST_P(HttpServerModeTest, ServerAndDateHeadersFollowTheFlags) {
  ServerProcess server = StartServer(
      kServer, {"--mode=" + GetParam(), "--server_name=", "--date=false"});
  ASSERT_NE(server.port, 0);
  absl::StatusOr<HttpClient> c = HttpClient::Connect(server.port);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->Send("GET / HTTP/1.1\r\nHost: test\r\n\r\n"));
  EXPECT_EQ(c->ReadRaw(),
            "HTTP/1.1 200 OK\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 20\r\n"
            "\r\n"
            "Hello from Mill-IO!\n");
  ExpectCleanExit(*server.process, SIGTERM);
}

using HttpServerSignalTest = ServerSignalTest;

INSTANTIATE_TEST_SUITE_P(ModesAndSignals, HttpServerSignalTest,
                         ModesAndSignals(), ModeAndSignalName);

TEST_P(HttpServerSignalTest, ExitsZeroWithOpenConnections) {
  ExpectCleanExitWithOpenClients<HttpClient>(
      kServer, 8,
      [](int i, HttpClient& c) {
        if (i % 2 == 0) {
          EXPECT_EQ(c.Get("/").body, kGreeting);
        } else {
          // A request cut in the middle of its headers.
          ASSERT_TRUE(c.Send("GET / HTTP/1.1\r\nHo"));
        }
      },
      [](HttpClient& c) { return c.WaitEof(absl::Seconds(5)); });
}

TEST(HttpServerFlagsTest, BadFlagsExitNonZeroWithAMessage) {
  const std::vector<std::vector<std::string>> bad = {
      {"--mode=bogus"},
      {"--port=70000"},
      {"--port=abc"},
      {"--workers=0"},
      {"--max_header_bytes=0"},
      {"--idle_timeout=-1s"},
      {"--idle_timeout=soon"},
      {"--linger_timeout=-1s"},
      {"--root=/no/such/directory"},
      {"--root=/etc/hostname"},  // not a directory
      {"--no_such_flag"},
      {"extra_argument"}};
  ExpectFlagsRefused(kServer, bad);
}

}  // namespace
}  // namespace mill::testing
