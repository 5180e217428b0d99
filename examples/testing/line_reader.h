// LineReader: what the examples' integration tests read from a child's pipe
// or a server's socket, handed out line by line (with a deadline), so that
// the Subprocess helper and the tests' line-protocol clients share one read
// loop. Test-only.
//
// Fill() is per platform (line_reader_posix.cc: poll and read on any
// descriptor; line_reader_win.cc: WSAPoll and recv on a socket, or
// PeekNamedPipe and ReadFile on a pipe HANDLE stored in the int).
//
// Thread-safety: thread-compatible. Ownership: does not own the descriptor;
// copying or moving it keeps reading the same one.
#ifndef MILL_IO_EXAMPLES_TESTING_LINE_READER_H_
#define MILL_IO_EXAMPLES_TESTING_LINE_READER_H_

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace mill {
namespace testing {

class LineReader {
 public:
  // What `fd` is: Windows reads sockets and pipes differently (POSIX reads
  // both alike).
  enum class Source { kSocket, kPipe };

  explicit LineReader(int fd, Source source = Source::kSocket)
      : fd_(fd), source_(source) {}

  // The next complete line without its '\n', or nullopt on timeout or end of
  // stream (a last line without '\n' stays in buffered()).
  std::optional<std::string> ReadLine(std::chrono::milliseconds timeout);

  // Waits up to `timeout` for bytes and appends what one read returns to the
  // buffer. False on timeout, end of stream or a read error (the latter two
  // also set eof()).
  bool Fill(std::chrono::milliseconds timeout);

  // Read but not yet returned.
  std::string& buffered() { return buffer_; }
  const std::string& buffered() const { return buffer_; }
  bool eof() const { return eof_; }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  Source source_ = Source::kSocket;
  std::string buffer_;
  bool eof_ = false;
};

// For tests reading several sockets at once: waits up to `timeout` until any
// of `fds` is readable (bytes, end of stream or an error); `(*readable)[i]`
// says whether fds[i] is. The number ready; 0 on timeout or error.
int WaitReadable(const std::vector<int>& fds, std::chrono::milliseconds timeout,
                 std::vector<bool>* readable);

// recv() of at most `size` bytes from socket `fd`: the count, 0 at end of
// stream, -1 on an error.
long ReceiveFromSocket(int fd, char* buffer, size_t size);

}  // namespace testing
}  // namespace mill

#endif  // MILL_IO_EXAMPLES_TESTING_LINE_READER_H_
