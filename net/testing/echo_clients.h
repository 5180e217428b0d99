// Test helpers for //net and the examples: blocking test clients and a
// poll(2)-driven swarm of echo clients that checks every byte.
//
// Thread-safety: thread-compatible; each helper object belongs to one thread.
// Ownership: TestClient owns its descriptor. testonly.
#ifndef MILL_IO_NET_TESTING_ECHO_CLIENTS_H_
#define MILL_IO_NET_TESTING_ECHO_CLIENTS_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace mill {
namespace net_testing {

// Polls `pred` every millisecond until it holds or `timeout` passes; its
// last value. For waiting on an event a test cannot be told of.
inline bool WaitFor(const std::function<bool()>& pred,
                    absl::Duration timeout = absl::Seconds(10)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (pred()) return true;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return pred();
}

// Byte `i` of the deterministic pattern of stream `seed`.
inline char PatternByte(uint64_t seed, uint64_t i) {
  return static_cast<char>((seed * 131 + i * 7 + (i >> 8) + (i >> 16)) & 0xff);
}
std::string Pattern(uint64_t seed, size_t n, uint64_t offset = 0);

// A blocking client socket with receive/send timeouts (10 s by default).
class TestClient {
 public:
  // Connects to 127.0.0.1:port. `rcvbuf` > 0 sets SO_RCVBUF before connect.
  static absl::StatusOr<TestClient> Connect(uint16_t port, int rcvbuf = 0);

  TestClient(TestClient&& other) noexcept;
  TestClient& operator=(TestClient&& other) noexcept;
  ~TestClient();

  int fd() const { return fd_; }
  absl::Status SendAll(absl::string_view data);
  // Reads exactly n bytes unless EOF, an error or the timeout comes first;
  // returns what it read.
  std::string RecvExactly(size_t n);
  // Reads until EOF (or error / timeout); returns the bytes.
  std::string RecvUntilEof();
  // Waits for EOF or reset, discarding data. True if it came in time.
  bool WaitClosed(absl::Duration timeout);
  // shutdown(SHUT_WR).
  void ShutdownWrite();
  // SO_LINGER {1, 0} then close: the peer gets RST.
  void Reset();
  void Close();

 private:
  explicit TestClient(int fd) : fd_(fd) {}
  int fd_ = -1;
};

struct EchoSwarmResult {
  size_t completed = 0;   // connections that got every byte back, in order
  size_t mismatches = 0;  // connections that received a wrong byte
  size_t failed = 0;      // connect/IO errors or early EOF
  bool timed_out = false;
  std::string first_error;
};

// Opens `connections` clients to 127.0.0.1:port, each sends `bytes` of its
// own pattern (seeded `seed_base + index`) while reading the echo, and
// checks every byte. All in one thread with poll(2), within `timeout`.
EchoSwarmResult RunEchoSwarm(uint16_t port, size_t connections, size_t bytes,
                             absl::Duration timeout, uint64_t seed_base = 0);

}  // namespace net_testing
}  // namespace mill

#endif  // MILL_IO_NET_TESTING_ECHO_CLIENTS_H_
