#include "examples/testing/tls_test_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/errno_status.h"

namespace mill {
namespace testing {
namespace {

std::string OpenSslErrors() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    char text[256];
    ERR_error_string_n(e, text, sizeof(text));
    absl::StrAppend(&out, out.empty() ? "" : "; ", text);
  }
  return out.empty() ? "no OpenSSL error" : out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TlsTestClient>> TlsTestClient::Connect(
    uint16_t port, const Options& options, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoStatus(errno, "socket");
  if (options.rcvbuf > 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &options.rcvbuf,
               sizeof(options.rcvbuf));
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int err = errno;
    close(fd);
    return ErrnoStatus(err, "connect");
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  // A server that closes without close_notify is an EOF, not an error.
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL* ssl = SSL_new(ctx);
  // Owns fd, ctx and ssl from here on, whatever fails below.
  std::unique_ptr<TlsTestClient> client(new TlsTestClient(fd, ctx, ssl));
  if (SSL_CTX_load_verify_locations(ctx, options.ca_file.c_str(), nullptr) !=
      1) {
    return absl::InvalidArgumentError(
        absl::StrCat("CA file ", options.ca_file, ": ", OpenSslErrors()));
  }
  std::string alpn_wire;
  for (const std::string& protocol : options.alpn) {
    alpn_wire.push_back(static_cast<char>(protocol.size()));
    alpn_wire += protocol;
  }
  if (SSL_set_fd(ssl, fd) != 1 ||
      SSL_set_tlsext_host_name(ssl, options.host.c_str()) != 1 ||
      SSL_set1_host(ssl, options.host.c_str()) != 1 ||
      (!alpn_wire.empty() &&
       SSL_set_alpn_protos(
           ssl, reinterpret_cast<const unsigned char*>(alpn_wire.data()),
           static_cast<unsigned int>(alpn_wire.size())) != 0)) {
    return absl::InternalError(absl::StrCat("SSL setup: ", OpenSslErrors()));
  }
  for (;;) {
    const int ret = SSL_connect(ssl);
    if (ret == 1) return client;
    if (!client->WaitFor(ret, deadline)) {
      return absl::UnavailableError(absl::StrCat(
          "TLS handshake: ", OpenSslErrors(), " (verify: ",
          X509_verify_cert_error_string(SSL_get_verify_result(ssl)), ")"));
    }
  }
}

TlsTestClient::~TlsTestClient() {
  SSL_free(ssl_);
  SSL_CTX_free(ctx_);
  close(fd_);
}

bool TlsTestClient::WaitFor(int ret, absl::Time deadline) {
  const int error = SSL_get_error(ssl_, ret);
  short events = 0;
  if (error == SSL_ERROR_WANT_READ) {
    events = POLLIN;
  } else if (error == SSL_ERROR_WANT_WRITE) {
    events = POLLOUT;
  } else {
    return false;
  }
  const absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return false;
  pollfd pfd = {fd_, events, 0};
  const int64_t ms = std::max<int64_t>(1, absl::ToInt64Milliseconds(left));
  return poll(&pfd, 1, static_cast<int>(std::min<int64_t>(ms, 60000))) > 0;
}

absl::Status TlsTestClient::SendAll(absl::string_view data,
                                    absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!data.empty()) {
    const int n = SSL_write(ssl_, data.data(), static_cast<int>(data.size()));
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
    } else if (!WaitFor(n, deadline)) {
      return absl::UnavailableError(
          absl::StrCat("SSL_write: ", OpenSslErrors()));
    }
  }
  return absl::OkStatus();
}

ssize_t TlsTestClient::Read(char* buffer, size_t n, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    const int got = SSL_read(ssl_, buffer, static_cast<int>(n));
    if (got > 0) return got;
    if (SSL_get_error(ssl_, got) == SSL_ERROR_ZERO_RETURN) return 0;
    if (!WaitFor(got, deadline)) return -1;
  }
}

std::string TlsTestClient::alpn() const {
  const unsigned char* data = nullptr;
  unsigned int length = 0;
  SSL_get0_alpn_selected(ssl_, &data, &length);
  if (data == nullptr) return "";
  return std::string(reinterpret_cast<const char*>(data), length);
}

}  // namespace testing
}  // namespace mill
