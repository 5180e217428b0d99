#include "examples/testing/line_reader.h"

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

}  // namespace testing
}  // namespace mill
