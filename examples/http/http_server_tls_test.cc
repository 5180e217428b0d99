// End-to-end tests of //examples/http:http_server serving HTTPS
// (--tls-cert / --tls-key): the real binary with certificates from a
// throwaway PKI, curl as the client (--cacert: it verifies the server as a
// browser would), raw sockets for plaintext on the TLS port, and an OpenSSL
// client that reads at its own pace for the memory test.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "examples/testing/server_process.h"
#include "examples/testing/subprocess.h"
#include "examples/testing/tls_test_client.h"
#include "gtest/gtest.h"
#include "net/testing/echo_clients.h"
#include "tls/testing/test_certificates.h"

// In the fixture's namespace (//examples/testing): its helpers unqualified.
namespace mill::testing {
namespace {

using mill::net_testing::TestClient;
using mill::tls_testing::CertFiles;
using mill::tls_testing::TestPki;

constexpr char kServer[] = "examples/http/http_server";

// Resident memory (VmRSS) of `pid` in bytes; 0 if unknown.
size_t ResidentBytes(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    absl::string_view value(line);
    size_t kib = 0;
    if (absl::ConsumePrefix(&value, "VmRSS:") &&
        absl::ConsumeSuffix(&value, "kB") &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(value), &kib)) {
      return kib * 1024;
    }
  }
  return 0;
}

// Reads `process`'s stderr until a line containing `text` (true) or the
// stream ends or stays silent for `timeout` (false).
bool StderrHasLine(
    Subprocess& process, const std::string& text,
    std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  while (std::optional<std::string> line = process.ReadStderrLine(timeout)) {
    if (absl::StrContains(*line, text)) return true;
  }
  return false;
}

// A test PKI, a leaf for localhost / 127.0.0.1, and a site to serve.
class HttpsServerTest : public ServerModeTest {
 protected:
  void SetUp() override {
    dir_ = mill::tls_testing::MakeTempDir("https_server");
    absl::StatusOr<TestPki> pki = TestPki::Create(dir_ + "/pki");
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = std::make_unique<TestPki>(*std::move(pki));
    absl::StatusOr<CertFiles> leaf = pki_->IssueLeaf("server");
    ASSERT_TRUE(leaf.ok()) << leaf.status();
    leaf_ = *leaf;
    root_ = dir_ + "/root";
    ASSERT_EQ(mkdir(root_.c_str(), 0755), 0);
    WriteFile(root_ + "/hello.txt", "hello, file\n");
    // Over the server's inline limit (16 KiB): streamed with SendFile.
    big_ = mill::net_testing::Pattern(5, 300 * 1024);
    WriteFile(root_ + "/big.bin", big_);
  }

  std::vector<std::string> TlsFlags() const {
    return {"--tls-cert=" + leaf_.cert_file, "--tls-key=" + leaf_.key_file};
  }

  void Start() {
    std::vector<std::string> flags = TlsFlags();
    flags.push_back("--root=" + root_);
    StartInMode(kServer, flags);
  }

  std::string Url(const std::string& path) const {
    return absl::StrCat("https://localhost:", server_.port, path);
  }

  // curl, trusting only the test CA; it checks the name "localhost".
  std::vector<std::string> Curl(std::vector<std::string> args) const {
    std::vector<std::string> argv = {
        "/usr/bin/curl", "-q", "--silent", "--show-error", "--noproxy", "*",
        "--max-time",    "60", "--cacert", pki_->ca_file()};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

  std::string dir_, root_, big_;
  std::unique_ptr<TestPki> pki_;
  CertFiles leaf_;
};

INSTANTIATE_TEST_SUITE_P(Modes, HttpsServerTest, Modes(), ModeName);

TEST_P(HttpsServerTest, CurlGetsTheRightBytes) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const std::string small = dir_ + "/small", big = dir_ + "/big";
  auto [status, out] =
      RunCommand(Curl({"-w", "%{http_code} %{num_connects}\\n", "-o", small,
                       Url("/hello.txt"), "-o", big, Url("/big.bin")}));
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  // Both over one keep-alive TLS connection.
  EXPECT_EQ(out, "200 1\n200 0\n");
  EXPECT_EQ(ReadFile(small), "hello, file\n");
  EXPECT_TRUE(ReadFile(big) == big_) << "big.bin corrupted over TLS";
}

TEST_P(HttpsServerTest, RangeAndConditionalGetOverHttps) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const std::string body = dir_ + "/body";
  const auto curl = [&](std::vector<std::string> args) {
    std::vector<std::string> all = {"-o", body, "-w",
                                    "%{http_code} %{size_download}\\n"};
    all.insert(all.end(), args.begin(), args.end());
    return RunCommand(Curl(all));
  };
  auto [status, out] = curl({"-r", "0-4", Url("/hello.txt")});
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(out, "206 5\n");
  EXPECT_EQ(ReadFile(body), "hello");
  // A range of the streamed file, away from its start.
  std::tie(status, out) = curl({"-r", "100000-199999", Url("/big.bin")});
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(out, "206 100000\n");
  EXPECT_TRUE(ReadFile(body) == big_.substr(100000, 100000));

  struct stat st;
  ASSERT_EQ(stat((root_ + "/hello.txt").c_str(), &st), 0);
  const std::string mtime =
      absl::FormatTime("%a, %d %b %Y %H:%M:%S GMT",
                       absl::FromTimeT(st.st_mtim.tv_sec), absl::UTCTimeZone());
  std::tie(status, out) = curl({"-z", mtime, Url("/hello.txt")});
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(out, "304 0\n");
  const std::string etag = dir_ + "/etag";
  std::tie(status, out) = curl({"--etag-save", etag, Url("/big.bin")});
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(out, absl::StrCat("200 ", big_.size(), "\n"));
  std::tie(status, out) = curl({"--etag-compare", etag, Url("/big.bin")});
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(out, "304 0\n");
}

// curl offers h2 and http/1.1; the server, speaking HTTP/1.1 only, must pick
// http/1.1 (a server picking h2 would break every ALPN client).
TEST_P(HttpsServerTest, AlpnSelectsHttp11) {
  ASSERT_NO_FATAL_FAILURE(Start());
  auto [status, out] = RunCommand(Curl({"-v", "--stderr", "-", "--http2", "-o",
                                        "/dev/null", Url("/hello.txt")}));
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "ALPN: offers h2,http/1.1")) << out;
  EXPECT_TRUE(absl::StrContains(out, "ALPN: server accepted http/1.1")) << out;
  EXPECT_TRUE(absl::StrContains(out, "< HTTP/1.1 200 OK")) << out;
}

// Plaintext HTTP on the TLS port fails that handshake: no HTTP response,
// the connection closes (at once, not after the handshake timeout), and
// the server goes on serving and counts the failure.
TEST_P(HttpsServerTest, PlaintextOnTheTlsPortIsClosedAndServingGoesOn) {
  ASSERT_NO_FATAL_FAILURE(Start());
  absl::StatusOr<TestClient> plain =
      TestClient::Connect(static_cast<uint16_t>(server_.port));
  ASSERT_TRUE(plain.ok()) << plain.status();
  ASSERT_TRUE(
      plain->SendAll("GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n").ok());
  const absl::Time start = absl::Now();
  const std::string answer = plain->RecvUntilEof();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_FALSE(absl::StrContains(answer, "HTTP/1.1")) << answer;
  EXPECT_FALSE(absl::StrContains(answer, "hello, file")) << answer;

  auto [status, out] =
      RunCommand(Curl({"-w", "\\n%{http_code}\\n", Url("/hello.txt")}));
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(out, "hello, file\n\n200\n");

  ExpectCleanExit(*server_.process, SIGINT);
  EXPECT_TRUE(StderrHasLine(*server_.process, ", 1 TLS handshakes failed"));
  server_.process.reset();  // exited: nothing for TearDown to stop
}

// Open, idle TLS connections do not hold up a graceful exit.
TEST_P(HttpsServerTest, ExitsZeroOnSignalsWithOpenTlsConnections) {
  for (const int signo : {SIGINT, SIGTERM}) {
    ASSERT_NO_FATAL_FAILURE(Start());
    TlsTestClient::Options options;
    options.ca_file = pki_->ca_file();
    absl::StatusOr<std::unique_ptr<TlsTestClient>> client =
        TlsTestClient::Connect(static_cast<uint16_t>(server_.port), options);
    ASSERT_TRUE(client.ok()) << client.status();
    ASSERT_TRUE(
        (*client)->SendAll("GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n").ok());
    char buffer[4096];
    ASSERT_GT((*client)->Read(buffer, sizeof(buffer), absl::Seconds(10)), 0);
    ExpectCleanExit(*server_.process, signo);
    server_.process.reset();
  }
}

// A client reading a 64 MiB file slowly over TLS: the server encrypts it a
// piece at a time under its output high-water mark and must not buffer the
// file (nor its ciphertext). Then the whole file arrives intact.
TEST_P(HttpsServerTest, SlowReaderOfALargeFileKeepsServerMemoryBounded) {
  constexpr size_t kSize = 64 << 20;
  constexpr uint64_t kSeed = 23;
  WriteFile(root_ + "/huge.bin", mill::net_testing::Pattern(kSeed, kSize));
  std::vector<std::string> flags = TlsFlags();
  flags.insert(flags.end(), {"--mode=" + GetParam(), "--root=" + root_});
  server_ = StartServerForMemoryTest(kServer, flags);
  ASSERT_NE(server_.port, 0);
  const pid_t pid = server_.process->pid();

  TlsTestClient::Options options;
  options.ca_file = pki_->ca_file();
  options.alpn = {"h2", "http/1.1"};
  options.rcvbuf = 16384;
  absl::StatusOr<std::unique_ptr<TlsTestClient>> client =
      TlsTestClient::Connect(static_cast<uint16_t>(server_.port), options);
  ASSERT_TRUE(client.ok()) << client.status();
  TlsTestClient& c = **client;
  EXPECT_EQ(c.alpn(), "http/1.1");
  WaitUntilIdle(pid);
  const size_t before = ResidentBytes(pid);
  ASSERT_GT(before, 0u);
  ASSERT_TRUE(c.SendAll("GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n").ok());

  // Trickle: at most 16 KiB every 10 ms for 3 s (under 5 MiB).
  std::string head;
  uint64_t body = 0;  // body bytes received, each checked
  bool intact = true;
  const auto take = [&](const char* data, size_t n) {
    size_t at = 0;
    if (head.find("\r\n\r\n") == std::string::npos) {
      const size_t old = head.size();
      head.append(data, n);
      const size_t end = head.find("\r\n\r\n");
      if (end == std::string::npos) return;
      at = end + 4 - old;
      head.resize(end + 4);
    }
    for (; at < n; ++at, ++body) {
      intact &= data[at] == mill::net_testing::PatternByte(kSeed, body);
    }
  };
  size_t peak = before;
  char buffer[65536];
  const absl::Time trickle_end = absl::Now() + absl::Seconds(3);
  while (absl::Now() < trickle_end) {
    const ssize_t n = c.Read(buffer, 16384, absl::Milliseconds(10));
    if (n > 0) take(buffer, static_cast<size_t>(n));
    ASSERT_NE(n, 0) << "closed after " << body << " body bytes";
    peak = std::max(peak, ResidentBytes(pid));
    absl::SleepFor(absl::Milliseconds(10));
  }
  std::printf("server RSS %zu -> peak %zu bytes while %llu of %zu read\n",
              before, peak, static_cast<unsigned long long>(body), kSize);
  EXPECT_LT(body, kSize / 4);  // still mostly unsent: the test means it
  EXPECT_LT(peak, before + (size_t{32} << 20))
      << "server RSS grew from " << before << " to " << peak;
  EXPECT_TRUE(absl::StartsWith(head, "HTTP/1.1 200 OK\r\n")) << head;
  EXPECT_TRUE(absl::StrContains(head, absl::StrCat("Content-Length: ", kSize)))
      << head;

  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  while (body < kSize && absl::Now() < deadline) {
    const ssize_t n = c.Read(buffer, sizeof(buffer), absl::Seconds(10));
    if (n <= 0) break;
    take(buffer, static_cast<size_t>(n));
  }
  EXPECT_EQ(body, kSize);
  EXPECT_TRUE(intact) << "the body differs from the file";
  EXPECT_LT(ResidentBytes(pid), before + (size_t{32} << 20));
}

// Missing halves and unusable files stop the server at startup, with the
// reason on stderr (the flag or the file, and why) and exit status 2.
TEST(HttpsServerFlagsTest, BadTlsFlagsExitNonZeroWithTheReason) {
  const std::string dir = mill::tls_testing::MakeTempDir("https_flags");
  absl::StatusOr<TestPki> pki = TestPki::Create(dir);
  ASSERT_TRUE(pki.ok()) << pki.status();
  absl::StatusOr<CertFiles> leaf = pki->IssueLeaf("server");
  absl::StatusOr<CertFiles> other = pki->IssueLeaf("other");
  ASSERT_TRUE(leaf.ok() && other.ok());
  const std::string cert = "--tls-cert=" + leaf->cert_file;
  const std::string key = "--tls-key=" + leaf->key_file;
  const std::string missing = dir + "/missing.key";
  ExpectFlagsRefusedWithReason(
      kServer,
      {
          {{cert}, "--tls-cert and --tls-key must be given together"},
          {{key}, "--tls-cert and --tls-key must be given together"},
          {{cert, "--tls-key=" + missing}, missing + "': No such file"},
          // The underscore spelling is the same flag.
          {{"--tls_cert=" + leaf->cert_file, "--tls_key=" + missing},
           missing + "': No such file"},
          {{cert, "--tls-key=" + other->key_file},
           "does not match the certificate"},
          {{"--tls-cert=" + leaf->key_file, key}, leaf->key_file},
      });
}

}  // namespace
}  // namespace mill::testing
