// End-to-end tests of //examples/proxy:proxy with TLS: terminating TLS from
// clients (--tls-cert / --tls-key) and speaking verified TLS to https://
// upstreams (--upstream-ca). Real peers: curl, the project's http_server
// serving HTTPS, and testing/test_upstream.py (plain, or TLS with Python's
// ssl module, counting the requests it saw), and Debian's nginx as an HTTPS
// upstream. Certificates come from
// //tls/testing's throwaway PKI.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "examples/testing/server_process.h"
#include "examples/testing/subprocess.h"
#include "gtest/gtest.h"
#include "net/testing/echo_clients.h"
#include "tls/testing/test_certificates.h"

// In the fixture's namespace (//examples/testing): its helpers unqualified.
namespace mill::testing {
namespace {

using mill::tls_testing::CertFiles;
using mill::tls_testing::TestPki;

constexpr char kProxy[] = "examples/proxy/proxy";

// What test_upstream.py's pattern() produces.
std::string PythonPattern(size_t n) {
  std::string out;
  while (out.size() < n) {
    for (size_t i = 0; i < 65536 && out.size() < n; ++i) {
      out.push_back(static_cast<char>((i * 7) & 0xff));
    }
  }
  return out;
}

// curl with `args`, trusting `ca` (if any).
std::pair<int, std::string> Curl(const std::string& ca,
                                 std::vector<std::string> args) {
  std::vector<std::string> argv = {"/usr/bin/curl", "-q",        "--silent",
                                   "--show-error",  "--noproxy", "*",
                                   "--max-time",    "60"};
  if (!ca.empty()) argv.insert(argv.end(), {"--cacert", ca});
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv);
}

// A command's exit code (-1: it did not exit normally).
int ExitCode(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Reads `process`'s stderr until a line containing `text`; that line, or
// nullopt once the stream ends or stays silent for `timeout`.
std::optional<std::string> StderrLine(
    Subprocess& process, const std::string& text,
    std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  while (std::optional<std::string> line = process.ReadStderrLine(timeout)) {
    if (absl::StrContains(*line, text)) return line;
  }
  return std::nullopt;
}

class ProxyTlsTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = mill::tls_testing::MakeTempDir("proxy_tls");
    absl::StatusOr<TestPki> pki = TestPki::Create(dir_ + "/pki");
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = std::make_unique<TestPki>(*std::move(pki));
    // The DNS name only: a proxy that verified the address it connected to
    // (127.0.0.1) instead of the HOST of --upstream would fail.
    mill::tls_testing::LeafOptions localhost_only;
    localhost_only.ip_addresses.clear();
    absl::StatusOr<CertFiles> leaf =
        pki_->IssueLeaf("localhost", localhost_only);
    ASSERT_TRUE(leaf.ok()) << leaf.status();
    leaf_ = *leaf;
  }

  void TearDown() override {
    if (proxy_.process) ExpectCleanExit(*proxy_.process);
    for (ServerProcess& up : upstreams_) {
      if (up.process) up.process->Signal(SIGKILL);
    }
  }

  // test_upstream.py, speaking TLS with `cert` when given.
  int StartTestUpstream(const CertFiles* cert, const std::string& name = "") {
    std::vector<std::string> argv = {
        "/usr/bin/python3",
        RunfilePath("examples/proxy/testing/test_upstream.py")};
    if (cert != nullptr) {
      argv.push_back("--tls_cert=" + cert->cert_file);
      argv.push_back("--tls_key=" + cert->key_file);
    }
    if (!name.empty()) argv.push_back("--name=" + name);
    upstreams_.push_back(StartAndWaitForPort(argv));
    return upstreams_.back().port;
  }

  // What a test upstream saw (its /seen, asked directly, trusting anything:
  // the test only observes).
  std::string Seen(int port, bool tls) {
    auto [status, out] =
        Curl("", {"-k", absl::StrCat(tls ? "https" : "http",
                                     "://127.0.0.1:", port, "/seen")});
    EXPECT_EQ(ExitCode(status), 0) << out;
    return out;
  }

  void StartProxy(std::vector<std::string> flags) {
    flags.insert(flags.begin(), {"--mode=" + GetParam(), "--workers=2"});
    proxy_ = StartServer(kProxy, flags);
    ASSERT_NE(proxy_.port, 0);
  }

  std::vector<std::string> TlsFlags() const {
    return {"--tls-cert=" + leaf_.cert_file, "--tls-key=" + leaf_.key_file};
  }

  std::string dir_;
  std::unique_ptr<TestPki> pki_;
  CertFiles leaf_;
  ServerProcess proxy_;
  std::vector<ServerProcess> upstreams_;
};

INSTANTIATE_TEST_SUITE_P(Modes, ProxyTlsTest, Modes(), ModeName);

// HTTPS from curl, plain HTTP to the upstream.
TEST_P(ProxyTlsTest, TerminatesTlsInFrontOfAPlainUpstream) {
  const int up = StartTestUpstream(nullptr);
  ASSERT_NE(up, 0);
  std::vector<std::string> flags = TlsFlags();
  flags.push_back(absl::StrCat("--upstream=127.0.0.1:", up));
  ASSERT_NO_FATAL_FAILURE(StartProxy(flags));
  const std::string url = absl::StrCat("https://localhost:", proxy_.port);
  const std::string body = dir_ + "/body";
  auto [status, out] = Curl(pki_->ca_file(), {"-v", "--stderr", "-", "--http2",
                                              "-o", body, url + "/hello"});
  ASSERT_EQ(ExitCode(status), 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "ALPN: server accepted http/1.1")) << out;
  EXPECT_EQ(ReadFile(body), "hello\n");
  // A body larger than a TLS record and the proxy's parse slices.
  std::tie(status, out) =
      Curl(pki_->ca_file(), {"-o", body, url + "/big?bytes=1000000"});
  ASSERT_EQ(ExitCode(status), 0) << out;
  EXPECT_TRUE(ReadFile(body) == PythonPattern(1000000));
  EXPECT_EQ(Seen(up, false),
            "GET /hello xff=127.0.0.1 body=0\n"
            "GET /big xff=127.0.0.1 body=0\n");
}

// TLS on both sides, in front of the project's http_server serving HTTPS
// for "localhost"; the upstream connection is verified and kept alive.
TEST_P(ProxyTlsTest, HttpsUpstreamIsVerifiedAndServesTheBody) {
  const std::string root = dir_ + "/root";
  ASSERT_EQ(mkdir(root.c_str(), 0755), 0);
  const std::string file = mill::net_testing::Pattern(3, 300 * 1024);
  WriteFile(root + "/file.bin", file);
  std::vector<std::string> up_flags = TlsFlags();
  up_flags.insert(up_flags.end(), {"--root=" + root, "--mode=direct"});
  upstreams_.push_back(StartServer("examples/http/http_server", up_flags));
  const int up = upstreams_.back().port;
  ASSERT_NE(up, 0);
  std::vector<std::string> flags = TlsFlags();
  flags.push_back(absl::StrCat("--upstream=https://localhost:", up));
  flags.push_back("--upstream-ca=" + pki_->ca_file());
  ASSERT_NO_FATAL_FAILURE(StartProxy(flags));

  const std::string url =
      absl::StrCat("https://localhost:", proxy_.port, "/file.bin");
  const std::string body = dir_ + "/body";
  for (int i = 0; i < 3; ++i) {  // one after the other: keep-alive upstream
    auto [status, out] = Curl(pki_->ca_file(), {"-o", body, url});
    ASSERT_EQ(ExitCode(status), 0) << out;
    EXPECT_TRUE(ReadFile(body) == file) << "request " << i;
  }
  auto [status, out] =
      Curl(pki_->ca_file(),
           {"-o", body, "-w", "%{http_code}\\n", "-r", "1000-1999", url});
  ASSERT_EQ(ExitCode(status), 0) << out;
  EXPECT_EQ(out, "206\n");
  EXPECT_TRUE(ReadFile(body) == file.substr(1000, 1000));

  ExpectCleanExit(*proxy_.process);
  const std::optional<std::string> stats =
      StderrLine(*proxy_.process, "upstream connections");
  ASSERT_TRUE(stats.has_value());
  EXPECT_TRUE(absl::StrContains(*stats, "4 responses")) << *stats;
  EXPECT_TRUE(absl::StrContains(*stats, "0 502")) << *stats;
  EXPECT_TRUE(absl::StrContains(*stats, "1 opened, 3 reuses")) << *stats;
  proxy_.process.reset();
}

// A real TLS server as the upstream: Debian's nginx serving HTTPS with the
// test certificate (for "localhost" only), verified by the proxy.
TEST_P(ProxyTlsTest, NginxHttpsUpstream) {
  const std::string root = dir_ + "/nginx_root";
  ASSERT_EQ(mkdir(root.c_str(), 0755), 0);
  const std::string file = mill::net_testing::Pattern(5, 200 * 1024);
  WriteFile(root + "/file.bin", file);
  // nginx cannot announce a port: take a free one, then wait for it.
  int port = 0;
  {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr = {};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    port = ntohs(addr.sin_port);
    ::close(fd);
  }
  const std::string conf = dir_ + "/nginx.conf";
  // As root, nginx hands its temp directories to "nobody", a user the test
  // sandbox's user namespace does not map: keep them ours.
  const char* user = geteuid() == 0 ? "user root root;" : "";
  WriteFile(conf, absl::StrReplaceAll(R"(
USER
worker_processes 1;
daemon off;
master_process off;
pid DIR/nginx.pid;
error_log DIR/nginx_error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path DIR/nb;
  proxy_temp_path DIR/np;
  fastcgi_temp_path DIR/nf;
  uwsgi_temp_path DIR/nu;
  scgi_temp_path DIR/ns;
  server {
    listen 127.0.0.1:PORT ssl;
    ssl_certificate CERT;
    ssl_certificate_key KEY;
    root ROOT;
  }
}
)",
                                      {{"USER", user},
                                       {"DIR", dir_},
                                       {"PORT", std::to_string(port)},
                                       {"CERT", leaf_.cert_file},
                                       {"KEY", leaf_.key_file},
                                       {"ROOT", root}}));
  absl::StatusOr<Subprocess> nginx = Subprocess::Start(
      {"/usr/sbin/nginx", "-p", dir_, "-c", conf, "-e", dir_ + "/nginx.err"});
  ASSERT_TRUE(nginx.ok()) << nginx.status();
  auto nginx_process = std::make_unique<Subprocess>(*std::move(nginx));
  ASSERT_TRUE(mill::net_testing::WaitFor([&] {
    return mill::net_testing::TestClient::Connect(port).ok();
  })) << ReadFile(dir_ + "/nginx_error.log")
      << ReadFile(dir_ + "/nginx.err")
      << nginx_process->ReadStderrLine(std::chrono::milliseconds(100))
             .value_or("(no stderr)");

  std::vector<std::string> flags = TlsFlags();
  flags.push_back(absl::StrCat("--upstream=https://localhost:", port));
  flags.push_back("--upstream-ca=" + pki_->ca_file());
  ASSERT_NO_FATAL_FAILURE(StartProxy(flags));
  const std::string url =
      absl::StrCat("https://localhost:", proxy_.port, "/file.bin");
  const std::string body = dir_ + "/nginx_body";
  for (int i = 0; i < 3; ++i) {
    auto [status, out] = Curl(pki_->ca_file(), {"-o", body, url});
    ASSERT_EQ(ExitCode(status), 0) << out;
    EXPECT_TRUE(ReadFile(body) == file) << "request " << i;
  }
  auto [status, out] =
      Curl(pki_->ca_file(),
           {"-o", body, "-w", "%{http_code}\n", "-r", "10-19", url});
  ASSERT_EQ(ExitCode(status), 0) << out;
  EXPECT_EQ(out, "206\n");
  EXPECT_TRUE(ReadFile(body) == file.substr(10, 10));
  ExpectCleanExit(*proxy_.process);
  const std::optional<std::string> stats =
      StderrLine(*proxy_.process, "upstream connections");
  ASSERT_TRUE(stats.has_value());
  EXPECT_TRUE(absl::StrContains(*stats, "0 502")) << *stats;
  proxy_.process.reset();
  nginx_process->Signal(SIGQUIT);
  (void)nginx_process->Wait(std::chrono::seconds(20));
}

// An https:// upstream whose certificate does not verify never gets the
// request: the client gets 502 and the proxy's stderr says why. The valid
// certificate, through the same steps, is the control that proves the
// upstream counts what it is sent.
TEST_P(ProxyTlsTest, UnverifiedUpstreamGets502AndNoRequest) {
  const std::string other_dir = dir_ + "/other_ca";
  absl::StatusOr<TestPki> other_ca = TestPki::Create(other_dir);
  ASSERT_TRUE(other_ca.ok()) << other_ca.status();
  absl::StatusOr<CertFiles> expired = pki_->ExpiredLeaf("expired");
  absl::StatusOr<CertFiles> wrong_name = pki_->WrongNameLeaf("wrong_name");
  absl::StatusOr<CertFiles> unknown_ca = other_ca->IssueLeaf("unknown_ca");
  ASSERT_TRUE(expired.ok() && wrong_name.ok() && unknown_ca.ok());
  struct Case {
    const CertFiles* cert;
    int status;
    std::string reason;  // in the proxy's stderr line
  };
  const std::vector<Case> cases = {
      {&leaf_, 200, ""},
      {&*expired, 502, "certificate has expired"},
      {&*wrong_name, 502, "hostname mismatch"},
      {&*unknown_ca, 502, "unable to get local issuer certificate"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.cert->cert_file);
    const int up = StartTestUpstream(k.cert);
    ASSERT_NE(up, 0);
    ASSERT_NO_FATAL_FAILURE(
        StartProxy({absl::StrCat("--upstream=https://localhost:", up),
                    "--upstream-ca=" + pki_->ca_file()}));
    for (int i = 0; i < 2; ++i) {
      auto [status, out] =
          Curl("", {"-w", "\\n%{http_code}\\n",
                    absl::StrCat("http://127.0.0.1:", proxy_.port, "/hello")});
      ASSERT_EQ(ExitCode(status), 0) << out;
      EXPECT_TRUE(absl::EndsWith(out, absl::StrCat("\n", k.status, "\n")))
          << out;
    }
    if (k.status == 200) {
      EXPECT_EQ(Seen(up, true),
                "GET /hello xff=127.0.0.1 body=0\n"
                "GET /hello xff=127.0.0.1 body=0\n");
    } else {
      EXPECT_EQ(Seen(up, true), "");
      const std::optional<std::string> line =
          StderrLine(*proxy_.process, "certificate verify failed");
      ASSERT_TRUE(line.has_value());
      EXPECT_TRUE(absl::StrContains(*line, "https://localhost:")) << *line;
      EXPECT_TRUE(absl::StrContains(*line, k.reason)) << *line;
    }
    ExpectCleanExit(*proxy_.process);
    proxy_.process.reset();
  }
}

// Plain and TLS upstreams side by side, each spoken to in its own way.
TEST_P(ProxyTlsTest, PlainAndTlsUpstreamsTogether) {
  const int plain = StartTestUpstream(nullptr, "plain");
  const int tls = StartTestUpstream(&leaf_, "tls");
  ASSERT_TRUE(plain != 0 && tls != 0);
  ASSERT_NO_FATAL_FAILURE(
      StartProxy({absl::StrCat("--upstream=http://127.0.0.1:", plain,
                               ",https://localhost:", tls),
                  "--upstream-ca=" + pki_->ca_file()}));
  const std::string url =
      absl::StrCat("http://127.0.0.1:", proxy_.port, "/whoami");
  auto [status, out] = Curl("", {"-w", "\\n", url, url, url, url});
  ASSERT_EQ(ExitCode(status), 0) << out;
  std::vector<std::string> names = absl::StrSplit(out, '\n', absl::SkipEmpty());
  EXPECT_EQ(std::multiset<std::string>(names.begin(), names.end()),
            (std::multiset<std::string>{"plain", "plain", "tls", "tls"}))
      << out;
  EXPECT_EQ(Seen(plain, false),
            "GET /whoami xff=127.0.0.1 body=0\n"
            "GET /whoami xff=127.0.0.1 body=0\n");
  EXPECT_EQ(Seen(tls, true),
            "GET /whoami xff=127.0.0.1 body=0\n"
            "GET /whoami xff=127.0.0.1 body=0\n");
}

TEST(ProxyTlsFlagsTest, BadTlsFlagsExitWithStatus2AndTheReason) {
  const std::string dir = mill::tls_testing::MakeTempDir("proxy_tls_flags");
  absl::StatusOr<TestPki> pki = TestPki::Create(dir);
  ASSERT_TRUE(pki.ok()) << pki.status();
  absl::StatusOr<CertFiles> leaf = pki->IssueLeaf("server");
  ASSERT_TRUE(leaf.ok()) << leaf.status();
  const std::string missing = dir + "/missing.pem";
  ExpectFlagsRefusedWithReason(
      kProxy,
      {
          {{"--upstream=127.0.0.1:1", "--tls-cert=" + leaf->cert_file},
           "--tls-cert and --tls-key must be given together"},
          {{"--upstream=127.0.0.1:1", "--tls-cert=" + leaf->cert_file,
            "--tls-key=" + missing},
           missing},
          {{"--upstream=https://localhost:1", "--upstream-ca=" + missing},
           missing},
          // Most likely a forgotten https://: never fall back to plaintext.
          {{"--upstream=127.0.0.1:1", "--upstream-ca=" + pki->ca_file()},
           "--upstream-ca needs an https:// --upstream"},
          {{"--upstream=ftp://127.0.0.1:1"},
           "is not [http://|https://]HOST:PORT"},
          {{"--upstream=https://127.0.0.1:1/path"}, "is not"},
      });
}

}  // namespace
}  // namespace mill::testing
