#include "examples/testing/subprocess.h"

#include <cstdlib>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace mill {
namespace testing {

std::string RunfilePath(const std::string& workspace_relative) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  return absl::StrCat(srcdir ? srcdir : ".", "/",
                      workspace ? workspace : "mill_io", "/",
                      workspace_relative);
}

Subprocess::Subprocess(Subprocess&& other) noexcept
    : pid_(other.pid_),
      handle_(other.handle_),
      out_(std::move(other.out_)),
      err_(std::move(other.err_)),
      reaped_(other.reaped_) {
  other.pid_ = -1;
  other.handle_ = 0;
  other.out_ = LineReader(-1, LineReader::Source::kPipe);
  other.err_ = LineReader(-1, LineReader::Source::kPipe);
}

std::optional<std::string> Subprocess::ReadStdoutLine(
    std::chrono::milliseconds timeout) {
  return out_.ReadLine(timeout);
}

std::optional<std::string> Subprocess::ReadStderrLine(
    std::chrono::milliseconds timeout) {
  return err_.ReadLine(timeout);
}

int Subprocess::WaitForListeningPort(std::chrono::milliseconds timeout) {
  constexpr absl::string_view kPrefix = "listening on 127.0.0.1:";
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    std::optional<std::string> line =
        ReadStdoutLine(std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now()));
    if (!line) return 0;
    if (absl::StartsWith(*line, kPrefix)) {
      int port = 0;
      if (absl::SimpleAtoi(line->substr(kPrefix.size()), &port)) return port;
      return 0;
    }
  }
  return 0;
}

}  // namespace testing
}  // namespace mill
