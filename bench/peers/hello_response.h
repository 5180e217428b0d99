// The "HTTP hello" benchmark protocol shared by every HTTP peer: the exact
// response bytes, and the request framing that turns bytes read from a
// connection into responses to send.
//
// Every peer (epoll, libuv, libevent, Asio) uses HelloSession, so they parse
// and answer identically and only their event loops differ. A request is
// everything up to and including the end of its headers ("\r\n\r\n"); request
// bodies are not supported (the load is wrk's keep-alive GET). Pipelined
// requests are answered in order, all responses of one read in one write.
//
// Thread-safety: HelloSession is thread-compatible (one per connection, used
// by the loop thread). Ownership: the session owns its buffers; the reply
// view it hands out points into the session.
#ifndef MILL_IO_BENCH_PEERS_HELLO_RESPONSE_H_
#define MILL_IO_BENCH_PEERS_HELLO_RESPONSE_H_

#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>

#include "bench/peers/peer_common.h"

namespace mill {
namespace bench {

// The one response every HTTP peer sends, byte for byte.
inline constexpr std::string_view kHelloResponse =
    "HTTP/1.1 200 OK\r\n"
    "Content-Length: 13\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "Hello, world!";

// Frames requests in a connection's byte stream and answers each complete
// one with kHelloResponse.
//
//   HelloSession session;
//   ssize_t n = read(fd, session.read_ptr(), session.read_space());
//   std::string_view reply;
//   if (n <= 0 || !session.Commit(n, &reply)) close...;
//   write all of `reply`, then read again.
class HelloSession {
 public:
  HelloSession() = default;
  HelloSession(const HelloSession&) = delete;
  HelloSession& operator=(const HelloSession&) = delete;

  // Where the next read should put its bytes, and how many fit.
  char* read_ptr() { return buffer_ + size_; }
  std::size_t read_space() const { return sizeof(buffer_) - size_; }

  // Accounts for `n` bytes just read at read_ptr(). Sets `*reply` to one
  // response per request completed by them (empty if none), valid until the
  // next Commit(); keeps the partial rest for the next read. Returns false
  // when the buffer is full without a complete request (a request larger
  // than the read buffer): the caller should close the connection.
  bool Commit(std::size_t n, std::string_view* reply) {
    size_ += n;
    out_.clear();
    std::size_t consumed = 0;
    // A terminator may straddle two reads, so each scan starts at the
    // beginning of the pending partial request.
    for (;;) {
      const void* end =
          memmem(buffer_ + consumed, size_ - consumed, "\r\n\r\n", 4);
      if (end == nullptr) break;
      consumed = static_cast<const char*>(end) - buffer_ + 4;
      out_.append(kHelloResponse.data(), kHelloResponse.size());
    }
    if (consumed > 0) {
      std::memmove(buffer_, buffer_ + consumed, size_ - consumed);
      size_ -= consumed;
    }
    *reply = out_;
    return size_ < sizeof(buffer_);
  }

 private:
  char buffer_[kReadBufferSize];
  std::size_t size_ = 0;
  std::string out_;
};

}  // namespace bench
}  // namespace mill

#endif  // MILL_IO_BENCH_PEERS_HELLO_RESPONSE_H_
