// TLS connections end to end on our own client and server, in every
// dispatch mode: data both ways, versions, ALPN, SNI, resumption, every
// failed verification, handshake bounds and bad bytes, close_notify and
// truncation, backpressure and the input bound on plaintext.
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "net/testing/echo_clients.h"
#include "tls/testing/tls_fixture.h"

namespace mill {
namespace tls_testing {
namespace {

using net_testing::Pattern;
using net_testing::WaitFor;

// A plain TCP socket connected to `port` (blocking).
int RawConnect(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Reads until EOF or error; true on EOF (or reset) within `timeout`.
bool ReadsEndWithin(int fd, absl::Duration timeout) {
  timeval tv = absl::ToTimeval(timeout);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char buffer[4096];
  while (true) {
    const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n == 0) return true;
    if (n < 0) return errno == ECONNRESET;
  }
}

class TlsConnectionTest : public TlsTest {};

TEST_P(TlsConnectionTest, EchoesAMegabyteBothWays) {
  StartServer(ServerContext(), Echo());
  auto seen = std::make_shared<Seen>();
  TcpClient* client = StartClient(ClientContext(), Recording(seen));
  absl::StatusOr<ConnectionPtr> conn =
      ConnectAndWait(client, Target(servers_[0].get()));
  ASSERT_TRUE(conn.ok()) << conn.status();
  const std::string payload = Pattern(1, 1 << 20);
  for (size_t i = 0; i < payload.size(); i += 100000) {
    ASSERT_TRUE((*conn)->Send(payload.substr(i, 100000)).ok());
  }
  ASSERT_TRUE(seen->WaitForBytes(payload.size()));
  EXPECT_EQ(seen->Data(), payload);
  absl::StatusOr<TlsInfo> info = TlsInfoOf(**conn);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->version, "TLSv1.3");
  EXPECT_TRUE(info->handshake_done);
  EXPECT_FALSE(info->cipher.empty());
}

TEST_P(TlsConnectionTest, SpeaksTls12And13) {
  for (TlsVersion version : {TlsVersion::k1_2, TlsVersion::k1_3}) {
    TlsServerOptions server_options = ServerOptions();
    server_options.min_version = version;
    server_options.max_version = version;
    TcpServer* server = StartServer(ServerContext(server_options), Echo());
    auto seen = std::make_shared<Seen>();
    TcpClient* client = StartClient(ClientContext(), Recording(seen));
    absl::StatusOr<ConnectionPtr> conn = ConnectAndWait(client, Target(server));
    ASSERT_TRUE(conn.ok()) << conn.status();
    ASSERT_TRUE((*conn)->Send("ping").ok());
    ASSERT_TRUE(seen->WaitForBytes(4));
    EXPECT_EQ(TlsInfoOf(**conn)->version,
              version == TlsVersion::k1_2 ? "TLSv1.2" : "TLSv1.3");
  }
}

TEST_P(TlsConnectionTest, NegotiatesAlpnByServerPreference) {
  TlsServerOptions server_options = ServerOptions();
  server_options.alpn = {"h2", "http/1.1"};
  auto server_seen = std::make_shared<Seen>();
  TcpServer* server =
      StartServer(ServerContext(server_options), Recording(server_seen));
  TlsClientOptions client_options = ClientOptions();
  client_options.alpn = {"http/1.1", "h2"};
  TcpClient* client =
      StartClient(ClientContext(client_options), ConnectionCallbacks());
  absl::StatusOr<ConnectionPtr> conn = ConnectAndWait(client, Target(server));
  ASSERT_TRUE(conn.ok()) << conn.status();
  EXPECT_EQ(TlsInfoOf(**conn)->alpn, "h2");
  // A client offering nothing the server speaks gets no ALPN, not an error.
  client_options.alpn = {"spdy/3"};
  TcpClient* other =
      StartClient(ClientContext(client_options), ConnectionCallbacks());
  conn = ConnectAndWait(other, Target(server));
  ASSERT_TRUE(conn.ok()) << conn.status();
  EXPECT_EQ(TlsInfoOf(**conn)->alpn, "");
}

// One TcpClient, several layers: each Connect may name its own (null: plain
// TCP), and the client's own layer stays the default.
TEST_P(TlsConnectionTest, OneClientConnectsOverEachConnectsLayer) {
  TlsServerOptions server_options = ServerOptions();
  server_options.alpn = {"h2", "http/1.1"};
  TcpServer* tls_server = StartServer(ServerContext(server_options), Echo());
  TcpServer* plain_server = StartServer(nullptr, Echo());
  TlsClientOptions h2 = ClientOptions();
  h2.alpn = {"h2"};
  TlsClientOptions http1 = ClientOptions();
  http1.alpn = {"http/1.1"};
  TcpClient* client = StartClient(ClientContext(h2), ConnectionCallbacks());

  absl::StatusOr<ConnectionPtr> conn =
      ConnectAndWait(client, Target(tls_server));
  ASSERT_TRUE(conn.ok()) << conn.status();
  EXPECT_EQ(TlsInfoOf(**conn)->alpn, "h2");  // the client's own layer
  conn = ConnectAndWait(client, Target(tls_server), ClientContext(http1));
  ASSERT_TRUE(conn.ok()) << conn.status();
  EXPECT_EQ(TlsInfoOf(**conn)->alpn, "http/1.1");  // this connect's
  conn = ConnectAndWait(client, Target(plain_server), nullptr);
  ASSERT_TRUE(conn.ok()) << conn.status();
  EXPECT_FALSE(TlsInfoOf(**conn).ok());  // plain TCP
  // The default again: a TLS client on a plain server fails its handshake.
  conn = ConnectAndWait(client, Target(plain_server));
  EXPECT_FALSE(conn.ok());

  // A server-side layer is refused at once.
  absl::Status refused;
  const TcpClient::ConnectId id = client->Connect(
      Target(tls_server), ServerContext(),
      [&refused](absl::StatusOr<ConnectionPtr> c) { refused = c.status(); });
  EXPECT_EQ(id, 0u);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument) << refused;
  EXPECT_EQ(client->stats().connects_started, 4u);
}

TEST_P(TlsConnectionTest, SniSelectsTheCertificate) {
  absl::StatusOr<CertFiles> a =
      Pki().pki.IssueLeaf("sni_a", LeafOptions{{"a.test"}, {}, "a.test"});
  absl::StatusOr<CertFiles> b =
      Pki().pki.IssueLeaf("sni_b", LeafOptions{{"*.b.test"}, {}, "b.test"});
  ASSERT_TRUE(a.ok() && b.ok());
  TlsServerOptions server_options;
  server_options.certificates = {{a->cert_file, a->key_file, {}},
                                 {b->cert_file, b->key_file, {}}};
  auto server_seen = std::make_shared<Seen>();
  TcpServer* server =
      StartServer(ServerContext(server_options), Recording(server_seen));
  for (const char* name : {"a.test", "www.b.test"}) {
    TlsClientOptions client_options = ClientOptions();
    client_options.server_name = name;  // verified against the certificate
    TcpClient* client =
        StartClient(ClientContext(client_options), ConnectionCallbacks());
    absl::StatusOr<ConnectionPtr> conn = ConnectAndWait(client, Target(server));
    ASSERT_TRUE(conn.ok()) << name << ": " << conn.status();
    EXPECT_EQ(TlsInfoOf(**conn)->server_name, name);
  }
  // A name no certificate has gets the default one, which fails the
  // client's check.
  TlsClientOptions client_options = ClientOptions();
  client_options.server_name = "c.test";
  TcpClient* client =
      StartClient(ClientContext(client_options), ConnectionCallbacks());
  absl::StatusOr<ConnectionPtr> conn = ConnectAndWait(client, Target(server));
  EXPECT_FALSE(conn.ok());
}

TEST_P(TlsConnectionTest, ReconnectsResumeTheSession) {
  for (TlsVersion version : {TlsVersion::k1_2, TlsVersion::k1_3}) {
    TlsServerOptions server_options = ServerOptions();
    server_options.max_version = version;
    TcpServer* server = StartServer(ServerContext(server_options), Echo());
    std::shared_ptr<TlsClientContext> context = ClientContext();
    auto seen = std::make_shared<Seen>();
    TcpClient* client = StartClient(context, Recording(seen));
    absl::StatusOr<ConnectionPtr> first =
        ConnectAndWait(client, Target(server));
    ASSERT_TRUE(first.ok()) << first.status();
    EXPECT_FALSE(TlsInfoOf(**first)->resumed);
    // TLS 1.3 tickets come after the handshake: a round trip reads them.
    ASSERT_TRUE((*first)->Send("x").ok());
    ASSERT_TRUE(seen->WaitForBytes(1));
    ASSERT_TRUE(WaitFor([&] { return context->cached_sessions() == 1; }));
    (*first)->Close();
    absl::StatusOr<ConnectionPtr> second =
        ConnectAndWait(client, Target(server));
    ASSERT_TRUE(second.ok()) << second.status();
    EXPECT_TRUE(TlsInfoOf(**second)->resumed);
  }
}

TEST_P(TlsConnectionTest, TicketsOutliveKeptRotationsOnly) {
  TlsServerOptions server_options = ServerOptions();
  server_options.ticket_keys_kept = 1;
  std::shared_ptr<TlsServerContext> server_context =
      ServerContext(server_options);
  TcpServer* server = StartServer(server_context, Echo());
  std::shared_ptr<TlsClientContext> context = ClientContext();
  auto seen = std::make_shared<Seen>();
  TcpClient* client = StartClient(context, Recording(seen));
  auto connect = [&]() -> bool {
    absl::StatusOr<ConnectionPtr> conn = ConnectAndWait(client, Target(server));
    EXPECT_TRUE(conn.ok()) << conn.status();
    if (!conn.ok()) return false;
    const size_t before = seen->Data().size();
    EXPECT_TRUE((*conn)->Send("x").ok());
    EXPECT_TRUE(seen->WaitForBytes(before + 1));
    const bool resumed = TlsInfoOf(**conn)->resumed;
    (*conn)->Close();
    return resumed;
  };
  EXPECT_FALSE(connect());
  ASSERT_TRUE(WaitFor([&] { return context->cached_sessions() == 1; }));
  ASSERT_TRUE(server_context->RotateTicketKeys().ok());
  EXPECT_EQ(server_context->ticket_key_count(), 2u);
  EXPECT_TRUE(connect());  // an older key still decrypts (and renews)
  ASSERT_TRUE(server_context->RotateTicketKeys().ok());
  ASSERT_TRUE(server_context->RotateTicketKeys().ok());
  EXPECT_EQ(server_context->ticket_key_count(), 2u);
  EXPECT_FALSE(connect());  // aged out: a full handshake, not a failure
}

struct BadCertificate {
  const char* name;
  const char* expected;  // in the connect error
};

TEST_P(TlsConnectionTest, ClientRejectsEveryBadCertificate) {
  absl::StatusOr<CertFiles> expired = Pki().pki.ExpiredLeaf("expired");
  absl::StatusOr<CertFiles> wrong = Pki().pki.WrongNameLeaf("wrong");
  absl::StatusOr<CertFiles> self = Pki().pki.SelfSignedLeaf("self");
  absl::StatusOr<TestPki> other = TestPki::Create(MakeTempDir("other_ca"));
  ASSERT_TRUE(expired.ok() && wrong.ok() && self.ok() && other.ok());
  absl::StatusOr<CertFiles> unknown = other->IssueLeaf("unknown");
  ASSERT_TRUE(unknown.ok());
  const std::vector<std::pair<CertFiles, const char*>> cases = {
      {*expired, "certificate has expired"},
      {*wrong, "mismatch"},
      {*self, "self-signed certificate"},
      {*unknown, "unable to get local issuer certificate"},
  };
  for (const auto& [files, expected] : cases) {
    TlsServerOptions server_options;
    server_options.certificates = {{files.cert_file, files.key_file, {}}};
    // Shared: the server outlives this iteration (it stops in TearDown).
    auto failed = std::make_shared<std::atomic<int>>(0);
    TcpServerOptions tcp_options;
    tcp_options.on_handshake_failed =
        [failed](const SocketAddress&, const absl::Status&) { ++*failed; };
    TcpServer* server =
        StartServer(ServerContext(server_options), Echo(), tcp_options);
    auto seen = std::make_shared<Seen>();
    TcpClient* client = StartClient(ClientContext(), Recording(seen));
    for (const char* host : {"localhost", "127.0.0.1"}) {
      absl::StatusOr<ConnectionPtr> conn =
          ConnectAndWait(client, Target(server, host));
      ASSERT_FALSE(conn.ok()) << expected;
      EXPECT_TRUE(
          absl::StrContains(absl::AsciiStrToLower(conn.status().message()),
                            absl::AsciiStrToLower(expected)))
          << conn.status();
      EXPECT_TRUE(absl::StrContains(conn.status().message(),
                                    "certificate verify failed"))
          << conn.status();
    }
    // The server saw the client's alert: a failed handshake, counted.
    ASSERT_TRUE(WaitFor([&] { return failed->load() == 2; })) << failed->load();
    EXPECT_EQ(server->stats().handshakes_failed, 2u);
    EXPECT_EQ(server->stats().closed(CloseReason::kHandshakeFailed), 2u);
    EXPECT_EQ(client->stats().connects_failed, 2u);
  }
}

TEST_P(TlsConnectionTest, ClientWithoutVerificationAcceptsAnything) {
  absl::StatusOr<CertFiles> self = Pki().pki.SelfSignedLeaf("self_noverify");
  ASSERT_TRUE(self.ok());
  TlsServerOptions server_options;
  server_options.certificates = {{self->cert_file, self->key_file, {}}};
  TcpServer* server = StartServer(ServerContext(server_options), Echo());
  TlsClientOptions client_options;
  client_options.verify_peer = false;
  TcpClient* client =
      StartClient(ClientContext(client_options), ConnectionCallbacks());
  EXPECT_TRUE(ConnectAndWait(client, Target(server)).ok());
}

TEST_P(TlsConnectionTest, StalledHandshakesAreClosedInBoundedTime) {
  TlsServerOptions server_options = ServerOptions();
  server_options.handshake_timeout = absl::Milliseconds(200);
  auto timeouts = std::make_shared<std::atomic<int>>(0);
  TcpServerOptions tcp_options;
  tcp_options.on_handshake_failed = [timeouts](const SocketAddress&,
                                               const absl::Status& status) {
    if (absl::IsDeadlineExceeded(status)) ++*timeouts;
  };
  TcpServer* server =
      StartServer(ServerContext(server_options), Echo(), tcp_options);
  const uint16_t port = server->local_address().port();
  // One never speaks; one stops in the middle of its ClientHello.
  const int silent = RawConnect(port);
  const int partial = RawConnect(port);
  ASSERT_GE(silent, 0);
  ASSERT_GE(partial, 0);
  const char hello_start[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00};
  ASSERT_EQ(::send(partial, hello_start, sizeof(hello_start), 0),
            static_cast<ssize_t>(sizeof(hello_start)));
  EXPECT_TRUE(ReadsEndWithin(silent, absl::Seconds(10)));
  EXPECT_TRUE(ReadsEndWithin(partial, absl::Seconds(10)));
  ::close(silent);
  ::close(partial);
  ASSERT_TRUE(WaitFor([&] { return timeouts->load() == 2; }));
  EXPECT_EQ(server->stats().closed(CloseReason::kHandshakeFailed), 2u);
  EXPECT_TRUE(WaitFor([&] { return server->stats().active == 0; }));
}

TEST_P(TlsConnectionTest, BadBytesCloseThatConnectionOnly) {
  struct Failures {
    std::mutex mu;
    int count = 0;
    std::string last_error;
  };
  auto failures = std::make_shared<Failures>();
  TcpServerOptions tcp_options;
  tcp_options.on_handshake_failed = [failures](const SocketAddress&,
                                               const absl::Status& status) {
    std::lock_guard<std::mutex> lock(failures->mu);
    failures->last_error = std::string(status.message());
    ++failures->count;
  };
  TcpServer* server = StartServer(ServerContext(), Echo(), tcp_options);
  const uint16_t port = server->local_address().port();
  // A good client stays connected through all of it.
  auto seen = std::make_shared<Seen>();
  TcpClient* client = StartClient(ClientContext(), Recording(seen));
  absl::StatusOr<ConnectionPtr> good = ConnectAndWait(client, Target(server));
  ASSERT_TRUE(good.ok()) << good.status();
  const std::vector<std::string> bad = {
      "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",  // plaintext HTTP
      std::string(300, '\xff'),                     // garbage
      std::string("\x16\x03\x01\x00\x30\x01\x00\x00\x2c\x03\x03", 11),  // cut
  };
  for (const std::string& bytes : bad) {
    const int fd = RawConnect(port);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::send(fd, bytes.data(), bytes.size(), 0),
              static_cast<ssize_t>(bytes.size()));
    ::shutdown(fd, SHUT_WR);  // the truncated hello ends here
    EXPECT_TRUE(ReadsEndWithin(fd, absl::Seconds(10)));
    ::close(fd);
  }
  ASSERT_TRUE(WaitFor([&] {
    std::lock_guard<std::mutex> lock(failures->mu);
    return failures->count == 3;
  }));
  {
    std::lock_guard<std::mutex> lock(failures->mu);
    EXPECT_TRUE(absl::StrContains(failures->last_error, "TLS handshake with"))
        << failures->last_error;
  }
  ASSERT_TRUE((*good)->Send("still here").ok());
  ASSERT_TRUE(seen->WaitForBytes(10));
  EXPECT_EQ(seen->Data(), "still here");
}

TEST_P(TlsConnectionTest, CloseSendsCloseNotifyBothWays) {
  // The server says goodbye and closes: the client sees a clean EOF.
  auto server_seen = std::make_shared<Seen>();
  ConnectionCallbacks server_cb = Recording(server_seen);
  server_cb.on_data = [server_seen](const ConnectionPtr& c, ByteBuffer& in) {
    server_seen->Append(in.view());
    in.Consume(in.size());
    (void)c->Send("bye");
    c->Close();
  };
  TcpServer* server = StartServer(ServerContext(), server_cb);
  auto seen = std::make_shared<Seen>();
  TcpClient* client = StartClient(ClientContext(), Recording(seen));
  absl::StatusOr<ConnectionPtr> conn = ConnectAndWait(client, Target(server));
  ASSERT_TRUE(conn.ok()) << conn.status();
  ASSERT_TRUE((*conn)->Send("hello").ok());
  ASSERT_TRUE(seen->WaitClosed());
  EXPECT_EQ(seen->Data(), "bye");
  EXPECT_EQ(seen->reason, CloseReason::kPeerClosed) << seen->status;
  ASSERT_TRUE(server_seen->WaitClosed());
  EXPECT_EQ(server_seen->reason, CloseReason::kClosedLocally);

  // The client closes: the server sees the client's close_notify.
  auto server_seen2 = std::make_shared<Seen>();
  TcpServer* server2 = StartServer(ServerContext(), Recording(server_seen2));
  absl::StatusOr<ConnectionPtr> conn2 = ConnectAndWait(client, Target(server2));
  ASSERT_TRUE(conn2.ok()) << conn2.status();
  ASSERT_TRUE((*conn2)->Send("last words").ok());
  (*conn2)->Close();
  ASSERT_TRUE(server_seen2->WaitClosed());
  EXPECT_EQ(server_seen2->Data(), "last words");
  EXPECT_EQ(server_seen2->reason, CloseReason::kPeerClosed)
      << server_seen2->status;
}

TEST_P(TlsConnectionTest, CloseWithoutCloseNotifyIsTruncation) {
  auto server_seen = std::make_shared<Seen>();
  TcpServer* server = StartServer(ServerContext(), Recording(server_seen));
  // A blocking OpenSSL client that drops the TCP connection without
  // close_notify.
  const int fd = RawConnect(server->local_address().port());
  ASSERT_GE(fd, 0);
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  ASSERT_EQ(SSL_connect(ssl), 1);
  ASSERT_EQ(SSL_write(ssl, "partial", 7), 7);
  ASSERT_TRUE(server_seen->WaitForBytes(7));
  ::shutdown(fd, SHUT_WR);  // a FIN, no close_notify
  ASSERT_TRUE(server_seen->WaitClosed());
  ::close(fd);
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  EXPECT_EQ(server_seen->reason, CloseReason::kTruncated);
  EXPECT_TRUE(absl::IsDataLoss(server_seen->status)) << server_seen->status;
  EXPECT_EQ(server_seen->Data(), "partial");
}

TEST_P(TlsConnectionTest, RecordsLargerThanTheInputBoundArriveWhole) {
  // Each 16 KiB record holds more plaintext than on_data may get at once:
  // the rest waits inside OpenSSL, which no socket readiness announces.
  auto server_seen = std::make_shared<Seen>();
  TcpServerOptions tcp_options;
  tcp_options.connection.max_input_bytes = 1000;
  TcpServer* server =
      StartServer(ServerContext(), Recording(server_seen), tcp_options);
  TcpClient* client = StartClient(ClientContext(), ConnectionCallbacks());
  absl::StatusOr<ConnectionPtr> conn = ConnectAndWait(client, Target(server));
  ASSERT_TRUE(conn.ok()) << conn.status();
  const std::string payload = Pattern(7, 200000);
  ASSERT_TRUE((*conn)->Send(payload).ok());
  ASSERT_TRUE(server_seen->WaitForBytes(payload.size()))
      << server_seen->Data().size();
  EXPECT_EQ(server_seen->Data(), payload);
}

TEST_P(TlsConnectionTest, InputBoundCountsPlaintext) {
  auto server_seen = std::make_shared<Seen>();
  ConnectionCallbacks server_cb = Recording(server_seen);
  server_cb.on_data = [](const ConnectionPtr&, ByteBuffer&) {};  // keeps all
  TcpServerOptions tcp_options;
  tcp_options.connection.max_input_bytes = 4096;
  TcpServer* server = StartServer(ServerContext(), server_cb, tcp_options);
  TcpClient* client = StartClient(ClientContext(), ConnectionCallbacks());
  absl::StatusOr<ConnectionPtr> conn = ConnectAndWait(client, Target(server));
  ASSERT_TRUE(conn.ok()) << conn.status();
  ASSERT_TRUE((*conn)->Send(std::string(10000, 'a')).ok());
  ASSERT_TRUE(server_seen->WaitClosed());
  EXPECT_EQ(server_seen->reason, CloseReason::kInputOverflow);
}

TEST_P(TlsConnectionTest, TwoHundredConcurrentHandshakes) {
  TcpServer* server = StartServer(ServerContext(), Echo());
  constexpr int kClients = 200;
  auto echoed = std::make_shared<std::atomic<int>>(0);
  auto failed = std::make_shared<std::atomic<int>>(0);
  ConnectionCallbacks cb;
  cb.on_connect = [](const ConnectionPtr& c) { (void)c->Send("ping"); };
  cb.on_data = [echoed](const ConnectionPtr&, ByteBuffer& in) {
    if (in.size() >= 4) {
      in.Consume(4);
      ++*echoed;
    }
  };
  TcpClient* client = StartClient(ClientContext(), cb);
  for (int i = 0; i < kClients; ++i) {
    client->Connect(Target(server), [failed](absl::StatusOr<ConnectionPtr> c) {
      if (!c.ok()) ++*failed;
    });
  }
  ASSERT_TRUE(
      WaitFor([&] { return echoed->load() + failed->load() == kClients; },
              absl::Seconds(60)))
      << echoed->load() << " echoed, " << failed->load() << " failed";
  EXPECT_EQ(failed->load(), 0);
  EXPECT_EQ(server->stats().handshakes_failed, 0u);
  EXPECT_EQ(server->stats().accepted, static_cast<uint64_t>(kClients));
}

TEST_P(TlsConnectionTest, SlowReaderKeepsServerOutputBounded) {
  // The server streams 32 MiB, sending more only below the low-water mark;
  // the client reads in bursts. Pending output stays near the mark.
  constexpr size_t kTotal = 32 << 20;
  constexpr size_t kChunk = 256 << 10;
  struct Stream {
    std::atomic<size_t> sent{0};
    std::atomic<size_t> max_pending{0};
    std::atomic<size_t> received{0};
  };
  auto stream = std::make_shared<Stream>();
  auto pump = [stream](const ConnectionPtr& c) {
    while (stream->sent.load() < kTotal &&
           c->pending_output_bytes() < (1 << 20)) {
      if (!c->Send(std::string(kChunk, 'z')).ok()) return;
      stream->sent += kChunk;
      size_t pending = c->pending_output_bytes();
      size_t seen_max = stream->max_pending.load();
      while (pending > seen_max &&
             !stream->max_pending.compare_exchange_weak(seen_max, pending)) {
      }
    }
  };
  ConnectionCallbacks server_cb;
  server_cb.on_connect = pump;
  server_cb.on_low_water = pump;
  TcpServer* server = StartServer(ServerContext(), server_cb);
  ConnectionCallbacks client_cb;
  client_cb.on_data = [stream](const ConnectionPtr&, ByteBuffer& in) {
    stream->received += in.size();
    in.Consume(in.size());
  };
  TcpClient* client = StartClient(ClientContext(), client_cb);
  absl::StatusOr<ConnectionPtr> conn = ConnectAndWait(client, Target(server));
  ASSERT_TRUE(conn.ok()) << conn.status();
  for (int burst = 0; burst < 5; ++burst) {
    (*conn)->PauseReading();
    absl::SleepFor(absl::Milliseconds(50));  // lets the server's queue fill
    (*conn)->ResumeReading();
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_TRUE(WaitFor([&] { return stream->received.load() == kTotal; },
                      absl::Seconds(60)))
      << stream->received.load();
  // High water (1 MiB) plus one chunk, whatever the reader did.
  EXPECT_LE(stream->max_pending.load(), (size_t{1} << 20) + kChunk);
}

TEST_P(TlsConnectionTest, SendFileOverTls) {
  const std::string path = MakeTempDir("sendfile") + "/data";
  const std::string contents = Pattern(3, 3 << 20);
  {
    FILE* f = fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(fwrite(contents.data(), 1, contents.size(), f), contents.size());
    fclose(f);
  }
  ConnectionCallbacks server_cb;
  const size_t size = contents.size();
  server_cb.on_connect = [path, size](const ConnectionPtr& c) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_TRUE(c->SendFile(fd, 1000, size - 1000, [fd] { ::close(fd); }).ok());
  };
  TcpServer* server = StartServer(ServerContext(), server_cb);
  auto seen = std::make_shared<Seen>();
  TcpClient* client = StartClient(ClientContext(), Recording(seen));
  absl::StatusOr<ConnectionPtr> conn = ConnectAndWait(client, Target(server));
  ASSERT_TRUE(conn.ok()) << conn.status();
  ASSERT_TRUE(seen->WaitForBytes(contents.size() - 1000));
  EXPECT_EQ(seen->Data(), contents.substr(1000));
}

INSTANTIATE_TEST_SUITE_P(AllModes, TlsConnectionTest,
                         reactor_testing::EveryLoopMode(),
                         reactor_testing::LoopConfigName);

}  // namespace
}  // namespace tls_testing
}  // namespace mill
