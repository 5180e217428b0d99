// TlsTestClient: a TLS client for the examples' HTTPS tests that controls
// its own reading (how much, how fast), which curl cannot: a slow reader of
// a large response, the ALPN a server picked. OpenSSL over a non-blocking
// socket to 127.0.0.1, verifying the server against a CA file and a name.
// Test-only.
//
// Thread-safety: thread-compatible. Ownership: owns the socket and the
// OpenSSL objects.
#ifndef MILL_IO_EXAMPLES_TESTING_TLS_TEST_CLIENT_H_
#define MILL_IO_EXAMPLES_TESTING_TLS_TEST_CLIENT_H_

#include <openssl/types.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace mill {
namespace testing {

class TlsTestClient {
 public:
  struct Options {
    std::string ca_file;             // the CA the server must chain to
    std::string host = "localhost";  // verified, and sent as SNI
    std::vector<std::string> alpn;   // offered, in order; empty: none
    int rcvbuf = 0;                  // SO_RCVBUF before connect (0: default)
  };

  // Connects to 127.0.0.1:`port` and completes the handshake (verification
  // included) within `timeout`; the error says which step failed.
  static absl::StatusOr<std::unique_ptr<TlsTestClient>> Connect(
      uint16_t port, const Options& options,
      absl::Duration timeout = absl::Seconds(10));

  ~TlsTestClient();
  TlsTestClient(const TlsTestClient&) = delete;
  TlsTestClient& operator=(const TlsTestClient&) = delete;

  absl::Status SendAll(absl::string_view data,
                       absl::Duration timeout = absl::Seconds(10));
  // Reads at most `n` bytes, waiting up to `timeout` for some: the count,
  // 0 at the end of the stream, -1 on timeout or error.
  ssize_t Read(char* buffer, size_t n, absl::Duration timeout);
  // The protocol the server selected by ALPN ("" for none).
  std::string alpn() const;
  int fd() const { return fd_; }

 private:
  TlsTestClient(int fd, SSL_CTX* ctx, SSL* ssl)
      : fd_(fd), ctx_(ctx), ssl_(ssl) {}
  // Waits for what OpenSSL asked for after a call that returned `ret`.
  // False on a real error or past `deadline`.
  bool WaitFor(int ret, absl::Time deadline);

  int fd_;
  SSL_CTX* ctx_;
  SSL* ssl_;
};

}  // namespace testing
}  // namespace mill

#endif  // MILL_IO_EXAMPLES_TESTING_TLS_TEST_CLIENT_H_
