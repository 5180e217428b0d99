#include "examples/testing/line_reader.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>

namespace mill {
namespace testing {

std::optional<std::string> LineReader::ReadLine(
    std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const size_t newline = buffer_.find('\n');
    if (newline != std::string::npos) {
      std::string line = buffer_.substr(0, newline);
      buffer_.erase(0, newline + 1);
      return line;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (eof_ || left.count() <= 0 || !Fill(left)) return std::nullopt;
  }
}

bool LineReader::Fill(std::chrono::milliseconds timeout) {
  if (eof_) return false;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd pfd = {fd_, POLLIN, 0};
    const int ready =
        poll(&pfd, 1, static_cast<int>(left.count() > 0 ? left.count() : 0));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return false;
    char chunk[65536];
    const ssize_t n = read(fd_, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      eof_ = true;  // end of stream, or the peer reset the connection
      return false;
    }
    buffer_.append(chunk, static_cast<size_t>(n));
    return true;
  }
}

}  // namespace testing
}  // namespace mill
