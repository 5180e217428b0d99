// TLS against peers that are not ours: Debian's `openssl s_client` and
// `s_server`, and Python's ssl module, with TLS 1.2 and 1.3, ALPN, SNI and
// resumption ("Reused"), against our server and our client.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "net/testing/echo_clients.h"
#include "tls/testing/tls_fixture.h"

extern char** environ;

namespace mill {
namespace tls_testing {
namespace {

using net_testing::WaitFor;

// Runs `command` with sh; its stdout and stderr.
std::string RunShell(const std::string& command) {
  std::string output;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return "popen failed";
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
    output.append(buffer, n);
  }
  pclose(pipe);
  return output;
}

// An echo server that closes (with close_notify) after a line.
ConnectionCallbacks EchoLineThenClose() {
  ConnectionCallbacks cb;
  cb.on_data = [](const ConnectionPtr& c, ByteBuffer& input) {
    const bool line = absl::StrContains(input.view(), "\n");
    (void)c->Send(absl::StrCat("echo:", input.view()));
    input.Consume(input.size());
    if (line) c->Close();
  };
  return cb;
}

class TlsInteropTest : public TlsTest {
 protected:
  std::string SClient(uint16_t port, const std::string& extra) {
    return RunShell(absl::StrCat(
        "printf 'hello\\n' | timeout 20 openssl s_client -connect 127.0.0.1:",
        port, " -CAfile ", Pki().pki.ca_file(),
        " -verify_return_error -ign_eof ", extra));
  }
};

TEST_P(TlsInteropTest, OpensslClientTalksToOurServer) {
  TlsServerOptions options = ServerOptions();
  options.alpn = {"http/1.1"};
  TcpServer* server = StartServer(ServerContext(options), EchoLineThenClose());
  const uint16_t port = server->local_address().port();
  for (const char* version : {"-tls1_2", "-tls1_3"}) {
    const std::string out = SClient(
        port, absl::StrCat(version, " -servername localhost -alpn http/1.1"));
    EXPECT_TRUE(absl::StrContains(out, "echo:hello")) << out;
    EXPECT_TRUE(absl::StrContains(out, "Verify return code: 0 (ok)")) << out;
    EXPECT_TRUE(absl::StrContains(out, "ALPN protocol: http/1.1")) << out;
    EXPECT_TRUE(absl::StrContains(
        out, absl::StrCat("Protocol  : TLSv1.", std::string(1, version[6]))))
        << out;
  }
  EXPECT_EQ(server->stats().handshakes_failed, 0u);
}

TEST_P(TlsInteropTest, OpensslClientResumesWithOurTickets) {
  TcpServer* server = StartServer(ServerContext(), EchoLineThenClose());
  const uint16_t port = server->local_address().port();
  const std::string session = MakeTempDir("sess") + "/session.pem";
  for (const char* version : {"-tls1_2", "-tls1_3"}) {
    const std::string first =
        SClient(port, absl::StrCat(version, " -sess_out ", session));
    ASSERT_TRUE(absl::StrContains(first, "echo:hello")) << first;
    EXPECT_TRUE(absl::StrContains(first, "New, TLSv1.")) << first;
    const std::string second =
        SClient(port, absl::StrCat(version, " -sess_in ", session));
    EXPECT_TRUE(absl::StrContains(second, "Reused, TLSv1.")) << second;
    EXPECT_TRUE(absl::StrContains(second, "echo:hello")) << second;
  }
}

TEST_P(TlsInteropTest, PythonClientTalksToOurServer) {
  TlsServerOptions options = ServerOptions();
  options.alpn = {"h2", "http/1.1"};
  TcpServer* server = StartServer(ServerContext(options), EchoLineThenClose());
  const std::string script = absl::StrCat(
      "import socket, ssl\n"
      "ctx = ssl.create_default_context(cafile='",
      Pki().pki.ca_file(),
      "')\n"
      "ctx.set_alpn_protocols(['http/1.1'])\n"
      "with socket.create_connection(('127.0.0.1', ",
      server->local_address().port(),
      ")) as raw:\n"
      "  with ctx.wrap_socket(raw, server_hostname='localhost') as s:\n"
      "    s.sendall(b'py\\n')\n"
      "    data = b''\n"
      "    while True:\n"
      "      chunk = s.recv(100)\n"
      "      if not chunk: break\n"  // a clean close_notify ends it
      "      data += chunk\n"
      "    print(s.version(), s.selected_alpn_protocol(), data.decode())\n");
  const std::string path = MakeTempDir("py") + "/client.py";
  std::ofstream(path) << script;
  const std::string out = RunShell("timeout 20 python3 " + path);
  EXPECT_TRUE(absl::StrContains(out, "TLSv1.3 http/1.1 echo:py")) << out;
}

TEST_P(TlsInteropTest, OurClientTalksToOpensslServer) {
  // s_server picks nothing for us: find a free port, then wait for it.
  uint16_t port;
  {
    absl::StatusOr<std::unique_ptr<TcpServer>> probe = TcpServer::Create(
        loop_.get(), SocketAddress::LoopbackIPv4(0), ConnectionCallbacks());
    ASSERT_TRUE(probe.ok());
    port = (*probe)->local_address().port();
  }
  const std::string port_text = std::to_string(port);
  const std::string cert = Pki().server.cert_file;
  const std::string key = Pki().server.key_file;
  std::vector<std::string> args = {
      "openssl", "s_server", "-accept", port_text,  "-cert",    cert, "-key",
      key,       "-www",     "-alpn",   "http/1.1", "-naccept", "2",  "-quiet"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid;
  ASSERT_EQ(
      posix_spawnp(&pid, "openssl", nullptr, nullptr, argv.data(), environ), 0);
  TlsClientOptions options = ClientOptions();
  options.alpn = {"http/1.1"};
  std::shared_ptr<TlsClientContext> context = ClientContext(options);
  auto seen = std::make_shared<Seen>();
  TcpClient* client = StartClient(context, Recording(seen));
  absl::StatusOr<ConnectionPtr> conn;
  ASSERT_TRUE(WaitFor([&] {
    conn = ConnectAndWait(client, absl::StrCat("localhost:", port));
    return conn.ok();
  })) << conn.status();
  EXPECT_EQ(TlsInfoOf(**conn)->alpn, "http/1.1");
  ASSERT_TRUE((*conn)->Send("GET / HTTP/1.0\r\n\r\n").ok());
  ASSERT_TRUE(seen->WaitClosed());
  EXPECT_TRUE(absl::StrContains(seen->Data(), "HTTP/1.0 200 ok"))
      << seen->Data();
  EXPECT_TRUE(absl::StrContains(seen->Data(), "TLSv1.3")) << seen->Data();
  // s_server ends with close_notify: a clean close, not a truncation.
  EXPECT_EQ(seen->reason, CloseReason::kPeerClosed) << seen->status;
  // The second connection resumes the session cached for the endpoint.
  absl::StatusOr<ConnectionPtr> again =
      ConnectAndWait(client, absl::StrCat("localhost:", port));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(TlsInfoOf(**again)->resumed);
  (*again)->Close();
  ::kill(pid, SIGTERM);
  int status;
  waitpid(pid, &status, 0);
}

INSTANTIATE_TEST_SUITE_P(
    AllModes, TlsInteropTest,
    ::testing::Values(reactor_testing::LoopConfig{"Direct",
                                                  DispatchMode::kDirect, 1, 1},
                      reactor_testing::LoopConfig{"PoolTwoPollers",
                                                  DispatchMode::kPool, 3, 2}),
    reactor_testing::LoopConfigName);

}  // namespace
}  // namespace tls_testing
}  // namespace mill
