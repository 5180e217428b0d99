// The per-connection protocol of a peer server, chosen at build time: the
// same server source builds the echo peer and, with MILL_BENCH_HTTP=1, the
// HTTP hello peer (see BUILD.bazel).
//
// A Session is what a server loop drives, identically on every library:
//
//   n = read(fd, session.read_ptr(), session.read_space());   // n > 0
//   std::string_view reply;
//   if (!session.Commit(n, &reply)) close;
//   write all of `reply` (pausing reads until done), then read again.
//
// Thread-safety: thread-compatible, one per connection. Ownership: the
// session owns its buffers; `reply` points into the session and stays valid
// until the next Commit().
#ifndef MILL_IO_BENCH_PEERS_SESSION_H_
#define MILL_IO_BENCH_PEERS_SESSION_H_

#include <cstddef>
#include <string_view>

#include "bench/peers/hello_response.h"
#include "bench/peers/peer_common.h"

namespace mill {
namespace bench {

// Echo: replies with exactly the bytes just read, straight from the read
// buffer (no copy).
class EchoSession {
 public:
  EchoSession() = default;
  EchoSession(const EchoSession&) = delete;
  EchoSession& operator=(const EchoSession&) = delete;

  char* read_ptr() { return buffer_; }
  std::size_t read_space() const { return sizeof(buffer_); }

  bool Commit(std::size_t n, std::string_view* reply) {
    *reply = std::string_view(buffer_, n);
    return true;
  }

 private:
  char buffer_[kReadBufferSize];
};

#if defined(MILL_BENCH_HTTP) && MILL_BENCH_HTTP
using Session = HelloSession;
inline constexpr const char* kProtocolName = "http";
#else
using Session = EchoSession;
inline constexpr const char* kProtocolName = "echo";
#endif

}  // namespace bench
}  // namespace mill

#endif  // MILL_IO_BENCH_PEERS_SESSION_H_
