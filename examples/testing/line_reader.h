// LineReader: what the examples' integration tests read from a child's pipe
// or a server's socket, handed out line by line (with a deadline), so that
// the Subprocess helper and the tests' line-protocol clients share one read
// loop. Test-only.
//
// Thread-safety: thread-compatible. Ownership: does not own the descriptor;
// copying or moving it keeps reading the same one.
#ifndef MILL_IO_EXAMPLES_TESTING_LINE_READER_H_
#define MILL_IO_EXAMPLES_TESTING_LINE_READER_H_

#include <chrono>
#include <optional>
#include <string>

namespace mill {
namespace testing {

class LineReader {
 public:
  explicit LineReader(int fd) : fd_(fd) {}

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
  std::string buffer_;
  bool eof_ = false;
};

}  // namespace testing
}  // namespace mill

#endif  // MILL_IO_EXAMPLES_TESTING_LINE_READER_H_
