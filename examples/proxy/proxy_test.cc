// End-to-end tests of //examples/proxy:proxy: the real binary between real
// clients (raw sockets, curl, wrk) and real upstreams (the project's
// http_server, `python3 -m http.server`, and testing/test_upstream.py for
// chunked bodies, slow and stale connections, hangs and the like).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "examples/proxy/http_stream_parser.h"
#include "examples/testing/line_reader.h"
#include "examples/testing/server_process.h"
#include "examples/testing/subprocess.h"
#include "gtest/gtest.h"
#include "net/testing/echo_clients.h"

// In the fixture's namespace (//examples/testing): its helpers unqualified.
namespace mill::testing {
namespace {

using mill::net_testing::TestClient;
using mill::proxy::HttpStreamParser;
using mill::proxy::MessageHead;

// How long a client command's (curl's, wrk's) output may stay silent.
constexpr std::chrono::seconds kCommandTimeout(120);

// ---------------------------------------------------------------------------
// Helpers.

std::string TempDir() {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return tmp != nullptr ? tmp : "/tmp";
}

// Resident memory (VmRSS) of `pid` in bytes; 0 if unknown.
size_t ResidentBytes(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (absl::StartsWith(line, "VmRSS:")) {
      size_t kib = 0;
      std::string value(absl::StripAsciiWhitespace(
          absl::StripSuffix(absl::StripPrefix(line, "VmRSS:"), "kB")));
      if (absl::SimpleAtoi(absl::StripAsciiWhitespace(value), &kib)) {
        return kib * 1024;
      }
    }
  }
  return 0;
}

// A loopback port nobody listens on (bound, then closed).
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

ServerProcess StartProxy(const std::vector<std::string>& upstream_ports,
                         std::vector<std::string> flags = {}) {
  std::string upstreams;
  for (const std::string& port : upstream_ports) {
    absl::StrAppend(&upstreams, upstreams.empty() ? "" : ",",
                    "127.0.0.1:", port);
  }
  flags.insert(flags.begin(), "--upstream=" + upstreams);
  // Tests that measure the proxy's memory run it without ASan's quarantine.
  std::optional<ScopedNoAsanQuarantine> no_quarantine;
  if (absl::StrContains(
          ::testing::UnitTest::GetInstance()->current_test_info()->name(),
          "Memory")) {
    no_quarantine.emplace();
  }
  return StartServer("examples/proxy/proxy", flags);
}

ServerProcess StartTestUpstream(std::vector<std::string> flags = {}) {
  std::vector<std::string> argv = {
      "/usr/bin/python3",
      RunfilePath("examples/proxy/testing/test_upstream.py")};
  argv.insert(argv.end(), flags.begin(), flags.end());
  return StartAndWaitForPort(argv);
}

std::vector<std::string> Curl() {
  return {"/usr/bin/curl", "-q", "--silent",   "--show-error",
          "--noproxy",     "*",  "--max-time", "60"};
}

// A parsed response as the client saw it.
struct Response {
  int status = 0;
  MessageHead head;
  std::string body;
  bool complete = false;
};

// A keep-alive client over one socket that reads responses with the
// proxy's own response parser.
class HttpClient : public HttpStreamParser::Listener {
 public:
  static std::unique_ptr<HttpClient> Connect(int port, int rcvbuf = 0) {
    absl::StatusOr<TestClient> c =
        TestClient::Connect(static_cast<uint16_t>(port), rcvbuf);
    if (!c.ok()) {
      ADD_FAILURE() << c.status();
      return nullptr;
    }
    return std::unique_ptr<HttpClient>(new HttpClient(std::move(*c)));
  }

  bool Send(const std::string& bytes) { return client_.SendAll(bytes).ok(); }
  int fd() const { return client_.fd(); }
  TestClient& socket() { return client_; }

  // The next response (`head`: it answers a HEAD request); status 0 on EOF
  // or timeout.
  Response Read(bool head = false, absl::Duration timeout = absl::Seconds(30)) {
    parser_.ExpectHeadResponse(head);
    const absl::Time deadline = absl::Now() + timeout;
    for (;;) {
      while (!done_.empty() || !reader_.buffered().empty()) {
        if (!done_.empty()) {
          Response r = std::move(done_.front());
          done_.erase(done_.begin());
          return r;
        }
        const size_t n = parser_.Feed(reader_.buffered());
        if (parser_.failed()) {
          ADD_FAILURE() << "bad response: " << parser_.error() << "\n"
                        << reader_.buffered();
          return Response();
        }
        reader_.buffered().erase(0, n);
        if (n == 0) break;
      }
      if (reader_.eof()) {
        if (parser_.FinishAtEof() && !done_.empty()) continue;
        return Response();
      }
      if (absl::Now() > deadline) return Response();
      reader_.Fill(std::chrono::milliseconds(50));
    }
  }

  Response Get(const std::string& path) {
    EXPECT_TRUE(Send("GET " + path + " HTTP/1.1\r\nHost: test\r\n\r\n"));
    return Read();
  }

  // True once the proxy closed the connection (EOF) within `timeout`.
  bool WaitClosed(absl::Duration timeout = absl::Seconds(10)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (!reader_.eof() && absl::Now() < deadline) {
      reader_.Fill(std::chrono::milliseconds(50));
      reader_.buffered().clear();  // what came before the close is dropped
    }
    return reader_.eof();
  }

  void OnHead(MessageHead& head) override {
    current_ = Response();
    current_.status = head.status;
    current_.head = head;
  }
  void OnBody(std::string_view piece) override { current_.body.append(piece); }
  void OnComplete() override {
    current_.complete = true;
    done_.push_back(std::move(current_));
  }

 private:
  explicit HttpClient(TestClient client)
      : client_(std::move(client)),
        reader_(client_.fd()),
        parser_(HttpStreamParser::kResponse, this,
                HttpStreamParser::Options{64 * 1024}) {}

  TestClient client_;
  LineReader reader_;  // of client_'s socket
  HttpStreamParser parser_;
  Response current_;
  std::vector<Response> done_;
};

std::string Header(const Response& r, const std::string& name) {
  const std::string* value = r.head.Find(name);
  return value != nullptr ? *value : "<absent>";
}

std::string Pattern(size_t n, int seed = 0) {
  // What test_upstream.py's pattern() produces.
  std::string block(65536, '\0');
  for (size_t i = 0; i < block.size(); ++i) {
    block[i] = static_cast<char>((seed + i * 7) & 0xff);
  }
  std::string out;
  while (out.size() < n)
    out.append(block, 0, std::min(block.size(), n - out.size()));
  return out;
}

// ---------------------------------------------------------------------------
// Through the proxy to the project's http_server, in both dispatch modes.

class ProxyToHttpServerTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    root_ = TempDir() + "/proxy_site_" + std::to_string(getpid());
    mkdir(root_.c_str(), 0755);
    file_ = mill::net_testing::Pattern(3, 300 * 1024);
    WriteFile(root_ + "/file.bin", file_);
    upstream_ = StartServer("examples/http/http_server",
                            {"--root=" + root_, "--mode=direct"});
    ASSERT_NE(upstream_.port, 0);
    proxy_ = StartProxy({std::to_string(upstream_.port)},
                        {"--mode=" + GetParam(), "--workers=2"});
    ASSERT_NE(proxy_.port, 0);
  }

  void TearDown() override {
    if (proxy_.process) ExpectCleanExit(*proxy_.process);
    if (upstream_.process) ExpectCleanExit(*upstream_.process);
  }

  std::string Url(const std::string& path) const {
    return absl::StrCat("http://127.0.0.1:", proxy_.port, path);
  }

  std::string root_;
  std::string file_;
  ServerProcess upstream_;
  ServerProcess proxy_;
};

INSTANTIATE_TEST_SUITE_P(Modes, ProxyToHttpServerTest, Modes(), ModeName);

TEST_P(ProxyToHttpServerTest, ForwardsKeepAliveRequestsAndHeaders) {
  std::unique_ptr<HttpClient> c = HttpClient::Connect(proxy_.port);
  ASSERT_NE(c, nullptr);
  for (int i = 0; i < 3; ++i) {
    Response r = c->Get("/");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "Hello from Mill-IO!\n");
    EXPECT_EQ(Header(r, "Server"), "mill-io");  // the upstream's own
    EXPECT_EQ(Header(r, "Via"), "1.1 mill-proxy");
    EXPECT_EQ(Header(r, "Connection"), "<absent>");
  }
  Response r = c->Get("/file.bin");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, file_);
  EXPECT_EQ(Header(r, "Content-Length"), std::to_string(file_.size()));
  EXPECT_EQ(c->Get("/missing").status, 404);
}

TEST_P(ProxyToHttpServerTest, PipelinedRequestsAnswerInOrder) {
  std::unique_ptr<HttpClient> c = HttpClient::Connect(proxy_.port);
  ASSERT_NE(c, nullptr);
  // HEAD between GETs checks the framing: its response has a length but no
  // body, and the next response must still parse.
  ASSERT_TRUE(
      c->Send("GET /file.bin HTTP/1.1\r\nHost: t\r\n\r\n"
              "HEAD /file.bin HTTP/1.1\r\nHost: t\r\n\r\n"
              "GET /missing HTTP/1.1\r\nHost: t\r\n\r\n"
              "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
  Response a = c->Read();
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.body, file_);
  Response b = c->Read(/*head=*/true);
  EXPECT_EQ(b.status, 200);
  EXPECT_EQ(Header(b, "Content-Length"), std::to_string(file_.size()));
  EXPECT_EQ(b.body, "");
  EXPECT_EQ(c->Read().status, 404);
  Response d = c->Read();
  EXPECT_EQ(d.body, "Hello from Mill-IO!\n");
  EXPECT_EQ(Header(d, "Connection"), "close");
  EXPECT_TRUE(c->WaitClosed());
}

TEST_P(ProxyToHttpServerTest, CurlAndWrk) {
  const std::string body_file = TempDir() + "/curl_body_" + GetParam();
  auto [status, out] = RunCommand(
      [&] {
        std::vector<std::string> argv = Curl();
        argv.insert(argv.end(),
                    {"-w", "%{http_code}\\n", "-o", "/dev/null",
                     Url("/file.bin"), "-o", body_file, Url("/file.bin")});
        return argv;
      }(),
      kCommandTimeout);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  EXPECT_EQ(out, "200\n200\n");
  EXPECT_EQ(ReadFile(body_file), file_);
  ExpectCleanWrkRun(Url("/"), 32, 20, kCommandTimeout);
  // Still serving afterwards.
  std::unique_ptr<HttpClient> c = HttpClient::Connect(proxy_.port);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->Get("/").status, 200);
}

TEST_P(ProxyToHttpServerTest, HundredConcurrentClients) {
  constexpr int kClients = 100;
  std::vector<std::unique_ptr<HttpClient>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(HttpClient::Connect(proxy_.port));
    ASSERT_NE(clients.back(), nullptr);
  }
  // Every client has a request in flight before any response is read.
  for (int round = 0; round < 3; ++round) {
    for (auto& c : clients) {
      ASSERT_TRUE(c->Send("GET /file.bin HTTP/1.1\r\nHost: t\r\n\r\n"));
    }
    for (auto& c : clients) {
      Response r = c->Read();
      ASSERT_EQ(r.status, 200);
      ASSERT_EQ(r.body.size(), file_.size());
      ASSERT_TRUE(r.body == file_);
    }
  }
}

// Clients that reset their connection while a response streams to them.
// Regression: in direct mode the failing Send closed the client connection
// inline, whose on_close re-entered the session it was called from and
// deadlocked the loop thread.
TEST_P(ProxyToHttpServerTest, ClientResetsMidResponseDoNotStallTheProxy) {
  for (int i = 0; i < 20; ++i) {
    std::unique_ptr<HttpClient> c = HttpClient::Connect(proxy_.port, 4096);
    ASSERT_NE(c, nullptr);
    ASSERT_TRUE(c->Send("GET /file.bin HTTP/1.1\r\nHost: t\r\n\r\n"));
    char buffer[1024];
    pollfd pfd = {c->fd(), POLLIN, 0};
    if (poll(&pfd, 1, 2000) > 0) (void)recv(c->fd(), buffer, sizeof(buffer), 0);
    c->socket().Reset();  // RST while the rest is queued
  }
  std::unique_ptr<HttpClient> c = HttpClient::Connect(proxy_.port);
  ASSERT_NE(c, nullptr);
  Response r = c->Get("/file.bin");
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.body == file_);
}

// A client that reads slowly must not make the proxy buffer the response:
// 64 MiB through the proxy, read at a trickle for a while, costs the proxy
// about its high-water marks, not the response size.
TEST_P(ProxyToHttpServerTest, SlowReaderKeepsProxyMemoryBounded) {
  constexpr size_t kSize = 64 << 20;
  const std::string path = root_ + "/huge.bin";
  {
    const int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, kSize), 0);  // sparse: zeros
    close(fd);
  }
  std::unique_ptr<HttpClient> c = HttpClient::Connect(proxy_.port, 16384);
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->Get("/").status == 200);  // warm up
  WaitUntilIdle(proxy_.process->pid());
  const size_t before = ResidentBytes(proxy_.process->pid());
  ASSERT_GT(before, 0u);
  ASSERT_TRUE(c->Send("GET /huge.bin HTTP/1.1\r\nHost: t\r\n\r\n"));
  // Trickle: 16 KiB every 10 ms for 3 s (about 5 MiB).
  size_t received = 0;
  std::string prefix;  // the first bytes: the response head
  size_t peak = before;
  const absl::Time trickle_end = absl::Now() + absl::Seconds(3);
  char buffer[65536];
  while (absl::Now() < trickle_end) {
    const ssize_t n = recv(c->fd(), buffer, 16384, MSG_DONTWAIT);
    if (n > 0) {
      received += static_cast<size_t>(n);
      if (prefix.size() < 4096) prefix.append(buffer, static_cast<size_t>(n));
    }
    peak = std::max(peak, ResidentBytes(proxy_.process->pid()));
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_LT(received, kSize / 4);  // still mostly unsent: the test means it
  EXPECT_LT(peak - before, size_t{16} << 20)
      << "proxy RSS grew from " << before << " to " << peak;
  const size_t head_end = prefix.find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos) << prefix.substr(0, 200);
  EXPECT_TRUE(absl::StrContains(prefix.substr(0, head_end),
                                absl::StrCat("Content-Length: ", kSize)));
  // Then everything arrives, exactly the announced length.
  const size_t expected = head_end + 4 + kSize;
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  while (received < expected && absl::Now() < deadline) {
    pollfd pfd = {c->fd(), POLLIN, 0};
    if (poll(&pfd, 1, 100) <= 0) continue;
    const ssize_t n = recv(c->fd(), buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    received += static_cast<size_t>(n);
  }
  EXPECT_EQ(received, expected);
  // The connection is still usable.
  EXPECT_EQ(c->Get("/").status, 200);
}

// ---------------------------------------------------------------------------
// Through the proxy to python3 -m http.server (HTTP/1.0, closes after each
// response: the proxy must not reuse those connections).

TEST(ProxyToPythonHttpServerTest, CurlAndWrk) {
  const std::string dir = TempDir() + "/py_site_" + std::to_string(getpid());
  mkdir(dir.c_str(), 0755);
  const std::string contents = mill::net_testing::Pattern(9, 100 * 1024);
  WriteFile(dir + "/data.bin", contents);
  // http.server prints its port on stdout only after a line buffer flush:
  // pick a free port ourselves.
  const int port = FreePort();
  absl::StatusOr<Subprocess> python = Subprocess::Start(
      {"/usr/bin/python3", "-u", "-m", "http.server", std::to_string(port),
       "--bind", "127.0.0.1", "--directory", dir});
  ASSERT_TRUE(python.ok()) << python.status();
  // Wait until it accepts.
  for (int i = 0; i < 200; ++i) {
    if (TestClient::Connect(static_cast<uint16_t>(port)).ok()) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  ServerProcess proxy = StartProxy({std::to_string(port)});
  ASSERT_NE(proxy.port, 0);
  const std::string url =
      absl::StrCat("http://127.0.0.1:", proxy.port, "/data.bin");
  const std::string body_file = TempDir() + "/py_body";
  auto [status, out] = RunCommand(
      [&] {
        std::vector<std::string> argv = Curl();
        argv.insert(argv.end(),
                    {"-w", "%{http_code}\\n", "-o", "/dev/null", url, "-o",
                     "/dev/null", url, "-o", body_file, url});
        return argv;
      }(),
      kCommandTimeout);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  EXPECT_EQ(out, "200\n200\n200\n");
  EXPECT_EQ(ReadFile(body_file), contents);
  // The client connection stays keep-alive although the upstream closes.
  std::unique_ptr<HttpClient> c = HttpClient::Connect(proxy.port);
  ASSERT_NE(c, nullptr);
  for (int i = 0; i < 3; ++i) {
    Response r = c->Get("/data.bin");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, contents);
  }
  ExpectCleanWrkRun(url, 8, 20, kCommandTimeout);
  ExpectCleanExit(*proxy.process);
  python->Signal(SIGINT);
  python->Wait(std::chrono::seconds(10));
}

// ---------------------------------------------------------------------------
// Through the proxy to test_upstream.py.

class ProxyToTestUpstreamTest : public ::testing::Test {
 protected:
  void StartBoth(std::vector<std::string> upstream_flags,
                 std::vector<std::string> proxy_flags) {
    upstream_ = StartTestUpstream(std::move(upstream_flags));
    ASSERT_NE(upstream_.port, 0);
    proxy_flags.push_back("--workers=2");
    proxy_ =
        StartProxy({std::to_string(upstream_.port)}, std::move(proxy_flags));
    ASSERT_NE(proxy_.port, 0);
  }

  void TearDown() override {
    if (proxy_.process) ExpectCleanExit(*proxy_.process);
    if (upstream_.process) upstream_.process->Signal(SIGKILL);
  }

  std::string Url(const std::string& path) const {
    return absl::StrCat("http://127.0.0.1:", proxy_.port, path);
  }

  ServerProcess upstream_;
  ServerProcess proxy_;
};

TEST_F(ProxyToTestUpstreamTest, RewritesHeadersForTheUpstream) {
  StartBoth({}, {});
  std::unique_ptr<HttpClient> c = HttpClient::Connect(proxy_.port);
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->Send(
      "GET /headers HTTP/1.1\r\nHost: example.test\r\n"
      "X-Forwarded-For: 10.1.2.3\r\nConnection: keep-alive, X-Hop\r\n"
      "X-Hop: secret\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n"
      "Proxy-Connection: keep-alive\r\nUpgrade: h2c\r\nX-Kept: yes\r\n\r\n"));
  Response r = c->Read();
  ASSERT_EQ(r.status, 200);
  // (http.server lists the fields it got one per line, ending in "\n".)
  const std::string& seen = r.body;
  EXPECT_TRUE(absl::StartsWith(seen, "GET /headers HTTP/1.1\r\n")) << seen;
  EXPECT_TRUE(absl::StrContains(seen, "\nHost: example.test\n")) << seen;
  EXPECT_TRUE(
      absl::StrContains(seen, "\nX-Forwarded-For: 10.1.2.3, 127.0.0.1\n"))
      << seen;
  EXPECT_TRUE(absl::StrContains(seen, "\nX-Kept: yes\n")) << seen;
  EXPECT_TRUE(absl::StrContains(seen, "\nVia: 1.1 mill-proxy\n")) << seen;
  for (const char* gone : {"X-Hop", "Keep-Alive", "TE:", "Proxy-Connection",
                           "Upgrade", "Connection"}) {
    EXPECT_FALSE(absl::StrContains(seen, gone)) << gone << " in\n" << seen;
  }
  // HTTP/1.0 without Host: the proxy supplies the upstream's.
  std::unique_ptr<HttpClient> old = HttpClient::Connect(proxy_.port);
  ASSERT_TRUE(old->Send("GET /headers HTTP/1.0\r\n\r\n"));
  Response r10 = old->Read();
  EXPECT_TRUE(absl::StrContains(
      r10.body, absl::StrCat("\nHost: 127.0.0.1:", upstream_.port, "\n")))
      << r10.body;
  EXPECT_EQ(Header(r10, "Connection"), "close");
  EXPECT_TRUE(old->WaitClosed());
}

TEST_F(ProxyToTestUpstreamTest, ChunkedBodiesBothWays) {
  StartBoth({}, {});
  // curl sends the request chunked; the upstream echoes it chunked.
  const std::string upload = mill::net_testing::Pattern(5, 3 << 20);
  const std::string in = TempDir() + "/chunked_in";
  const std::string out_file = TempDir() + "/chunked_out";
  const std::string headers = TempDir() + "/chunked_headers";
  WriteFile(in, upload);
  auto [status, out] = RunCommand(
      [&] {
        std::vector<std::string> argv = Curl();
        argv.insert(argv.end(),
                    {"-H", "Transfer-Encoding: chunked", "--data-binary",
                     "@" + in, "-D", headers, "-o", out_file, "-w",
                     "%{http_code}\\n", Url("/echo")});
        return argv;
      }(),
      kCommandTimeout);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  EXPECT_EQ(out, "200\n");
  EXPECT_TRUE(ReadFile(out_file) == upload);
  EXPECT_TRUE(
      absl::StrContains(ReadFile(headers), "Transfer-Encoding: chunked"));
  // Hand-written chunks with an extension and a trailer, then a response
  // the upstream chunks itself; one keep-alive connection.
  std::unique_ptr<HttpClient> c = HttpClient::Connect(proxy_.port);
  ASSERT_TRUE(c->Send(
      "PUT /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;name=value\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n"));
  Response r = c->Read();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "hello, world");
  Response chunked = c->Get("/chunked?n=40&size=1000");
  EXPECT_EQ(chunked.status, 200);
  EXPECT_EQ(Header(chunked, "Transfer-Encoding"), "chunked");
  std::string expected;
  for (int k = 0; k < 40; ++k) expected += Pattern(1000, k);
  EXPECT_EQ(chunked.body, expected);
  // Content-Length request body, echoed with a Content-Length.
  ASSERT_TRUE(
      c->Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3"
              "\r\n\r\nabc"));
  Response cl = c->Read();
  EXPECT_EQ(cl.body, "abc");
  EXPECT_EQ(Header(cl, "Content-Length"), "3");
}

TEST_F(ProxyToTestUpstreamTest, ResponsesWithoutBodiesAndWithoutLength) {
  StartBoth({}, {});
  std::unique_ptr<HttpClient> c = HttpClient::Connect(proxy_.port);
  ASSERT_NE(c, nullptr);
  // 204 and 304 have no body; HEAD has a length but no body; the next
  // response on the connection proves the framing held.
  ASSERT_TRUE(
      c->Send("GET /status?code=204 HTTP/1.1\r\nHost: t\r\n\r\n"
              "GET /status?code=304 HTTP/1.1\r\nHost: t\r\n\r\n"
              "HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n"
              "GET /nolength?size=50000 HTTP/1.1\r\nHost: t\r\n\r\n"
              "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"));
  EXPECT_EQ(c->Read().status, 204);
  EXPECT_EQ(c->Read().status, 304);
  Response head = c->Read(/*head=*/true);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(Header(head, "Content-Length"), "6");
  EXPECT_EQ(head.body, "");
  // Delimited by the upstream's close, re-chunked for this HTTP/1.1 client,
  // which keeps its connection.
  Response nolength = c->Read();
  EXPECT_EQ(nolength.status, 200);
  EXPECT_EQ(Header(nolength, "Transfer-Encoding"), "chunked");
  EXPECT_EQ(nolength.body, Pattern(50000));
  Response after = c->Read();
  EXPECT_EQ(after.status, 200);
  EXPECT_EQ(after.body, "hello\n");
  // An HTTP/1.0 client gets the close-delimited body as such.
  std::unique_ptr<HttpClient> old = HttpClient::Connect(proxy_.port);
  ASSERT_TRUE(
      old->Send("GET /nolength?size=20000 HTTP/1.0\r\nConnection: "
                "keep-alive\r\n\r\n"));
  Response r = old->Read();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, Pattern(20000));
  EXPECT_EQ(Header(r, "Connection"), "close");
  EXPECT_EQ(Header(r, "Transfer-Encoding"), "<absent>");
}

// Request smuggling (issue 16): a Connection field naming Content-Length
// made the proxy drop the framing of the body it forwarded, so the upstream
// read the body as a second request on the pooled connection. The proxy
// writes the framing itself; Connection never removes it, nor Host.
TEST_F(ProxyToTestUpstreamTest, ConnectionCannotRemoveRequestFramingOrHost) {
  StartBoth({}, {});
  std::unique_ptr<HttpClient> c = HttpClient::Connect(proxy_.port);
  ASSERT_NE(c, nullptr);
  const std::string smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_TRUE(c->Send(absl::StrCat(
      "POST /echo HTTP/1.1\r\nHost: t\r\nConnection: Content-Length\r\n"
      "Content-Length: ",
      smuggled.size(), "\r\n\r\n", smuggled)));
  Response r = c->Read(false, absl::Seconds(10));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, smuggled);
  EXPECT_EQ(Header(r, "X-Request-Content-Length"),
            std::to_string(smuggled.size()));
  // Exactly one response came back: the next one answers the next request.
  Response hello = c->Get("/hello");
  EXPECT_EQ(hello.status, 200);
  EXPECT_EQ(hello.body, "hello\n");
  // Host named in Connection still reaches the upstream.
  ASSERT_TRUE(
      c->Send("GET /headers HTTP/1.1\r\nHost: example.test\r\n"
              "Connection: Host, X-Hop\r\nX-Hop: 1\r\n\r\n"));
  Response headers = c->Read(false, absl::Seconds(10));
  EXPECT_EQ(headers.status, 200);
  EXPECT_TRUE(absl::StrContains(headers.body, "\nHost: example.test\n"))
      << headers.body;
  EXPECT_FALSE(absl::StrContains(headers.body, "X-Hop")) << headers.body;
  // The upstream saw exactly these requests, each with X-Forwarded-For.
  Response seen = c->Get("/seen");
  EXPECT_EQ(seen.body,
            absl::StrCat("POST /echo xff=127.0.0.1 body=", smuggled.size(),
                         "\nGET /hello xff=127.0.0.1 body=0\n"
                         "GET /headers xff=127.0.0.1 body=0\n"));
}

// The response direction: "Connection: Content-Length" from the upstream
// left the client with an unframed body on a keep-alive connection.
TEST_F(ProxyToTestUpstreamTest, ConnectionCannotRemoveResponseFraming) {
  StartBoth({}, {});
  std::unique_ptr<HttpClient> c = HttpClient::Connect(proxy_.port);
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(
      c->Send("GET /framing?case=connection_cl HTTP/1.1\r\nHost: t\r\n\r\n"
              "GET /framing?case=connection_te HTTP/1.1\r\nHost: t\r\n\r\n"
              "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"));
  Response length = c->Read(false, absl::Seconds(10));
  EXPECT_EQ(length.status, 200);
  EXPECT_EQ(length.body, "hello");
  EXPECT_EQ(Header(length, "Content-Length"), "5");
  EXPECT_EQ(Header(length, "Connection"), "<absent>");
  Response chunked = c->Read(false, absl::Seconds(10));
  EXPECT_EQ(chunked.status, 200);
  EXPECT_EQ(chunked.body, "hello");
  EXPECT_EQ(Header(chunked, "Transfer-Encoding"), "chunked");
  Response next = c->Read(false, absl::Seconds(10));
  EXPECT_EQ(next.status, 200);
  EXPECT_EQ(next.body, "hello\n");
  // Transfer-Encoding and Content-Length together: an error (RFC 9112
  // §6.3), not forwarded; the client keeps its connection.
  Response both = c->Get("/framing?case=te_and_cl");
  EXPECT_EQ(both.status, 502);
  EXPECT_EQ(c->Get("/hello").body, "hello\n");
}

// A transfer coding other than chunked (issue 16): the proxy re-chunked a
// "Transfer-Encoding: gzip" body without the coding, so the client took
// gzip bytes for the content. Codings are kept in both directions.
TEST_F(ProxyToTestUpstreamTest, NonChunkedTransferCodingsAreKept) {
  StartBoth({}, {});
  std::unique_ptr<HttpClient> c = HttpClient::Connect(proxy_.port);
  ASSERT_NE(c, nullptr);
  // The coded bytes as the upstream makes them, sent with a length.
  Response plain = c->Get("/coded?te=identity&size=50000");
  ASSERT_EQ(plain.status, 200);
  ASSERT_GT(plain.body.size(), 2u);
  ASSERT_EQ(plain.body.substr(0, 2), "\x1f\x8b");  // gzip's magic
  for (const char* te : {"gzip", "gzip_chunked"}) {
    Response coded = c->Get(absl::StrCat("/coded?te=", te, "&size=50000"));
    EXPECT_EQ(coded.status, 200) << te;
    EXPECT_EQ(Header(coded, "Transfer-Encoding"), "gzip, chunked") << te;
    EXPECT_EQ(Header(coded, "Content-Length"), "<absent>") << te;
    EXPECT_TRUE(coded.body == plain.body) << te;
  }
  EXPECT_EQ(c->Get("/hello").body, "hello\n");  // still in step
  // A request's codings reach the upstream too.
  ASSERT_TRUE(
      c->Send("POST /echo HTTP/1.1\r\nHost: t\r\n"
              "Transfer-Encoding: gzip, chunked\r\n\r\n"
              "5\r\nab\x1f\x8b\x08\r\n0\r\n\r\n"));
  Response echo = c->Read(false, absl::Seconds(10));
  EXPECT_EQ(echo.status, 200);
  EXPECT_EQ(Header(echo, "X-Request-Transfer-Encoding"), "gzip, chunked");
  EXPECT_EQ(echo.body, "ab\x1f\x8b\x08");
  // An HTTP/1.0 client must not get Transfer-Encoding (RFC 9112 §6.1), and
  // the proxy does not decode: 502 rather than gzip bytes as content.
  std::unique_ptr<HttpClient> old = HttpClient::Connect(proxy_.port);
  ASSERT_NE(old, nullptr);
  ASSERT_TRUE(old->Send("GET /coded?te=gzip&size=1000 HTTP/1.0\r\n\r\n"));
  Response refused = old->Read(false, absl::Seconds(10));
  EXPECT_EQ(refused.status, 502);
  EXPECT_EQ(Header(refused, "Transfer-Encoding"), "<absent>");
}

TEST_F(ProxyToTestUpstreamTest, UpstreamClosingIdleConnectionsCausesNoErrors) {
  // The upstream closes keep-alive connections idle for 200 ms; requests
  // come at intervals around that. No client may see an error.
  StartBoth({"--idle_timeout=0.2"}, {});
  std::unique_ptr<HttpClient> c = HttpClient::Connect(proxy_.port);
  ASSERT_NE(c, nullptr);
  const int delays_ms[] = {0, 150, 250, 190, 210, 400, 0, 205, 195, 300};
  for (int delay : delays_ms) {
    absl::SleepFor(absl::Milliseconds(delay));
    Response r = c->Get("/hello");
    ASSERT_EQ(r.status, 200) << "after " << delay << " ms";
    EXPECT_EQ(r.body, "hello\n");
  }
  // And under load with idle gaps between bursts.
  for (int burst = 0; burst < 3; ++burst) {
    ExpectCleanWrkRun(Url("/hello"), 8, 20, kCommandTimeout);
    absl::SleepFor(absl::Milliseconds(300));
  }
}

TEST_F(ProxyToTestUpstreamTest, StaleReusedConnectionIsRetriedForIdempotent) {
  // The upstream reads the second request of every connection and closes
  // without answering: what a client sees when a server drops a keep-alive
  // connection just as it is reused. GET is retried on a fresh connection;
  // POST (maybe processed) gets 502.
  // One idle connection at most; the proxy returns the upstream connection
  // to the pool before the client sees the end of the response, so every
  // request after the first goes out on a reused connection.
  StartBoth({"--drop_second"}, {"--max_idle_upstream=1"});
  std::unique_ptr<HttpClient> c = HttpClient::Connect(proxy_.port);
  ASSERT_NE(c, nullptr);
  for (int i = 0; i < 6; ++i) {
    Response r = c->Get("/hello");
    ASSERT_EQ(r.status, 200) << "request " << i;
    EXPECT_EQ(r.body, "hello\n");
  }
  const std::string post =
      "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx";
  ASSERT_TRUE(c->Send(post));
  EXPECT_EQ(c->Read().status, 502);  // reused, dropped: maybe processed
  ASSERT_TRUE(c->Send(post));
  Response fresh = c->Read();  // the pool is empty now: a new connection
  EXPECT_EQ(fresh.status, 200);
  EXPECT_EQ(fresh.body, "x");
  EXPECT_EQ(c->Get("/hello").status, 200);
}

TEST_F(ProxyToTestUpstreamTest, UpstreamThatNeverAnswersGets504) {
  StartBoth({}, {"--upstream_timeout=1s"});
  std::unique_ptr<HttpClient> c = HttpClient::Connect(proxy_.port);
  ASSERT_NE(c, nullptr);
  const absl::Time start = absl::Now();
  Response r = c->Get("/hang");
  EXPECT_EQ(r.status, 504);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(900));
  // The proxy keeps serving, on this connection and others.
  EXPECT_EQ(c->Get("/hello").status, 200);
  std::unique_ptr<HttpClient> other = HttpClient::Connect(proxy_.port);
  EXPECT_EQ(other->Get("/hello").body, "hello\n");
}

TEST_F(ProxyToTestUpstreamTest, BoundedUpstreamConnectionsQueueThenGive503) {
  // One upstream connection at most, one request may wait for it.
  StartBoth({}, {"--max_upstream_connections=1", "--max_waiting=1",
                 "--upstream_timeout=2s"});
  std::unique_ptr<HttpClient> hung = HttpClient::Connect(proxy_.port);
  ASSERT_TRUE(hung->Send("GET /hang HTTP/1.1\r\nHost: t\r\n\r\n"));
  // It holds the connection once the upstream has it.
  std::unique_ptr<HttpClient> direct = HttpClient::Connect(upstream_.port);
  ASSERT_NE(direct, nullptr);
  const absl::Time give_up = absl::Now() + absl::Seconds(20);
  while (direct->Get("/seen").body.find("/hang") == std::string::npos) {
    ASSERT_LT(absl::Now(), give_up) << "the upstream never saw /hang";
  }
  // Of two more requests, one may wait in the pool's queue and the other
  // is refused at once (which is which depends on arrival order).
  std::unique_ptr<HttpClient> a = HttpClient::Connect(proxy_.port);
  std::unique_ptr<HttpClient> b = HttpClient::Connect(proxy_.port);
  ASSERT_TRUE(a->Send("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"));
  ASSERT_TRUE(b->Send("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"));
  // The first answer is the refusal: before the hung request's 504, and
  // before the waiter can be served.
  pollfd fds[3] = {
      {a->fd(), POLLIN, 0}, {b->fd(), POLLIN, 0}, {hung->fd(), POLLIN, 0}};
  ASSERT_EQ(poll(fds, 3, 10000), 1);
  ASSERT_EQ(fds[2].revents, 0) << "the hung request timed out first";
  HttpClient* refused = (fds[0].revents & POLLIN) != 0 ? a.get() : b.get();
  HttpClient* waiting = refused == a.get() ? b.get() : a.get();
  EXPECT_EQ(refused->Read().status, 503);
  // The hung request times out (504) and frees the slot for the waiter.
  EXPECT_EQ(hung->Read().status, 504);
  Response served = waiting->Read();
  EXPECT_EQ(served.status, 200);
  EXPECT_EQ(served.body, "hello\n");
  EXPECT_EQ(refused->Get("/hello").status, 200);
}

TEST_F(ProxyToTestUpstreamTest, SlowUpstreamKeepsUploadMemoryBounded) {
  // The upstream waits 3 s before reading a 48 MiB body: the proxy must
  // stop reading the client rather than buffer the upload.
  StartBoth({}, {});
  constexpr size_t kSize = 48 << 20;
  std::unique_ptr<HttpClient> c = HttpClient::Connect(proxy_.port);
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(c->Get("/hello").status, 200);
  WaitUntilIdle(proxy_.process->pid());
  const size_t before = ResidentBytes(proxy_.process->pid());
  std::atomic<size_t> sent{0};
  std::atomic<bool> send_failed{false};
  std::thread uploader([&] {
    const std::string head = absl::StrCat(
        "POST /sink?delay_ms=3000 HTTP/1.1\r\nHost: t\r\nContent-Length: ",
        kSize, "\r\n\r\n");
    if (!c->Send(head)) send_failed = true;
    const std::string block(1 << 20, 'u');
    for (size_t at = 0; at < kSize && !send_failed; at += block.size()) {
      if (!c->Send(block)) send_failed = true;
      sent += block.size();
    }
  });
  size_t peak = before;
  const absl::Time until = absl::Now() + absl::Milliseconds(2500);
  while (absl::Now() < until) {
    peak = std::max(peak, ResidentBytes(proxy_.process->pid()));
    absl::SleepFor(absl::Milliseconds(20));
  }
  const size_t sent_while_stalled = sent.load();
  Response r = c->Read(false, absl::Seconds(120));
  uploader.join();
  EXPECT_FALSE(send_failed.load());
  EXPECT_LT(sent_while_stalled, kSize / 2);  // the client was held back
  EXPECT_LT(peak - before, size_t{16} << 20)
      << "proxy RSS grew from " << before << " to " << peak;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, absl::StrCat("received ", kSize));
}

TEST_F(ProxyToTestUpstreamTest, PipelinedResponsesStayInOrderAcrossUpstreams) {
  // Two upstreams, round robin, the earlier requests answered slower.
  ServerProcess second = StartTestUpstream({"--name=second"});
  ASSERT_NE(second.port, 0);
  upstream_ = StartTestUpstream({"--name=first"});
  proxy_ = StartProxy(
      {std::to_string(upstream_.port), std::to_string(second.port)}, {});
  ASSERT_NE(proxy_.port, 0);
  std::unique_ptr<HttpClient> c = HttpClient::Connect(proxy_.port);
  std::string batch;
  for (int i = 0; i < 8; ++i) {
    absl::StrAppend(&batch, "GET /id?i=", i, "&delay_ms=", (8 - i) * 20,
                    " HTTP/1.1\r\nHost: t\r\n\r\n");
  }
  ASSERT_TRUE(c->Send(batch));
  for (int i = 0; i < 8; ++i) {
    Response r = c->Read();
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, std::to_string(i));
  }
  // Round robin reaches both.
  std::set<std::string> names;
  for (int i = 0; i < 4; ++i) names.insert(c->Get("/whoami").body);
  EXPECT_EQ(names, (std::set<std::string>{"first", "second"}));
  second.process->Signal(SIGKILL);
}

// ---------------------------------------------------------------------------
// Errors.

TEST(ProxyErrorsTest, UpstreamDownGives502AtOnceAndTheProxyKeepsServing) {
  // A port nobody listens on.
  const int port = FreePort();
  ServerProcess proxy = StartProxy({std::to_string(port)});
  ASSERT_NE(proxy.port, 0);
  std::unique_ptr<HttpClient> c = HttpClient::Connect(proxy.port);
  for (int i = 0; i < 3; ++i) {
    const absl::Time start = absl::Now();
    Response r = c->Get("/");
    EXPECT_EQ(r.status, 502);
    EXPECT_LT(absl::Now() - start, absl::Seconds(3));  // not a timeout
  }
  ExpectCleanExit(*proxy.process);
}

TEST(ProxyErrorsTest, OneUpstreamDownIsSkipped) {
  ServerProcess up = StartTestUpstream();
  ASSERT_NE(up.port, 0);
  ServerProcess proxy = StartProxy({"1", std::to_string(up.port)});
  ASSERT_NE(proxy.port, 0);
  std::unique_ptr<HttpClient> c = HttpClient::Connect(proxy.port);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(c->Get("/hello").status, 200);
  ExpectCleanExit(*proxy.process);
  up.process->Signal(SIGKILL);
}

TEST(ProxyErrorsTest, MalformedAndOversizedRequests) {
  ServerProcess up = StartTestUpstream();
  ASSERT_NE(up.port, 0);
  ServerProcess proxy =
      StartProxy({std::to_string(up.port)},
                 {"--max_header_bytes=1024", "--linger_timeout=0s",
                  "--header_timeout=1s"});
  ASSERT_NE(proxy.port, 0);
  struct Case {
    std::string request;
    int status;
  } cases[] = {
      {"GARBAGE\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\n\r\n", 400},  // no Host
      {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: "
       "chunked\r\n\r\n",
       400},
      // Framing the proxy cannot follow reliably (RFC 9112 §6.1, §6.3).
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked"
       "\r\n\r\n0\r\n\r\n",
       400},
      {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(2000, 'b') +
           "\r\n\r\n",
       431},
      {"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
      {"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
       405},
  };
  std::unique_ptr<HttpClient> bystander = HttpClient::Connect(proxy.port);
  for (const Case& k : cases) {
    std::unique_ptr<HttpClient> c = HttpClient::Connect(proxy.port);
    ASSERT_TRUE(c->Send(k.request));
    Response r = c->Read();
    EXPECT_EQ(r.status, k.status) << k.request.substr(0, 60);
    EXPECT_EQ(Header(r, "Connection"), "close");
    EXPECT_TRUE(c->WaitClosed()) << k.request.substr(0, 60);
    // Other clients are still served.
    EXPECT_EQ(bystander->Get("/hello").body, "hello\n");
  }
  // A head that never completes: 408 after --header_timeout.
  std::unique_ptr<HttpClient> slow = HttpClient::Connect(proxy.port);
  ASSERT_TRUE(slow->Send("GET /hello HTTP/1.1\r\nHost: t\r\n"));
  Response r = slow->Read(false, absl::Seconds(10));
  EXPECT_EQ(r.status, 408);
  EXPECT_TRUE(slow->WaitClosed());
  EXPECT_EQ(bystander->Get("/hello").status, 200);
  ExpectCleanExit(*proxy.process);
  up.process->Signal(SIGKILL);
}

TEST(ProxyFlagsTest, BadFlagsExitWithStatus2) {
  for (std::vector<std::string> flags : {
           std::vector<std::string>{},  // no --upstream
           std::vector<std::string>{"--upstream=127.0.0.1:1",
                                    "--balance=random"},
           std::vector<std::string>{"--upstream=nohostport"},
           std::vector<std::string>{"--upstream=127.0.0.1:1", "--port=70000"},
       }) {
    std::vector<std::string> argv = {RunfilePath("examples/proxy/proxy")};
    argv.insert(argv.end(), flags.begin(), flags.end());
    absl::StatusOr<Subprocess> p = Subprocess::Start(argv);
    ASSERT_TRUE(p.ok());
    std::optional<std::string> err =
        p->ReadStderrLine(std::chrono::seconds(10));
    ASSERT_TRUE(err.has_value());
    EXPECT_TRUE(absl::StartsWith(*err, "proxy: ")) << *err;
    std::optional<int> status = p->Wait(std::chrono::seconds(10));
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 2) << *err;
  }
}

}  // namespace
}  // namespace mill::testing
