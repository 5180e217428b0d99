// Fuzzes the TLS transport's glue (not OpenSSL itself) from the peer's
// side, through a real TLS server on a loop: the input's first byte picks
//   0: the bytes are the peer's handshake (garbage, plaintext, a cut hello);
//   1: a real handshake, then the bytes raw on the socket (broken records);
//   2: a real handshake, then the bytes as application data, in records
//      split where the input says; the server echoes them.
// Invariants: the server ends every bad session within a bounded time (no
// stall), echoes valid data exactly, and holds no connection afterwards (no
// leak); ASan checks memory.
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "net/tcp_server.h"
#include "reactor/event_loop.h"
#include "tls/testing/test_certificates.h"
#include "tls/tls_server_context.h"
#include "tools/fuzz/chunks.h"
#include "tools/fuzz/fuzz_check.h"

namespace mill {
namespace {

constexpr absl::Duration kBound = absl::Seconds(5);

struct Harness {
  std::unique_ptr<EventLoop> loop;
  std::unique_ptr<TcpServer> server;
  std::thread thread;
  SSL_CTX* client_ctx = nullptr;
  uint16_t port = 0;
};

Harness& TheHarness() {
  static Harness* h = [] {
    auto* h = new Harness;
    auto pki = tls_testing::TestPki::Create(tls_testing::MakeTempDir("fuzz"));
    fuzz::Require(pki.status());
    auto leaf = pki->IssueLeaf("server");
    fuzz::Require(leaf.status());
    TlsServerOptions tls;
    tls.certificates.push_back({leaf->cert_file, leaf->key_file, {}});
    tls.handshake_timeout = absl::Seconds(2);
    auto context = TlsServerContext::Create(tls);
    fuzz::Require(context.status());
    EventLoopOptions loop_options;
    loop_options.dispatch_mode = DispatchMode::kDirect;
    auto loop = EventLoop::Create(loop_options);
    fuzz::Require(loop.status());
    h->loop = *std::move(loop);
    ConnectionCallbacks echo;
    echo.on_data = [](const ConnectionPtr& c, ByteBuffer& input) {
      (void)c->Send(input.view());
      input.Consume(input.size());
    };
    TcpServerOptions options;
    options.layer = *context;
    auto server = TcpServer::Create(
        h->loop.get(), SocketAddress::LoopbackIPv4(0), echo, options);
    fuzz::Require(server.status());
    h->server = *std::move(server);
    h->port = h->server->local_address().port();
    h->thread = std::thread([h] { (void)h->loop->Run(); });
    h->client_ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(h->client_ctx, SSL_VERIFY_NONE, nullptr);
    return h;
  }();
  return *h;
}

int Connect(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  fuzz::Require(
      ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0
          ? absl::OkStatus()
          : absl::InternalError("connect failed"));
  timeval tv = absl::ToTimeval(kBound);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

// The server must end the connection within kBound: EOF (or a reset).
absl::Status EndsWithinBound(int fd) {
  char buffer[4096];
  while (true) {
    const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n == 0) return absl::OkStatus();
    if (n < 0) {
      if (errno == ECONNRESET) return absl::OkStatus();
      if (errno == EINTR) continue;
      return absl::DeadlineExceededError(
          "the server neither answered nor closed: a stalled session");
    }
  }
}

// Every connection is gone shortly after its peer went away.
absl::Status ServerHoldsNothing(const TcpServer& server) {
  const absl::Time deadline = absl::Now() + kBound;
  while (server.stats().active != 0) {
    if (absl::Now() > deadline) {
      return absl::InternalError(
          absl::StrCat(server.stats().active,
                       " connections still open after the peer left"));
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  return absl::OkStatus();
}

absl::Status Echoes(SSL* ssl, std::string_view data, uint32_t seed,
                    const TcpServer& server) {
  for (std::string_view chunk : fuzz::SplitIntoChunks(data, seed, 512)) {
    if (chunk.empty()) continue;
    int n;
    do {
      errno = 0;
      n = SSL_write(ssl, chunk.data(), static_cast<int>(chunk.size()));
    } while (n <= 0 && errno == EINTR);
    if (n != static_cast<int>(chunk.size())) {
      return absl::InternalError("SSL_write to the server failed");
    }
  }
  std::string echoed;
  char buffer[4096];
  while (echoed.size() < data.size()) {
    errno = 0;
    const int n = SSL_read(ssl, buffer, sizeof(buffer));
    if (n <= 0) {
      const int err = SSL_get_error(ssl, n);
      // libFuzzer's SIGALRM watchdog interrupts the blocking read; a real
      // stall is the receive timeout (EAGAIN).
      if (err == SSL_ERROR_WANT_READ && errno == EINTR) continue;
      const TcpServerStats stats = server.stats();
      return absl::DataLossError(absl::StrCat(
          "echo stopped after ", echoed.size(), " of ", data.size(),
          " bytes (SSL error ", err, ", errno ", errno,
          "; server: ", stats.active, " open, ", stats.bytes_read, " read, ",
          stats.bytes_written, " written, ", stats.handshakes_failed,
          " failed handshakes)"));
    }
    echoed.append(buffer, static_cast<size_t>(n));
  }
  if (echoed != data) return absl::DataLossError("echo differs from input");
  return absl::OkStatus();
}

}  // namespace
}  // namespace mill

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  using namespace mill;  // NOLINT
  Harness& h = TheHarness();
  std::string_view data(reinterpret_cast<const char*>(bytes), size);
  const uint8_t mode = fuzz::TakeByte(&data) % 3;
  const uint32_t seed = fuzz::TakeU32(&data);
  if (data.size() > 64 * 1024) data = data.substr(0, 64 * 1024);
  const int fd = Connect(h.port);
  if (mode == 0) {
    for (std::string_view chunk : fuzz::SplitIntoChunks(data, seed, 64)) {
      if (!chunk.empty())
        (void)::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL);
    }
    ::shutdown(fd, SHUT_WR);
    fuzz::Require(EndsWithinBound(fd));
  } else {
    SSL* ssl = SSL_new(h.client_ctx);
    SSL_set_fd(ssl, fd);
    int connected;
    do {
      errno = 0;
      connected = SSL_connect(ssl);
    } while (connected <= 0 && errno == EINTR);
    fuzz::Require(connected == 1 ? absl::OkStatus()
                                 : absl::InternalError(
                                       "handshake with the server failed"));
    if (mode == 1) {
      for (std::string_view chunk : fuzz::SplitIntoChunks(data, seed, 64)) {
        if (!chunk.empty()) {
          (void)::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL);
        }
      }
      ::shutdown(fd, SHUT_WR);
      fuzz::Require(EndsWithinBound(fd));
    } else {
      fuzz::Require(Echoes(ssl, data, seed, *h.server));
      (void)SSL_shutdown(ssl);
    }
    SSL_free(ssl);
  }
  ::close(fd);
  fuzz::Require(ServerHoldsNothing(*h.server));
  return 0;
}
